"""Losses against ``torch.nn.functional`` (values and gradients), extreme logits, Modules and errors."""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np
import pytest

import needlec
from needlec import losses, nn, ops
from needlec.errors import ShapeError, TraceError
from tests.torch_reference import assert_close, run_needlec, torch, torch_gradients

F_torch = torch.nn.functional
RNG = np.random.default_rng(0)


def normal(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def check_against_torch(ours: Callable[..., Any], theirs: Callable[..., Any], inputs: list[np.ndarray],
                        argnums: tuple[int, ...], rtol: float = 1e-5) -> None:
    """Equal loss values and gradients w.r.t. ``inputs[argnums]``; a "none" reduction is summed with weights."""
    got_value = run_needlec(ours, inputs)[0]
    want_value, want_grads, _ = torch_gradients(lambda *ts: weighted_sum(theirs(*ts)), None, inputs, argnums)
    want_raw = theirs(*[torch.from_numpy(np.array(x)) for x in inputs]).detach().numpy()
    assert_close(got_value, want_raw, rtol, atol=1e-6, what="loss")
    value, grads = needlec.value_and_grad(lambda *ts: weighted_sum(ours(*ts)), argnums=argnums)(*inputs)
    assert_close(value, want_value, rtol, atol=1e-6, what="weighted loss")
    for i, g, w in zip(argnums, grads, want_grads):
        assert np.isfinite(g).all(), f"gradient {i} is not finite"
        assert_close(g, w, rtol, atol=1e-6, what=f"d loss / d input {i}")


def weighted_sum(loss: Any) -> Any:
    """A scalar loss as is; per-element losses summed with fixed weights (so every element's gradient differs)."""
    if loss.shape == ():
        return loss
    weights = np.linspace(0.5, 1.5, int(np.prod(loss.shape)), dtype=np.float32).reshape(loss.shape)
    if isinstance(loss, torch.Tensor):
        return (loss * torch.from_numpy(weights)).sum()
    return ops.sum(loss * weights)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_class_indices(reduction: str) -> None:
    logits, target = normal(6, 5, scale=2.0), RNG.integers(0, 5, 6)
    check_against_torch(lambda x, y: ops.cross_entropy(x, y, reduction=reduction),
                        lambda x, y: F_torch.cross_entropy(x, y, reduction=reduction), [logits, target], (0,))


def test_cross_entropy_with_spatial_axes_and_unbatched_input() -> None:
    check_against_torch(lambda x, y: ops.cross_entropy(x, y), lambda x, y: F_torch.cross_entropy(x, y),
                        [normal(2, 4, 3, 5), RNG.integers(0, 4, (2, 3, 5))], (0,))
    check_against_torch(lambda x, y: ops.cross_entropy(x, y), lambda x, y: F_torch.cross_entropy(x, y),
                        [normal(7), np.array(3)], (0,))


@pytest.mark.parametrize("ignore_index", [-100, 1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_ignores_a_class_index(ignore_index: int, reduction: str) -> None:
    target = np.array([0, 1, -100, 2, 1, 3]) if ignore_index == -100 else np.array([0, 1, 1, 2, 3, 3])
    check_against_torch(lambda x, y: ops.cross_entropy(x, y, ignore_index=ignore_index, reduction=reduction),
                        lambda x, y: F_torch.cross_entropy(x, y, ignore_index=ignore_index, reduction=reduction),
                        [normal(6, 4), target], (0,))


def test_cross_entropy_label_smoothing_and_probability_targets() -> None:
    logits, target = normal(5, 4), RNG.integers(0, 4, 5)
    target[2] = -100
    check_against_torch(lambda x, y: ops.cross_entropy(x, y, label_smoothing=0.2),
                        lambda x, y: F_torch.cross_entropy(x, y, label_smoothing=0.2), [logits, target], (0,))
    probs = RNG.dirichlet(np.ones(4), 5).astype(np.float32)
    for smoothing in (0.0, 0.1):
        check_against_torch(lambda x, p, s=smoothing: ops.cross_entropy(x, p, label_smoothing=s),
                            lambda x, p, s=smoothing: F_torch.cross_entropy(x, p, label_smoothing=s), [logits, probs],
                            (0, 1))


def test_cross_entropy_stays_finite_for_extreme_logits() -> None:
    logits = np.array([[1000, -1000, 0], [-1000, -1000, 1000], [1000, 1000, -1000], [-1000, 1000, 999]],
                      np.float32)
    target = np.array([1, 2, 0, 2])
    check_against_torch(lambda x, y: ops.cross_entropy(x, y), lambda x, y: F_torch.cross_entropy(x, y),
                        [logits, target], (0,))
    (loss,) = run_needlec(lambda x, y: ops.cross_entropy(x, y, reduction="none"), [logits, target])
    np.testing.assert_allclose(loss, [2000, 0, np.log(2), 1 + np.log1p(np.exp(-1))], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction: str) -> None:
    check_against_torch(lambda a, b: ops.mse_loss(a, b, reduction=reduction),
                        lambda a, b: F_torch.mse_loss(a, b, reduction=reduction), [normal(3, 4), normal(3, 4)],
                        (0, 1))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits(reduction: str) -> None:
    logits, target = normal(4, 5, scale=3.0), RNG.uniform(0, 1, (4, 5)).astype(np.float32)
    logits[0, :3] = 0.0  # the kink of |x|: the stable form must still give sigmoid(0) - y
    check_against_torch(lambda x, y: ops.binary_cross_entropy_with_logits(x, y, reduction=reduction),
                        lambda x, y: F_torch.binary_cross_entropy_with_logits(x, y, reduction=reduction),
                        [logits, target], (0, 1))


def test_binary_cross_entropy_weights() -> None:
    logits, target = normal(4, 3), RNG.integers(0, 2, (4, 3)).astype(np.float32)
    weight, pos_weight = RNG.uniform(0.5, 2, (4, 3)).astype(np.float32), np.array([0.5, 1.0, 3.0], np.float32)
    check_against_torch(
        lambda x, y: ops.binary_cross_entropy_with_logits(x, y, weight=weight, pos_weight=pos_weight),
        lambda x, y: F_torch.binary_cross_entropy_with_logits(x, y, weight=torch.from_numpy(weight),
                                                              pos_weight=torch.from_numpy(pos_weight)),
        [logits, target], (0,))


def test_binary_cross_entropy_stays_finite_for_extreme_logits() -> None:
    logits = np.array([1000, -1000, 1000, -1000, 0, 88, -88, 200], np.float32)
    target = np.array([1, 0, 0, 1, 0.5, 1, 1, 0.3], np.float32)
    check_against_torch(lambda x, y: ops.binary_cross_entropy_with_logits(x, y, reduction="none"),
                        lambda x, y: F_torch.binary_cross_entropy_with_logits(x, y, reduction="none"),
                        [logits, target], (0,))


def test_l2_penalty_sums_squares_of_every_parameter() -> None:
    model = nn.Sequential(nn.Linear(3, 4, rng=np.random.default_rng(0)), nn.Tanh(),
                          nn.Linear(4, 2, bias=False, rng=np.random.default_rng(1)))
    x = normal(2, 3)
    grads = needlec.grad(lambda x: losses.l2_penalty(model, 0.05), wrt_params=model)(x)
    value = run_needlec(lambda x: losses.l2_penalty(model, 0.05), [x])[0]
    want = 0.05 * sum(float((p.data.astype(np.float64) ** 2).sum()) for p in model.parameters())
    np.testing.assert_allclose(value, want, rtol=1e-6)
    for name, p in model.named_parameters():
        assert_close(grads[name], 2 * 0.05 * p.data, what=name)
    weights_only = [p for name, p in model.named_parameters() if name.endswith("weight")]
    value = run_needlec(lambda x: losses.l2_penalty(weights_only, 1.0) + ops.sum(x) * 0, [x])[0]
    np.testing.assert_allclose(value, sum(float((p.data ** 2).sum()) for p in weights_only), rtol=1e-6)


def test_loss_modules_match_the_functions() -> None:
    logits, labels, probs = normal(4, 3), RNG.integers(0, 3, 4), RNG.uniform(0, 1, (4, 3)).astype(np.float32)
    cases = [
        (nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1),
         lambda x, y: ops.cross_entropy(x, y, reduction="sum", label_smoothing=0.1), labels),
        (nn.MSELoss(reduction="none"), lambda x, y: ops.mse_loss(x, y, reduction="none"), probs),
        (nn.BCEWithLogitsLoss(pos_weight=np.float32(2.0)),
         lambda x, y: ops.binary_cross_entropy_with_logits(x, y, pos_weight=np.float32(2.0)), probs),
    ]
    for module, function, target in cases:
        np.testing.assert_array_equal(run_needlec(module, [logits, target])[0],
                                      run_needlec(function, [logits, target])[0])
    assert repr(nn.MSELoss()) == "MSELoss(reduction='mean')"


def test_every_loss_is_tested() -> None:
    assert set(losses.__all__) == {"cross_entropy", "mse_loss", "binary_cross_entropy_with_logits", "l2_penalty"}
    assert set(losses.__all__) <= set(ops.__all__)


@pytest.mark.parametrize("fn, inputs, error, message", [
    (lambda x, y: ops.cross_entropy(x, y, reduction="avg"), [normal(2, 3), np.array([0, 1])], TraceError,
     r"cross_entropy: reduction must be one of 'mean', 'sum', 'none', found 'avg'"),
    (lambda x, y: ops.cross_entropy(x, y), [normal(2, 3), np.array([0, 1, 2])], ShapeError,
     r"class-index target must have shape \(2,\) for input shape \(2, 3\), found \(3,\)"),
    (lambda x, y: ops.cross_entropy(x, y), [normal(2, 3), np.array([True, False])], TraceError,
     "target must hold integer class indices or float probabilities, found bool"),
    (lambda x, y: ops.cross_entropy(x, y), [normal(2, 3), normal(2, 4)], ShapeError,
     r"class-probability target shape \(2, 4\) differs from input shape \(2, 3\)"),
    (lambda x, y: ops.mse_loss(x, y), [normal(2, 3), normal(3)], ShapeError,
     r"mse_loss: input shape \(2, 3\) and target shape \(3,\) differ"),
    (lambda x, y: ops.binary_cross_entropy_with_logits(x, y, reduction="mean "), [normal(2), normal(2)],
     TraceError, "reduction must be one of"),
])
def test_loss_errors(fn: Callable[..., Any], inputs: list[np.ndarray], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        needlec.trace(fn, *inputs)
