"""Converters for ONNX Resize and Upsample: per-axis taps precomputed with NumPy, then gathers and weighted sums.

Resizing is separable, and with static shapes every output position's source
indices and weights along an axis are known at import time. ``axis_taps``
computes them exactly as the ONNX reference does (coordinate transformation,
nearest rounding, linear/cubic kernels, antialiasing, exclude_outside, edge
clamping); each resized axis then becomes one ``gather`` of all taps, a
multiply by the constant weights and a ``reduce_sum`` over the taps (a single
``gather`` for nearest). tf_crop_and_resize positions outside the input take
``extrapolation_value``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext, converter
from needlec.frontend.onnx.converters.tensor import cast, normalize_axes

@dataclass(frozen=True)
class ResizeMode:
    """How Resize maps and interpolates (the node's attributes)."""

    mode: str = "nearest"
    coordinates: str = "half_pixel"
    nearest: str = "round_prefer_floor"
    cubic_a: float = -0.75
    exclude_outside: bool = False
    antialias: bool = False


def _source_coordinates(mode: ResizeMode, in_len: int, out_len: int, scale: float,
                        roi: tuple[float, float]) -> tuple[np.ndarray, np.ndarray | None]:
    """Each output position's coordinate in the input, and (tf_crop_and_resize) which fall outside it."""
    y = np.arange(out_len, dtype=np.float64)
    out_width = scale * in_len
    outside = None
    if mode.coordinates == "align_corners":
        x = np.zeros(out_len) if out_width == 1 else y * (in_len - 1) / (out_width - 1)
    elif mode.coordinates == "asymmetric":
        x = y / scale
    elif mode.coordinates == "tf_crop_and_resize":
        start, end = roi
        x = np.full(out_len, (end - start) * (in_len - 1) / 2) if out_width == 1 \
            else y * (end - start) * (in_len - 1) / (out_width - 1)
        x = x + start * (in_len - 1)
        outside = (x < 0) | (x > in_len - 1)
    elif mode.coordinates == "pytorch_half_pixel":
        x = np.full(out_len, -0.5) if out_width == 1 else (y + 0.5) / scale - 0.5
    elif mode.coordinates == "tf_half_pixel_for_nn":  # opsets 11 and 12 only
        x = (y + 0.5) / scale
    elif mode.coordinates == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / out_width)
        x = offset + (y + 0.5) / scale - 0.5
    else:
        x = (y + 0.5) / scale - 0.5
    return x, outside


def _kernel(mode: ResizeMode, ratio: np.ndarray, scale: float, downsampling: bool) -> np.ndarray:
    """Weights (positions, taps) of the interpolation kernel at fractional offsets ``ratio`` (in (0, 1])."""
    r = ratio[:, None]
    if mode.mode == "nearest":
        nearest = mode.nearest
        if nearest == "simple":  # opset < 11: floor when upsampling, ceil when downsampling
            nearest = "ceil" if downsampling else "floor"
        take_right = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5,
                      "floor": np.zeros_like(r, bool), "ceil": np.ones_like(r, bool)}[nearest]
        take_right = take_right | (r == 1)
        return np.concatenate([~take_right, take_right], axis=1).astype(np.float64)
    a = mode.cubic_a
    if not mode.antialias:
        if mode.mode == "linear":
            return np.concatenate([1 - r, r], axis=1)
        distances = np.concatenate([r + 1, r, 1 - r, 2 - r], axis=1)
    else:
        scale = min(scale, 1.0)
        support = 1 if mode.mode == "linear" else 2
        start = int(np.floor(-support / scale) + 1)
        distances = np.abs((np.arange(start, 2 - start)[None, :] - r) * scale)
        if mode.mode == "linear":
            weights = np.clip(1 - distances, 0, 1)
            return weights / weights.sum(axis=1, keepdims=True)
    d = np.abs(distances)
    weights = np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                       np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    return weights / weights.sum(axis=1, keepdims=True) if mode.antialias else weights


def axis_taps(mode: ResizeMode, in_len: int, out_len: int, scale: float,
              roi: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(source indices, weights, outside mask) for resizing one axis of length ``in_len`` to ``out_len``.

    Indices and weights have shape (out_len, taps); indices are clamped into the axis (edge padding).
    """
    x, outside = _source_coordinates(mode, in_len, out_len, scale, roi)
    floor = np.floor(x)
    ratio = np.where(x == floor, 1.0, x - floor)  # the reference prefers the pixel left of an exact hit
    weights = _kernel(mode, ratio, scale, out_len < in_len)
    taps = weights.shape[1]
    pad = math.ceil(taps / 2)
    padded = x + pad
    base = np.floor(padded)
    frac = padded - base
    if taps % 2 == 0:
        offset = np.where(frac == 0, -(taps // 2), -(taps // 2) + 1)
    else:
        offset = np.where(frac <= 0.5, -((taps - 1) // 2), -((taps - 1) // 2) + 1)
    index = (base + offset).astype(np.int64)[:, None] + np.arange(taps)[None, :] - pad
    if mode.exclude_outside:
        weights = np.where((index < 0) | (index >= in_len), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(index, 0, in_len - 1), weights, outside


def _resize_axis(ctx: NodeContext, x: Value, axis: int, index: np.ndarray, weights: np.ndarray,
                 outside: np.ndarray | None, extrapolation: float) -> Value:
    """Resize ``axis`` of ``x`` with the given taps (``x`` is float unless every output reads one source)."""
    rank = x.type.rank
    if np.all(np.count_nonzero(weights, axis=1) == 1) and np.all(weights.sum(axis=1) == 1):
        chosen = index[np.arange(len(index)), np.argmax(weights != 0, axis=1)]
        result = ctx.add("gather", x, ctx.constant(chosen), axis=axis)
    else:
        used = np.any(weights != 0, axis=0)  # taps every output weighs 0 (e.g. exact hits) are dropped
        index, weights = index[:, used], weights[:, used]
        taps = ctx.add("gather", x, ctx.constant(index), axis=axis)
        shape = [1] * axis + list(weights.shape) + [1] * (rank - axis - 1)
        weighted = ctx.add("mul", taps, ctx.constant(weights.reshape(shape), x.dtype))
        result = ctx.add("reduce_sum", weighted, axes=[axis + 1], keepdims=False)
    if outside is not None and outside.any():
        mask = ctx.constant(outside.reshape([1] * axis + [-1] + [1] * (rank - axis - 1)))
        result = ctx.add("where", mask, ctx.scalar(extrapolation, result), result)
    return result


def resize(ctx: NodeContext, x: Value, mode: ResizeMode, sizes: Sequence[int], scales: Sequence[float],
           rois: Sequence[tuple[float, float]], extrapolation: float = 0.0) -> Value:
    """``x`` resized to ``sizes`` (per axis; ``scales`` and ``rois`` drive the coordinate mapping)."""
    dtype = x.dtype
    work = x if dtype in (DType.F32, DType.F64) or mode.mode == "nearest" else cast(ctx, x, DType.F32)
    for axis, (size, scale, roi) in enumerate(zip(sizes, scales, rois)):
        if size == x.shape[axis] and math.isclose(scale, 1.0) and \
                (mode.coordinates != "tf_crop_and_resize" or (math.isclose(roi[0], 0) and math.isclose(roi[1], 1))):
            continue
        if size == 0:
            work = ctx.add("slice", work, starts=[0], stops=[0], steps=[1], axes=[axis])
            continue
        index, weights, outside = axis_taps(mode, x.shape[axis], size, scale, roi)
        work = _resize_axis(ctx, work, axis, index, weights, outside, extrapolation)
    if work.dtype is dtype:
        return work
    if dtype.is_int:  # the reference rounds and saturates
        info = np.iinfo(dtype.np)
        work = ctx.add("round", work)
        work = ctx.add("max", ctx.add("min", work, ctx.scalar(info.max, work)), ctx.scalar(info.min, work))
    return cast(ctx, work, dtype)


def _floats(data: np.ndarray | None) -> list[float] | None:
    return None if data is None or data.size == 0 else [float(v) for v in np.asarray(data).reshape(-1)]


@converter("Resize")
def resize_op(ctx: NodeContext) -> list[Value]:
    """Resize (opset 10 to 19): sizes from scales or sizes, axes, roi and keep_aspect_ratio_policy, then
    ``resize``."""
    x = ctx.input(0)
    rank = x.type.rank
    if ctx.opset < 11:
        mode = ResizeMode(ctx.attr("mode", "nearest"), "asymmetric", "simple")
        scale_data, size_data, roi_data = _floats(ctx.require_const(1, "scales")), None, None
    else:
        mode = ResizeMode(ctx.attr("mode", "nearest"), ctx.attr("coordinate_transformation_mode", "half_pixel"),
                          ctx.attr("nearest_mode", "round_prefer_floor"), float(ctx.attr("cubic_coeff_a", -0.75)),
                          bool(ctx.attr("exclude_outside", 0)), bool(ctx.attr("antialias", 0)))
        cropping = mode.coordinates == "tf_crop_and_resize" and ctx.has_input(1)  # roi matters only then
        roi_data = _floats(ctx.require_const(1, "roi")) if cropping else None
        scale_data = _floats(ctx.require_const(2, "scales")) if ctx.has_input(2) else None
        size_data = _floats(ctx.require_const(3, "sizes")) if ctx.has_input(3) else None
    if (scale_data is None) == (size_data is None):
        raise ctx.error("exactly one of scales and sizes must be given")
    axes = normalize_axes(ctx, ctx.attr("axes", list(range(rank))), rank)
    given = scale_data if scale_data is not None else size_data
    assert given is not None  # exactly one of them is given (checked above)
    if len(given) != len(axes):
        raise ctx.error(f"{'scales' if scale_data is not None else 'sizes'} has {len(given)} values for "
                        f"{len(axes)} axes")
    rois = [(0.0, 1.0)] * rank
    if roi_data is not None:
        if len(roi_data) != 2 * len(axes):
            raise ctx.error(f"roi has {len(roi_data)} values, expected {2 * len(axes)}")
        for i, axis in enumerate(axes):
            rois[axis] = (roi_data[i], roi_data[len(axes) + i])
    sizes = list(x.shape)
    scales = [1.0] * rank
    if scale_data is not None:
        for axis, scale in zip(axes, scale_data):
            if not 0 < scale < math.inf:
                raise ctx.error(f"scales {scale_data} must be positive and finite")
            scales[axis] = scale
            sizes[axis] = int(np.float64(np.float32(scale)) * x.shape[axis])
    else:
        assert size_data is not None  # exactly one of scales and sizes is given (checked above)
        for axis, size in zip(axes, size_data):
            if size < 0 or (size > 0 and x.shape[axis] == 0):
                raise ctx.error(f"sizes {[int(v) for v in size_data]} cannot resize input {x.shape}: a size is "
                                "negative or asks for data from an empty axis")
            sizes[axis] = int(size)
            scales[axis] = size / x.shape[axis] if x.shape[axis] else 1.0  # an empty axis stays empty
        policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        if policy in ("not_larger", "not_smaller"):
            pick = min if policy == "not_larger" else max
            common = pick(scales[a] for a in axes)
            for axis in axes:
                scales[axis] = common
                sizes[axis] = int(common * x.shape[axis] + 0.5)
    return [resize(ctx, x, mode, sizes, scales, rois, float(ctx.attr("extrapolation_value", 0.0)))]


@converter("Upsample")
def upsample(ctx: NodeContext) -> list[Value]:
    """Upsample: Resize with asymmetric coordinates (scales attribute before opset 9, input from it)."""
    x = ctx.input(0)
    scales = [float(s) for s in ctx.attr("scales")] if ctx.opset < 9 else _floats(ctx.require_const(1, "scales"))
    if scales is None or len(scales) != x.type.rank or any(s < 1 for s in scales):
        raise ctx.error(f"scales {scales} must hold {x.type.rank} value(s) >= 1")
    mode = ctx.attr("mode", "nearest")
    mode = "linear" if mode == "bilinear" else mode
    sizes = [int(np.float64(np.float32(s)) * d) for s, d in zip(scales, x.shape)]
    return [resize(ctx, x, ResizeMode(mode, "asymmetric", "simple"), sizes, scales, [(0.0, 1.0)] * x.type.rank)]
