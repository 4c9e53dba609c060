"""Composite ops, each written once as a plain function of (builder, values, attributes).

Softmax, log-softmax, GELU, ELU, softplus, layer and batch normalisation and
(transposed) convolution of any rank decompose into primitives here, and
every frontend builds them through this module: the traced ``Tensor`` API
(through the ``Graph`` it records into), the ONNX converters (through their
``NodeContext``), gradient rules (``GradContext``) and rewrite rules
(``Rewriter``). Anything with ``add`` and ``scalar`` is a ``GraphBuilder``;
values are ordinary graph ``Value``s whose ``type`` / ``shape`` / ``dtype``
the composites read directly. A later fusion pass can recognise a composite
by the one node pattern written here.

Callers keep what is theirs: promotion and f16/bf16 widening policy,
attribute validation with their own error types, and wrapping results.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Protocol
from collections.abc import Sequence

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.errors import ShapeError

GELU_FORMS = ("none", "tanh")


class GraphBuilder(Protocol):
    """The minimum a composite needs from whoever is building a graph.

    ``add`` appends one primitive node (registry op name, input values,
    attributes) and returns its single output; ``scalar`` makes a 0-d
    constant holding ``value`` in ``like``'s dtype.
    """

    def add(self, op: str, *inputs: Value, **attrs: Any) -> Value: ...

    def scalar(self, value: Any, like: Value) -> Value: ...


# -- small helpers ----------------------------------------------------------------------------------

def normalize_axis(axis: int, rank: int, what: str) -> int:
    """``axis`` in ``[0, rank)``; ShapeError naming ``what`` when it is out of range."""
    if not -rank <= axis < rank:
        raise ShapeError(f"{what}: axis {axis} out of range for rank {rank}")
    return axis % rank


def reshape(b: GraphBuilder, x: Value, shape: Sequence[int]) -> Value:
    """``x`` reshaped to ``shape`` (a contiguous copy first when ``x`` is a strided view)."""
    shape = tuple(int(d) for d in shape)
    if shape == x.shape:
        return x
    if not x.type.is_dense:  # why: reshape aliases its input's buffer, which must be gap-free
        x = b.add("copy", x)
    return b.add("reshape", x, shape=list(shape))


def cast(b: GraphBuilder, x: Value, dtype: DType) -> Value:
    """``x`` in ``dtype`` (no node when it already is)."""
    return x if x.dtype is dtype else b.add("cast", x, dtype=dtype)


def mean(b: GraphBuilder, x: Value, axes: Sequence[int]) -> Value:
    """Mean over ``axes`` (keepdims): the sum divided by the count (one correctly rounded division)."""
    count = math.prod(x.shape[a] for a in axes)
    return b.add("div", b.add("reduce_sum", x, axes=list(axes), keepdims=True), b.scalar(count, x))


def moments(b: GraphBuilder, x: Value, axes: Sequence[int]) -> tuple[Value, Value, Value]:
    """(mean, x - mean, biased variance) over ``axes`` (keepdims), two-pass so no ``E[x²] - E[x]²`` cancels."""
    centre = mean(b, x, axes)
    deviation = b.add("sub", x, centre)
    return centre, deviation, mean(b, b.add("mul", deviation, deviation), axes)


def inv_std(b: GraphBuilder, variance: Value, eps: float) -> Value:
    """1 / sqrt(variance + eps)."""
    return b.add("rsqrt", b.add("add", variance, b.scalar(eps, variance)))


def log1p(b: GraphBuilder, u: Value) -> Value:
    """log(1 + u), accurate for tiny ``u``: log(w) * u / (w - 1) with w = 1 + u corrects w's rounding (Goldberg).

    Where ``w - 1`` rounds to 0 the result is ``u`` itself; the discarded branch
    divides by 1 there instead of 0, so its gradient stays finite (a ``where``
    sends it a zero gradient, and 0 / 0 would be NaN).
    """
    w = b.add("add", u, b.scalar(1, u))
    w_minus_1 = b.add("sub", w, b.scalar(1, u))
    exact = b.add("eq", w_minus_1, b.scalar(0, u))
    safe = b.add("where", exact, b.scalar(1, u), w_minus_1)
    return b.add("where", exact, u, b.add("mul", b.add("log", w), b.add("div", u, safe)))


# -- softmax family -------------------------------------------------------------------------------

def softmax(b: GraphBuilder, x: Value, axis: int, zero_masked_rows: bool = False) -> Value:
    """exp(x - max) / sum(exp(x - max)) along ``axis`` (max-shifted, so exp never overflows).

    A row of only ``-inf`` gives NaN as in PyTorch, ONNX Runtime and ONNX's
    Softmax reference; with ``zero_masked_rows`` it gives zeros instead, as
    ONNX's Attention reference does for a fully masked query.
    """
    axes = [normalize_axis(axis, x.type.rank, "softmax")]
    row_max = b.add("reduce_max", x, axes=axes, keepdims=True)
    if zero_masked_rows:  # why: shift a -inf row by 0, so exp gives 0 (not NaN) and the sum 0 is divided as 1
        masked = b.add("eq", row_max, b.scalar(-math.inf, x))
        row_max = b.add("where", masked, b.scalar(0, x), row_max)
    shifted = b.add("exp", b.add("sub", x, row_max))
    total = b.add("reduce_sum", shifted, axes=axes, keepdims=True)
    if zero_masked_rows:
        total = b.add("where", b.add("eq", total, b.scalar(0, x)), b.scalar(1, x), total)
    return b.add("div", shifted, total)


def log_softmax(b: GraphBuilder, x: Value, axis: int) -> Value:
    """(x - max) - log(sum(exp(x - max))) along ``axis``; a row of only ``-inf`` gives NaN (PyTorch, ONNX)."""
    axes = [normalize_axis(axis, x.type.rank, "log_softmax")]
    shifted = b.add("sub", x, b.add("reduce_max", x, axes=axes, keepdims=True))
    total = b.add("reduce_sum", b.add("exp", shifted), axes=axes, keepdims=True)
    return b.add("sub", shifted, b.add("log", total))


# -- activations ----------------------------------------------------------------------------------

def gelu(b: GraphBuilder, x: Value, approximate: str = "none") -> Value:
    """x * Phi(x): 0.5 x (1 + erf(x / sqrt 2)), or with ``approximate="tanh"``
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x³))) with x³ = x * x * x (PyTorch's and ONNX's formula)."""
    if approximate not in GELU_FORMS:
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', found {approximate!r}")
    if approximate == "none":
        inner = b.add("erf", b.add("mul", x, b.scalar(1 / math.sqrt(2), x)))
    else:
        cubic = b.add("mul", b.add("mul", b.add("mul", x, x), x), b.scalar(0.044715, x))
        inner = b.add("tanh", b.add("mul", b.add("add", x, cubic), b.scalar(math.sqrt(2 / math.pi), x)))
    return b.add("mul", b.add("mul", x, b.scalar(0.5, x)), b.add("add", inner, b.scalar(1, x)))


def elu(b: GraphBuilder, x: Value, alpha: float = 1.0) -> Value:
    """x where x > 0, else alpha * (exp(x) - 1).

    ``exp`` sees min(x, 0), so the discarded branch never overflows (its
    gradient would be 0 * inf); at 0 the curve's slope alpha is the gradient,
    as in PyTorch.
    """
    curve = b.add("sub", b.add("exp", b.add("min", x, b.scalar(0, x))), b.scalar(1, x))
    negative = b.add("mul", curve, b.scalar(alpha, x))
    return b.add("where", b.add("gt", x, b.scalar(0, x)), x, negative)


def softplus(b: GraphBuilder, x: Value) -> Value:
    """log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|)): never overflows, and tiny results (x << 0) stay exact.

    One form for PyTorch (beta 1; its threshold 20 returns x where this adds
    at most log1p(e^-20) ~ 2e-9) and ONNX's attribute-free Softplus. ``|x|``
    and ``max`` are ``where``s on ``x > 0``, so at 0 both terms take the
    ``x <= 0`` side and the gradient is exactly sigmoid(0) = 0.5 (``abs`` and
    ``relu`` would contribute zero subgradients).
    """
    positive = b.add("gt", x, b.scalar(0, x))
    zero = b.scalar(0, x)
    minus_magnitude = b.add("where", positive, b.add("neg", x), x)
    return b.add("add", b.add("where", positive, x, zero), log1p(b, b.add("exp", minus_magnitude)))


# -- normalisation --------------------------------------------------------------------------------

def layer_norm(b: GraphBuilder, x: Value, axes: Sequence[int], eps: float, scale: Value | None = None,
               bias: Value | None = None, stash: DType | None = None) -> tuple[Value, Value, Value]:
    """(y, mean, 1 / std): x standardised over ``axes`` (biased variance), times ``scale``, plus ``bias``.

    With ``stash`` the statistics are computed in that dtype and the
    standardised values cast back to x's before the affine step (ONNX's
    ``stash_type``); mean and 1 / std stay in the stash dtype (keepdims).
    """
    centre, deviation, variance = moments(b, cast(b, x, stash) if stash is not None else x, axes)
    inverse = inv_std(b, variance, eps)
    y = cast(b, b.add("mul", deviation, inverse), x.dtype)
    if scale is not None:
        y = b.add("mul", y, scale)
    if bias is not None:
        y = b.add("add", y, bias)
    return y, centre, inverse


def batch_norm_inference(b: GraphBuilder, x: Value, mean: Value, var: Value, eps: float,
                         scale: Value | None = None, bias: Value | None = None) -> Value:
    """x * k + (bias - mean * k) with k = scale / sqrt(var + eps): ONNX Runtime's and PyTorch's CPU order.

    The statistics, ``scale`` and ``bias`` must already broadcast against x
    (per channel on axis 1). Folding to one multiply-add per element keeps
    ``x - mean`` from overflowing for huge inputs.
    """
    k = inv_std(b, var, eps)
    if scale is not None:
        k = b.add("mul", scale, k)
    offset = b.add("mul", mean, k)
    shift = b.add("sub", bias, offset) if bias is not None else b.add("neg", offset)
    return b.add("add", b.add("mul", x, k), shift)


def batch_norm_training(b: GraphBuilder, x: Value, eps: float, scale: Value | None = None,
                        bias: Value | None = None) -> tuple[Value, Value, Value]:
    """(y, batch mean, biased batch variance) of an (N, C, ...) x: (x - mean) / sqrt(var + eps) * scale + bias.

    The statistics are per channel over every other axis (keepdims); the
    centred form is used because the mean is the batch's own (PyTorch and
    ONNX's training-mode BatchNormalization).
    """
    if x.type.rank < 2:
        raise ShapeError(f"batch_norm: expected an input of shape (N, C, ...), found {x.shape}")
    centre, deviation, variance = moments(b, x, [a for a in range(x.type.rank) if a != 1])
    y = b.add("mul", deviation, inv_std(b, variance, eps))
    if scale is not None:
        y = b.add("mul", y, scale)
    if bias is not None:
        y = b.add("add", y, bias)
    return y, centre, variance


# -- convolution ----------------------------------------------------------------------------------

def conv(b: GraphBuilder, x: Value, w: Value, strides: Sequence[int], pads: Sequence[int],
         dilations: Sequence[int], groups: int) -> Value:
    """Grouped cross-correlation of x (N, C, *S) with w (M, C / groups, *K) over any number of spatial axes.

    ``pads`` holds all begins, then all ends. 1-D inserts a unit height,
    2-D is the ``conv2d`` primitive, N-D (N > 2) sums conv2d over the
    trailing two axes for each tap of the leading kernel axes.
    """
    rank = len(strides)
    if rank == 1:
        (n, c, length), (m, cg, k) = x.shape, w.shape
        y = b.add("conv2d", reshape(b, x, (n, c, 1, length)), reshape(b, w, (m, cg, 1, k)),
                  strides=[1, strides[0]], pads=[0, pads[0], 0, pads[1]], dilations=[1, dilations[0]], groups=groups)
        return reshape(b, y, (n, m, y.shape[3]))
    if rank == 2:
        return b.add("conv2d", x, w, strides=list(strides), pads=list(pads), dilations=list(dilations), groups=groups)
    return _conv_leading_taps(b, x, w, strides, pads, dilations, groups)


def _conv_leading_taps(b: GraphBuilder, x: Value, w: Value, strides: Sequence[int], pads: Sequence[int],
                       dilations: Sequence[int], groups: int) -> Value:
    """N-D convolution (N > 2) as a sum over the leading kernel taps of conv2d on the trailing two axes."""
    rank, lead = len(strides), len(strides) - 2
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    kernel = w.shape[2:]
    out_lead = [(x.shape[2 + i] + pads[i] + pads[rank + i] - (kernel[i] - 1) * dilations[i] - 1) // strides[i] + 1
                for i in range(lead)]
    begins, ends = list(pads[:lead]), list(pads[rank:rank + lead])
    if any(begins) or any(ends):  # zero padding of the leading axes; conv2d pads the trailing two
        x = b.add("pad", x, pads=[0, 0, *begins, 0, 0, 0, 0, *ends, 0, 0])
    trailing_pads = [*pads[lead:rank], *pads[rank + lead:]]
    positions = math.prod(out_lead)
    height, width = x.shape[-2:]
    total: Value | None = None
    for taps in itertools.product(*(range(k) for k in kernel[:lead])):
        starts = [t * d for t, d in zip(taps, dilations)]
        rows = b.add("slice", x, starts=starts,
                     stops=[s + (o - 1) * st + 1 for s, o, st in zip(starts, out_lead, strides)],
                     steps=list(strides[:lead]), axes=list(range(2, 2 + lead)))
        batched = b.add("permute", rows, perm=[0, *range(2, 2 + lead), 1, 2 + lead, 3 + lead])
        images = reshape(b, batched, (n * positions, c, height, width))
        tap_kernel = b.add("slice", w, starts=list(taps), stops=[t + 1 for t in taps], steps=[1] * lead,
                           axes=list(range(2, 2 + lead)))
        part = b.add("conv2d", images, reshape(b, tap_kernel, (m, cg, *kernel[lead:])), strides=list(strides[lead:]),
                     pads=trailing_pads, dilations=list(dilations[lead:]), groups=groups)
        total = part if total is None else b.add("add", total, part)
    assert total is not None
    unfolded = reshape(b, total, (n, *out_lead, m, *total.shape[2:]))
    return b.add("permute", unfolded, perm=[0, 1 + lead, *range(1, 1 + lead), 2 + lead, 3 + lead])


def conv_transpose_kernel(b: GraphBuilder, w: Value, groups: int) -> Value:
    """A transposed convolution's (C, M / groups, *K) weight as the equivalent convolution's (M, C / groups, *K)
    weight: channel axes swapped within each group, spatially flipped. ``C`` must be divisible by ``groups``."""
    c, per_group_out, *kernel = w.shape
    regrouped = b.add("permute", reshape(b, w, (groups, c // groups, per_group_out, *kernel)),
                      perm=[0, 2, 1, *range(3, 3 + len(kernel))])
    swapped = reshape(b, regrouped, (groups * per_group_out, c // groups, *kernel))
    return b.add("slice", swapped, starts=[k - 1 for k in kernel], stops=[-k - 1 for k in kernel],
                 steps=[-1] * len(kernel), axes=list(range(2, 2 + len(kernel))))


def conv_transpose(b: GraphBuilder, x: Value, w: Value, strides: Sequence[int], pads: Sequence[int],
                   dilations: Sequence[int], output_padding: Sequence[int], groups: int) -> Value:
    """Transposed convolution of x (N, C, *S) with w (C, M / groups, *K), any number of spatial axes.

    A stride-1 convolution of x spread by the strides (interior padding) and
    padded by the dilated kernel span less ``pads`` (begins, then ends;
    ``output_padding`` extends the end), with ``conv_transpose_kernel``.
    """
    rank = len(strides)
    spans = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations)]
    begins = [span - 1 - pads[i] for i, span in enumerate(spans)]
    ends = [span - 1 - pads[rank + i] + extra for i, (span, extra) in enumerate(zip(spans, output_padding))]
    spread = b.add("pad", x, pads=[0, 0, *begins, 0, 0, *ends], interior=[0, 0, *(s - 1 for s in strides)])
    return conv(b, spread, conv_transpose_kernel(b, w, groups), [1] * rank, [0] * (2 * rank), dilations, groups)
