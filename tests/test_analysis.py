"""Graph analyses: the networkx data-flow graph, reachability, cycles and ordering, DOT export."""
from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest

from needlec import DType, Graph, TensorType
from needlec.compiler.interpreter import interpret
from needlec.compiler.ir.analysis import (check_topological_order, find_cycle, reachable, to_dot, to_networkx,
                                          topological_order)
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.verifier import verify_graph
from needlec.errors import IRError, VerificationError


def diamond() -> tuple[Graph, dict[str, Value]]:
    """x -> a=exp(x) -> b=neg(a) -> d=b*c;  x -> c=x+w -> d; e=abs(x) is a side branch."""
    g = Graph("diamond")
    x = g.add_input("x", TensorType((3,), DType.F32))
    w = g.add_constant(np.ones(3, np.float32), "w")
    a = g.add_node("exp", [x], names=["a"]).outputs[0]
    b = g.add_node("neg", [a], names=["b"]).outputs[0]
    c = g.add_node("add", [x, w], names=["c"], origin="a").outputs[0]
    d = g.add_node("mul", [b, c], names=["d"]).outputs[0]
    e = g.add_node("abs", [x], names=["e"]).outputs[0]
    g.set_outputs([d, e])
    return g, {"x": x, "w": w, "a": a, "b": b, "c": c, "d": d, "e": e}


def test_networkx_graph_has_sources_nodes_and_data_flow_edges() -> None:
    g, v = diamond()
    dg = to_networkx(g)
    assert dg.number_of_nodes() == 7
    assert dg.nodes[v["x"]]["kind"] == "input" and dg.nodes[v["w"]]["kind"] == "constant"
    assert all(dg.nodes[n]["kind"] == "node" for n in g.nodes)
    assert [dg.nodes[n]["position"] for n in g.nodes] == list(range(5))
    assert dg.nodes[v["d"].producer]["outputs"] == [0] and dg.nodes[v["e"].producer]["outputs"] == [1]
    edges = {(s.name, t.name) for s, t in dg.edges}
    assert edges == {("x", "a"), ("a", "b"), ("x", "c"), ("w", "c"), ("b", "d"), ("c", "d"), ("x", "e")}
    assert dg.edges[v["w"], v["c"].producer]["values"] == ["w"]
    assert nx.is_directed_acyclic_graph(dg)


def test_repeated_operand_gives_one_edge_listing_the_value_once() -> None:
    g = Graph("sq")
    x = g.add_input("x", TensorType((2,), DType.F32))
    y = g.add("mul", x, x)
    g.set_outputs([y])
    dg = to_networkx(g)
    assert dg.number_of_edges() == 1 and dg.edges[x, y.producer]["values"] == ["x"]


@pytest.mark.parametrize("source, target, expected", [
    ("x", "d", True), ("a", "d", True), ("w", "d", True), ("c", "d", True), ("a", "b", True),
    ("d", "a", False), ("b", "c", False), ("c", "b", False), ("a", "e", False), ("e", "d", False),
    ("w", "e", False), ("b", "b", True),
])
def test_reachable_follows_data_flow(source: str, target: str, expected: bool) -> None:
    g, v = diamond()
    assert reachable(g, v[source], v[target]) is expected
    dg = to_networkx(g)  # prebuilt graph, node objects instead of values
    node_or_value = {k: (val.producer or val) for k, val in v.items()}
    assert reachable(dg, node_or_value[source], node_or_value[target]) is expected


def test_reachable_rejects_foreign_vertices() -> None:
    g, _ = diamond()
    other, _ = diamond()
    with pytest.raises(IRError, match=r"%a \(exp\) is not in graph diamond"):
        reachable(g, other.nodes[0], g.nodes[0])


def misordered() -> Graph:
    """The diamond with its nodes list shuffled: 'b' now comes before 'a', which it reads."""
    g, _ = diamond()
    g.nodes = [g.nodes[1], g.nodes[0], *g.nodes[2:]]
    return g


def test_misordered_graph_is_diagnosed_and_repaired() -> None:
    g = misordered()
    assert find_cycle(g) is None  # the data flow itself is fine
    with pytest.raises(VerificationError, match=r"node #0 %b \(neg\) reads %a before node #1 defines it"):
        check_topological_order(g)
    with pytest.raises(VerificationError):
        verify_graph(g)
    g.nodes = topological_order(g)
    assert [n.name for n in g.nodes] == ["a", "b", "c", "d", "e"]
    check_topological_order(g)
    verify_graph(g)
    x = np.array([0.5, -1.0, 2.0], np.float32)
    d, e = interpret(g, [x])
    np.testing.assert_allclose(d, -np.exp(x) * (x + 1), rtol=1e-6)
    np.testing.assert_array_equal(e, np.abs(x))


def test_topological_order_keeps_independent_nodes_in_place() -> None:
    g, _ = diamond()
    assert topological_order(g) == g.nodes


def test_cycle_is_found_and_reported() -> None:
    g, v = diamond()
    a_node, b_node = v["a"].producer, v["b"].producer
    assert isinstance(a_node, Node) and isinstance(b_node, Node)
    a_node.inputs = [v["b"]]  # a = exp(b), b = neg(a): a rewrite gone wrong
    cycle = find_cycle(g)
    assert cycle is not None and set(cycle) == {a_node, b_node}
    with pytest.raises(VerificationError, match=r"data-flow cycle %(a \(exp\) -> %b \(neg\) -> %a|"
                                                r"b \(neg\) -> %a \(exp\) -> %b)"):
        check_topological_order(g)
    with pytest.raises(VerificationError, match=r"data-flow cycle"):
        topological_order(g)


def test_values_from_outside_the_graph_become_outside_vertices() -> None:
    g, v = diamond()
    stranger = Graph("other").add_input("s", TensorType((3,), DType.F32))
    e_node = v["e"].producer
    assert e_node is not None
    e_node.inputs = [stranger]
    dg = to_networkx(g)
    assert dg.nodes[stranger]["kind"] == "outside" and dg.has_edge(stranger, e_node)


def test_dot_text_names_every_value_and_edge() -> None:
    g, v = diamond()
    dot = to_dot(g)
    assert dot.startswith('digraph "diamond" {\n') and dot.endswith("}\n")
    for name in "xwabcde":
        assert f"%{name}: f32[3]" in dot
    assert "origin %a" in dot
    ids = dict(re.findall(r'  (v\d+) \[label="%(\w+):', dot))
    ids = {name: vid for vid, name in ids.items()}
    assert f"  {ids['x']} -> {ids['a']} [label=\"%x\"];" in dot
    assert f"  {ids['c']} -> {ids['d']} [label=\"%c\"];" in dot
    assert len(re.findall(r" -> ", dot)) == 7
    assert dot.count("peripheries=2") == 2  # the two graph outputs
    assert re.search(rf'  {ids["w"]} \[label="%w: f32\[3\]\\nconstant", shape=cylinder\];', dot)


def test_dot_escapes_quotes_and_newlines_in_names() -> None:
    g = Graph('say "hi"')
    x = g.add_input('in"put\n', TensorType((), DType.F32))
    g.set_outputs([x])
    dot = to_dot(g)
    assert dot.startswith('digraph "say \\"hi\\"" {')
    assert '%in\\"put\\n: f32[]' in dot
    assert dot.count("\n") == 4  # header, node defaults, one vertex, closing brace
