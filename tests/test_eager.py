"""Module state and Modules outside a trace: ``Parameter.numpy`` / ``hasattr``, and eager ``model(x)`` calls."""
from __future__ import annotations

import numpy as np
import pytest

import needlec
from needlec import nn
from needlec.errors import TraceError
from needlec.frontend.tensor import Tensor


def test_parameter_numpy_and_hasattr_outside_a_trace() -> None:
    p = nn.Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert hasattr(p, "numpy") and getattr(p, "numpy", None) is not None
    data = p.numpy()
    np.testing.assert_array_equal(data, np.arange(6, dtype=np.float32).reshape(2, 3))
    data[0, 0] = 42.0  # a copy: the parameter keeps its data
    assert p.data[0, 0] == 0.0
    assert not hasattr(p, "T") and getattr(p, "T", None) is None
    assert not hasattr(p, "no_such_attribute")
    with pytest.raises(TraceError, match="needs an active trace"):
        p.T  # noqa: B018
    buffer = nn.Buffer(np.ones(2, np.float32))
    assert hasattr(buffer, "numpy") and not hasattr(buffer, "sum")
    np.testing.assert_array_equal(buffer.numpy(), np.ones(2, np.float32))


def test_parameter_inside_a_trace_acts_as_a_tensor() -> None:
    p = nn.Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    seen: dict[str, bool] = {}

    def fn(x: Tensor) -> Tensor:
        seen["T"] = hasattr(p, "T")
        with pytest.raises(TraceError):
            p.numpy()
        return x @ p.T

    graph = needlec.trace(fn, np.ones((1, 3), np.float32))
    assert seen["T"] and graph.outputs[0].shape == (1, 2)
