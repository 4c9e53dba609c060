"""Graph analyses on networkx: the data-flow graph, cycles and order, reachability, DOT export.

``to_networkx`` turns a ``Graph`` into a ``networkx.DiGraph`` whose vertices
are the graph's ``Node`` objects plus its input and constant ``Value``
objects (the sources), with an edge ``producer -> consumer`` for every value a
node reads. It follows producer links rather than the order of
``graph.nodes``, so it sees the real data flow of a graph that a buggy
rewrite left mis-ordered, and ``find_cycle`` / ``check_topological_order`` /
``topological_order`` diagnose and repair such graphs. ``reachable`` answers
the fusion-legality question "does b depend on a?".
"""
from __future__ import annotations

import networkx as nx

from needlec.compiler.ir.graph import Graph, Node, Value
from needlec.errors import IRError, VerificationError

Vertex = Node | Value


def _describe(vertex: Vertex) -> str:
    if isinstance(vertex, Node):
        return f"%{vertex.name} ({vertex.op})"
    return f"%{vertex.name}"


def _vertex(item: Vertex) -> Vertex:
    """The vertex standing for ``item``: a node output stands for its producer node."""
    if isinstance(item, Value) and item.producer is not None:
        return item.producer
    return item


def to_networkx(graph: Graph) -> nx.DiGraph:
    """The data-flow graph of ``graph``.

    Vertex attributes: ``kind`` (``input``, ``constant``, ``node``, or
    ``outside`` for a producer or value that is not part of ``graph``),
    ``position`` (index in ``graph.nodes`` for nodes), ``outputs`` (graph
    output positions the vertex produces). Edge attribute ``values``: names
    of the values flowing along the edge.
    """
    dg = nx.DiGraph(name=graph.name)
    for value in graph.inputs:
        dg.add_node(value, kind="input", outputs=[])
    for value in graph.constants:
        dg.add_node(value, kind="constant", outputs=[])
    for position, node in enumerate(graph.nodes):
        dg.add_node(node, kind="node", position=position, outputs=[])
    for node in graph.nodes:
        for value in node.inputs:
            source = _vertex(value)
            if source not in dg:
                dg.add_node(source, kind="outside", outputs=[])
            if not dg.has_edge(source, node):
                dg.add_edge(source, node, values=[])
            if value.name not in dg.edges[source, node]["values"]:
                dg.edges[source, node]["values"].append(value.name)
    for position, value in enumerate(graph.outputs):
        source = _vertex(value)
        if source not in dg:
            dg.add_node(source, kind="outside", outputs=[])
        dg.nodes[source]["outputs"].append(position)
    return dg


def _cycle_error(graph: Graph, cycle: list[Node]) -> VerificationError:
    path = " -> ".join(_describe(n) for n in [*cycle, cycle[0]])
    return VerificationError(f"graph {graph.name}: data-flow cycle {path}")


def find_cycle(graph: Graph) -> list[Node] | None:
    """The nodes of one data-flow cycle, in flow order, or ``None`` if the data flow is acyclic."""
    try:
        edges = nx.find_cycle(to_networkx(graph))
    except nx.NetworkXNoCycle:
        return None
    return [source for source, _ in edges]


def check_topological_order(graph: Graph) -> None:
    """Raise ``VerificationError`` if the data flow has a cycle or ``graph.nodes`` uses a value before defining it.

    The message tells the two apart: a cycle is a broken rewrite, while a
    mere ordering error is repaired by ``topological_order``.
    """
    cycle = find_cycle(graph)
    if cycle is not None:
        raise _cycle_error(graph, cycle)
    position = {id(node): i for i, node in enumerate(graph.nodes)}
    for i, node in enumerate(graph.nodes):
        for value in node.inputs:
            producer = value.producer
            if producer is not None and position.get(id(producer), -1) > i:
                raise VerificationError(
                    f"graph {graph.name}: node #{i} {_describe(node)} reads %{value.name} before node "
                    f"#{position[id(producer)]} defines it; the nodes are out of topological order "
                    "(topological_order repairs this)")


def topological_order(graph: Graph) -> list[Node]:
    """``graph.nodes`` sorted so every value is defined before use, keeping the current order where it can."""
    dg = to_networkx(graph)
    try:
        order = nx.lexicographical_topological_sort(dg, key=lambda v: dg.nodes[v].get("position", -1))
        return [v for v in order if isinstance(v, Node) and dg.nodes[v]["kind"] == "node"]
    except nx.NetworkXUnfeasible:
        raise _cycle_error(graph, [source for source, _ in nx.find_cycle(dg)]) from None


def reachable(graph: Graph | nx.DiGraph, source: Vertex, target: Vertex) -> bool:
    """True when ``target`` depends on ``source`` through data flow (a vertex reaches itself).

    ``source``/``target`` are nodes, inputs, constants, or node outputs (which
    stand for their producer). Pass ``to_networkx(graph)`` instead of the graph
    to answer many queries without rebuilding it.
    """
    dg = graph if isinstance(graph, nx.DiGraph) else to_networkx(graph)
    a, b = _vertex(source), _vertex(target)
    for item in (a, b):
        if item not in dg:
            raise IRError(f"reachable: {_describe(item)} is not in graph {dg.graph.get('name', '')}")
    return bool(nx.has_path(dg, a, b))


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_label(vertex: Vertex, data: dict) -> str:
    if isinstance(vertex, Node):
        results = ", ".join(f"%{v.name}: {v.type}" for v in vertex.outputs)
        label = f"{results}\n{vertex.op}"
        if vertex.origin is not None:
            label += f"\norigin %{vertex.origin}"
    else:
        label = f"%{vertex.name}: {vertex.type}\n{data['kind']}"
    if data["outputs"]:
        label += "\nreturn " + ", ".join(str(p) for p in data["outputs"])
    return label


_DOT_SHAPES = {"input": "ellipse", "constant": "cylinder", "node": "box", "outside": "octagon"}


def to_dot(graph: Graph) -> str:
    """Graphviz DOT text of the data-flow graph (written directly; needs neither pydot nor graphviz)."""
    dg = to_networkx(graph)
    ids = {vertex: f"v{i}" for i, vertex in enumerate(dg.nodes)}
    lines = [f"digraph {_dot_string(graph.name)} {{", '  node [fontname="monospace"];']
    for vertex, data in dg.nodes(data=True):
        attrs = [f"label={_dot_string(_dot_label(vertex, data))}", f"shape={_DOT_SHAPES[data['kind']]}"]
        if data["outputs"]:
            attrs.append("peripheries=2")
        lines.append(f"  {ids[vertex]} [{', '.join(attrs)}];")
    for source, target, data in dg.edges(data=True):
        label = ", ".join(f"%{name}" for name in data["values"])
        lines.append(f"  {ids[source]} -> {ids[target]} [label={_dot_string(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
