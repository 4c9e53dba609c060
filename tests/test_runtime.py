"""The runtime: input validation, shared-library export and loading."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.errors import ArtifactError, RuntimeInputError, UnsupportedOpError


@pytest.fixture(scope="module")
def model() -> needlec.Compiled:
    g = Graph("affine")
    x = g.add_input("x", TensorType((2, 3), DType.F32))
    s = g.add_input("s", TensorType((), DType.F32))
    g.set_outputs([g.add("mul", x, s), g.add("exp", x)])
    return needlec.compile(g)


def test_call_by_position_and_by_name(model) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    a, b = model(x, np.float32(2))
    np.testing.assert_allclose(a, 2 * x)
    a2, _ = model(s=np.float32(3), x=x)
    np.testing.assert_allclose(a2, 3 * x)
    np.testing.assert_allclose(b, np.exp(x), rtol=1e-6)


def test_non_contiguous_input_is_accepted(model) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4).T[:2, :3]
    np.testing.assert_allclose(model(x, np.float32(1))[0], x)


@pytest.mark.parametrize("args, kwargs, message", [
    ((np.zeros((2, 3), np.float32),), {}, r"expected 2 input\(s\), found 1; missing s"),
    ((np.zeros((2, 3), np.float32), np.float32(1), np.float32(1)), {}, r"expected 2 input\(s\) \(x, s\), found 3"),
    ((np.zeros((3, 2), np.float32), np.float32(1)), {}, r"input 'x' expected shape \(2, 3\), found \(3, 2\)"),
    ((np.zeros((2, 3), np.float64), np.float32(1)), {}, "input 'x' expected dtype float32, found float64"),
    ((np.zeros((2, 3), np.float32),), {"t": np.float32(1)}, "unknown input 't'"),
    (([[1.0, 2.0, 3.0]] * 2, np.float32(1)), {}, "input 'x' must be a numpy array, found list"),
])
def test_bad_inputs_raise_named_errors(model, args, kwargs, message) -> None:
    with pytest.raises(RuntimeInputError, match=message):
        model(*args, **kwargs)


def test_unknown_op_is_named() -> None:
    g = Graph("g")
    x = g.add_input("x", TensorType((2,), DType.F32))
    with pytest.raises(UnsupportedOpError, match="unknown op 'frobnicate'"):
        g.add("frobnicate", x)


def test_export_and_load_in_a_fresh_process(model, tmp_path) -> None:
    lib = str(tmp_path / "affine.so")
    model.export(lib)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, needlec\n"
        f"m = needlec.load({lib!r})\n"
        f"a, b = m(np.load({str(tmp_path / 'x.npy')!r}), np.float32(0.5))\n"
        f"np.save({str(tmp_path / 'a.npy')!r}, a); np.save({str(tmp_path / 'b.npy')!r}, b)\n"
        "try:\n    m(a)\nexcept needlec.NeedlecError as e:\n    print('rejected:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "rejected:" in out.stdout and "missing s" in out.stdout
    a_jit, b_jit = model(x, np.float32(0.5))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), a_jit)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), b_jit)


def test_load_rejects_missing_and_foreign_files(tmp_path) -> None:
    with pytest.raises(ArtifactError, match="no such file"):
        needlec.load(str(tmp_path / "missing.so"))
    bogus = tmp_path / "bogus.so"
    bogus.write_text("not a library")
    with pytest.raises(ArtifactError, match="cannot load"):
        needlec.load(str(bogus))
