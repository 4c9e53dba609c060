"""Converters for ONNX ops whose output shape depends on input values: NonZero, Compress, Unique, NonMaxSuppression.

needlec compiles static shapes, so these ops convert only when the inputs that
decide the output shape are known at compile time (initializers, Constant
nodes, shape arithmetic); they are then evaluated with NumPy at import time
(Compress still gathers run-time data, only its condition must be known).
Otherwise the error names the node and the input that must be constant.
"""
from __future__ import annotations

import numpy as np

from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext, converter
from needlec.frontend.onnx.converters.tensor import normalize_axes, reshape


@converter("NonZero")
def non_zero(ctx: NodeContext) -> list[Value]:
    """NonZero of compile-time data."""
    data = ctx.require_const(0, "the tensor whose non-zeros are listed: its output shape depends on its values")
    return [ctx.constant(np.asarray(np.nonzero(data), np.int64).reshape(data.ndim, -1))]


@converter("Compress")
def compress(ctx: NodeContext) -> list[Value]:
    """Compress: gather the positions a compile-time condition selects (flattened without ``axis``)."""
    x = ctx.input(0)
    condition = ctx.require_const(1, "condition: the output shape depends on it").astype(bool).reshape(-1)
    axis = ctx.attr("axis", None)
    if axis is None:
        x, axis = reshape(ctx, x, [x.type.size]), 0
    axis = normalize_axes(ctx, [axis], x.type.rank, "axis")[0]
    if len(condition) > x.shape[axis]:
        raise ctx.error(f"condition has {len(condition)} values for an axis of length {x.shape[axis]}")
    return [ctx.add("gather", x, ctx.constant(np.flatnonzero(condition).astype(np.int64)), axis=axis)]


@converter("Unique")
def unique(ctx: NodeContext) -> list[Value]:
    """Unique of compile-time data: values, first indices, inverse indices and counts (sorted or not)."""
    data = ctx.require_const(0, "the tensor whose unique values are listed: its output shape depends on its values")
    axis = ctx.attr("axis", None)
    values, first, inverse, counts = np.unique(data, return_index=True, return_inverse=True, return_counts=True,
                                               axis=axis)
    inverse = inverse.reshape(-1)
    if not ctx.attr("sorted", 1):  # order of first occurrence
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        values = np.take(values, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    return [ctx.constant(values), ctx.constant(first.astype(np.int64)), ctx.constant(inverse.astype(np.int64)),
            ctx.constant(counts.astype(np.int64))]


def _corners(boxes: np.ndarray, center_point_box: int) -> np.ndarray:
    """Boxes (..., 4) as (y_min, x_min, y_max, x_max) with min <= max."""
    if center_point_box:
        x, y, w, h = np.moveaxis(boxes.astype(np.float64), -1, 0)
        return np.stack([y - h / 2, x - w / 2, y + h / 2, x + w / 2], axis=-1)
    y1, x1, y2, x2 = np.moveaxis(boxes.astype(np.float64), -1, 0)
    return np.stack([np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2), np.maximum(x1, x2)], axis=-1)


def _overlaps(box: np.ndarray, others: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Whether ``box`` overlaps each of ``others`` (corner form) by an IoU above ``iou_threshold``."""
    height = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    width = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    intersection = np.where((height > 0) & (width > 0), height * width, 0.0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - intersection
    valid = (intersection > 0) & (area > 0) & (areas > 0) & (union > 0)
    return valid & (intersection / np.where(valid, union, 1.0) > iou_threshold)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, max_per_class: int, iou_threshold: float,
                        score_threshold: float | None, center_point_box: int) -> np.ndarray:
    """Selected (batch, class, box) triples, greedily by descending score (ties: lower box index first)."""
    selected: list[tuple[int, int, int]] = []
    corners = _corners(boxes, center_point_box)
    for batch in range(scores.shape[0]):
        for klass in range(scores.shape[1]):
            class_scores = scores[batch, klass]
            order = np.lexsort((np.arange(len(class_scores)), -class_scores.astype(np.float64)))
            if score_threshold is not None:
                order = order[class_scores[order] > score_threshold]
            kept: list[int] = []
            for box in order:
                if len(kept) >= max_per_class:
                    break
                if not kept or not _overlaps(corners[batch, box], corners[batch, kept], iou_threshold).any():
                    kept.append(int(box))
            selected.extend((batch, klass, box) for box in kept)
    return np.asarray(selected, np.int64).reshape(-1, 3)


@converter("NonMaxSuppression")
def non_max_suppression_op(ctx: NodeContext) -> list[Value]:
    """NonMaxSuppression of compile-time boxes and scores (the selection decides the output shape)."""
    why = "the number of selected boxes depends on it"
    boxes, scores = ctx.require_const(0, f"boxes: {why}"), ctx.require_const(1, f"scores: {why}")
    if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or scores.shape[::2] != boxes.shape[:2]:
        raise ctx.error(f"boxes {boxes.shape} and scores {scores.shape} are not (B, N, 4) and (B, C, N)")
    limits = [ctx.require_const(i, name).reshape(-1) if ctx.has_input(i) else np.zeros(0)
              for i, name in ((2, "max_output_boxes_per_class"), (3, "iou_threshold"), (4, "score_threshold"))]
    max_per_class = max(int(limits[0][0]), 0) if limits[0].size else 0
    iou_threshold = float(limits[1][0]) if limits[1].size else 0.0
    score_threshold = float(limits[2][0]) if limits[2].size else None
    result = non_max_suppression(boxes, scores, max_per_class, iou_threshold, score_threshold,
                                 ctx.attr("center_point_box", 0))
    return [ctx.constant(result)]
