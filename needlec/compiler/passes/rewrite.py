"""The fixpoint driver for local rewrites given as tables of (op, rule, why).

A rule receives a ``Rewriter`` positioned at one node and returns the value
that should replace the node's (single) output, or ``None`` to leave it.
New nodes a rule builds with ``rw.add`` are inserted just before the node, so
topological order holds. The driver sweeps until no rule fires, then drops
nodes left dead and re-infers layouts that the replacements changed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from needlec.compiler.ir.graph import Graph, Node, Value
from needlec.compiler.passes.dce import dce
from needlec.errors import PassError

MAX_SWEEPS = 100


class Rewriter:
    """What a rule may do: inspect the node and add new nodes before it."""

    def __init__(self, graph: Graph, node: Node) -> None:
        self.graph = graph
        self.node = node

    def add(self, op: str, *inputs: Value, **attrs: Any) -> Value:
        index = self.graph.nodes.index(self.node)
        return self.graph.insert_node(index, op, list(inputs), attrs, origin=self.node.origin).outputs[0]

    def constant(self, data: Any, like: Value) -> Value:
        """A constant holding ``data`` in ``like``'s dtype."""
        return self.graph.add_constant(np.asarray(data, like.dtype.np), "c")

    def named_like_node(self, value: Value) -> Value:
        """``value`` (a replacement for the node's output) renamed to the output's name, the output to a fresh one:
        dumps keep their names, and an output keeps the name the signature gives it."""
        old = self.node.outputs[0]
        name = old.name
        self.graph.rename(old, self.graph.fresh_name(name + "_replaced"))
        self.graph.rename(value, name)
        return value

    def scalar(self, value: Any, like: Value) -> Value:
        """A scalar constant of ``like``'s dtype (the ``GraphBuilder`` name of ``constant``)."""
        return self.constant(value, like)


Rule = Callable[[Rewriter, Node], "Value | None"]


@dataclass(frozen=True)
class Pattern:
    """Apply ``rule`` to nodes of op ``op``; ``why`` says what the rewrite buys."""

    op: str
    rule: Rule
    why: str


def apply_patterns(graph: Graph, patterns: Sequence[Pattern], pass_name: str) -> Graph:
    """Rewrite ``graph`` with ``patterns`` until nothing changes."""
    by_op: dict[str, list[Pattern]] = {}
    for p in patterns:
        by_op.setdefault(p.op, []).append(p)
    for _ in range(MAX_SWEEPS):
        changed = False
        for node in list(graph.nodes):
            for pattern in by_op.get(node.op, ()):
                new = pattern.rule(Rewriter(graph, node), node)
                if new is None or new is node.outputs[0]:
                    continue
                old = node.outputs[0]
                if new.shape != old.shape or new.dtype != old.dtype:
                    raise PassError(f"{pass_name}: rule for {node.op} ({pattern.why}) replaced %{old.name}: "
                                    f"{old.type} with %{new.name}: {new.type}")
                if not new.type.is_dense and any(old in user.inputs for user in graph.nodes
                                                  if user.op == "reshape"):
                    continue  # a reshape needs a dense input: keep the materialised value
                graph.replace_all_uses(old, new)
                changed = True
                break
        if not changed:
            break
        dce(graph)
        graph.refresh_types()
    return graph
