"""Pass ``autodiff``: reverse-mode differentiation by extending the graph.

``gradients(graph, ys, xs)`` appends gradient nodes to ``graph`` and returns
d(sum of ys * seeds)/d(xs) as ordinary values, so every later pass optimises
the backward graph too and gradients of gradients work. Each op's rule
(``OpDef.grad``) returns one gradient per input, shaped like the op's
*output* broadcast where that is natural; the one driver here walks the
forward nodes backwards, sums gradients over broadcast axes down to each
input's shape (``GradContext.sum_to``; the context rules receive lives in
``compiler/ops/grad.py``) and accumulates contributions from several uses.
Every gradient node records its forward node in ``origin``. Only
floating-point values carry gradients.
"""
from __future__ import annotations

from collections.abc import Sequence

from needlec.compiler.ir.graph import Graph, Value
from needlec.compiler.ops.grad import GradContext
from needlec.compiler.ops.registry import NO_GRAD, get_op
from needlec.errors import AutodiffError


def _depends_on(graph: Graph, xs: Sequence[Value]) -> set[int]:
    """Ids of the values that depend on any of ``xs`` (including ``xs``)."""
    live = {id(x) for x in xs}
    for node in graph.nodes:
        if any(id(v) in live for v in node.inputs):
            live.update(id(v) for v in node.outputs)
    return live


def gradients(graph: Graph, ys: Sequence[Value], xs: Sequence[Value],
              seeds: Sequence[Value] | None = None) -> list[Value]:
    """Append the backward graph; return d(sum_i <ys[i], seeds[i]>)/d(xs[j]) for each j.

    ``seeds`` default to ones (so a scalar loss gives its plain gradient).
    An ``x`` that no ``y`` depends on gets a zero gradient.
    """
    for v in [*ys, *xs]:
        if not v.dtype.is_float:
            raise AutodiffError(f"autodiff: %{v.name} has dtype {v.dtype.value}; only float values have gradients")
    forward = list(graph.nodes)
    needed = _depends_on(graph, xs)
    root = GradContext(graph, None)
    grads: dict[int, Value] = {}

    def accumulate(value: Value, g: Value, ctx: GradContext) -> None:
        g = ctx.sum_to(g, value.shape)
        if g.dtype != value.dtype:
            g = ctx.add("cast", g, dtype=value.dtype)
        prev = grads.get(id(value))
        grads[id(value)] = g if prev is None else ctx.add("add", prev, g)

    for i, y in enumerate(ys):
        at_y = GradContext(graph, y.producer)  # the seed belongs to the node computing y
        seed = seeds[i] if seeds is not None else at_y.add("fill", shape=list(y.shape), value=1.0, dtype=y.dtype)
        accumulate(y, seed, at_y)
    for node in reversed(forward):
        out_grads = [grads.get(id(v)) for v in node.outputs]
        if all(g is None for g in out_grads):
            continue
        targets = [v for v in node.inputs if id(v) in needed and v.dtype.is_float]
        if not targets:
            continue
        opdef = get_op(node.op)
        if opdef.grad is None:
            raise AutodiffError(f"autodiff: op {node.op} (node %{node.name}) has no gradient rule")
        if opdef.grad is NO_GRAD:
            continue
        ctx = GradContext(graph, node)
        in_grads = opdef.grad(ctx, node, out_grads)
        if len(in_grads) != len(node.inputs):
            raise AutodiffError(f"autodiff: gradient rule of {node.op} returned {len(in_grads)} gradients "
                               f"for {len(node.inputs)} inputs")
        for value, g in zip(node.inputs, in_grads):
            if g is not None and id(value) in needed and value.dtype.is_float:
                accumulate(value, g, ctx)
    return [grads[id(x)] if id(x) in grads else root.zeros(x) for x in xs]
