"""Converters for ONNX indexing ops: Gather*, Scatter*, TensorScatter, OneHot, ReverseSequence, Col2Im.

Indices may be run-time data. The N-d forms (GatherND, ScatterND) flatten the
indexed leading axes of the data and turn each index tuple into one linear
index with graph arithmetic, so they become a single ``gather`` / ``scatter``
primitive; ops whose indices follow a pattern (TensorScatter, ReverseSequence)
compute a source index per output element and read it with ``gather_elements``;
Col2Im scatter-adds block columns at constant indices. Like the primitives,
out-of-range indices are clamped (ONNX leaves them undefined): never a read or
write outside a buffer.
"""
from __future__ import annotations

import math

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext, converter
from needlec.frontend.onnx.converters.tensor import cast, const_ints, normalize_axes, reshape

REDUCTIONS = ("none", "add", "mul", "max", "min")


def _index_input(ctx: NodeContext, i: int) -> Value:
    """Input ``i`` as i64 indices (an error naming the node for non-integer indices)."""
    indices = ctx.input(i)
    if not indices.dtype.is_int:
        raise ctx.error(f"input {i} (indices) has dtype {indices.dtype.value}, expected an integer type")
    return cast(ctx, indices, DType.I64)


def _wrap_negative(ctx: NodeContext, indices: Value, dims: Value) -> Value:
    """``indices + dims`` where an index is negative (``dims`` broadcasts against ``indices``)."""
    return ctx.add("where", ctx.add("lt", indices, ctx.scalar(0, indices)), ctx.add("add", indices, dims), indices)


def _linear_index(ctx: NodeContext, indices: Value, dims: tuple[int, ...], batch_dims: int) -> Value:
    """Row-major linear index into ``batch shape + dims`` of each index tuple on ``indices``' last axis
    (each component wrapped once if negative, then clamped into its axis).

    ``indices`` has shape ``batch shape + rest + (len(dims),)``; the batch position of each tuple is
    added in, so the result (shape ``batch shape + rest``) indexes the data flattened over those axes.
    """
    tuples = indices.shape[:-1]
    strides = np.asarray([math.prod(dims[j + 1:]) for j in range(len(dims))], np.int64)
    if dims:
        wrapped = _wrap_negative(ctx, indices, ctx.constant(np.asarray(dims, np.int64)))
        inside = ctx.add("max", ctx.add("min", wrapped, ctx.constant(np.asarray(dims, np.int64) - 1)),
                         ctx.scalar(0, wrapped))
        linear = ctx.add("reduce_sum", ctx.add("mul", inside, ctx.constant(strides)), axes=[-1], keepdims=False)
    else:
        linear = ctx.add("fill", shape=list(tuples), value=0.0, dtype=DType.I64)
    if batch_dims:
        batch = indices.shape[:batch_dims]
        offsets = np.arange(math.prod(batch), dtype=np.int64).reshape(batch + (1,) * (len(tuples) - batch_dims))
        linear = ctx.add("add", linear, ctx.constant(offsets * math.prod(dims)))
    return linear


@converter("Gather")
def gather(ctx: NodeContext) -> list[Value]:
    """Gather: np.take along ``axis`` (negative indices wrap)."""
    data = ctx.input(0)
    axis = normalize_axes(ctx, [ctx.attr("axis", 0)], data.type.rank, "axis")[0]
    return [ctx.add("gather", data, _index_input(ctx, 1), axis=axis)]


@converter("GatherElements")
def gather_elements(ctx: NodeContext) -> list[Value]:
    """GatherElements: np.take_along_axis along ``axis``."""
    data = ctx.input(0)
    axis = normalize_axes(ctx, [ctx.attr("axis", 0)], data.type.rank, "axis")[0]
    return [ctx.add("gather_elements", data, _index_input(ctx, 1), axis=axis)]


@converter("GatherND")
def gather_nd(ctx: NodeContext) -> list[Value]:
    """GatherND: one gather from the data flattened over its batch and indexed axes at linear indices."""
    data, indices = ctx.input(0), _index_input(ctx, 1)
    batch_dims = ctx.attr("batch_dims", 0)
    depth = indices.shape[-1] if indices.type.rank else -1
    if indices.type.rank < 1 or batch_dims + depth > data.type.rank or \
            data.shape[:batch_dims] != indices.shape[:batch_dims]:
        raise ctx.error(f"indices {indices.shape} do not index data {data.shape} with batch_dims {batch_dims}")
    indexed = data.shape[batch_dims:batch_dims + depth]
    rows = reshape(ctx, data, [math.prod(data.shape[:batch_dims + depth]), *data.shape[batch_dims + depth:]])
    return [ctx.add("gather", rows, _linear_index(ctx, indices, indexed, batch_dims), axis=0)]


def _reduction(ctx: NodeContext, since: int) -> str:
    reduction = ctx.attr("reduction", "none") if ctx.opset >= since else "none"
    if reduction not in REDUCTIONS:
        raise ctx.error(f"reduction {reduction!r} is not one of {', '.join(REDUCTIONS)}")
    return reduction


@converter("Scatter", "ScatterElements")
def scatter_elements(ctx: NodeContext) -> list[Value]:
    """ScatterElements (and the deprecated Scatter): the scatter primitive, with ``reduction`` from opset 16."""
    data = ctx.input(0)
    axis = normalize_axes(ctx, [ctx.attr("axis", 0)], data.type.rank, "axis")[0]
    reduction = _reduction(ctx, 16) if ctx.node.op_type == "ScatterElements" else "none"
    return [ctx.add("scatter", data, _index_input(ctx, 1), ctx.input(2), axis=axis, reduction=reduction)]


@converter("ScatterND")
def scatter_nd(ctx: NodeContext) -> list[Value]:
    """ScatterND: one scatter of update rows into the data flattened over its indexed axes."""
    data, indices, updates = ctx.input(0), _index_input(ctx, 1), ctx.input(2)
    depth = indices.shape[-1] if indices.type.rank else -1
    if not 1 <= depth <= data.type.rank or updates.shape != indices.shape[:-1] + data.shape[depth:]:
        raise ctx.error(f"indices {indices.shape} and updates {updates.shape} do not fit data {data.shape}")
    row = math.prod(data.shape[depth:])
    count = math.prod(indices.shape[:-1])
    rows = reshape(ctx, data, [math.prod(data.shape[:depth]), row])
    linear = reshape(ctx, _linear_index(ctx, indices, data.shape[:depth], 0), [count, 1])
    targets = ctx.add("broadcast_to", linear, shape=[count, row])
    result = ctx.add("scatter", rows, targets, reshape(ctx, updates, [count, row]), axis=0,
                     reduction=_reduction(ctx, 16))
    return [reshape(ctx, result, data.shape)]


def _axis_column(ctx: NodeContext, length: int, axis: int, rank: int) -> Value:
    """The positions ``0 .. length-1`` as an i64 constant laid along ``axis`` of a rank-``rank`` shape."""
    return ctx.constant(np.arange(length, dtype=np.int64).reshape([length if a == axis else 1 for a in range(rank)]))


def _per_batch(ctx: NodeContext, values: Value, batch_axis: int, rank: int) -> Value:
    """A (B,) tensor laid along ``batch_axis`` of a rank-``rank`` shape, as i64."""
    return reshape(ctx, cast(ctx, values, DType.I64),
                   [values.shape[0] if a == batch_axis else 1 for a in range(rank)])


@converter("TensorScatter")
def tensor_scatter(ctx: NodeContext) -> list[Value]:
    """TensorScatter: each cache slot reads the update at its offset from the batch's write index (linear
    or circular), or keeps the past value."""
    past, update = ctx.input(0), ctx.input(1)
    rank = past.type.rank
    axis = normalize_axes(ctx, [ctx.attr("axis", -2)], rank, "axis")[0]
    mode = ctx.attr("mode", "linear")
    if mode not in ("linear", "circular"):
        raise ctx.error(f"mode {mode!r} is not one of linear, circular")
    capacity, length = past.shape[axis], update.shape[axis]
    if update.type.rank != rank or length > capacity or \
            any(u != p for a, (u, p) in enumerate(zip(update.shape, past.shape)) if a != axis):
        raise ctx.error(f"update {update.shape} does not fit past_cache {past.shape} on axis {axis}")
    source = _axis_column(ctx, capacity, axis, rank)  # the update position each cache slot takes, if any
    if ctx.has_input(2):
        source = ctx.add("sub", source, _per_batch(ctx, ctx.input(2), 0, rank))
    if mode == "circular":
        source = ctx.add("mod", source, ctx.scalar(capacity, source))
    written = ctx.add("logical_and", ctx.add("ge", source, ctx.scalar(0, source)),
                      ctx.add("lt", source, ctx.scalar(length, source)))
    safe = ctx.add("where", written, source, ctx.scalar(0, source))
    full = list(past.shape)
    taken = ctx.add("gather_elements", update, ctx.add("broadcast_to", safe, shape=full), axis=axis)
    return [ctx.add("where", written, taken, past)]


@converter("ReverseSequence")
def reverse_sequence(ctx: NodeContext) -> list[Value]:
    """ReverseSequence: each time step reads step ``len - 1 - t`` of its batch while ``t < len``."""
    x, lengths = ctx.input(0), ctx.input(1)
    rank = x.type.rank
    batch_axis, time_axis = normalize_axes(ctx, [ctx.attr("batch_axis", 1), ctx.attr("time_axis", 0)], rank)
    if batch_axis == time_axis or lengths.shape != (x.shape[batch_axis],):
        raise ctx.error(f"sequence_lens {lengths.shape} and axes (batch {batch_axis}, time {time_axis}) do not "
                        f"fit input {x.shape}")
    time = _axis_column(ctx, x.shape[time_axis], time_axis, rank)
    length = _per_batch(ctx, lengths, batch_axis, rank)
    reversed_time = ctx.add("sub", ctx.add("sub", length, ctx.scalar(1, length)), time)
    source = ctx.add("where", ctx.add("lt", time, length), reversed_time, time)
    return [ctx.add("gather_elements", x, ctx.add("broadcast_to", source, shape=list(x.shape)), axis=time_axis)]


@converter("OneHot")
def one_hot(ctx: NodeContext) -> list[Value]:
    """OneHot: ``on`` where the (wrapped) index equals the position along ``axis``, ``off`` elsewhere."""
    indices, values = ctx.input(0), ctx.input(2)
    depth_data = ctx.require_const(1, "depth").reshape(-1)
    if depth_data.size != 1 or depth_data[0] < 1:
        raise ctx.error(f"depth must be one positive value, found {depth_data.tolist()}")
    depth = int(depth_data[0])
    if values.type.size != 2:
        raise ctx.error(f"values has shape {values.shape}, expected 2 elements (off, on)")
    rank = indices.type.rank + 1
    axis = normalize_axes(ctx, [ctx.attr("axis", -1)], rank, "axis")[0]
    index = cast(ctx, indices, DType.I64)
    index = _wrap_negative(ctx, index, ctx.scalar(depth, index))
    index = reshape(ctx, index, [*indices.shape[:axis], 1, *indices.shape[axis:]])
    hot = ctx.add("eq", index, _axis_column(ctx, depth, axis, rank))
    flat = reshape(ctx, values, [2])
    off, on = (reshape(ctx, ctx.add("slice", flat, starts=[i], stops=[i + 1], steps=[1], axes=[0]), [])
               for i in (0, 1))
    return [ctx.add("where", hot, on, off)]


def col2im_targets(image: list[int], block: list[int], dilations: list[int], pads: list[int],
                   strides: list[int]) -> tuple[np.ndarray, int]:
    """For each (block offset, block position) pair in Col2Im's column order, the flat image index it adds
    into (``prod(image)`` where it lands in the padding), and the number of block positions."""
    rank = len(image)
    positions = [(image[i] + pads[i] + pads[rank + i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
                 for i in range(rank)]
    offsets = np.indices(block).reshape(rank, -1)          # (rank, K)
    starts = np.indices(positions).reshape(rank, -1)       # (rank, L)
    coords = [starts[i][None, :] * strides[i] - pads[i] + offsets[i][:, None] * dilations[i] for i in range(rank)]
    inside = np.logical_and.reduce([(c >= 0) & (c < image[i]) for i, c in enumerate(coords)])
    flat = np.ravel_multi_index(tuple(np.where(inside, c, 0) for c in coords), image)
    return np.where(inside, flat, math.prod(image)).reshape(-1).astype(np.int64), math.prod(positions)


@converter("Col2Im")
def col2im(ctx: NodeContext) -> list[Value]:
    """Col2Im: scatter-add every block column into the padded image at constant indices, then drop the padding."""
    x = ctx.input(0)
    image, block = const_ints(ctx, 1, "image_shape"), const_ints(ctx, 2, "block_shape")
    rank = len(image)
    dilations = [int(v) for v in ctx.attr("dilations", [1] * rank)]
    pads = [int(v) for v in ctx.attr("pads", [0] * (2 * rank))]
    strides = [int(v) for v in ctx.attr("strides", [1] * rank)]
    if len(block) != rank or len(dilations) != rank or len(strides) != rank or len(pads) != 2 * rank:
        raise ctx.error(f"image_shape {image}, block_shape {block}, dilations, strides and pads disagree on the "
                        "number of spatial axes")
    targets, positions = col2im_targets(image, block, dilations, pads, strides)
    kernel = math.prod(block)
    if x.type.rank != 3 or x.shape[1] % kernel or x.shape[2] != positions:
        raise ctx.error(f"input {x.shape} is not (N, C * {kernel}, {positions}) for these blocks")
    batch, channels = x.shape[0], x.shape[1] // kernel
    columns = reshape(ctx, x, [batch, channels, kernel * positions])
    # one extra slot collects the values that land in the padding; it is sliced away afterwards
    canvas = ctx.add("fill", shape=[batch, channels, math.prod(image) + 1], value=0.0, dtype=x.dtype)
    index = ctx.add("broadcast_to", ctx.constant(targets), shape=[batch, channels, kernel * positions])
    summed = ctx.add("scatter", canvas, index, columns, axis=2, reduction="add")
    image_values = ctx.add("slice", summed, starts=[0], stops=[math.prod(image)], steps=[1], axes=[2])
    return [reshape(ctx, image_values, [batch, channels, *image])]
