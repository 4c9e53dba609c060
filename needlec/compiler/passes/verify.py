"""Pass ``verify``: check the incoming graph before anything else touches it."""
from __future__ import annotations

from needlec.compiler.ir.graph import Graph
from needlec.compiler.ir.verifier import verify_graph


def verify(graph: Graph) -> Graph:
    """Structurally verify the graph (names, definitions before use, types, attributes)."""
    verify_graph(graph)
    return graph
