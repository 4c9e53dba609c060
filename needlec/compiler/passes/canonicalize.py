"""Pass ``canonicalize``: algebraic identities and view simplification, as a rule table.

Each ``Pattern`` row names the op it matches and why the rewrite pays off.
Decompositions of composite ops into primitives also live in this table.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from needlec.compiler.ir.graph import Graph, Node, Value
from needlec.compiler.ops.registry import get_op
from needlec.compiler.passes.rewrite import Pattern, Rewriter, apply_patterns


def _is_splat(value: Value, scalar: float) -> bool:
    data = value.data if value.is_constant else None
    return data is not None and data.size > 0 and bool(np.all(data == scalar))


def _identity_operand(identity: float, commutative: bool) -> Callable[[Rewriter, Node], Value | None]:
    """x op c -> x when c is all ``identity`` and does not change x's shape."""

    def rule(rw: Rewriter, node: Node) -> Value | None:
        pairs = [(0, 1), (1, 0)] if commutative else [(0, 1)]
        for keep, drop in pairs:
            x, c = node.inputs[keep], node.inputs[drop]
            if _is_splat(c, identity) and x.shape == node.outputs[0].shape:
                return x
        return None

    return rule


def _double(rw: Rewriter, node: Node) -> Value | None:
    inner = node.inputs[0].producer
    return inner.inputs[0] if inner is not None and inner.op == node.op else None


def _same_shape(rw: Rewriter, node: Node) -> Value | None:
    x = node.inputs[0]
    return x if x.shape == node.outputs[0].shape else None


def _cast_noop(rw: Rewriter, node: Node) -> Value | None:
    x = node.inputs[0]
    return x if x.dtype is node.attrs["dtype"] else None


def _reshape_chain(rw: Rewriter, node: Node) -> Value | None:
    inner = node.inputs[0].producer
    if inner is not None and inner.op == "reshape":
        return rw.add("reshape", inner.inputs[0], shape=node.attrs["shape"])
    return None


def _permute(rw: Rewriter, node: Node) -> Value | None:
    perm = node.attrs["perm"]
    if list(perm) == sorted(perm):
        return node.inputs[0]
    inner = node.inputs[0].producer
    if inner is not None and inner.op == "permute":
        return rw.add("permute", inner.inputs[0], perm=[inner.attrs["perm"][p] for p in perm])
    return None


def _transposed_product(rw: Rewriter, node: Node) -> Value | None:
    """(a @ b)^T -> b^T @ a^T when the permute swaps the last two axes and is the product's only reader."""
    perm, product = list(node.attrs["perm"]), node.inputs[0]
    inner = product.producer
    rank = len(perm)
    if (inner is None or inner.op != "matmul" or rank < 2 or perm != [*range(rank - 2), rank - 1, rank - 2]
            or any(len(x.shape) < 2 for x in inner.inputs)):
        return None
    graph = rw.graph
    readers = graph.users().get(id(product), [])
    if readers != [node] or product in graph.outputs or any(v is product for _, v in graph.updates):
        return None
    a, b = inner.inputs
    swap = [list(range(len(x.shape) - 2)) + [len(x.shape) - 1, len(x.shape) - 2] for x in (b, a)]
    return rw.named_like_node(rw.add("matmul", rw.add("permute", b, perm=swap[0]), rw.add("permute", a, perm=swap[1])))


def _full_slice(rw: Rewriter, node: Node) -> Value | None:
    x = node.inputs[0]
    full = x.shape == node.outputs[0].shape and all(s > 0 for s in node.attrs["steps"])
    return x if full else None


def _copy_of_fresh(rw: Rewriter, node: Node) -> Value | None:
    producer = node.inputs[0].producer
    return node.inputs[0] if producer is not None and not get_op(producer.op).is_view else None


def _small_power(rw: Rewriter, node: Node) -> Value | None:
    """x ** 2 -> x * x and x ** 3 -> x * x * x for a float x and a constant exponent of all 2s or all 3s."""
    x, exponent = node.inputs
    if not x.dtype.is_float or x.shape != node.outputs[0].shape:
        return None
    for power in (2.0, 3.0):
        if _is_splat(exponent, power):
            square = rw.add("mul", x, x)
            return rw.named_like_node(square if power == 2.0 else rw.add("mul", square, x))
    return None


PATTERNS: tuple[Pattern, ...] = (
    Pattern("add", _identity_operand(0, commutative=True), "x + 0 is x"),
    Pattern("sub", _identity_operand(0, commutative=False), "x - 0 is x"),
    Pattern("mul", _identity_operand(1, commutative=True), "x * 1 is x"),
    Pattern("div", _identity_operand(1, commutative=False), "x / 1 is x"),
    Pattern("neg", _double, "-(-x) is x"),
    Pattern("logical_not", _double, "not not x is x"),
    Pattern("cast", _cast_noop, "a cast to the same dtype does nothing"),
    Pattern("reshape", _same_shape, "a reshape to the same shape does nothing"),
    Pattern("reshape", _reshape_chain, "reshape of reshape is one reshape"),
    Pattern("broadcast_to", _same_shape, "a broadcast to the same shape does nothing"),
    Pattern("permute", _permute, "identity permutes vanish; chained permutes compose"),
    Pattern("permute", _transposed_product, "packing reads a transposed operand at no cost, while a transposed "
                                            "product is read strided by every consumer (a weight gradient by its "
                                            "optimizer update)"),
    Pattern("slice", _full_slice, "a slice covering every element does nothing"),
    Pattern("copy", _copy_of_fresh, "a freshly computed value is already contiguous"),
    Pattern("pow", _small_power, "squares and cubes by multiplication vectorize where pow is a libm call per "
                                 "element; PyTorch's pow computes them so too"),
)


def canonicalize(graph: Graph) -> Graph:
    """Apply the canonicalisation/decomposition table to a fixpoint."""
    return apply_patterns(graph, PATTERNS, "canonicalize")
