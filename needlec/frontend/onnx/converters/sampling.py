"""Converters for ONNX ops that sample at run-time coordinates: GridSample, AffineGrid, RoiAlign.

Their sample positions are data (a grid, affine matrices, regions of
interest), so positions, interpolation weights and validity are computed with
graph arithmetic, following the ONNX reference implementation step by step;
each interpolation tap then becomes one gather from the input flattened over
its spatial axes, and taps are combined with their weights.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext, converter
from needlec.frontend.onnx.converters.tensor import cast, const_ints, permute, reshape

CUBIC_A = -0.75


def _float_type(x: Value) -> DType:
    """The float type sampling arithmetic runs in for ``x`` (f64 stays f64, everything else uses f32)."""
    return DType.F64 if x.dtype is DType.F64 else DType.F32


@dataclass(frozen=True)
class Tap:
    """One interpolation tap along one spatial axis: where it reads, its weight, and whether it reads at all."""

    index: Value
    weight: Value | None
    valid: Value | None


class Arith:
    """Terse elementwise graph arithmetic on float (or index) values of one converter."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    def op(self, name: str, a: Value, b: Value | float) -> Value:
        """Binary primitive ``name`` of ``a`` and ``b`` (a number becomes a scalar of ``a``'s dtype)."""
        return self.ctx.add(name, a, b if isinstance(b, Value) else self.ctx.scalar(b, a))

    def add(self, a: Value, b: Value | float) -> Value:
        """a + b"""
        return self.op("add", a, b)

    def sub(self, a: Value, b: Value | float) -> Value:
        """a - b"""
        return self.op("sub", a, b)

    def mul(self, a: Value, b: Value | float) -> Value:
        """a * b"""
        return self.op("mul", a, b)

    def div(self, a: Value, b: Value | float) -> Value:
        """a / b"""
        return self.op("div", a, b)

    def where(self, cond: Value, a: Value | float, b: Value | float) -> Value:
        """cond ? a : b (a number becomes a scalar of the other operand's dtype)."""
        like = a if isinstance(a, Value) else b
        assert isinstance(like, Value)
        a = a if isinstance(a, Value) else self.ctx.scalar(a, like)
        b = b if isinstance(b, Value) else self.ctx.scalar(b, like)
        return self.ctx.add("where", cond, a, b)

    def clip(self, a: Value, low: float, high: float) -> Value:
        """``a`` limited to [low, high]."""
        return self.op("min", self.op("max", a, low), high)

    def cubic_weights(self, t: Value) -> list[Value]:
        """Keys' cubic convolution weights of the taps at distances t + 1, t, 1 - t and 2 - t (t in [0, 1))."""
        a = CUBIC_A

        def near(d: Value) -> Value:  # distance <= 1
            return self.add(self.mul(self.mul(self.sub(self.mul(d, a + 2), a + 3), d), d), 1.0)

        def far(d: Value) -> Value:  # 1 < distance < 2
            return self.sub(self.mul(self.add(self.mul(self.sub(self.mul(d, a), 5 * a), d), 8 * a), d), 4 * a)

        one_minus = self.sub(self.ctx.scalar(1.0, t), t)
        return [far(self.add(t, 1.0)), near(t), near(one_minus), far(self.add(one_minus, 1.0))]

    def reflect(self, c: Value, low: float, high: float) -> Value:
        """``c`` mirrored at ``low`` and ``high`` until it lies between them (GridSample's reflection)."""
        span = high - low
        if span <= 0:  # a single-pixel axis with aligned corners: everything maps onto it
            return self.ctx.add("fill", shape=list(c.shape), value=low, dtype=c.dtype)
        below, above = self.op("lt", c, low), self.op("gt", c, high)
        distance = self.where(below, self.sub(self.ctx.scalar(low, c), c), self.sub(c, high))
        folds = self.ctx.add("floor", self.div(distance, span))
        rest = self.sub(distance, self.mul(folds, span))
        odd = self.op("gt", self.sub(folds, self.mul(self.ctx.add("floor", self.mul(folds, 0.5)), 2.0)), 0.5)
        from_low, from_high = self.add(rest, low), self.sub(self.ctx.scalar(high, c), rest)
        return self.where(below, self.where(odd, from_high, from_low),
                          self.where(above, self.where(odd, from_low, from_high), c))


# -- GridSample -------------------------------------------------------------------------

def _grid_taps(ar: Arith, c: Value, size: int, mode: str, padding: str, align_corners: bool) -> list[Tap]:
    """The taps reading input axis of length ``size`` at unnormalised coordinates ``c``."""
    ctx = ar.ctx
    low, high = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    if mode == "nearest":
        c = ctx.add("round", c)
    outside = ctx.add("logical_or", ar.op("lt", c, low), ar.op("gt", c, high))
    if padding == "border":
        c = ar.where(outside, ar.clip(c, 0.0, size - 1.0), c)
    elif padding == "reflection":
        c = ar.where(outside, ar.reflect(c, low, high), c)
    positions: Sequence[Value]
    weights: Sequence[Value | None]
    if mode == "nearest":
        positions, weights = [c], [None]
    else:
        first = ctx.add("floor", c)
        t = ar.sub(c, first)
        if mode == "linear":
            positions, weights = [first, ar.add(first, 1.0)], [ar.sub(ctx.scalar(1.0, t), t), t]
        else:
            positions, weights = [ar.add(first, float(k)) for k in (-1, 0, 1, 2)], ar.cubic_weights(t)
    taps = []
    for position, weight in zip(positions, weights):
        valid = None
        if padding == "zeros":
            valid = ctx.add("logical_and", ar.op("ge", position, 0.0), ar.op("le", position, size - 1.0))
            position = ar.clip(position, 0.0, size - 1.0)
        elif padding == "border":
            position = ar.clip(position, 0.0, size - 1.0)
        else:
            position = ar.reflect(position, low, high)
        taps.append(Tap(cast(ctx, position, DType.I64), weight, valid))
    return taps


def sample_flat(ctx: NodeContext, flat: Value, per_axis: Sequence[Sequence[Tap]], spatial: Sequence[int]) -> Value:
    """Sum over every combination of per-axis taps of weight * ``flat`` (N, C, S) read at the combined index.

    Tap values have shape (N, P); the result has shape (N, C, P).
    """
    ar = Arith(ctx)
    batch, channels = flat.shape[:2]
    strides = [math.prod(spatial[i + 1:]) for i in range(len(spatial))]
    total: Value | None = None
    for combination in itertools.product(*per_axis):
        index = None
        weight: Value | None = None
        valid: Value | None = None
        for tap, stride in zip(combination, strides):
            part = ar.mul(tap.index, stride) if stride != 1 else tap.index
            index = part if index is None else ctx.add("add", index, part)
            if tap.weight is not None:
                weight = tap.weight if weight is None else ctx.add("mul", weight, tap.weight)
            if tap.valid is not None:
                valid = tap.valid if valid is None else ctx.add("logical_and", valid, tap.valid)
        assert index is not None
        points = index.shape[1]
        spread = ctx.add("broadcast_to", reshape(ctx, index, [batch, 1, points]), shape=[batch, channels, points])
        value = ctx.add("gather_elements", flat, spread, axis=2)
        if valid is not None:
            value = ar.where(reshape(ctx, valid, [batch, 1, points]), value, 0.0)
        if weight is not None:
            value = ctx.add("mul", value, reshape(ctx, weight, [batch, 1, points]))
        total = value if total is None else ctx.add("add", total, value)
    assert total is not None
    return total


@converter("GridSample")
def grid_sample(ctx: NodeContext) -> list[Value]:
    """GridSample (2-D and N-d): unnormalise each grid coordinate, apply the padding mode, gather the
    nearest/linear/cubic taps."""
    x, grid = ctx.input(0), ctx.input(1)
    mode = ctx.attr("mode", "linear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)  # the names before opset 20
    padding = ctx.attr("padding_mode", "zeros")
    align_corners = bool(ctx.attr("align_corners", 0))
    spatial = x.shape[2:]
    rank = len(spatial)
    if x.type.rank < 3 or grid.type.rank != rank + 2 or grid.shape[0] != x.shape[0] or grid.shape[-1] != rank:
        raise ctx.error(f"grid {grid.shape} does not fit input {x.shape} (expected (N, *out, {rank}))")
    dtype = _float_type(x)
    batch, channels = x.shape[:2]
    out_spatial = grid.shape[1:-1]
    points = math.prod(out_spatial)
    ar = Arith(ctx)
    coords = reshape(ctx, cast(ctx, grid, dtype), [batch, points, rank])
    per_axis = []
    for axis, size in enumerate(spatial):  # the grid lists coordinates innermost axis first
        component = reshape(ctx, ctx.add("slice", coords, starts=[rank - 1 - axis], stops=[rank - axis], steps=[1],
                                         axes=[2]), [batch, points])
        if align_corners:
            c = ar.mul(ar.add(component, 1.0), (size - 1) / 2.0)
        else:
            c = ar.div(ar.sub(ar.mul(ar.add(component, 1.0), float(size)), 1.0), 2.0)
        per_axis.append(_grid_taps(ar, c, size, mode, padding, align_corners))
    flat = reshape(ctx, cast(ctx, x, dtype), [batch, channels, math.prod(spatial)])
    result = sample_flat(ctx, flat, per_axis, spatial)
    return [cast(ctx, reshape(ctx, result, [batch, channels, *out_spatial]), x.dtype)]


# -- AffineGrid -------------------------------------------------------------------------

def base_grid(sizes: Sequence[int], align_corners: bool) -> np.ndarray:
    """Normalised homogeneous coordinates (prod(sizes), rank + 1) of every output point, innermost axis first."""
    axes = [np.linspace(-1.0, 1.0, size) if align_corners else (2 * np.arange(size) + 1) / size - 1 for size in sizes]
    mesh = np.meshgrid(*axes, indexing="ij")
    columns = [m.reshape(-1) for m in reversed(mesh)] + [np.ones(math.prod(sizes))]
    return np.stack(columns, axis=1)


@converter("AffineGrid")
def affine_grid(ctx: NodeContext) -> list[Value]:
    """AffineGrid: theta (N, r, r + 1) times the constant homogeneous base grid."""
    theta = ctx.input(0)
    size = const_ints(ctx, 1, "size")
    spatial = size[2:]
    rank = len(spatial)
    if rank not in (2, 3) or theta.shape != (size[0], rank, rank + 1):
        raise ctx.error(f"theta {theta.shape} does not fit size {size} (expected (N, {rank}, {rank + 1}))")
    grid = base_grid(spatial, bool(ctx.attr("align_corners", 0)))
    points = ctx.constant(grid.T.astype(theta.dtype.np))
    mapped = ctx.add("matmul", theta, points)  # (N, rank, P)
    return [reshape(ctx, permute(ctx, mapped, [0, 2, 1]), [size[0], *spatial, rank])]


# -- RoiAlign ---------------------------------------------------------------------------

def _roi_axis_taps(ar: Arith, start: Value, extent: Value, grid: Value, bins: int, samples: int,
                   size: int) -> tuple[Value, Value, Value, Value, Value]:
    """Bilinear taps along one axis for every (roi, bin, sample): (low index, high index, low weight,
    high weight, sample used), each shaped (R, bins, samples)."""
    ctx = ar.ctx
    rois = start.shape[0]
    bin_size = ar.div(extent, float(bins))
    shape = [rois, 1, 1]
    bin_index = ctx.constant(np.arange(bins, dtype=start.dtype.np).reshape(1, bins, 1))
    sample_index = ctx.constant((np.arange(samples) + 0.5).astype(start.dtype.np).reshape(1, 1, samples))
    grid = reshape(ctx, grid, shape)
    position = ar.add(ar.add(reshape(ctx, start, shape), ctx.add("mul", bin_index, reshape(ctx, bin_size, shape))),
                      ctx.add("div", ctx.add("mul", sample_index, reshape(ctx, bin_size, shape)), grid))
    inside = ctx.add("logical_and", ar.op("ge", position, -1.0), ar.op("le", position, float(size)))
    position = ar.op("max", position, 0.0)
    low = ctx.add("floor", position)
    at_end = ar.op("ge", low, size - 1.0)
    low = ar.where(at_end, size - 1.0, low)
    high = ar.where(at_end, size - 1.0, ar.add(low, 1.0))
    position = ar.where(at_end, low, position)
    high_weight = ar.where(inside, ar.sub(position, low), 0.0)
    low_weight = ar.where(inside, ar.sub(ctx.scalar(1.0, position), ar.sub(position, low)), 0.0)
    used = ar.op("lt", sample_index, grid)
    return (cast(ctx, low, DType.I64), cast(ctx, high, DType.I64), low_weight, high_weight, used)


@converter("RoiAlign")
def roi_align(ctx: NodeContext) -> list[Value]:
    """RoiAlign: bilinear samples on each region's bin grid, averaged (avg) or maxed (max) per bin."""
    x, rois, batch_index = ctx.input(0), ctx.input(1), ctx.input(2)
    mode = ctx.attr("mode", "avg")
    half_pixel = ctx.opset >= 16 and ctx.attr("coordinate_transformation_mode", "half_pixel") == "half_pixel"
    out_h, out_w = ctx.attr("output_height", 1), ctx.attr("output_width", 1)
    ratio = ctx.attr("sampling_ratio", 0)
    scale = float(ctx.attr("spatial_scale", 1.0))
    if x.type.rank != 4 or rois.type.rank != 2 or rois.shape[1] != 4 or batch_index.shape != (rois.shape[0],):
        raise ctx.error(f"input {x.shape}, rois {rois.shape} and batch_indices {batch_index.shape} are not "
                        "(N, C, H, W), (R, 4) and (R,)")
    if mode not in ("avg", "max"):
        raise ctx.error(f"mode {mode!r} is not one of avg, max")
    batch, channels, height, width = x.shape
    count = rois.shape[0]
    dtype = _float_type(x)
    ar = Arith(ctx)
    boxes = ar.sub(ar.mul(cast(ctx, rois, dtype), scale), 0.5 if half_pixel else 0.0)
    corner = [reshape(ctx, ctx.add("slice", boxes, starts=[k], stops=[k + 1], steps=[1], axes=[1]), [count])
              for k in range(4)]
    extent_w, extent_h = ar.sub(corner[2], corner[0]), ar.sub(corner[3], corner[1])
    if not half_pixel:  # malformed regions become 1 x 1
        extent_w, extent_h = ar.op("max", extent_w, 1.0), ar.op("max", extent_h, 1.0)
    if ratio > 0:
        grid_h = grid_w = np.full(count, ratio)
    else:  # samples per bin follow each region's size, so the regions must be known
        known = ctx.require_const(1, "rois (sampling_ratio 0 sizes the sampling grid by each region)")
        known = known.astype(np.float64) * scale - (0.5 if half_pixel else 0.0)
        sizes_w, sizes_h = known[:, 2] - known[:, 0], known[:, 3] - known[:, 1]
        if not half_pixel:
            sizes_w, sizes_h = np.maximum(sizes_w, 1.0), np.maximum(sizes_h, 1.0)
        grid_h, grid_w = np.ceil(sizes_h / out_h).astype(np.int64), np.ceil(sizes_w / out_w).astype(np.int64)
    samples_h, samples_w = max(int(grid_h.max(initial=1)), 1), max(int(grid_w.max(initial=1)), 1)
    ys = _roi_axis_taps(ar, corner[1], extent_h, ctx.constant(grid_h.astype(dtype.np)), out_h, samples_h, height)
    xs = _roi_axis_taps(ar, corner[0], extent_w, ctx.constant(grid_w.astype(dtype.np)), out_w, samples_w, width)
    # pixels flattened over (N, H, W) with channels last; every index below is (R, out_h, S_h, out_w, S_w)
    pixels = reshape(ctx, permute(ctx, cast(ctx, x, dtype), [0, 2, 3, 1]), [batch * height * width, channels])
    image = ar.mul(reshape(ctx, cast(ctx, batch_index, DType.I64), [count, 1, 1, 1, 1]), height * width)
    y_shape, x_shape = [count, out_h, samples_h, 1, 1], [count, 1, 1, out_w, samples_w]
    values = []
    for y_index, y_weight in ((ys[0], ys[2]), (ys[1], ys[3])):
        for x_index, x_weight in ((xs[0], xs[2]), (xs[1], xs[3])):
            index = ctx.add("add", ctx.add("add", image, ar.mul(reshape(ctx, y_index, y_shape), width)),
                            reshape(ctx, x_index, x_shape))
            weight = ctx.add("mul", reshape(ctx, y_weight, y_shape + [1]), reshape(ctx, x_weight, x_shape + [1]))
            values.append(ctx.add("mul", ctx.add("gather", pixels, index, axis=0), weight))
    used = ctx.add("logical_and", reshape(ctx, ys[4], [count, 1, samples_h, 1, 1, 1]),
                   reshape(ctx, xs[4], [count, 1, 1, 1, samples_w, 1]))
    if mode == "avg":
        total = ctx.add("add", ctx.add("add", values[0], values[1]), ctx.add("add", values[2], values[3]))
        pooled = ctx.add("reduce_sum", ar.where(used, total, 0.0), axes=[2, 4], keepdims=False)
        samples = np.maximum(grid_h * grid_w, 1).astype(dtype.np).reshape(count, 1, 1, 1)
        pooled = ctx.add("div", pooled, ctx.constant(samples))
    else:
        best = ctx.add("max", ctx.add("max", values[0], values[1]), ctx.add("max", values[2], values[3]))
        pooled = ctx.add("reduce_max", ar.where(used, best, -np.inf), axes=[2, 4], keepdims=False)
    return [cast(ctx, permute(ctx, pooled, [0, 3, 1, 2]), x.dtype)]
