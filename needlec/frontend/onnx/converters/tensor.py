"""Converters for ONNX tensor and shape ops: constants, shapes, reshapes, slicing, joining, padding, tiling.

Everything shape-like (Reshape's shape, Slice's starts, Pad's pads, ...) must
be known at compile time; ``const_ints`` reads it and names the node when it
is not. Layout changes become needlec views (reshape, permute, slice,
broadcast_to); ``dense`` inserts a ``copy`` before a reshape of a strided view.
The helpers at the top are shared with the other converter modules of this
family (indexing, resize, sampling, selection).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext, converter, onnx_dtype


# -- helpers shared by the tensor, indexing, resize, sampling and selection converters --

def const_ints(ctx: NodeContext, i: int, what: str) -> list[int]:
    """Input ``i``'s compile-time data as a flat list of Python ints."""
    return [int(v) for v in np.asarray(ctx.require_const(i, what)).reshape(-1)]


def normalize_axes(ctx: NodeContext, axes: Sequence[int], rank: int, what: str = "axes") -> list[int]:
    """``axes`` with negatives counted from the end; an error naming the node when one is out of range."""
    result = []
    for axis in axes:
        if not -rank <= axis < rank:
            raise ctx.error(f"{what} value {axis} is out of range for rank {rank}")
        result.append(axis % rank)
    return result


def dense(ctx: NodeContext, x: Value) -> Value:
    """``x`` itself when its layout is dense, else a contiguous copy (reshape needs a dense input)."""
    return x if x.type.is_dense else ctx.add("copy", x)


def reshape(ctx: NodeContext, x: Value, shape: Sequence[int]) -> Value:
    """``x`` viewed with ``shape`` (copied first when its layout is strided)."""
    shape = [int(d) for d in shape]
    if tuple(shape) == x.shape:
        return x
    return ctx.add("reshape", dense(ctx, x), shape=shape)


def permute(ctx: NodeContext, x: Value, perm: Sequence[int]) -> Value:
    """``x`` with its axes reordered (no node for the identity permutation)."""
    perm = [int(p) for p in perm]
    return x if perm == list(range(x.type.rank)) else ctx.add("permute", x, perm=perm)


def slice_axis(ctx: NodeContext, x: Value, axis: int, start: int, stop: int, step: int = 1) -> Value:
    """``x[start:stop:step]`` on one axis (Python slice semantics)."""
    return ctx.add("slice", x, starts=[start], stops=[stop], steps=[step], axes=[axis])


def cast(ctx: NodeContext, x: Value, dtype: DType) -> Value:
    """``x`` converted to ``dtype`` (no node when it already has it)."""
    return x if x.dtype is dtype else ctx.add("cast", x, dtype=dtype)


def attr_or_input_ints(ctx: NodeContext, name: str, index: int, since: int) -> list[int] | None:
    """An int list that is attribute ``name`` before opset ``since`` and input ``index`` from it on."""
    if ctx.opset < since:
        value = ctx.attr(name, None)
        return None if value is None else [int(v) for v in value]
    return const_ints(ctx, index, name) if ctx.has_input(index) else None


def float_exact(value: np.ndarray | np.generic | float, dtype: DType) -> bool:
    """Whether ``value`` in ``dtype`` survives the round trip through the float attribute of fill/pad."""
    scalar = np.asarray(value).astype(dtype.np)
    return bool(np.asarray(float(scalar)).astype(dtype.np) == scalar or np.isnan(float(scalar)))


def fill(ctx: NodeContext, shape: Sequence[int], value: np.generic | float, dtype: DType) -> Value:
    """A tensor of ``shape`` holding ``value``: a ``fill`` node when the value is float-exact, else a constant."""
    scalar = np.asarray(value).astype(dtype.np)
    if float_exact(scalar, dtype):
        return ctx.add("fill", shape=[int(d) for d in shape], value=float(scalar), dtype=dtype)
    return ctx.constant(np.full(tuple(shape), scalar), dtype)


# -- constants --------------------------------------------------------------------

def _sparse_to_dense(sparse: onnx.SparseTensorProto) -> np.ndarray:
    """A SparseTensorProto as a dense array (indices are linear or one row of coordinates per value)."""
    values = onnx.numpy_helper.to_array(sparse.values)
    indices = onnx.numpy_helper.to_array(sparse.indices).astype(np.int64)
    shape = tuple(sparse.dims)
    out = np.zeros(shape, values.dtype)
    flat_index = indices if indices.ndim == 1 else np.ravel_multi_index(tuple(indices.T), shape)
    out.reshape(-1)[flat_index] = values
    return out


@converter("Constant")
def constant(ctx: NodeContext) -> list[Value]:
    """Constant: a graph constant from value, value_float(s), value_int(s) or sparse_value."""
    for attribute in ctx.node.attribute:
        if attribute.name == "sparse_value":
            return [ctx.constant(_sparse_to_dense(attribute.sparse_tensor))]
        if attribute.name in ("value_string", "value_strings"):
            raise ctx.error("string constants are not supported by needlec")
        if attribute.name == "value":
            onnx_dtype(attribute.t.data_type, ctx.where)
            return [ctx.constant(onnx.numpy_helper.to_array(attribute.t))]
        if attribute.name in ("value_float", "value_floats"):
            return [ctx.constant(np.asarray(ctx.attr(attribute.name), np.float32))]
        if attribute.name in ("value_int", "value_ints"):
            return [ctx.constant(np.asarray(ctx.attr(attribute.name), np.int64))]
    raise ctx.error("needs one of the attributes value, value_float(s), value_int(s) or sparse_value")


@converter("ConstantOfShape")
def constant_of_shape(ctx: NodeContext) -> list[Value]:
    """ConstantOfShape: a fill of the constant shape with the one-element ``value`` (default f32 0)."""
    shape = const_ints(ctx, 0, "shape")
    if any(d < 0 for d in shape):
        raise ctx.error(f"shape {shape} has a negative dimension")
    value = ctx.attr("value", None)
    if value is None:
        return [ctx.add("fill", shape=shape, value=0.0, dtype=DType.F32)]
    value = np.asarray(value)
    return [fill(ctx, shape, value.reshape(-1)[0], DType.from_numpy(value.dtype))]


@converter("EyeLike")
def eye_like(ctx: NodeContext) -> list[Value]:
    """EyeLike: a constant identity-like matrix with its ones on diagonal ``k``, in ``dtype`` or the input's."""
    x = ctx.input(0)
    if x.type.rank != 2:
        raise ctx.error(f"input 0 has rank {x.type.rank}, expected 2")
    to = ctx.attr("dtype", None)
    dtype = x.dtype if to is None else onnx_dtype(to, ctx.where)
    return [ctx.constant(np.eye(x.shape[0], x.shape[1], ctx.attr("k", 0), dtype.np), dtype)]


@converter("BitCast")
def bit_cast(ctx: NodeContext) -> list[Value]:
    """BitCast: reinterpret the bits of each element as ``to`` (same element size)."""
    x = ctx.input(0)
    dtype = onnx_dtype(ctx.attr("to"), ctx.where)
    if dtype.itemsize != x.dtype.itemsize:
        raise ctx.error(f"cannot reinterpret {x.dtype.value} ({x.dtype.itemsize} bytes) as {dtype.value} "
                        f"({dtype.itemsize} bytes): the sizes differ")
    return [x if dtype is x.dtype else ctx.add("bitcast", x, dtype=dtype)]


# -- shapes -----------------------------------------------------------------------

@converter("Shape")
def shape(ctx: NodeContext) -> list[Value]:
    """Shape: the static dims ``[start:end]`` (opset 15 clamping, as a Python slice) as an i64 constant."""
    dims = ctx.input(0).shape
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    return [ctx.constant(np.asarray(dims[start:end], np.int64))]


@converter("Size")
def size(ctx: NodeContext) -> list[Value]:
    """Size: the static element count as an i64 scalar constant."""
    return [ctx.constant(np.asarray(ctx.input(0).type.size, np.int64))]


@converter("Reshape")
def reshape_op(ctx: NodeContext) -> list[Value]:
    """Reshape: 0 copies the input dim unless ``allowzero`` (opset 14), one -1 is inferred."""
    x = ctx.input(0)
    target = [int(d) for d in ctx.attr("shape")] if ctx.opset < 5 else const_ints(ctx, 1, "shape")
    allow_zero = ctx.attr("allowzero", 0) if ctx.opset >= 14 else 0
    if not allow_zero and any(d == 0 and i >= x.type.rank for i, d in enumerate(target)):
        raise ctx.error(f"shape {target} copies (0) a dimension at an index beyond the rank {x.type.rank} of "
                        f"input {x.shape}")
    shape = [x.shape[i] if d == 0 and not allow_zero else d for i, d in enumerate(target)]
    if shape.count(-1) > 1:
        raise ctx.error(f"shape {target} has more than one -1")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or x.type.size % known:
            raise ctx.error(f"cannot reshape {x.shape} to {target}: the -1 dimension is not a whole number")
        shape[shape.index(-1)] = x.type.size // known
    if any(d < 0 for d in shape) or math.prod(shape) != x.type.size:
        raise ctx.error(f"cannot reshape {x.shape} ({x.type.size} elements) to {target}")
    return [reshape(ctx, x, shape)]


@converter("Flatten")
def flatten(ctx: NodeContext) -> list[Value]:
    """Flatten: a 2-D view, axes before ``axis`` joined into rows and the rest into columns."""
    x = ctx.input(0)
    rank = x.type.rank
    axis = ctx.attr("axis", 1)
    if not -rank <= axis <= rank:
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    return [reshape(ctx, x, [math.prod(x.shape[:axis]), math.prod(x.shape[axis:])])]


@converter("Squeeze")
def squeeze(ctx: NodeContext) -> list[Value]:
    """Squeeze: drop the given size-1 axes (attribute before opset 13, input from it), or all of them."""
    x = ctx.input(0)
    axes = attr_or_input_ints(ctx, "axes", 1, since=13)
    if axes is None:
        axes = [a for a, d in enumerate(x.shape) if d == 1]
    axes = normalize_axes(ctx, axes, x.type.rank)
    for axis in axes:
        if x.shape[axis] != 1:
            raise ctx.error(f"cannot squeeze axis {axis} of shape {x.shape}: its size is not 1")
    return [reshape(ctx, x, [d for a, d in enumerate(x.shape) if a not in axes])]


@converter("Unsqueeze")
def unsqueeze(ctx: NodeContext) -> list[Value]:
    """Unsqueeze: insert size-1 axes at positions of the output (attribute before opset 13, input from it)."""
    x = ctx.input(0)
    axes = attr_or_input_ints(ctx, "axes", 1, since=13)
    if axes is None:
        raise ctx.error("axes are required")
    rank = x.type.rank + len(axes)
    axes = normalize_axes(ctx, axes, rank)
    if len(set(axes)) != len(axes):
        raise ctx.error(f"axes {axes} repeat an axis")
    dims = iter(x.shape)
    return [reshape(ctx, x, [1 if a in axes else next(dims) for a in range(rank)])]


@converter("Transpose")
def transpose(ctx: NodeContext) -> list[Value]:
    """Transpose: a permute view (``perm`` defaults to reversing the axes)."""
    x = ctx.input(0)
    perm = ctx.attr("perm", None)
    perm = list(range(x.type.rank))[::-1] if perm is None else normalize_axes(ctx, perm, x.type.rank, "perm")
    if sorted(perm) != list(range(x.type.rank)):
        raise ctx.error(f"perm {perm} is not a permutation of the {x.type.rank} axes")
    return [permute(ctx, x, perm)]


# -- joining and splitting ----------------------------------------------------------

@converter("Concat")
def concat(ctx: NodeContext) -> list[Value]:
    """Concat along ``axis`` (empty inputs are skipped)."""
    inputs = ctx.inputs()
    axis = ctx.attr("axis", 1) if ctx.opset < 4 else ctx.attr("axis")
    axis = normalize_axes(ctx, [axis], inputs[0].type.rank, "axis")[0]
    ranks = [x.type.rank for x in inputs]
    if len(set(ranks)) > 1:
        raise ctx.error(f"inputs have ranks {ranks}, expected one rank (shapes {[x.shape for x in inputs]})")
    kept = [x for x in inputs if x.shape[axis] > 0] or inputs[:1]
    return [kept[0] if len(kept) == 1 else ctx.add("concat", *kept, axis=axis)]


def split_sizes(ctx: NodeContext, dim: int, outputs: int) -> list[int]:
    """Split's output lengths: the split list (attribute or input), num_outputs (opset 18), or equal parts."""
    sizes = attr_or_input_ints(ctx, "split", 1, since=13)
    if sizes is not None:
        if len(sizes) != outputs or sum(sizes) != dim or any(s < 0 for s in sizes):
            raise ctx.error(f"split {sizes} does not divide an axis of length {dim} into {outputs} parts")
        return sizes
    parts = ctx.attr("num_outputs", None) if ctx.opset >= 18 else None
    if parts is not None:
        if parts != outputs:
            raise ctx.error(f"num_outputs is {parts} but the node has {outputs} outputs")
        chunk = -(-dim // parts)
        return [max(0, min(chunk, dim - i * chunk)) for i in range(parts)]
    if dim % outputs:
        raise ctx.error(f"an axis of length {dim} does not split into {outputs} equal parts")
    return [dim // outputs] * outputs


@converter("Split")
def split(ctx: NodeContext) -> list[Value]:
    """Split into slices along ``axis`` (split sizes, num_outputs or equal parts)."""
    x = ctx.input(0)
    axis = normalize_axes(ctx, [ctx.attr("axis", 0)], x.type.rank, "axis")[0]
    sizes = split_sizes(ctx, x.shape[axis], ctx.num_outputs)
    starts = np.cumsum([0, *sizes])
    return [slice_axis(ctx, x, axis, int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def onnx_slice_range(dim: int, start: int, end: int, step: int) -> tuple[int, int, int]:
    """ONNX Slice's (start, stop, step) for one axis, clamped as the spec says, as a Python slice of ``dim``.

    Python's negative indices would wrap a clamped stop of -1 (meaning "before index 0" for a negative
    step), so that stop is written as ``-dim - 1``.
    """
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return start, (-dim - 1 if end < 0 else end), step


@converter("Slice")
def slice_op(ctx: NodeContext) -> list[Value]:
    """Slice: starts/ends/axes/steps (attributes before opset 10), clamped as ONNX says, as one slice view."""
    x = ctx.input(0)
    if ctx.opset < 10:
        starts, ends = [int(v) for v in ctx.attr("starts")], [int(v) for v in ctx.attr("ends")]
        axes = ctx.attr("axes", None)
        steps = [1] * len(starts)
    else:
        starts, ends = const_ints(ctx, 1, "starts"), const_ints(ctx, 2, "ends")
        axes = const_ints(ctx, 3, "axes") if ctx.has_input(3) else None
        steps = const_ints(ctx, 4, "steps") if ctx.has_input(4) else [1] * len(starts)
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.error(f"starts, ends, axes and steps have different lengths "
                        f"({len(starts)}, {len(ends)}, {len(axes)}, {len(steps)})")
    axes = normalize_axes(ctx, axes, x.type.rank)
    if 0 in steps:
        raise ctx.error("steps must not be 0")
    bounds = [onnx_slice_range(x.shape[a], s, e, t) for a, s, e, t in zip(axes, starts, ends, steps)]
    if not bounds:
        return [x]
    return [ctx.add("slice", x, starts=[b[0] for b in bounds], stops=[b[1] for b in bounds],
                    steps=[b[2] for b in bounds], axes=axes)]


# -- broadcasting and repetition ---------------------------------------------------

@converter("Expand")
def expand(ctx: NodeContext) -> list[Value]:
    """Expand: a broadcast view to the bidirectional broadcast of the input shape and ``shape``."""
    x = ctx.input(0)
    target = const_ints(ctx, 1, "shape")
    try:
        shape = np.broadcast_shapes(x.shape, tuple(target))
    except ValueError:
        raise ctx.error(f"cannot broadcast input shape {x.shape} to {tuple(target)}") from None
    return [x if shape == x.shape else ctx.add("broadcast_to", x, shape=list(shape))]


@converter("Tile")
def tile(ctx: NodeContext) -> list[Value]:
    """Tile: broadcast an interleaved view (r0, d0, r1, d1, ...), copy it, and merge each pair."""
    x = ctx.input(0)
    repeats = const_ints(ctx, 1, "repeats")
    if len(repeats) != x.type.rank or any(r < 0 for r in repeats):
        raise ctx.error(f"repeats {repeats} must hold {x.type.rank} value(s) >= 0")
    if all(r == 1 for r in repeats):
        return [x]
    interleaved = reshape(ctx, x, [v for d in x.shape for v in (1, d)])
    spread = ctx.add("broadcast_to", interleaved, shape=[v for r, d in zip(repeats, x.shape) for v in (r, d)])
    return [reshape(ctx, ctx.add("copy", spread), [r * d for r, d in zip(repeats, x.shape)])]


@converter("Range")
def range_op(ctx: NodeContext) -> list[Value]:
    """Range: a constant arange from compile-time start, limit and delta (scalars or one-element tensors)."""
    operands = [ctx.require_const(i, name) for i, name in enumerate(("start", "limit", "delta"))]
    for name, data in zip(("start", "limit", "delta"), operands):
        if data.size != 1:
            raise ctx.error(f"{name} has shape {data.shape}, expected a scalar")
    start, limit, delta = (data.reshape(-1)[0] for data in operands)
    if delta == 0:
        raise ctx.error("delta must not be 0")
    length = (float(limit) - float(start)) / float(delta)
    if not math.isfinite(length):
        raise ctx.error(f"start {start}, limit {limit} and delta {delta} give no finite length")
    count = max(int(math.ceil(length)), 0)
    dtype = np.asarray(start).dtype
    ctx.importer.budget.check_elements(count, dtype.itemsize, ctx.where, "Range output")  # before arange allocates
    values = np.arange(count, dtype=np.float64 if dtype.kind == "f" else np.int64) * delta + start
    return [ctx.constant(values.astype(dtype))]


@converter("Trilu")
def trilu(ctx: NodeContext) -> list[Value]:
    """Trilu: keep the upper (or lower) triangle from diagonal ``k`` with a constant mask, zero elsewhere."""
    x = ctx.input(0)
    if x.type.rank < 2:
        raise ctx.error(f"input 0 has rank {x.type.rank}, expected at least 2")
    rows, cols = x.shape[-2:]
    # a diagonal beyond the matrix keeps everything or nothing; clamping keeps NumPy's offsets in range
    k = min(max(const_ints(ctx, 1, "k")[0], -rows), cols) if ctx.has_input(1) else 0
    keep = np.triu(np.ones((rows, cols), bool), k) if ctx.attr("upper", 1) else np.tril(np.ones((rows, cols), bool), k)
    return [ctx.add("where", ctx.constant(keep), x, ctx.scalar(0, x))]


# -- padding and cropping -------------------------------------------------------------

def _source_positions(dim: int, begin: int, end: int, mode: str) -> np.ndarray:
    """For padded positions ``-begin .. dim + end - 1`` of an axis of length ``dim``, the index each reads:
    wrapping around (wrap), or mirrored without repeating the edge (reflect, as often as needed)."""
    positions = np.arange(-begin, dim + end)
    if mode == "wrap":
        return positions % dim
    period = max(2 * (dim - 1), 1)
    folded = positions % period
    return np.where(folded >= dim, period - folded, folded)


def _gather_pad(ctx: NodeContext, x: Value, pads: Sequence[int], mode: str) -> Value:
    """Padding as one constant-index gather per axis (wrap, and reflect wider than the axis): negative pads
    crop first."""
    rank = x.type.rank
    for axis in range(rank):
        begin, end = pads[axis], pads[rank + axis]
        dim = x.shape[axis]
        x = slice_axis(ctx, x, axis, max(-begin, 0), dim - max(-end, 0)) if begin < 0 or end < 0 else x
        begin, end, dim = max(begin, 0), max(end, 0), x.shape[axis]
        if begin or end:
            if dim == 0:
                raise ctx.error(f"{mode} mode cannot pad axis {axis}, which is empty")
            index = _source_positions(dim, begin, end, mode)
            x = ctx.add("gather", x, ctx.constant(index.astype(np.int64)), axis=axis)
    return x


@converter("Pad")
def pad(ctx: NodeContext) -> list[Value]:
    """Pad: constant/reflect/edge padding as one pad node, wrap (and reflect wider than the axis) as gathers;
    pads and axes are attributes before opset 11 and inputs from it."""
    x = ctx.input(0)
    rank = x.type.rank
    mode = ctx.attr("mode", "constant")
    value_input: Value | None = None
    if ctx.opset < 11:
        pads = [int(p) for p in ctx.attr("pads" if ctx.opset >= 2 else "paddings")]
        value: float = float(ctx.attr("value", 0.0))
    else:
        pads = const_ints(ctx, 1, "pads")
        value_input = ctx.optional_input(2)
        value = 0.0
        if ctx.has_input(3):  # opset 18: pads cover only these axes
            axes = normalize_axes(ctx, const_ints(ctx, 3, "axes"), rank)
            if len(pads) != 2 * len(axes):
                raise ctx.error(f"pads has {len(pads)} values, expected 2 * {len(axes)} (one pair per axis)")
            full = [0] * (2 * rank)
            for i, axis in enumerate(axes):
                full[axis], full[rank + axis] = pads[i], pads[len(axes) + i]
            pads = full
    if len(pads) != 2 * rank:
        raise ctx.error(f"pads has {len(pads)} values, expected 2 * rank = {2 * rank}")
    kept = [d - max(-pads[a], 0) - max(-pads[rank + a], 0) for a, d in enumerate(x.shape)]
    if mode == "wrap" or (mode == "reflect" and any(max(pads[a], pads[rank + a]) >= k for a, k in enumerate(kept))):
        return [_gather_pad(ctx, x, pads, mode)]
    if mode not in ("constant", "reflect", "edge"):
        raise ctx.error(f"mode {mode!r} is not one of constant, reflect, edge, wrap")
    if mode != "constant" or value_input is None:
        return [ctx.add("pad", x, pads=pads, mode=mode, value=value)]
    known = ctx.importer.fold(value_input)
    if known is not None:  # an empty constant_value means 0
        scalar = known.reshape(-1)[0] if known.size else np.zeros((), known.dtype)
        if float_exact(scalar, x.dtype):
            return [ctx.add("pad", x, pads=pads, mode=mode, value=float(scalar.astype(x.dtype.np)))]
    # a run-time (or not float-exact) pad value: pad with zeros, then select the value where nothing was read
    inside = ctx.add("pad", ctx.constant(np.ones(x.shape, bool)), pads=pads, mode="constant", value=0.0)
    padded = ctx.add("pad", x, pads=pads, mode=mode, value=0.0)
    scalar_value = reshape(ctx, cast(ctx, value_input, x.dtype), [])
    return [ctx.add("where", inside, padded, scalar_value)]


@converter("CenterCropPad")
def center_crop_pad(ctx: NodeContext) -> list[Value]:
    """CenterCropPad: crop or zero-pad the given axes to ``shape`` around the centre (one pad node)."""
    x = ctx.input(0)
    target = const_ints(ctx, 1, "shape")
    axes = normalize_axes(ctx, ctx.attr("axes", list(range(x.type.rank))), x.type.rank)
    if len(target) != len(axes):
        raise ctx.error(f"shape has {len(target)} values for {len(axes)} axes")
    pads = [0] * (2 * x.type.rank)
    for axis, size in zip(axes, target):
        difference = size - x.shape[axis]
        pads[axis] = difference // 2 if difference >= 0 else -(-difference // 2)
        pads[x.type.rank + axis] = difference - pads[axis]
    return [ctx.add("pad", x, pads=pads, mode="constant", value=0.0)]


# -- block rearrangements ---------------------------------------------------------

def _check_nchw(ctx: NodeContext, x: Value) -> tuple[int, int, int, int]:
    if x.type.rank != 4:
        raise ctx.error(f"input 0 has shape {x.shape}, expected rank 4 (N, C, H, W)")
    n, c, h, w = x.shape
    return n, c, h, w


@converter("DepthToSpace")
def depth_to_space(ctx: NodeContext) -> list[Value]:
    """DepthToSpace (DCR or CRD): reshape, permute, reshape."""
    x = ctx.input(0)
    n, c, h, w = _check_nchw(ctx, x)
    b = ctx.attr("blocksize")
    if c % (b * b):
        raise ctx.error(f"channels {c} are not a multiple of blocksize^2 = {b * b}")
    mode = ctx.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ctx.error(f"mode {mode!r} is not one of DCR, CRD")
    if mode == "DCR":
        blocks = permute(ctx, reshape(ctx, x, [n, b, b, c // (b * b), h, w]), [0, 3, 4, 1, 5, 2])
    else:
        blocks = permute(ctx, reshape(ctx, x, [n, c // (b * b), b, b, h, w]), [0, 1, 4, 2, 5, 3])
    return [reshape(ctx, blocks, [n, c // (b * b), h * b, w * b])]


@converter("SpaceToDepth")
def space_to_depth(ctx: NodeContext) -> list[Value]:
    """SpaceToDepth (DCR or CRD): reshape, permute, reshape."""
    x = ctx.input(0)
    n, c, h, w = _check_nchw(ctx, x)
    b = ctx.attr("blocksize")
    if h % b or w % b:
        raise ctx.error(f"spatial shape ({h}, {w}) is not a multiple of blocksize {b}")
    mode = ctx.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ctx.error(f"mode {mode!r} is not one of DCR, CRD")
    perm = [0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4]
    blocks = permute(ctx, reshape(ctx, x, [n, c, h // b, b, w // b, b]), perm)
    return [reshape(ctx, blocks, [n, c * b * b, h // b, w // b])]
