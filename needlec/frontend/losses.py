"""Loss functions, PyTorch-compatible in values and gradients (``needlec.losses``, also in ``needlec.ops``).

Every loss takes traced Tensors (or Parameters / NumPy arrays) and returns
a Tensor: a scalar for ``reduction="mean"`` / ``"sum"``, per-element losses
for ``"none"``. The formulations are the numerically stable ones, finite in
value and gradient for logits of any magnitude: cross-entropy through
``log_softmax`` (the maximum subtracted before ``exp``), and binary
cross-entropy through a ``softplus`` that only ever exponentiates
non-positive numbers.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Iterable

from needlec.errors import ShapeError, TraceError
from needlec.frontend import tensor_ops as F
from needlec.frontend.nn import functional as NF
from needlec.frontend.tensor import Tensor, as_tensor, graph_of

__all__ = ["cross_entropy", "mse_loss", "binary_cross_entropy_with_logits", "l2_penalty"]

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str, what: str) -> None:
    if reduction not in REDUCTIONS:
        raise TraceError(f"{what}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}, found {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    """Mean, sum, or the per-element losses themselves."""
    if reduction == "none":
        return loss
    return F.mean(loss) if reduction == "mean" else F.sum(loss)


def _float(x: Any, what: str) -> Tensor:
    t = as_tensor(x, graph_of(x, what=what), what)
    return t if t.dtype.is_float else t.astype("f32")


def cross_entropy(input: Any, target: Any, *, reduction: str = "mean", ignore_index: int = -100,
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of ``input`` logits, as ``torch.nn.functional.cross_entropy``.

    ``input`` is (N, C, d1, ...) with classes on axis 1, or (C,) unbatched.
    ``target`` holds integer class indices (the input's shape without the
    class axis), or class probabilities (the input's shape, float). With
    index targets, positions equal to ``ignore_index`` contribute nothing
    and ``"mean"`` averages over the other positions. ``label_smoothing`` mixes
    the target with the uniform distribution.
    """
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise TraceError(f"cross_entropy: label_smoothing must be in [0, 1], found {label_smoothing}")
    logits = _float(input, "cross_entropy")
    if logits.ndim == 0:
        raise ShapeError("cross_entropy: input must have a class axis, found a 0-d tensor")
    class_axis = 0 if logits.ndim == 1 else 1
    classes = logits.shape[class_axis]
    log_probs = F.log_softmax(logits, class_axis)
    labels = as_tensor(target, logits.graph, "cross_entropy")
    if labels.dtype.is_float:
        if labels.shape != logits.shape:
            raise ShapeError(f"cross_entropy: class-probability target shape {labels.shape} differs from input "
                             f"shape {logits.shape}")
        if label_smoothing:
            labels = labels * (1.0 - label_smoothing) + label_smoothing / classes
        return _reduce(-F.sum(log_probs * labels, class_axis), reduction)
    if labels.dtype.is_bool:
        raise TraceError("cross_entropy: target must hold integer class indices or float probabilities, found bool")
    expected = logits.shape[:class_axis] + logits.shape[class_axis + 1:]
    if labels.shape != expected:
        raise ShapeError(f"cross_entropy: class-index target must have shape {expected} for input shape "
                         f"{logits.shape}, found {labels.shape}")
    one_hot = F.iota(logits.shape, class_axis, labels.dtype) == F.unsqueeze(labels, class_axis)
    loss = -F.sum(F.where(one_hot, log_probs, 0.0), class_axis)
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * F.mean(log_probs, class_axis)
    valid = labels != ignore_index
    loss = F.where(valid, loss, 0.0)
    if reduction == "mean":
        return F.sum(loss) / F.sum(valid.astype(loss.dtype))
    return _reduce(loss, reduction)


def mse_loss(input: Any, target: Any, *, reduction: str = "mean") -> Tensor:
    """Squared error (input - target) ** 2, averaged or summed; the shapes must be equal."""
    _check_reduction(reduction, "mse_loss")
    prediction, wanted = _float(input, "mse_loss"), _float(target, "mse_loss")
    if prediction.shape != wanted.shape:
        raise ShapeError(f"mse_loss: input shape {prediction.shape} and target shape {wanted.shape} differ")
    error = prediction - wanted
    return _reduce(error * error, reduction)


def binary_cross_entropy_with_logits(input: Any, target: Any, *, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable formula, as PyTorch's.

    loss = (1 - y) * x + w_pos * softplus(-x), with w_pos = 1 + (pos_weight - 1) * y
    (w_pos = 1 without ``pos_weight``: max(x, 0) - x * y + log(1 + exp(-|x|)));
    ``weight`` rescales each element's loss.
    """
    what = "binary_cross_entropy_with_logits"
    _check_reduction(reduction, what)
    logits, labels = _float(input, what), _float(target, what)
    if logits.shape != labels.shape:
        raise ShapeError(f"{what}: input shape {logits.shape} and target shape {labels.shape} differ")
    positive_weight = 1.0 if pos_weight is None else 1.0 + (pos_weight - 1.0) * labels
    loss = (1.0 - labels) * logits + positive_weight * NF.softplus(-logits)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def l2_penalty(parameters: Any, weight: float) -> Tensor:
    """``weight`` times the sum of squares of every parameter (a Module's ``parameters()``, or an iterable).

    Its gradient is ``2 * weight * p``: ``weight = weight_decay / 2`` matches
    SGD's ``weight_decay``. Pass a filtered list to leave out, e.g., biases.
    """
    items: Iterable[Any] = parameters.parameters() if hasattr(parameters, "parameters") else parameters
    total: Tensor | None = None
    for p in items:
        t = _float(p, "l2_penalty")
        squares = F.sum(t * t)
        total = squares if total is None else total + squares
    if total is None:
        return F.zeros(())
    return total * weight
