"""Pass ``cse``: common-subexpression elimination.

Why: tracing and decomposition repeat work (the same broadcast, cast or
constant many times); one node per distinct (op, inputs, attributes) and one
constant per distinct (dtype, shape, bytes) suffices.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from needlec.compiler.ir.graph import Graph, Value


def cse(graph: Graph) -> Graph:
    """Merge identical constants and identical nodes, keeping the first of each."""
    by_data: dict[Hashable, Value] = {}
    dead_constants = []
    for value in graph.constants:
        assert value.data is not None
        kept = by_data.setdefault((value.dtype, value.shape, value.data.tobytes()), value)
        if kept is not value:
            graph.replace_all_uses(value, kept)
            dead_constants.append(value)
    graph.remove_constants(dead_constants)

    seen: dict[Hashable, list[Value]] = {}
    dead = []
    for node in graph.nodes:
        first = seen.setdefault((node.op, tuple(id(v) for v in node.inputs), _freeze(node.attrs)), node.outputs)
        if first is not node.outputs:
            for old, new in zip(node.outputs, first):
                graph.replace_all_uses(old, new)
            dead.append(node)
    graph.remove_nodes(dead)
    return graph


def _freeze(attrs: dict[str, Any]) -> Hashable:
    return tuple(sorted(attrs.items()))
