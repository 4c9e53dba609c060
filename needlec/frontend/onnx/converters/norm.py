"""Converters for ONNX normalizations and Dropout.

BatchNormalization (inference, and training mode's batch statistics and
running-average outputs), InstanceNormalization, LayerNormalization (with its
Mean / InvStdDev outputs), GroupNormalization, RMSNormalization,
LpNormalization, MeanVarianceNormalization and LRN are reductions and
elementwise arithmetic. Where ONNX has ``stash_type`` the statistics are
computed in that type (f32 by default) and the normalized values cast back.
LRN's cross-channel sum of squares is a ``window_reduce`` over the channel
axis. Dropout is the identity outside training; in training mode it keeps an
element when a ``random_uniform`` draw (keyed by the ``seed`` attribute, 0
when absent) is at least ``ratio`` and scales by ``1 / (1 - ratio)``.
"""
from __future__ import annotations

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ops import composites as C
from needlec.frontend.onnx.context import NodeContext, converter, onnx_dtype
from needlec.frontend.onnx.converters.spatial import (axes_from, cast, check_channels_first, float_input,
                                                      per_axis, reshape)


def _normalize_axis(ctx: NodeContext, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ctx.error(f"axis {axis} is out of range for an input of rank {rank}")
    return axis % rank


def _stash_dtype(ctx: NodeContext) -> DType:
    """The type statistics are computed in (``stash_type``, default f32)."""
    return onnx_dtype(ctx.attr("stash_type", 1), f"{ctx.where}: stash_type")


def _channel(ctx: NodeContext, index: int, like: Value) -> Value:
    """Per-channel input ``index`` (C,) cast to ``like``'s dtype and shaped to broadcast along axis 1."""
    return per_axis(ctx, cast(ctx, ctx.input(index), like.dtype), like.type.rank, 1)


# -- BatchNormalization ---------------------------------------------------------------------------

@converter("BatchNormalization")
def batch_normalization(ctx: NodeContext) -> list[Value | None]:
    x = float_input(ctx, 0)
    if x.type.rank < 2:
        raise ctx.error(f"input X must be (N, C, ...), found shape {x.shape}")
    epsilon = ctx.attr("epsilon", 1e-5)
    scale, bias = _channel(ctx, 1, x), _channel(ctx, 2, x)
    if ctx.opset >= 14:
        training = bool(ctx.attr("training_mode", 0))
    else:  # before opset 14, asking for the statistics outputs means training
        training = ctx.num_outputs > 1
    running_mean, running_var = _channel(ctx, 3, x), _channel(ctx, 4, x)
    if not training:  # x * k + (bias - mean * k), k = scale / std: ONNX Runtime's order (no overflow in x - mean)
        y = C.batch_norm_inference(ctx, x, running_mean, running_var, epsilon, scale, bias)
        return [y] + [None] * (ctx.num_outputs - 1)
    y, batch_mean, batch_var = C.batch_norm_training(ctx, x, epsilon, scale, bias)
    momentum = ctx.attr("momentum", 0.9)
    channels = (x.shape[1],)

    def blend(running: Value, batch: Value) -> Value:
        kept = ctx.add("mul", running, ctx.scalar(momentum, running))
        return reshape(ctx, ctx.add("add", kept, ctx.add("mul", batch, ctx.scalar(1 - momentum, batch))), channels)

    outputs = [y, blend(running_mean, batch_mean), blend(running_var, batch_var),
               reshape(ctx, batch_mean, channels), reshape(ctx, batch_var, channels)]
    return [v if ctx.has_output(i) else None for i, v in enumerate(outputs[:ctx.num_outputs])]


# -- Instance / Layer / Group / RMS normalization --------------------------------------------------

@converter("InstanceNormalization")
def instance_normalization(ctx: NodeContext) -> list[Value]:
    x = float_input(ctx, 0)
    check_channels_first(ctx, x)
    _, deviation, variance = C.moments(ctx, x, axes_from(2, x.type.rank))
    normalized = ctx.add("mul", deviation, C.inv_std(ctx, variance, ctx.attr("epsilon", 1e-5)))
    return [ctx.add("add", ctx.add("mul", normalized, _channel(ctx, 1, x)), _channel(ctx, 2, x))]


@converter("LayerNormalization")
def layer_normalization(ctx: NodeContext) -> list[Value | None]:
    x = float_input(ctx, 0)
    axes = axes_from(_normalize_axis(ctx, ctx.attr("axis", -1), x.type.rank), x.type.rank)
    bias = cast(ctx, ctx.input(2), x.dtype) if ctx.has_input(2) else None
    y, centre, inv_std = C.layer_norm(ctx, x, axes, ctx.attr("epsilon", 1e-5), cast(ctx, ctx.input(1), x.dtype), bias,
                                      stash=_stash_dtype(ctx))
    return [y, centre if ctx.has_output(1) else None, inv_std if ctx.has_output(2) else None]


@converter("GroupNormalization")
def group_normalization(ctx: NodeContext) -> list[Value]:
    x = float_input(ctx, 0)
    check_channels_first(ctx, x)
    groups = ctx.attr("num_groups")
    n, channels = x.shape[:2]
    if groups < 1 or channels % groups:
        raise ctx.error(f"{channels} channels are not divisible by num_groups {groups}")
    stash = _stash_dtype(ctx) if ctx.opset >= 21 else x.dtype
    grouped = reshape(ctx, cast(ctx, x, stash), (n, groups, x.type.size // (n * groups)))
    _, deviation, variance = C.moments(ctx, grouped, [2])
    normalized = ctx.add("mul", deviation, C.inv_std(ctx, variance, ctx.attr("epsilon", 1e-5)))
    normalized = cast(ctx, normalized, x.dtype)
    if ctx.opset >= 21:  # scale and bias per channel
        y = reshape(ctx, normalized, x.shape)
        return [ctx.add("add", ctx.add("mul", y, _channel(ctx, 1, x)), _channel(ctx, 2, x))]
    # opset 18: scale and bias per group
    scale, bias = (per_axis(ctx, cast(ctx, ctx.input(i), x.dtype), 3, 1) for i in (1, 2))
    return [reshape(ctx, ctx.add("add", ctx.add("mul", normalized, scale), bias), x.shape)]


@converter("RMSNormalization")
def rms_normalization(ctx: NodeContext) -> list[Value]:
    x = float_input(ctx, 0)
    axes = axes_from(_normalize_axis(ctx, ctx.attr("axis", -1), x.type.rank), x.type.rank)
    wide = cast(ctx, x, _stash_dtype(ctx))
    mean_square = C.mean(ctx, ctx.add("mul", wide, wide), axes)
    normalized = cast(ctx, ctx.add("mul", wide, C.inv_std(ctx, mean_square, ctx.attr("epsilon", 1e-5))), x.dtype)
    return [ctx.add("mul", normalized, cast(ctx, ctx.input(1), x.dtype))]


@converter("LpNormalization")
def lp_normalization(ctx: NodeContext) -> list[Value]:
    x = float_input(ctx, 0)
    axis = _normalize_axis(ctx, ctx.attr("axis", -1), x.type.rank)
    p = ctx.attr("p", 2)
    if p not in (1, 2):
        raise ctx.error(f"p must be 1 or 2, found {p}")
    if p == 1:
        norm = ctx.add("reduce_sum", ctx.add("abs", x), axes=[axis], keepdims=True)
    else:
        norm = ctx.add("sqrt", ctx.add("reduce_sum", ctx.add("mul", x, x), axes=[axis], keepdims=True))
    zero = ctx.scalar(0, x)
    return [ctx.add("where", ctx.add("eq", norm, zero), zero, ctx.add("div", x, norm))]


@converter("MeanVarianceNormalization")
def mean_variance_normalization(ctx: NodeContext) -> list[Value]:
    x = float_input(ctx, 0)
    axes = sorted({_normalize_axis(ctx, a, x.type.rank) for a in ctx.attr("axes", [0, 2, 3])})
    centre = C.mean(ctx, x, axes)
    variance = ctx.add("sub", C.mean(ctx, ctx.add("mul", x, x), axes), ctx.add("mul", centre, centre))
    std = ctx.add("add", ctx.add("sqrt", variance), ctx.scalar(1e-9, variance))
    return [ctx.add("div", ctx.add("sub", x, centre), std)]


@converter("LRN")
def local_response_normalization(ctx: NodeContext) -> list[Value]:
    x = float_input(ctx, 0)
    check_channels_first(ctx, x)
    size = ctx.attr("size")
    alpha, beta, bias = ctx.attr("alpha", 1e-4), ctx.attr("beta", 0.75), ctx.attr("bias", 1.0)
    inner = x.type.rank - 2
    # sum of squares over channels [c - floor((size-1)/2), c + ceil((size-1)/2)]: a window over axis 1
    below, above = (size - 1) // 2, size - 1 - (size - 1) // 2
    square_sum = ctx.add("window_reduce", ctx.add("mul", x, x), kind="sum", kernel=[size] + [1] * inner,
                         pads=[below] + [0] * inner + [above] + [0] * inner)
    base = ctx.add("add", ctx.scalar(bias, x), ctx.add("mul", square_sum, ctx.scalar(alpha / size, x)))
    return [ctx.add("div", x, ctx.add("pow", base, ctx.scalar(beta, x)))]


# -- Dropout -------------------------------------------------------------------------------------------

def _mask_dtype(ctx: NodeContext, x: Value) -> DType:
    """Dropout's mask type: bool from opset 10, the data type before."""
    return DType.BOOL if ctx.opset >= 10 else x.dtype


@converter("Dropout")
def dropout(ctx: NodeContext) -> list[Value | None]:
    x = ctx.input(0)
    mask_dtype = _mask_dtype(ctx, x)
    training = ctx.optional_input(2) if ctx.opset >= 12 else None
    for i, name in ((1, "ratio"), (2, "training_mode")):
        if ctx.opset >= 12 and ctx.has_input(i) and ctx.input(i).type.size != 1:
            raise ctx.error(f"input {i} ({name}) has shape {ctx.input(i).shape}, expected a scalar")
    known = ctx.const(2) if training is not None else None
    if training is None or (known is not None and not bool(known)):
        mask = ctx.add("fill", shape=list(x.shape), value=1.0, dtype=mask_dtype) if ctx.has_output(1) else None
        return [x, mask]
    if not x.dtype.is_float:
        raise ctx.error(f"training-mode dropout needs a float input, found {x.dtype.value}")
    ratio = cast(ctx, ctx.input(1), x.dtype) if ctx.has_input(1) else ctx.scalar(0.5, x)
    draws = ctx.add("random_uniform", shape=list(x.shape), seed=int(ctx.attr("seed", 0)), dtype=x.dtype)
    keep = ctx.add("ge", draws, ratio)
    scale = ctx.add("div", ctx.scalar(1, ratio), ctx.add("sub", ctx.scalar(1, ratio), ratio))
    if known is None:  # training_mode decided at run time: outside training keep everything, unscaled
        off = ctx.add("logical_not", reshape(ctx, training, ()))
        keep = ctx.add("logical_or", keep, off)
        scale = ctx.add("where", off, ctx.scalar(1, scale), scale)
    y = ctx.add("where", keep, ctx.add("mul", x, scale), ctx.scalar(0, x))
    return [y, cast(ctx, keep, mask_dtype) if ctx.has_output(1) else None]
