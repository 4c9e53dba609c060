"""``GradContext``: what an op's gradient rule (``OpDef.grad``) may do while autodiff extends a graph.

The rules live next to their ops in ``compiler/ops/*.py`` and receive a
context positioned at the forward node; every node they add is tagged with
that node's name in ``origin``. The driver that walks the graph backwards is
``compiler/passes/gradients.py``. A ``GradContext`` is a ``GraphBuilder``
(``compiler/ops/composites.py``), so gradient rules can build composites.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np

from needlec.compiler.ir.graph import Graph, Node, Value
from needlec.compiler.ops import composites


class GradContext:
    """What a gradient rule may do: append nodes (tagged with the forward node) and use helpers."""

    def __init__(self, graph: Graph, node: Node | None) -> None:
        self.graph = graph
        self.node = node

    def add(self, op: str, *inputs: Value, **attrs: Any) -> Value:
        origin = self.node.name if self.node is not None else None
        return self.graph.add_node(op, list(inputs), attrs, origin=origin).outputs[0]

    def const(self, value: float, like: Value) -> Value:
        """A scalar constant of ``like``'s dtype."""
        return self.graph.add_constant(np.asarray(value, like.dtype.np), "c")

    def scalar(self, value: Any, like: Value) -> Value:
        """A scalar constant of ``like``'s dtype (the ``GraphBuilder`` name of ``const``)."""
        return self.const(value, like)

    def zeros(self, like: Value) -> Value:
        return self.add("fill", shape=list(like.shape), value=0.0, dtype=like.dtype)

    def reshape(self, x: Value, shape: Sequence[int]) -> Value:
        """Reshape, copying first when ``x``'s layout is not dense (``composites.reshape``)."""
        return composites.reshape(self, x, shape)

    def broadcast(self, x: Value, shape: Sequence[int]) -> Value:
        return x if x.shape == tuple(shape) else self.add("broadcast_to", x, shape=list(shape))

    def sum_to(self, g: Value, shape: Sequence[int]) -> Value:
        """Sum ``g`` over the axes NumPy broadcasting added or stretched to reach ``g.shape``."""
        shape = tuple(shape)
        if g.shape == shape:
            return g
        lead = len(g.shape) - len(shape)
        axes = [a for a in range(len(g.shape))
                if a < lead or (shape[a - lead] == 1 and g.shape[a] != 1)]
        summed = self.add("reduce_sum", g, axes=axes, keepdims=True) if axes else g
        return self.reshape(summed, shape)
