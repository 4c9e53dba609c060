"""The reference interpreter: runs a graph node by node with each op's NumPy reference.

It is the ground truth for lowering tests and for the pass manager's numeric
checks.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from needlec.compiler.ir.graph import Graph
from needlec.compiler.ops.registry import get_op
from needlec.errors import NeedlecError, RuntimeInputError


def interpret(graph: Graph, inputs: Sequence[np.ndarray],
              state: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """Evaluate ``graph`` on ``inputs`` (in graph-input order) and return its outputs."""
    return evaluate(graph, inputs, state)[0]


def evaluate(graph: Graph, inputs: Sequence[np.ndarray], state: Mapping[str, np.ndarray] | None = None
             ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Outputs, and each updated variable's next value, by name.

    Variables take their values from ``state`` (by name) or else their
    initial data.
    """
    state = state or {}
    if len(inputs) != len(graph.inputs):
        raise RuntimeInputError(f"{graph.name}: expected {len(graph.inputs)} input(s), found {len(inputs)}")
    env: dict[int, np.ndarray] = {}
    for value, array in zip(graph.inputs, inputs):
        array = np.asarray(array)
        if array.shape != value.shape or array.dtype != value.dtype.np:
            raise RuntimeInputError(f"{graph.name}: input %{value.name} expected {value.type}, "
                                    f"found {array.dtype.name}{list(array.shape)}")
        env[id(value)] = array
    for value in graph.constants:
        env[id(value)] = value.data  # type: ignore[assignment]
    for value in graph.variables:
        env[id(value)] = np.asarray(state.get(value.name, value.data))
    for node in graph.nodes:
        args = [env[id(v)] for v in node.inputs]
        try:
            results = get_op(node.op).reference(args, node.attrs)
        except NeedlecError:
            raise
        except Exception as exc:  # a reference failing is a bug or bad input: name the node
            raise NeedlecError(f"reference of node %{node.name} ({node.op}) failed: {exc}") from exc
        for value, result in zip(node.outputs, results):
            env[id(value)] = np.asarray(result)
    return [env[id(v)] for v in graph.outputs], {var.name: env[id(v)] for var, v in graph.updates}
