"""Pass ``dce``: remove nodes and constants no graph output depends on.

Why: every primitive is pure (random numbers are counter-based), so a value
nobody reads is wasted work and memory.
"""
from __future__ import annotations

from needlec.compiler.ir.graph import Graph


def dce(graph: Graph) -> Graph:
    """Drop dead nodes (walking backwards from the outputs) and unused constants."""
    live: set[int] = {id(v) for v in graph.outputs} | {id(v) for _, v in graph.updates}
    dead = []
    for node in reversed(graph.nodes):
        if any(id(v) in live for v in node.outputs):
            live.update(id(v) for v in node.inputs)
        else:
            dead.append(node)
    graph.remove_nodes(dead)
    graph.remove_constants([v for v in graph.constants if id(v) not in live])
    return graph
