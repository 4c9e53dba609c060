"""Converters for ONNX convolutions: Conv, ConvTranspose, ConvInteger, QLinearConv, DeformConv, CausalConvWithState.

Everything lands on the ``conv2d`` primitive through the composites
``conv`` (any number of spatial axes) and ``conv_transpose`` (a stride-1
convolution of the input spread by the strides, with the kernel flipped and
its channel axes swapped within each group) of ``compiler/ops/composites.py``.
Integer convolutions compute in f64 (exact for any realistic accumulation)
and requantize like the ONNX reference. DeformConv samples the input
bilinearly at the offset positions with ``gather`` and contracts with
``matmul``.
"""
from __future__ import annotations

import itertools

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ops import composites as C
from needlec.frontend.onnx.context import NodeContext, converter
from needlec.frontend.onnx.converters.quant import requantize
from needlec.frontend.onnx.converters.spatial import WindowAttrs, cast, int_list, per_axis, reshape, window_attrs


def conv_nd(ctx: NodeContext, x: Value, w: Value, window: WindowAttrs, groups: int) -> Value:
    """Grouped cross-correlation of x (N, C, *S) with w (M, C/groups, *K) with ``window``'s geometry
    (``composites.conv``)."""
    return C.conv(ctx, x, w, window.strides, window.pads, window.dilations, groups)


def _spatial_input(ctx: NodeContext, x: Value, w: Value) -> None:
    if x.type.rank < 3 or w.type.rank != x.type.rank:
        raise ctx.error(f"input X {x.shape} must be (N, C, D1, ...) and weight W {w.shape} of the same rank")


def _add_bias(ctx: NodeContext, y: Value, index: int) -> Value:
    if not ctx.has_input(index):
        return y
    return ctx.add("add", y, per_axis(ctx, cast(ctx, ctx.input(index), y.dtype), y.type.rank, 1))


@converter("Conv")
def conv(ctx: NodeContext) -> list[Value]:
    x, w = ctx.input(0), ctx.input(1)
    _spatial_input(ctx, x, w)
    window = window_attrs(ctx, x.shape[2:], w.shape[2:])
    return [_add_bias(ctx, conv_nd(ctx, x, w, window, ctx.attr("group", 1)), 2)]


# -- ConvTranspose ------------------------------------------------------------------------------------

def _transpose_pads(ctx: NodeContext, in_dims: tuple[int, ...], window: WindowAttrs,
                    output_padding: tuple[int, ...]) -> tuple[int, ...]:
    """ConvTranspose's begin/end pads: from output_shape or auto_pad (the odd unit at the end for SAME_UPPER,
    the beginning otherwise, as the ONNX spec), else the pads attribute."""
    rank = window.rank
    output_shape = ctx.attr("output_shape", None)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if output_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        output_shape = [n * s for n, s in zip(in_dims, window.strides)]
    if output_shape is None:
        return (0,) * (2 * rank) if auto_pad == "VALID" else int_list(ctx, "pads", 2 * rank, 0)
    output_shape = list(output_shape)[-rank:] if len(output_shape) == rank + 2 else list(output_shape)
    if len(output_shape) != rank:
        raise ctx.error(f"output_shape {tuple(output_shape)} needs {rank} spatial extents")
    begins, ends = [], []
    for n, s, span, extra, out in zip(in_dims, window.strides, window.spans(), output_padding, output_shape):
        total = s * (n - 1) + extra + span - out
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return (*begins, *ends)


@converter("ConvTranspose")
def conv_transpose(ctx: NodeContext) -> list[Value]:
    x, w = ctx.input(0), ctx.input(1)
    _spatial_input(ctx, x, w)
    groups = ctx.attr("group", 1)
    rank = x.type.rank - 2
    kernel = tuple(w.shape[2:])
    strides = int_list(ctx, "strides", rank, 1)
    dilations = int_list(ctx, "dilations", rank, 1)
    output_padding = int_list(ctx, "output_padding", rank, 0)
    geometry = WindowAttrs(kernel, strides, dilations, (0,) * (2 * rank))
    attr_kernel = ctx.attr("kernel_shape", None)
    if attr_kernel is not None and tuple(attr_kernel) != kernel:
        raise ctx.error(f"kernel_shape {tuple(attr_kernel)} does not match the weight's spatial shape {kernel}")
    if x.shape[1] != w.shape[0]:
        raise ctx.error(f"input X has {x.shape[1]} channels, weight W {w.shape} expects {w.shape[0]}")
    if w.shape[0] % groups:
        raise ctx.error(f"weight W {w.shape}: {w.shape[0]} input channels are not divisible by group {groups}")
    pads = _transpose_pads(ctx, x.shape[2:], geometry, output_padding)
    y = C.conv_transpose(ctx, x, w, strides, pads, dilations, output_padding, groups)
    return [_add_bias(ctx, y, 2)]


# -- integer convolutions ---------------------------------------------------------------------------

def _centered(ctx: NodeContext, v: Value, zero_point: Value | None, axis: int) -> Value:
    """``v - zero_point`` in f64; a 1-D zero point (per channel) broadcasts along ``axis``."""
    wide = cast(ctx, v, DType.F64)
    if zero_point is None:
        return wide
    return ctx.add("sub", wide, per_axis(ctx, cast(ctx, zero_point, DType.F64), v.type.rank, axis))


def _integer_conv(ctx: NodeContext, x: Value, x_zero: Value | None, w: Value, w_zero: Value | None) -> Value:
    """The exact (f64) convolution of zero-point-centred integer x and w, attributes as Conv."""
    _spatial_input(ctx, x, w)
    window = window_attrs(ctx, x.shape[2:], w.shape[2:])
    return conv_nd(ctx, _centered(ctx, x, x_zero, 1), _centered(ctx, w, w_zero, 0), window, ctx.attr("group", 1))


@converter("ConvInteger")
def conv_integer(ctx: NodeContext) -> list[Value]:
    y = _integer_conv(ctx, ctx.input(0), ctx.optional_input(2), ctx.input(1), ctx.optional_input(3))
    return [cast(ctx, y, DType.I32)]


@converter("QLinearConv")
def qlinear_conv(ctx: NodeContext) -> list[Value]:
    x, w, y_zero = ctx.input(0), ctx.input(3), ctx.optional_input(7)
    acc = _integer_conv(ctx, x, ctx.optional_input(2), w, ctx.optional_input(5))
    if ctx.has_input(8):
        acc = ctx.add("add", acc, per_axis(ctx, cast(ctx, ctx.input(8), DType.F64), acc.type.rank, 1))
    x_scale, w_scale, y_scale = ctx.input(1), ctx.input(4), ctx.input(6)
    ratio = ctx.add("div", ctx.add("mul", per_axis(ctx, x_scale, 1, 0), per_axis(ctx, w_scale, 1, 0)),
                    per_axis(ctx, y_scale, 1, 0))
    multiplier = per_axis(ctx, cast(ctx, ratio, DType.F64), acc.type.rank, 1)
    return [requantize(ctx, acc, multiplier, y_zero, (y_zero if y_zero is not None else x).dtype)]


# -- DeformConv ---------------------------------------------------------------------------------------

def _bilinear_taps(ctx: NodeContext, rows: Value, cols: Value, height: int, width: int) -> list[tuple[Value, Value]]:
    """For fractional sampling positions, the four neighbours as (flat index into H*W, weight): bilinear
    weights, zero for a neighbour outside the image (GridSample's zeros padding)."""
    taps = []
    top, left = ctx.add("floor", rows), ctx.add("floor", cols)
    down, right = ctx.add("sub", rows, top), ctx.add("sub", cols, left)
    one = ctx.scalar(1, rows)
    for dy, dx in itertools.product((0, 1), repeat=2):
        row = ctx.add("add", top, ctx.scalar(dy, top)) if dy else top
        col = ctx.add("add", left, ctx.scalar(dx, left)) if dx else left
        weight = ctx.add("mul", down if dy else ctx.add("sub", one, down), right if dx else ctx.add("sub", one, right))
        inside = ctx.add("logical_and",
                         ctx.add("logical_and", ctx.add("ge", row, ctx.scalar(0, row)),
                                 ctx.add("le", row, ctx.scalar(height - 1, row))),
                         ctx.add("logical_and", ctx.add("ge", col, ctx.scalar(0, col)),
                                 ctx.add("le", col, ctx.scalar(width - 1, col))))
        weight = ctx.add("where", inside, weight, ctx.scalar(0, weight))
        clamped_row = ctx.add("min", ctx.add("max", row, ctx.scalar(0, row)), ctx.scalar(height - 1, row))
        clamped_col = ctx.add("min", ctx.add("max", col, ctx.scalar(0, col)), ctx.scalar(width - 1, col))
        flat = ctx.add("add", ctx.add("mul", cast(ctx, clamped_row, DType.I64), ctx.constant(width, DType.I64)),
                       cast(ctx, clamped_col, DType.I64))
        taps.append((flat, weight))
    return taps


@converter("DeformConv")
def deform_conv(ctx: NodeContext) -> list[Value]:
    x, w, offset = ctx.input(0), ctx.input(1), ctx.input(2)
    _spatial_input(ctx, x, w)
    if x.type.rank != 4:
        raise ctx.error(f"only 2-D deformable convolution is supported, input X has shape {x.shape}")
    groups, offset_groups = ctx.attr("group", 1), ctx.attr("offset_group", 1)
    window = window_attrs(ctx, x.shape[2:], w.shape[2:])
    (n, c, height, width), (m, cg, kh, kw) = x.shape, w.shape
    if cg * groups != c or m % groups:
        raise ctx.error(f"weight W {w.shape} with group {groups} does not fit input X {x.shape}: expected "
                        f"(M, C / group, kH, kW) with M divisible by group")
    oh, ow = window.out_dims(x.shape[2:])
    taps = kh * kw
    if c % offset_groups or offset.shape != (n, offset_groups * taps * 2, oh, ow):
        raise ctx.error(f"offset {offset.shape} must be (N, offset_group * kH * kW * 2, oH, oW) = "
                        f"{(n, offset_groups * taps * 2, oh, ow)} with {c} channels divisible by offset_group")
    # sampling positions (N, offset_group, kH*kW, oH*oW): the kernel grid plus the offsets
    ki, kj, oi, oj = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(oh), np.arange(ow), indexing="ij")
    (sh, sw), (dh, dw) = window.strides, window.dilations
    grid_rows = (oi * sh - window.pads[0] + ki * dh).reshape(taps, oh * ow)
    grid_cols = (oj * sw - window.pads[1] + kj * dw).reshape(taps, oh * ow)
    pairs = reshape(ctx, offset, (n, offset_groups, taps, 2, oh * ow))
    rows, cols = (ctx.add("add", reshape(ctx, ctx.add("slice", pairs, starts=[i], stops=[i + 1], steps=[1], axes=[3]),
                                         (n, offset_groups, taps, oh * ow)), ctx.constant(grid, x.dtype))
                  for i, grid in enumerate((grid_rows, grid_cols)))
    modulation = reshape(ctx, ctx.input(4), (n, offset_groups, taps, oh * ow)) if ctx.has_input(4) else None
    # gather each channel's samples: x as (N * C * H * W,), flat index per (n, channel, tap, position)
    per_offset_group = c // offset_groups
    images = reshape(ctx, x, (n * c * height * width,))
    image_base = (np.arange(n * c).reshape(n, offset_groups, per_offset_group, 1, 1) * height * width)
    sampled: Value | None = None
    for flat, weight in _bilinear_taps(ctx, rows, cols, height, width):
        index = ctx.add("add", reshape(ctx, flat, (n, offset_groups, 1, taps, oh * ow)),
                        ctx.constant(image_base, DType.I64))
        values = ctx.add("gather", images, index, axis=0)
        if modulation is not None:
            weight = ctx.add("mul", weight, modulation)
        term = ctx.add("mul", values, reshape(ctx, weight, (n, offset_groups, 1, taps, oh * ow)))
        sampled = term if sampled is None else ctx.add("add", sampled, term)
    assert sampled is not None
    # contract: out[n, g, o, p] = sum over (channel in group, tap) of W[g, o, channel, tap] * sampled[...]
    columns = reshape(ctx, sampled, (n, groups, cg * taps, oh * ow))
    kernel = reshape(ctx, w, (groups, m // groups, cg * taps))
    y = reshape(ctx, ctx.add("matmul", kernel, columns), (n, m, oh, ow))
    return [_add_bias(ctx, y, 3)]


# -- CausalConvWithState ----------------------------------------------------------------------------

@converter("CausalConvWithState")
def causal_conv_with_state(ctx: NodeContext) -> list[Value | None]:
    x, w = ctx.input(0), ctx.input(1)
    if x.type.rank != 3 or w.type.rank != 3 or w.shape[:2] != (x.shape[1], 1):
        raise ctx.error(f"input {x.shape} must be (N, C, L) and weight {w.shape} (C, 1, k)")
    activation = ctx.attr("activation", "none")
    if activation not in ("none", "silu", "swish"):
        raise ctx.error(f"activation {activation!r} is not one of none, silu, swish")
    (n, c, length), k = x.shape, w.shape[2]
    if ctx.has_input(3):
        past = ctx.input(3)
        if past.shape != (n, c, k - 1):
            raise ctx.error(f"past_state {past.shape} must be (N, C, k - 1) = {(n, c, k - 1)}")
        padded = ctx.add("concat", past, x, axis=2) if k > 1 else x
    else:
        padded = ctx.add("pad", x, pads=[0, 0, k - 1, 0, 0, 0]) if k > 1 else x
    window = WindowAttrs((k,), (1,), (1,), (0, 0))
    y = _add_bias(ctx, conv_nd(ctx, padded, w, window, c), 2)
    if activation != "none":
        wide = cast(ctx, y, DType.F32) if y.dtype is DType.F16 else y
        y = cast(ctx, ctx.add("mul", wide, ctx.add("sigmoid", wide)), y.dtype)
    present = ctx.add("slice", padded, starts=[length], stops=[length + k - 1], steps=[1], axes=[2])
    return [y, present if ctx.has_output(1) else None]
