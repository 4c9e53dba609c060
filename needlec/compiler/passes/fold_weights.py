"""Pass ``fold_weights``: constant per-output-channel scales folded into the constant weights before them.

``conv2d(x, w) * k`` with ``k`` constant along every axis but the output
channels becomes ``conv2d(x, w * k)``, and ``matmul(x, w) * k`` with ``k``
constant along every axis but the last becomes ``matmul(x, w * k)``: the
scale is applied once at compile time instead of once per output element at
every run. This is how inference BatchNorm (``x * k + shift``, after
``constant_fold`` has made ``k`` a constant) disappears into the convolution
before it, as in ONNX Runtime; the ``+ shift`` that stays is an elementwise
epilogue. Only float weights that are constants (never variables: training
steps update them) and products whose result nothing else reads are folded;
the rounding differs from the unfolded order by one rounding of each weight.
"""
from __future__ import annotations

import numpy as np

from needlec.compiler.ir.graph import Graph, Node, Value
from needlec.compiler.passes.rewrite import Pattern, Rewriter, apply_patterns


def _channel_scale(k: Value, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """``k``'s values along ``axis`` of ``shape`` when ``k`` is a constant that varies along no other axis."""
    if not k.is_constant or k.data is None or k.type.rank > len(shape):
        return None
    data = np.asarray(k.data).reshape((1,) * (len(shape) - k.type.rank) + k.shape)
    dims: tuple[int, ...] = data.shape
    if any(extent != 1 for i, extent in enumerate(dims) if i != axis) or dims[axis] not in (1, shape[axis]):
        return None
    return np.broadcast_to(data.reshape(-1), (shape[axis],))


def _fold_scale(rw: Rewriter, node: Node) -> Value | None:
    for product, k in (node.inputs, node.inputs[::-1]):
        producer = product.producer
        if producer is None or producer.op not in ("conv2d", "matmul") or product.shape != node.outputs[0].shape:
            continue
        x, w = producer.inputs
        if not (w.is_constant and w.data is not None and w.dtype.is_float and w.dtype.itemsize >= 4):
            continue
        if sum(product in user.inputs for user in rw.graph.nodes) != 1 or product in rw.graph.outputs:
            continue  # why: another reader needs the unscaled product
        if producer.op == "conv2d":
            scale = _channel_scale(k, product.shape, 1)
            weights = None if scale is None else w.data * scale.reshape(-1, 1, 1, 1)
        else:
            scale = _channel_scale(k, product.shape, product.type.rank - 1) if w.type.rank == 2 else None
            weights = None if scale is None else w.data * scale.reshape(1, -1)
        if weights is None:
            continue
        result = rw.add(producer.op, x, rw.constant(weights, w), **producer.attrs)
        assert result.producer is not None
        result.producer.origin = producer.origin  # still the convolution / product its model names
        return rw.named_like_node(result)
    return None


PATTERNS: tuple[Pattern, ...] = (
    Pattern("mul", _fold_scale, "a per-channel constant scale of a product with constant weights is a scale of "
                                "the weights: computed once at compile time, not per output element"),
)


def fold_weights(graph: Graph) -> Graph:
    """Fold constant per-output-channel scales of conv2d / matmul results into their constant weights."""
    return apply_patterns(graph, PATTERNS, "fold_weights")
