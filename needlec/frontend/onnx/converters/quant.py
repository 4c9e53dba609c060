"""Converters for ONNX linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
MatMulInteger, QLinearMatMul.

Quantization is ``saturate(round_half_even(x / scale) + zero_point)`` computed
in float and clamped to the target's range before the cast, so out-of-range
values saturate instead of wrapping; scales and zero points are per tensor
(scalar), per axis (1-D along ``axis``) or blocked (``block_size`` elements of
``axis`` share one, repeated with a constant-index ``gather``). Integer matrix
products run in i32 after subtracting the zero points, as the ONNX reference.
Float8 and 4-/2-bit types have no needlec dtype and are rejected when the
model's tensors are read.
"""
from __future__ import annotations

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext, converter, onnx_dtype
from needlec.frontend.onnx.converters.spatial import cast, per_axis, reshape

QUANTIZED_DTYPES = (DType.U8, DType.I8, DType.U16, DType.I16, DType.I32)


def _expanded(ctx: NodeContext, v: Value, x: Value, what: str) -> Value:
    """Scale or zero point ``v`` shaped to broadcast against ``x``: scalars as they are, 1-D along ``axis``, blocked
    (``x``'s shape with ``axis`` divided by ``block_size``, rounded up) repeated ``block_size`` times along it."""
    if v.type.size == 1 and v.type.rank <= 1:
        return reshape(ctx, v, ())
    axis, block_size = _quant_axis(ctx, x), ctx.attr("block_size", 0)
    if not block_size:
        if v.type.rank != 1 or v.shape[0] != x.shape[axis]:
            raise ctx.error(f"{what} {v.shape} must be a scalar or 1-D of size {x.shape[axis]} (axis {axis})")
        return per_axis(ctx, v, x.type.rank, axis)
    blocks = -(-x.shape[axis] // block_size)
    expected = tuple(blocks if i == axis else d for i, d in enumerate(x.shape))
    if v.shape != expected:
        raise ctx.error(f"{what} {v.shape} must have shape {expected} for block_size {block_size} on axis {axis}")
    repeat = np.arange(x.shape[axis], dtype=np.int64) // block_size
    return ctx.add("gather", v, ctx.constant(repeat, DType.I64), axis=axis)


def _quant_axis(ctx: NodeContext, x: Value) -> int:
    axis = ctx.attr("axis", 1)
    rank = x.type.rank
    if not -rank <= axis < rank:
        raise ctx.error(f"axis {axis} is out of range for an input of rank {x.type.rank}")
    return axis % rank


def _target_dtype(ctx: NodeContext, zero_point: Value | None) -> DType:
    """The quantized type: the zero point's, else ``output_dtype``, else uint8."""
    declared = ctx.attr("output_dtype", 0)
    dtype = onnx_dtype(declared, f"{ctx.where}: output_dtype") if declared else None
    if zero_point is not None:
        if dtype is not None and dtype is not zero_point.dtype:
            raise ctx.error(f"output_dtype {dtype.value} differs from the zero point's {zero_point.dtype.value}")
        dtype = zero_point.dtype
    dtype = dtype or DType.U8
    if dtype not in QUANTIZED_DTYPES:
        raise ctx.error(f"quantizing to {dtype.value} is not supported; expected one of "
                        f"{', '.join(d.value for d in QUANTIZED_DTYPES)}")
    return dtype


def saturate(ctx: NodeContext, values: Value, dtype: DType) -> Value:
    """Float ``values`` (already integral) clamped to ``dtype``'s range and cast to it."""
    info = np.iinfo(dtype.np)
    clipped = ctx.add("min", ctx.add("max", values, ctx.scalar(info.min, values)), ctx.scalar(info.max, values))
    return cast(ctx, clipped, dtype)


def requantize(ctx: NodeContext, acc: Value, multiplier: Value, zero_point: Value | None, dtype: DType) -> Value:
    """``saturate(round_half_even(acc * multiplier + zero_point))`` as ``dtype`` (acc and multiplier in f64),
    the output stage of QLinearConv and QLinearMatMul (rounding after the zero point, as the reference)."""
    if not dtype.is_int:
        raise ctx.error(f"the output (y_zero_point, or x when absent) has dtype {dtype.value}, expected an "
                        "8-bit integer type")
    scaled = ctx.add("mul", acc, multiplier)
    if zero_point is not None:
        scaled = ctx.add("add", scaled, cast(ctx, zero_point, DType.F64))
    return saturate(ctx, ctx.add("round", scaled), dtype)


@converter("QuantizeLinear")
def quantize_linear(ctx: NodeContext) -> list[Value]:
    x = ctx.input(0)
    if not x.dtype.is_float:
        raise ctx.error(f"input x has dtype {x.dtype.value}, expected a float type")
    zero_point = ctx.optional_input(2)
    target = _target_dtype(ctx, zero_point)
    precision = ctx.attr("precision", 0)
    work = onnx_dtype(precision, f"{ctx.where}: precision") if precision else x.dtype
    scale = _expanded(ctx, ctx.input(1), x, "y_scale")
    quotient = ctx.add("round", ctx.add("div", cast(ctx, x, work), cast(ctx, scale, work)))
    # wide enough for every integer of the target plus the rounding headroom
    wide = cast(ctx, quotient, DType.F64 if target.itemsize >= 4 else DType.F32)
    if zero_point is not None:
        wide = ctx.add("add", wide, cast(ctx, _expanded(ctx, zero_point, x, "y_zero_point"),
                                         wide.dtype))
    return [saturate(ctx, wide, target)]


@converter("DequantizeLinear")
def dequantize_linear(ctx: NodeContext) -> list[Value]:
    x, scale = ctx.input(0), ctx.input(1)
    if x.dtype not in QUANTIZED_DTYPES:
        raise ctx.error(f"input x has dtype {x.dtype.value}, expected one of "
                        f"{', '.join(d.value for d in QUANTIZED_DTYPES)}")
    declared = ctx.attr("output_dtype", 0)
    out_dtype = onnx_dtype(declared, f"{ctx.where}: output_dtype") if declared else scale.dtype
    values = cast(ctx, x, DType.F32)
    if ctx.has_input(2):
        zero_point = ctx.input(2)
        if zero_point.dtype is not x.dtype:
            raise ctx.error(f"x_zero_point has dtype {zero_point.dtype.value}, x has {x.dtype.value}")
        values = ctx.add("sub", values, cast(ctx, _expanded(ctx, zero_point, x, "x_zero_point"),
                                             DType.F32))
    scaled = ctx.add("mul", values, cast(ctx, _expanded(ctx, scale, x, "x_scale"), DType.F32))
    return [cast(ctx, scaled, out_dtype)]


@converter("DynamicQuantizeLinear")
def dynamic_quantize_linear(ctx: NodeContext) -> list[Value]:
    x = ctx.input(0)
    if x.dtype is not DType.F32:
        raise ctx.error(f"input x has dtype {x.dtype.value}, expected f32")
    axes = list(range(x.type.rank))
    zero = ctx.scalar(0, x)
    high = ctx.add("max", ctx.add("reduce_max", x, axes=axes), zero)
    low = ctx.add("min", ctx.add("reduce_min", x, axes=axes), zero)
    spread = ctx.add("sub", high, low)
    scale = ctx.add("div", ctx.add("where", ctx.add("eq", spread, zero), ctx.scalar(1, x), spread),
                    ctx.scalar(255, x))
    initial = ctx.add("sub", zero, ctx.add("div", low, scale))
    zero_point = ctx.add("round", ctx.add("min", ctx.add("max", initial, zero), ctx.scalar(255, x)))
    quantized = ctx.add("add", ctx.add("round", ctx.add("div", x, scale)), zero_point)
    return [saturate(ctx, quantized, DType.U8), scale, cast(ctx, zero_point, DType.U8)]


# -- integer matrix products ------------------------------------------------------------------------

def _centered_operand(ctx: NodeContext, v: Value, zero_point: Value | None, row_wise: bool) -> Value:
    """``v - zero_point`` in i32. A 1-D zero point of A is per row (it broadcasts along axis -2), of B per
    column (the last axis); higher-rank zero points broadcast as they are."""
    wide = cast(ctx, v, DType.I32)
    if zero_point is None:
        return wide
    if zero_point.dtype is not v.dtype:
        raise ctx.error(f"zero point {zero_point.dtype.value} must have its operand's type {v.dtype.value}")
    centre = cast(ctx, zero_point, DType.I32)
    if centre.type.size == 1:
        centre = reshape(ctx, centre, ())
    elif centre.type.rank == 1 and row_wise:
        centre = reshape(ctx, centre, (centre.shape[0], 1))
    return ctx.add("sub", wide, centre)


@converter("MatMulInteger")
def matmul_integer(ctx: NodeContext) -> list[Value]:
    a = _centered_operand(ctx, ctx.input(0), ctx.optional_input(2), True)
    b = _centered_operand(ctx, ctx.input(1), ctx.optional_input(3), False)
    return [ctx.add("matmul", a, b)]


@converter("QLinearMatMul")
def qlinear_matmul(ctx: NodeContext) -> list[Value]:
    a, b = ctx.input(0), ctx.input(3)
    product = ctx.add("matmul", _centered_operand(ctx, a, ctx.input(2), True),
                      _centered_operand(ctx, b, ctx.input(5), False))
    a_scale, b_scale, y_scale = (reshape(ctx, ctx.input(i), ()) if ctx.input(i).type.size == 1 else ctx.input(i)
                                 for i in (1, 4, 6))
    # the multiplier in the scales' own type (as the reference), the product in f64
    multiplier = cast(ctx, ctx.add("div", ctx.add("mul", a_scale, b_scale), y_scale), DType.F64)
    y_zero = ctx.optional_input(7)
    return [requantize(ctx, cast(ctx, product, DType.F64), multiplier, y_zero,
                       (y_zero if y_zero is not None else a).dtype)]
