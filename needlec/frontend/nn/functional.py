"""Layer-level composite ops (the ``torch.nn.functional`` part of ``needlec.ops``).

Activations beyond ``relu``/``tanh``/``sigmoid``, normalisation, dropout and
embedding lookups, each decomposed into primitives. GELU, ELU, softplus,
layer and batch normalisation are the ones shared with the ONNX importer
(``compiler/ops/composites.py``); this module converts and checks the
operands and builds them into the graph being traced. Written so that both
the values and the gradients stay finite for extreme inputs: branches that a
``where`` discards are kept in range (``exp`` only ever sees non-positive
arguments), because the gradient of a discarded ``inf`` branch is ``0 * inf``.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np

from needlec.compiler.ir.graph import Value
from needlec.compiler.ops import composites as C
from needlec.errors import ShapeError, TraceError
from needlec.frontend import tensor_ops as F
from needlec.frontend.tensor import Tensor, as_tensor, graph_of, promote

__all__ = ["gelu", "silu", "leaky_relu", "elu", "softplus", "layer_norm", "batch_moments", "batch_norm",
           "dropout", "embedding"]


def _float(x: Any, what: str) -> Tensor:
    """``x`` as a float Tensor of the active trace (integers converted to f32)."""
    t = as_tensor(x, graph_of(x, what=what), what)
    return t if t.dtype.is_float else t.astype("f32")


def gelu(x: Any, approximate: str = "none") -> Tensor:
    """x * Phi(x): the erf form (``approximate="none"``) or PyTorch's ``"tanh"`` approximation."""
    if approximate not in C.GELU_FORMS:
        raise TraceError(f"gelu: approximate must be 'none' or 'tanh', found {approximate!r}")
    return F.composite(C.gelu, _float(x, "gelu"), approximate)


def silu(x: Any) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    t = _float(x, "silu")
    return t * F.sigmoid(t)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x (the gradient at 0 is the slope, as in PyTorch)."""
    t = _float(x, "leaky_relu")
    return F.where(t > 0, t, t * negative_slope)


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1) (``composites.elu``)."""
    return F.composite(C.elu, _float(x, "elu"), alpha)


def softplus(x: Any) -> Tensor:
    """log(1 + exp(x)) computed stably as max(x, 0) + log1p(exp(-|x|)) (``composites.softplus``: PyTorch's
    beta 1 without its threshold cut, exact for tiny results; the gradient at 0 is 0.5)."""
    return F.composite(C.softplus, _float(x, "softplus"))


def layer_norm(x: Any, normalized_shape: int | Sequence[int], weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` axes (mean 0, biased variance 1), then scale and shift.

    ``x``, ``weight`` and ``bias`` are promoted to one float dtype first (``composites.layer_norm``).
    """
    t = _float(x, "layer_norm")
    t, weight, bias = _promoted(t, weight, bias, "layer_norm")
    shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(int(d) for d in normalized_shape)
    if len(shape) > t.ndim or t.shape[t.ndim - len(shape):] != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing axes of input "
                         f"shape {t.shape}")
    axes = list(range(t.ndim - len(shape), t.ndim))
    y, _, _ = C.layer_norm(t.graph, t.value, axes, eps, _value(weight), _value(bias))
    return Tensor(y, t.graph)


def _promoted(x: Tensor, weight: Any, bias: Any, what: str) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``x`` and the optional affine operands as Tensors of one (NumPy-promoted) dtype."""
    given = [v for v in (weight, bias) if v is not None]
    x, *rest = promote([x, *given], what)
    weight = rest.pop(0) if weight is not None else None
    bias = rest.pop(0) if bias is not None else None
    return x, weight, bias


def _value(t: Tensor | None) -> Value | None:
    return None if t is None else t.value


def _channel_axes(x: Tensor, what: str) -> tuple[int, ...]:
    """Every axis but the channel axis 1 (batch and spatial axes)."""
    if x.ndim < 2:
        raise ShapeError(f"{what}: expected an input of shape (N, C, ...), found {x.shape}")
    return (0, *range(2, x.ndim))


def batch_moments(x: Any) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance of an (N, C, ...) input, each of shape (C,) (two-pass)."""
    t = _float(x, "batch_moments")
    mean, _, var = C.moments(t.graph, t.value, _channel_axes(t, "batch_moments"))
    return F.reshape(Tensor(mean, t.graph), (-1,)), F.reshape(Tensor(var, t.graph), (-1,))


def batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,
               training: bool = False, *, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (axis 1) of an (N, C, ...) input, then scale by ``weight`` and shift by ``bias``.

    With ``training`` (or no running statistics) the batch's own mean and
    biased variance are used (``composites.batch_norm_training``, centred),
    else ``running_mean`` / ``running_var`` in the folded inference form
    ``x * k + (bias - mean * k)``, ``k = weight / sqrt(var + eps)``
    (``composites.batch_norm_inference``, as PyTorch's CPU kernel). Pure:
    running statistics are never updated here (``nn.BatchNorm*`` proposes the
    updates to the trace; see its docstring).
    """
    if training or running_mean is None or running_var is None:
        return batch_norm_training(x, weight, bias, eps)[0]
    t, scale, shift = _per_channel_affine(x, weight, bias, "batch_norm")
    mean, var = (_per_channel(as_tensor(v, t.graph, "batch_norm").astype(t.dtype), t.ndim)
                 for v in (running_mean, running_var))
    return Tensor(C.batch_norm_inference(t.graph, t.value, mean, var, eps, scale, shift), t.graph)


def batch_norm_training(x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
                        ) -> tuple[Tensor, Tensor, Tensor]:
    """``batch_norm`` with the batch's statistics, also returning them: (y, mean, biased variance), each
    statistic of shape (C,) (``nn.BatchNorm*`` proposes running-statistics updates from them)."""
    t, scale, shift = _per_channel_affine(x, weight, bias, "batch_norm")
    y, mean, var = C.batch_norm_training(t.graph, t.value, eps, scale, shift)
    return (Tensor(y, t.graph), F.reshape(Tensor(mean, t.graph), (-1,)), F.reshape(Tensor(var, t.graph), (-1,)))


def _per_channel_affine(x: Any, weight: Any, bias: Any, what: str) -> tuple[Tensor, Value | None, Value | None]:
    """``x`` as an (N, C, ...) float Tensor and ``weight`` / ``bias`` (C,) shaped to broadcast along axis 1."""
    t = _float(x, what)
    _channel_axes(t, what)
    t, weight, bias = _promoted(t, weight, bias, what)
    scale = None if weight is None else _per_channel(weight, t.ndim)
    return t, scale, None if bias is None else _per_channel(bias, t.ndim)


def _per_channel(v: Tensor, rank: int) -> Value:
    """A (C,) Tensor as a (C, 1, ...) value broadcasting along axis 1 of a rank-``rank`` input."""
    return F.reshape(v, (-1,) + (1,) * (rank - 2)).value


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
