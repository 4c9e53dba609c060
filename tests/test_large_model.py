"""A model with about 100 MB of weights compiles to a shared library quickly and runs in a fresh process.

Weights over ``INLINE_LIMIT`` bytes never pass through LLVM IR text: they are
declared external in the module and linked from a data object built with
``.incbin`` (``runtime/data_object.py``). This test builds three dense layers
holding 100 MB of float32 weights (stored as ONNX external data, as large
models are), compiles them with the CLI, reports the compile time and peak
memory, and checks the library's outputs against NumPy.
"""
from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytestmark = pytest.mark.slow

LAYERS = ((1024, 4096), (4096, 4096), (4096, 1280))  # 25M float32 weights: 100 MiB
COMPILE_SECONDS_LIMIT = 60.0


def build_model(directory: Path) -> tuple[Path, list[np.ndarray]]:
    """big.onnx (plus big.weights, its external data): relu(x @ W + b) per layer, the last without relu."""
    rng = np.random.default_rng(0)
    params, nodes, initializers = [], [], []
    current = "x"
    for i, (fan_in, fan_out) in enumerate(LAYERS):
        w = (rng.standard_normal((fan_in, fan_out), dtype=np.float32) / np.sqrt(fan_in)).astype(np.float32)
        b = rng.standard_normal(fan_out, dtype=np.float32)
        params += [w, b]
        initializers += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [current, f"W{i}"], [f"h{i}"], name=f"matmul{i}"),
                  helper.make_node("Add", [f"h{i}", f"b{i}"], [f"a{i}"], name=f"bias{i}")]
        current = f"a{i}"
        if i < len(LAYERS) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"], name=f"relu{i}"))
            current = f"r{i}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, LAYERS[0][0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, LAYERS[-1][1]])],
                              initializers)
    path = directory / "big.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path,
              save_as_external_data=True, location="big.weights", size_threshold=1024)
    return path, params


def reference(x: np.ndarray, params: list[np.ndarray]) -> np.ndarray:
    h = x.astype(np.float64)
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = np.maximum(h, 0)
    return h


def test_100mb_model_compiles_to_a_shared_library_within_a_minute(tmp_path: Path) -> None:
    model, params = build_model(tmp_path)
    weight_bytes = sum(p.nbytes for p in params)
    assert weight_bytes > 100e6
    library = tmp_path / "big.so"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "needlec.cli", "compile", str(model), "-o", str(library)],
                            capture_output=True, text=True, timeout=10 * COMPILE_SECONDS_LIMIT)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\n{result.stderr}compiled {weight_bytes / 1e6:.0f} MB of weights in {seconds:.1f} s "
          f"(peak memory of the compiler process: {peak_mb:.0f} MB)")
    assert result.returncode == 0, result.stderr
    assert seconds < COMPILE_SECONDS_LIMIT
    assert library.stat().st_size > weight_bytes and (tmp_path / "big.h").exists()

    x = np.random.default_rng(1).standard_normal((2, LAYERS[0][0])).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (f"import numpy as np, needlec\n"
              f"y = needlec.load({str(library)!r})(np.load({str(tmp_path / 'x.npy')!r}))\n"
              f"np.save({str(tmp_path / 'y.npy')!r}, y)\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    want = reference(x, params)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
