"""Converters for ONNX pooling: MaxPool, AveragePool, LpPool, GlobalAveragePool, GlobalMaxPool, MaxUnpool.

Pools are the ``window_reduce`` primitive over the spatial axes (ONNX pads,
dilations and ceil_mode map one to one); MaxPool's Indices output is
``window_argmax``, rearranged for column-major ``storage_order``. Average
pooling divides a window sum by a compile-time array of per-window element
counts (with or without the padding, never counting what lies past the padded
extent, as the ONNX reference). MaxUnpool scatters into flat zeros.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Sequence

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ops import composites as C
from needlec.frontend.onnx.context import NodeContext, converter
from needlec.frontend.onnx.converters.spatial import (WindowAttrs, axes_from, check_channels_first, float_input,
                                                      int_list, reshape, window_attrs)


def _spatial(ctx: NodeContext, x: Value) -> tuple[int, ...]:
    check_channels_first(ctx, x)
    return x.shape[2:]


def _window_kwargs(window: WindowAttrs, ceil_mode: bool) -> dict[str, Any]:
    return {"kernel": list(window.kernel), "strides": list(window.strides), "pads": list(window.pads),
            "dilations": list(window.dilations), "ceil_mode": ceil_mode}


def _pool_window(ctx: NodeContext, x: Value) -> tuple[WindowAttrs, bool]:
    window = window_attrs(ctx, _spatial(ctx, x))
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    return window, ceil_mode


def column_major_indices(ctx: NodeContext, indices: Value, spatial: Sequence[int]) -> Value:
    """Row-major flat indices into (N, C, *spatial) re-expressed with the spatial axes column-major
    (MaxPool storage_order=1): the (n, c) part stays, the spatial coordinates are recombined in reverse order."""
    plane = math.prod(spatial)
    plane_const = ctx.constant(plane, DType.I64)
    image = ctx.add("mul", ctx.add("div", indices, plane_const), plane_const)
    rest = ctx.add("mod", indices, plane_const)
    coords = []
    for axis in range(len(spatial)):
        inner = math.prod(spatial[axis + 1:])
        coords.append(ctx.add("mod", ctx.add("div", rest, ctx.constant(inner, DType.I64)),
                              ctx.constant(spatial[axis], DType.I64)))
    result = image
    for axis, coord in enumerate(coords):
        stride = math.prod(spatial[:axis])
        result = ctx.add("add", result, ctx.add("mul", coord, ctx.constant(stride, DType.I64)))
    return result


@converter("MaxPool")
def max_pool(ctx: NodeContext) -> list[Value | None]:
    x = ctx.input(0)
    window, ceil_mode = _pool_window(ctx, x)
    kwargs = _window_kwargs(window, ceil_mode)
    y = ctx.add("window_reduce", x, kind="max", **kwargs)
    if not ctx.has_output(1):
        return [y, None]
    indices = ctx.add("window_argmax", x, **kwargs)
    if ctx.attr("storage_order", 0):
        indices = column_major_indices(ctx, indices, x.shape[2:])
    return [y, indices]


def window_counts(in_dims: Sequence[int], out_dims: Sequence[int], window: WindowAttrs,
                  include_pad: bool) -> np.ndarray:
    """How many kernel taps of each window land inside the input (or inside input + pads), as an array of
    ``out_dims``; positions past the padded extent (ceil-mode windows) never count."""
    rank = window.rank
    counts = np.ones((), np.int64)
    for axis, (n, out, k, s, d) in enumerate(zip(in_dims, out_dims, window.kernel, window.strides,
                                                   window.dilations)):
        begin, end = window.pads[axis], window.pads[rank + axis]
        positions = np.arange(out)[:, None] * s - begin + np.arange(k)[None, :] * d
        low, high = (-begin, n + end) if include_pad else (0, n)
        per_axis = ((positions >= low) & (positions < high)).sum(axis=1)
        counts = np.multiply.outer(counts, per_axis)
    return counts


@converter("AveragePool")
def average_pool(ctx: NodeContext) -> list[Value]:
    x = float_input(ctx, 0)
    window, ceil_mode = _pool_window(ctx, x)
    total = ctx.add("window_reduce", x, kind="sum", **_window_kwargs(window, ceil_mode))
    counts = window_counts(x.shape[2:], total.shape[2:], window, bool(ctx.attr("count_include_pad", 0)))
    return [ctx.add("div", total, ctx.constant(counts, x.dtype))]


@converter("LpPool")
def lp_pool(ctx: NodeContext) -> list[Value]:
    x = float_input(ctx, 0)
    window, ceil_mode = _pool_window(ctx, x)
    p = ctx.attr("p", 2)
    powered = ctx.add("mul", x, x) if p == 2 else ctx.add("pow", ctx.add("abs", x), ctx.scalar(p, x))
    total = ctx.add("window_reduce", powered, kind="sum", **_window_kwargs(window, ceil_mode))
    # a ceil-mode window reaching past the padding is rescaled to the full kernel (ONNX reference, PyTorch)
    counts = window_counts(x.shape[2:], total.shape[2:], window, include_pad=True)
    kernel_size = math.prod(window.kernel)
    if (counts != kernel_size).any():
        total = ctx.add("mul", total, ctx.constant(kernel_size / counts, x.dtype))
    return [ctx.add("sqrt", total) if p == 2 else ctx.add("pow", total, ctx.scalar(1.0 / p, total))]


@converter("GlobalAveragePool")
def global_average_pool(ctx: NodeContext) -> list[Value]:
    x = ctx.input(0)
    _spatial(ctx, x)
    return [C.mean(ctx, x, axes_from(2, x.type.rank))]


@converter("GlobalMaxPool")
def global_max_pool(ctx: NodeContext) -> list[Value]:
    x = ctx.input(0)
    _spatial(ctx, x)
    return [ctx.add("reduce_max", x, axes=axes_from(2, x.type.rank), keepdims=True)]


def declared_output_shape(ctx: NodeContext, index: int) -> tuple[int, ...] | None:
    """The static shape the model declares for this node's output ``index`` (graph outputs and value_info of
    the main graph), or None."""
    name = ctx.node.output[index]
    graph = ctx.importer.model.graph
    for info in [*graph.output, *graph.value_info]:
        if info.name == name and info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            dims = info.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                return tuple(d.dim_value for d in dims)
    return None


def _unpool_shape(ctx: NodeContext) -> tuple[int, ...]:
    """MaxUnpool's output_shape input: its compile-time value, else the output shape the model declares (the
    result's shape must be static either way)."""
    declared = declared_output_shape(ctx, 0)
    if ctx.const(2) is None and declared is not None:
        return declared
    return tuple(int(d) for d in ctx.require_const(2, "output_shape"))


@converter("MaxUnpool")
def max_unpool(ctx: NodeContext) -> list[Value]:
    x, indices = ctx.input(0), ctx.input(1)
    spatial = _spatial(ctx, x)
    if indices.shape != x.shape or indices.dtype is not DType.I64:
        raise ctx.error(f"indices I {indices.shape} {indices.dtype.value} must be i64 of X's shape {x.shape}")
    rank = len(spatial)
    kernel = ctx.attr("kernel_shape")
    if len(kernel) != rank:
        raise ctx.error(f"kernel_shape {tuple(kernel)} has {len(kernel)} axes, the input has {rank} spatial axes")
    strides, pads = int_list(ctx, "strides", rank, 1), int_list(ctx, "pads", 2 * rank, 0)
    inferred = tuple(x.shape[:2]) + tuple((n - 1) * s - pads[i] - pads[rank + i] + k for i, (n, s, k) in
                                          enumerate(zip(spatial, strides, kernel)))
    zeros = ctx.add("fill", shape=[math.prod(inferred)], value=0.0, dtype=x.dtype)
    flat = ctx.add("scatter", zeros, reshape(ctx, indices, (x.type.size,)), reshape(ctx, x, (x.type.size,)),
                   axis=0, reduction="none")
    y = reshape(ctx, flat, inferred)
    if not ctx.has_input(2):
        return [y]
    shape = _unpool_shape(ctx)
    if len(shape) != len(inferred) or any(s < i for s, i in zip(shape, inferred)):
        raise ctx.error(f"output_shape {shape} must have rank {len(inferred)} and be at least {inferred}")
    grow = [s - i for s, i in zip(shape, inferred)]
    return [ctx.add("pad", y, pads=[0] * len(shape) + grow) if any(grow) else y]
