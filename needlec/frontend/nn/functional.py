"""Layer-level composite ops (the ``torch.nn.functional`` part of ``needlec.ops``).

Activations beyond ``relu``/``tanh``/``sigmoid``, normalisation, dropout and
embedding lookups, each decomposed into primitives. Written so that both the
values and the gradients stay finite for extreme inputs: branches that a
``where`` discards are kept in range (``exp`` only ever sees non-positive
arguments), because the gradient of a discarded ``inf`` branch is ``0 * inf``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from needlec.errors import ShapeError, TraceError
from needlec.frontend import tensor_ops as F
from needlec.frontend.tensor import Tensor, as_tensor, graph_of

__all__ = ["gelu", "silu", "leaky_relu", "elu", "softplus", "layer_norm", "batch_moments", "batch_norm",
           "dropout", "embedding"]


def _float(x: Any, what: str) -> Tensor:
    """``x`` as a float Tensor of the active trace (integers converted to f32)."""
    t = as_tensor(x, graph_of(x, what=what), what)
    return t if t.dtype.is_float else t.astype("f32")


def gelu(x: Any, approximate: str = "none") -> Tensor:
    """x * Phi(x): the erf form (``approximate="none"``) or PyTorch's ``"tanh"`` approximation."""
    t = _float(x, "gelu")
    if approximate == "none":
        return 0.5 * t * (1.0 + F.erf(t * (1.0 / math.sqrt(2.0))))
    if approximate == "tanh":
        return 0.5 * t * (1.0 + F.tanh(math.sqrt(2.0 / math.pi) * (t + 0.044715 * t * t * t)))
    raise TraceError(f"gelu: approximate must be 'none' or 'tanh', found {approximate!r}")


def silu(x: Any) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    t = _float(x, "silu")
    return t * F.sigmoid(t)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x (the gradient at 0 is the slope, as in PyTorch)."""
    t = _float(x, "leaky_relu")
    return F.where(t > 0, t, t * negative_slope)


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1)."""
    t = _float(x, "elu")
    return F.where(t > 0, t, alpha * (F.exp(F.minimum(t, 0.0)) - 1.0))


def softplus(x: Any) -> Tensor:
    """log(1 + exp(x)) computed stably as max(x, 0) + log(1 + exp(-|x|)).

    Both terms take the ``x <= 0`` branch at 0, so the gradient there is
    exactly sigmoid(0) = 0.5 (an ``abs`` would contribute a zero subgradient).
    """
    t = _float(x, "softplus")
    positive = t > 0
    magnitude = F.where(positive, t, -t)
    return F.where(positive, t, 0.0) + F.log(1.0 + F.exp(-magnitude))


def layer_norm(x: Any, normalized_shape: int | Sequence[int], weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` axes (mean 0, biased variance 1), then scale and shift."""
    t = _float(x, "layer_norm")
    shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(int(d) for d in normalized_shape)
    if len(shape) > t.ndim or t.shape[t.ndim - len(shape):] != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing axes of input "
                         f"shape {t.shape}")
    axes = tuple(range(t.ndim - len(shape), t.ndim))
    centred = t - F.mean(t, axes, keepdims=True)
    out = centred * F.rsqrt(F.mean(centred * centred, axes, keepdims=True) + eps)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def _channel_axes(x: Tensor, what: str) -> tuple[int, ...]:
    """Every axis but the channel axis 1 (batch and spatial axes)."""
    if x.ndim < 2:
        raise ShapeError(f"{what}: expected an input of shape (N, C, ...), found {x.shape}")
    return (0, *range(2, x.ndim))


def batch_moments(x: Any) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance of an (N, C, ...) input, each of shape (C,) (two-pass)."""
    t = _float(x, "batch_moments")
    axes = _channel_axes(t, "batch_moments")
    mean = F.mean(t, axes, keepdims=True)
    centred = t - mean
    return F.reshape(mean, (-1,)), F.mean(centred * centred, axes)


def batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,
               training: bool = False, *, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (axis 1) of an (N, C, ...) input, then scale by ``weight`` and shift by ``bias``.

    With ``training`` (or no running statistics) the batch's own mean and
    biased variance are used, else ``running_mean`` / ``running_var``. Pure:
    running statistics are never updated here (``nn.BatchNorm*`` proposes the
    updates to the trace; see its docstring).
    """
    t = _float(x, "batch_norm")
    if training or running_mean is None or running_var is None:
        mean, var = batch_moments(t)
    else:
        mean, var = running_mean, running_var
    axes = _channel_axes(t, "batch_norm")
    per_channel = (-1,) + (1,) * len(axes[1:])
    out = (t - F.reshape(mean, per_channel)) * F.reshape(F.rsqrt(var + eps), per_channel)
    if weight is not None:
        out = out * F.reshape(weight, per_channel)
    return out if bias is None else out + F.reshape(bias, per_channel)


def dropout(x: Any, p: float = 0.5, training: bool = True, *, seed: int = 0, offset: int = 0,
            run_offset: Tensor | None = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p); identity unless ``training``.

    Element i is kept when ``random_uniform(seed, offset + run_offset)[i] >= p``:
    the mask is a pure function of ``(seed, offset)`` (plus the optional i64
    run-time offset), reproducible and identical in every backend.
    """
    if not 0.0 <= p <= 1.0:
        raise TraceError(f"dropout: probability p must be in [0, 1], found {p}")
    t = _float(x, "dropout")
    if not training or p == 0.0:
        return t
    keep = F.rand(t.shape, seed=seed, dtype=t.dtype, offset=offset, run_offset=run_offset) >= p
    return F.where(keep, t * (1.0 / (1.0 - p) if p < 1.0 else 0.0), 0.0)


def embedding(indices: Any, weight: Any, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``indices``: shape indices.shape + (dim,).

    With ``padding_idx``, positions holding that index read zeros and send no
    gradient to its row (PyTorch keeps that row zero, so the values agree).
    """
    w = _float(weight, "embedding")
    idx = as_tensor(indices, w.graph, "embedding")
    if idx.dtype.is_float or idx.dtype.is_bool:
        raise TraceError(f"embedding: indices must be integers, found {idx.dtype.value}")
    if w.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, dim), found shape {w.shape}")
    rows = F.gather(w, idx, axis=0)
    if padding_idx is None:
        return rows
    return F.where(F.unsqueeze(idx != padding_idx % w.shape[0], -1), rows, 0.0)
