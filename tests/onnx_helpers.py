"""Helpers shared by the ONNX converter tests: compile a model with needlec and compare outputs."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import pytest

import needlec
from needlec import from_onnx
from needlec.frontend.onnx import OnnxImportError


def run_onnx(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """needlec's outputs of ``model`` (imported and compiled) on ``feeds``."""
    got = needlec.compile(from_onnx(model))(*feeds.values())
    return got if isinstance(got, tuple) else (got,)


def assert_same(got: Sequence[np.ndarray], expected: Sequence[np.ndarray], rtol: float = 1e-4,
                atol: float = 1e-5) -> None:
    """Equal count, shapes, dtypes and values (exact for integers and bools)."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert g.shape == e.shape and g.dtype == e.dtype, (g.shape, g.dtype, e.shape, e.dtype)
        if e.dtype.kind in "biu":
            np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol)


def import_error(model: onnx.ModelProto) -> str:
    """The one-line message of the OnnxImportError importing ``model`` raises."""
    with pytest.raises(OnnxImportError) as info:
        from_onnx(model)
    message = str(info.value)
    assert "\n" not in message
    return message
