"""Whole traced models (an MLP and a small CNN) compiled and compared with NumPy forward passes.

Each model runs through the in-process JIT and through an exported shared
library loaded in a fresh Python process; the examples are checked the same
way.
"""
from __future__ import annotations

import os
import runpy
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import needlec
from needlec import nn
from tests.test_frontend import np_conv2d, np_pool2d

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL, ATOL = 1e-5, 1e-6


def make_mlp() -> nn.Sequential:
    rng = np.random.default_rng(11)
    return nn.Sequential(nn.Linear(20, 64, rng=rng), nn.ReLU(), nn.Linear(64, 32, rng=rng), nn.ReLU(),
                         nn.Linear(32, 5, rng=rng))


def make_cnn() -> nn.Sequential:
    rng = np.random.default_rng(12)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, stride=2, rng=rng), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 3 * 3, 4, rng=rng))


def numpy_forward(model: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """``model`` evaluated layer by layer with NumPy in float64, from its parameters' data."""
    h = x.astype(np.float64)
    for layer in model:
        if isinstance(layer, nn.Linear):
            h = h @ layer.weight.data.T.astype(np.float64) + layer.bias.data
        elif isinstance(layer, nn.Conv2d):
            h = np_conv2d(h, layer.weight.data.astype(np.float64), layer.bias.data.astype(np.float64),
                          stride=layer.stride, padding=layer.padding)
        elif isinstance(layer, nn.ReLU):
            h = np.maximum(h, 0)
        elif isinstance(layer, nn.MaxPool2d):
            h = np_pool2d(h, layer.kernel_size, layer.kernel_size, 0, "max")
        elif isinstance(layer, nn.Flatten):
            h = h.reshape(h.shape[0], -1)
        else:
            raise AssertionError(f"no NumPy reference for {layer}")
    return h


MODELS = {"mlp": (make_mlp, (8, 20)), "cnn": (make_cnn, (2, 3, 16, 16))}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request: Any) -> tuple[nn.Sequential, np.ndarray, needlec.Compiled]:
    make, shape = MODELS[request.param]
    model = make()
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    return model, x, needlec.compile(model, [x])


def test_traced_graph_holds_named_weights(case: tuple) -> None:
    model, x, compiled = case
    graph = needlec.trace(model, x)
    names = {v.name for v in graph.constants}
    assert {name for name, _ in model.named_parameters()} <= names
    assert compiled.signature.inputs[0].name == "x"
    assert compiled.signature.inputs[0].shape == x.shape


def test_jit_matches_numpy(case: tuple) -> None:
    model, x, compiled = case
    got = compiled(x)
    want = numpy_forward(model, x)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


LOAD_AND_RUN = """
import sys
import numpy as np
import needlec
model = needlec.load(sys.argv[1])
np.save(sys.argv[3], model(np.load(sys.argv[2])))
"""


def run_exported(compiled: needlec.Compiled, x: np.ndarray, tmp_path: Any) -> np.ndarray:
    """Export ``compiled``, run it on ``x`` in a fresh Python process, return its output."""
    library = compiled.export(str(tmp_path / "model.so"))
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, library, str(tmp_path / "x.npy"),
                             str(tmp_path / "y.npy")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    return np.load(tmp_path / "y.npy")


def test_exported_library_matches_numpy_in_a_fresh_process(case: tuple, tmp_path: Any) -> None:
    model, x, compiled = case
    got = run_exported(compiled, x, tmp_path)
    np.testing.assert_allclose(got, numpy_forward(model, x), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(got, compiled(x))


@pytest.mark.parametrize("example", ["mlp.py", "cnn.py"])
def test_example_model_files_compile_and_match_numpy(example: str) -> None:
    namespace = runpy.run_path(os.path.join(ROOT, "examples", example))
    model, example_inputs = namespace["model"], namespace["example_inputs"]
    assert isinstance(example_inputs, tuple) and all(isinstance(a, np.ndarray) for a in example_inputs)
    got = needlec.compile(model, example_inputs)(*example_inputs)
    np.testing.assert_allclose(got, numpy_forward(model, *example_inputs), rtol=RTOL, atol=ATOL)


def test_quickstart_runs() -> None:
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "quickstart.py")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "max abs error vs NumPy" in result.stdout
    assert "signature: <Compiled MLP(x: float32[8, 64])" in result.stdout
