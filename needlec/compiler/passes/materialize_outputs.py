"""Pass ``materialize_outputs``: every graph output and variable update gets its own buffer.

Why: the caller owns the output buffers, so an output may not be a graph
input, a constant, a variable, a view into another buffer, or the same value
as another output. Such outputs get a ``copy`` node. A variable's new value is
copied into the variable's storage after every kernel has run, so it must not
itself live in variable storage (a view of a variable, or a variable).
"""
from __future__ import annotations

from needlec.compiler.ir.graph import Graph
from needlec.compiler.ops.registry import get_op


def materialize_outputs(graph: Graph) -> Graph:
    """Insert ``copy`` nodes so each output is computed into a fresh buffer."""
    seen: set[int] = set()
    outputs = []
    for value in graph.outputs:
        producer = value.producer
        needs_copy = (producer is None or get_op(producer.op).is_view or id(value) in seen)
        if needs_copy:
            origin = value.producer.origin if value.producer is not None else None
            copied = graph.add_node("copy", [value], origin=origin).outputs[0]
            if value.producer is not None and id(value) not in seen:
                # The output keeps its name (the signature, file names and headers use it); the viewed value
                # inside the graph takes the copy's fresh name.
                name, fresh = value.name, copied.name
                graph.rename(copied, graph.fresh_name(name + "_out"))
                graph.rename(value, fresh)
                graph.rename(copied, name)
            value = copied
        seen.add(id(value))
        outputs.append(value)
    graph.set_outputs(outputs)
    for variable, value in graph.updates:
        if value is not variable and (value.producer is None or get_op(value.producer.op).is_view):
            graph.set_update(variable, graph.add("copy", value))
    return graph
