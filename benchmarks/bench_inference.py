"""Inference speed of the example models: needlec (JIT) vs NumPy and PyTorch eager, same run.

    python benchmarks/bench_inference.py [--repeat 50]

Prints the median time of each and needlec's ratio to each peer (>1 means
needlec is faster). Machines are shared and noisy: read medians and ratios.
"""
from __future__ import annotations

import argparse
import functools
import pathlib
import runpy
from collections.abc import Callable
from typing import Any

import numpy as np
from timing import median_seconds

import needlec

ROOT = pathlib.Path(__file__).resolve().parent.parent


def numpy_forward(model: Any, x: np.ndarray) -> np.ndarray:
    """The MLP's forward pass with NumPy (Linear and ReLU layers only)."""
    for layer in model:
        if isinstance(layer, needlec.nn.Linear):
            x = x @ layer.weight.data.T + layer.bias.data
        else:
            x = np.maximum(x, 0)
    return x


def torch_model(model: Any) -> Any:
    """A PyTorch copy of a needlec Sequential of Linear/ReLU/Conv2d/MaxPool2d/Flatten layers, or None."""
    try:
        import torch
    except ImportError:
        return None
    layers = []
    for layer in model:
        kind = type(layer).__name__
        if kind == "Linear":
            t = torch.nn.Linear(*layer.weight.data.shape[::-1])
        elif kind == "Conv2d":
            t = torch.nn.Conv2d(layer.weight.data.shape[1], layer.weight.data.shape[0], layer.weight.data.shape[2],
                                padding=layer.padding)
        elif kind == "MaxPool2d":
            t = torch.nn.MaxPool2d(layer.kernel_size)
        else:
            t = {"ReLU": torch.nn.ReLU, "Flatten": torch.nn.Flatten}[kind]()
        if hasattr(layer, "weight"):
            t.weight.data = torch.from_numpy(layer.weight.data.copy())
            t.bias.data = torch.from_numpy(layer.bias.data.copy())
        layers.append(t)
    return torch.nn.Sequential(*layers).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    for name in ("mlp", "cnn"):
        ns = runpy.run_path(str(ROOT / "examples" / f"{name}.py"))
        model, (x,) = ns["model"], ns["example_inputs"]
        compiled = needlec.compile(model, [x])
        ours = median_seconds(functools.partial(compiled, x), repeats=args.repeat)
        print(f"{name}: needlec {ours * 1e6:9.1f} us")
        peers: dict[str, Callable[[], Any]] = {}
        if name == "mlp":
            peers["numpy"] = functools.partial(numpy_forward, model, x)
        tmodel = torch_model(model)
        if tmodel is not None:
            import torch

            tx = torch.from_numpy(x)

            def run_torch(tmodel: Any = tmodel, tx: Any = tx) -> Any:
                with torch.no_grad():
                    return tmodel(tx)

            peers["pytorch"] = run_torch
        for peer, fn in peers.items():
            theirs = median_seconds(fn, repeats=args.repeat)
            print(f"{name}: {peer:<7} {theirs * 1e6:9.1f} us   needlec speed ratio {theirs / ours:5.2f}x")


if __name__ == "__main__":
    main()
