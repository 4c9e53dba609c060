"""Compile an ONNX ResNet to native code, check it against ONNX Runtime, export a shared library.

    python examples/onnx_resnet.py                      # a small ResNet exported from PyTorch
    python examples/onnx_resnet.py resnet18.onnx         # any image classifier taking NCHW float32

Without an argument it exports the ResNet-style CNN of ``tests/onnx_models.py``
(needs torch). ONNX files often leave the batch axis dynamic: the input shape
is fixed here to batch 1 with ``input_shapes``. ONNX Runtime, when installed,
serves as the reference.
"""
from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import onnx

import needlec

ROOT = pathlib.Path(__file__).resolve().parent.parent


def small_resnet(directory: str) -> str:
    """Export the seeded test ResNet (input 1x3x32x32) to ``directory`` and return its path."""
    sys.path.insert(0, str(ROOT))
    from tests.onnx_models import MODELS

    return str(MODELS["resnet"].export(pathlib.Path(directory) / "resnet.onnx", batch=1))


def fixed_input_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Each graph input's declared shape, a dynamic batch axis set to 1 and dynamic image sides to 224."""
    model = onnx.load(path, load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    return {info.name: tuple(d.dim_value if d.HasField("dim_value") else (1 if axis == 0 else 224)
                             for axis, d in enumerate(info.type.tensor_type.shape.dim))
            for info in model.graph.input if info.name not in initializers}


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = sys.argv[1] if len(sys.argv) > 1 else small_resnet(directory)
        shapes = fixed_input_shapes(path)
        (name, shape), = shapes.items()
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

        start = time.perf_counter()
        compiled = needlec.compile(path, input_shapes=shapes)
        print(f"compiled {os.path.basename(path)} in {time.perf_counter() - start:.2f} s: {compiled!r}")
        logits = compiled(x)
        print(f"top-5 classes: {np.argsort(logits[0])[::-1][:5].tolist()}")

        try:
            import onnxruntime
        except ImportError:
            print("onnxruntime is not installed: skipping the comparison")
        else:
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            reference = session.run(None, {name: x})[0]
            print(f"max abs difference vs ONNX Runtime: {np.max(np.abs(logits - reference)):.2e}")

        library = compiled.export(os.path.join(directory, "model.so"))
        reloaded = needlec.load(library)
        print(f"exported {os.path.getsize(library) / 1e6:.1f} MB shared library; reloaded output identical: "
              f"{np.array_equal(reloaded(x), logits)}")


if __name__ == "__main__":
    main()
