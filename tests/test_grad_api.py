"""``needlec.grad`` / ``needlec.value_and_grad``: argnums, Module parameters, caching, live state, errors.

Gradients are checked against closed forms computed with NumPy; the
PyTorch comparisons of whole models live in test_nn_torch.py.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import needlec
from needlec import nn, ops
from needlec.errors import NeedlecError, TraceError

RNG = np.random.default_rng(0)


def normal(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def assert_close(got: Any, want: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, f"{got.dtype}{got.shape} != {want.dtype}{want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


class Counted:
    """Wraps a function and counts how often it runs (each run is one trace)."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.calls = fn, 0
        self.__name__ = getattr(fn, "__name__", "fn")

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.fn(*args)


def test_grad_of_one_argument() -> None:
    x = normal(3, 4)
    g = needlec.grad(lambda x: ops.sum(ops.sin(x) * x))(x)
    assert_close(g, np.cos(x) * x + np.sin(x))


def test_argnums_select_and_shape_the_result() -> None:
    x, y = normal(3), normal(3)

    def f(x: Any, y: Any) -> Any:
        return ops.sum(x * y + x * x)

    dx, dy = needlec.grad(f, argnums=(0, 1))(x, y)
    assert_close(dx, y + 2 * x)
    assert_close(dy, x)
    assert_close(needlec.grad(f, argnums=1)(x, y), x)
    assert_close(needlec.grad(f, argnums=-1)(x, y), x)
    (only,) = needlec.grad(f, argnums=(1,))(x, y)
    assert_close(only, x)


def test_value_and_grad_returns_the_scalar_value_too() -> None:
    x = normal(5)
    value, g = needlec.value_and_grad(lambda x: ops.mean(x * x))(x)
    assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float32
    assert_close(value, np.mean(x * x))
    assert_close(g, 2 * x / 5)


def test_integer_arguments_pass_through_undifferentiated() -> None:
    logits, labels = normal(4, 3), np.array([0, 2, 1, 2])
    g = needlec.grad(lambda x, y: ops.cross_entropy(x, y, reduction="sum"))(logits, labels)
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert_close(g, softmax - np.eye(3, dtype=np.float32)[labels])


def test_compiled_once_per_signature() -> None:
    counted = Counted(lambda x: ops.sum(x * x * x))
    grad = needlec.grad(counted)
    a, b = normal(4), normal(4)
    assert_close(grad(a), 3 * a * a)
    assert_close(grad(b), 3 * b * b)  # new values, same program
    assert counted.calls == 1
    c = normal(2, 2)
    assert_close(grad(c), 3 * c * c)
    assert_close(grad(a.astype(np.float64)), 3 * a.astype(np.float64) ** 2)
    assert counted.calls == 3 and len(grad.cache) == 3
    grad(b)
    assert counted.calls == 3


def linear_model() -> nn.Linear:
    return nn.Linear(3, 2, rng=np.random.default_rng(1))


def mse_grads(model: nn.Linear, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Closed-form gradients of mean((x W^T + b - y)^2) w.r.t. x, W and b."""
    residual = 2 * (x @ model.weight.data.T + model.bias.data - y) / y.size
    return residual @ model.weight.data, {"weight": residual.T @ x, "bias": residual.sum(0)}


def test_parameter_gradients_by_module_path() -> None:
    model = linear_model()
    x, y = normal(5, 3), normal(5, 2)
    want_dx, want = mse_grads(model, x, y)
    grads = needlec.grad(lambda x, y: ops.mse_loss(model(x), y), wrt_params=model)(x, y)
    assert list(grads) == ["weight", "bias"]
    for name in grads:
        assert_close(grads[name], want[name])
    dx, grads = needlec.grad(lambda x, y: ops.mse_loss(model(x), y), argnums=0, wrt_params=model)(x, y)
    assert_close(dx, want_dx)
    assert_close(grads["bias"], want["bias"])
    nested = nn.Sequential(nn.Tanh(), model)
    grads = needlec.grad(lambda x, y: ops.mse_loss(nested(x), y), wrt_params=nested)(x, y)
    assert list(grads) == ["1.weight", "1.bias"]


def test_parameter_updates_are_read_on_every_call_without_retracing() -> None:
    model = linear_model()
    x, y = normal(4, 3), normal(4, 2)
    counted = Counted(lambda x, y: ops.mse_loss(model(x), y))
    grad = needlec.grad(counted, wrt_params=model)
    first = grad(x, y)["weight"]
    model.weight.data = model.weight.data - 0.5 * first  # an SGD step in NumPy
    model.bias.data += 1.0
    second = grad(x, y)
    _, want = mse_grads(model, x, y)
    assert_close(second["weight"], want["weight"])
    assert_close(second["bias"], want["bias"])
    assert counted.calls == 1


def test_replacing_a_parameter_of_wrt_params_retraces() -> None:
    model = nn.Sequential(linear_model())
    x, y = normal(4, 3), normal(4, 2)
    counted = Counted(lambda x, y: ops.mse_loss(model(x), y))
    grad = needlec.grad(counted, wrt_params=model)
    grad(x, y)
    replacement = nn.Linear(3, 2, rng=np.random.default_rng(7))
    setattr(model, "0", replacement)
    _, want = mse_grads(replacement, x, y)
    assert_close(grad(x, y)["0.weight"], want["weight"])
    assert counted.calls == 2


def test_unused_parameters_get_zero_gradients() -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = linear_model(), linear_model()

        def forward(self, x: Any) -> Any:
            return ops.sum(self.used(x))

    model = TwoHeads()
    grads = needlec.grad(model, wrt_params=model)(normal(2, 3))
    assert list(grads) == ["used.weight", "used.bias", "unused.weight", "unused.bias"]
    assert not grads["unused.weight"].any() and grads["unused.weight"].shape == (2, 3)
    assert_close(grads["used.bias"], np.full(2, 2.0, np.float32))


def test_train_eval_switch_and_buffer_changes_are_followed() -> None:
    model = nn.Sequential(nn.Linear(3, 4, rng=np.random.default_rng(2)), nn.BatchNorm1d(4))
    x = normal(6, 3)
    counted = Counted(lambda x: ops.sum(model(x) * np.arange(4, dtype=np.float32)))
    grad = needlec.value_and_grad(counted, wrt_params=model)
    train_value, train_grads = grad(x)
    np.testing.assert_allclose(train_value, 0.0, atol=1e-4)  # batch-normalised columns sum to zero
    model.eval()
    eval_value, _ = grad(x)
    assert counted.calls == 2
    hidden = x @ model[0].weight.data.T + model[0].bias.data
    want = (hidden / np.sqrt(1 + 1e-5)) @ np.arange(4, dtype=np.float32)
    assert_close(eval_value, np.float32(want.sum()), rtol=1e-5, atol=1e-5)
    model[1].running_mean.data = np.ones(4, np.float32)  # a buffer is read at call time too
    shifted_value, _ = grad(x)
    assert counted.calls == 2
    assert_close(shifted_value, np.float32(eval_value - 6 * 6 / np.sqrt(1 + 1e-5)), rtol=1e-5, atol=1e-4)
    assert not train_grads["0.bias"].any() or np.abs(train_grads["0.bias"]).max() < 1e-5  # BatchNorm absorbs it


def test_dropout_step_change_retraces() -> None:
    dropout = nn.Dropout(0.5, seed=3)
    x = np.ones(64, np.float32)
    counted = Counted(lambda x: ops.sum(dropout(x)))
    grad = needlec.grad(counted)
    first = grad(x)
    assert set(np.unique(first)) == {0.0, 2.0}
    np.testing.assert_array_equal(grad(x), first)
    dropout.step += 1
    assert (grad(x) != first).any() and counted.calls == 2


@pytest.mark.parametrize("fn, args, kwargs, message", [
    (lambda x: x * 2, [np.ones(3, np.float32)], {},
     r"grad: <lambda> must return one scalar \(0-d\) float Tensor, found f32\[3\]"),
    (lambda x: (ops.sum(x), ops.sum(x)), [np.ones(3, np.float32)], {}, "must return one scalar"),
    (lambda x: ops.sum(x > 0), [np.ones(3, np.float32)], {}, r"found i64\[\]"),
    (lambda x: ops.sum(x), [np.ones(3, np.float32)], {"argnums": 1},
     "argnums index 1 is out of range for 1 argument"),
    (lambda x, i: ops.sum(x), [np.ones(3, np.float32), np.ones(3, np.int64)], {"argnums": 1},
     "argument 1 has dtype int64; only float arguments have gradients"),
    (lambda x: ops.sum(x), [np.ones(3, np.float32)], {"argnums": (0, 0)}, r"argnums \(0, 0\) repeats an index"),
    (lambda x: ops.sum(x), [np.ones(3, np.float32)], {"argnums": ()},
     "nothing to differentiate: argnums is empty and no wrt_params Module is given"),
    (lambda x: ops.sum(x), [np.ones(3, np.float32)], {"wrt_params": {"w": 1}},
     "wrt_params must be an nn.Module, found dict"),
    (3, [], {}, "grad: expected a function or an nn.Module, found int"),
])
def test_grad_errors(fn: Any, args: list, kwargs: dict, message: str) -> None:
    with pytest.raises(NeedlecError, match=message) as info:
        needlec.grad(fn, **kwargs)(*args)
    assert isinstance(info.value, TraceError)
