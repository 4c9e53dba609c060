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


def _model() -> nn.Module:
    needlec.nn.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 6)).eval()


def test_eager_call_matches_the_compiled_model() -> None:
    model = _model()
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32)
    eager = model(x)
    assert isinstance(eager, np.ndarray) and eager.shape == (2, 6) and eager.dtype == np.float32
    compiled = needlec.compile(model, [x])
    np.testing.assert_allclose(eager, compiled(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(nn.Flatten()(x), x.reshape(2, -1))  # any Module runs eagerly


def test_eager_call_returns_tuples_and_takes_static_arguments() -> None:
    class TwoOutputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(np.full(3, 2.0, np.float32))

        def forward(self, x: Tensor, y: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
            return x * self.w * scale, x + y

    x, y = np.ones(3, np.float32), np.arange(3, dtype=np.float32)
    first, second = TwoOutputs()(x, y, 3.0)
    np.testing.assert_array_equal(first, np.full(3, 6.0, np.float32))
    np.testing.assert_array_equal(second, x + y)


def test_eager_call_in_training_mode_updates_batchnorm_statistics() -> None:
    bn = nn.BatchNorm2d(2)
    x = np.random.default_rng(2).standard_normal((4, 2, 3, 3)).astype(np.float32) + 5.0
    out = bn(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.running_mean), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)


def test_eager_call_refuses_what_cannot_work() -> None:
    model = nn.Linear(3, 2)
    with pytest.raises(TraceError, match="outside a trace with a Parameter"):
        model(model.weight)
    with pytest.raises(TraceError, match="pass array argument 'x' positionally"):
        model(x=np.ones((1, 3), np.float32))

    class DataDependent(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x if x.sum() > 0 else -x

    with pytest.raises(TraceError):
        DataDependent()(np.ones(3, np.float32))
