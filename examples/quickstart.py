"""needlec in one page: trace a PyTorch-style model, compile it to native code, check it, export it.

    python examples/quickstart.py
"""
import os
import tempfile

import numpy as np

import needlec
from needlec import nn, ops


class MLP(nn.Module):
    """Three linear layers with ReLU in between, and a softmax over the classes."""

    def __init__(self, sizes: tuple[int, ...], rng: np.random.Generator) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(sizes[0], sizes[1], rng=rng), nn.ReLU(),
            nn.Linear(sizes[1], sizes[2], rng=rng), nn.ReLU(),
            nn.Linear(sizes[2], sizes[3], rng=rng),
        )

    def forward(self, x):
        return ops.softmax(self.layers(x), axis=-1)


def numpy_forward(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The same network written with NumPy alone, from the model's ``state_dict``."""
    h = x
    for i in (0, 2, 4):
        h = h @ weights[f"layers.{i}.weight"].T + weights[f"layers.{i}.bias"]
        if i != 4:
            h = np.maximum(h, 0)
    e = np.exp(h - h.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main() -> None:
    rng = np.random.default_rng(0)
    model = MLP((64, 128, 64, 10), rng)
    x = rng.standard_normal((8, 64)).astype(np.float32)

    graph = needlec.trace(model, x)  # the recorded graph IR
    print(f"traced {len(graph.nodes)} nodes: {', '.join(node.op for node in graph.nodes)}")

    compiled = needlec.compile(model, [x])  # trace + passes + LLVM, loaded in-process
    y = compiled(x)
    error = np.abs(y - numpy_forward(model.state_dict(), x)).max()
    print(f"max abs error vs NumPy: {error:.3g}")
    if error > 1e-5:
        raise SystemExit("compiled model disagrees with NumPy")
    print(f"signature: {compiled}")

    with tempfile.TemporaryDirectory() as tmp:  # a self-contained shared library, weights inside
        path = compiled.export(os.path.join(tmp, "mlp.so"))
        reloaded = needlec.load(path)
        print(f"exported {os.path.getsize(path)} bytes; reloaded output matches: {np.array_equal(reloaded(x), y)}")


if __name__ == "__main__":
    main()
