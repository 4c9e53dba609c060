"""The graph IR: SSA values, nodes in topological order, inputs, outputs, constants.

A small torch.fx-like API::

    g = Graph("mlp")
    x = g.add_input("x", TensorType((4, 8), DType.F32))
    w = g.add_constant(np.ones((8, 3), np.float32), "w")
    (y,) = g.add_node("matmul", [x, w]).outputs
    g.set_outputs([y])

``add_node`` looks the op up in the registry, normalises its attributes
against the op's schema and infers the output types, so a graph built through
this API is well typed by construction. Passes that rewrite graphs use
``replace_all_uses``, ``remove_nodes`` and ``insert_node``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.types import TensorType
from needlec.errors import IRError


class Value:
    """An SSA value: a graph input, a constant or variable (``data`` set) or a node output.

    A variable (``mutable``) is state that persists across calls, such as a
    parameter or an optimizer moment: ``data`` is its initial value, nodes
    read its value at the start of a call, and ``Graph.updates`` gives its
    value for the next call.
    """

    __slots__ = ("name", "type", "producer", "data", "mutable")

    def __init__(self, name: str, type: TensorType, producer: Node | None = None,
                 data: np.ndarray | None = None, mutable: bool = False) -> None:
        self.name = name
        self.type = type
        self.producer = producer
        self.data = data
        self.mutable = mutable

    @property
    def is_constant(self) -> bool:
        return self.data is not None and not self.mutable

    @property
    def is_variable(self) -> bool:
        return self.mutable

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass(eq=False)
class Node:
    """One op application. ``origin`` is its provenance: the forward node a gradient node came from, or the
    ONNX node whose converter created it. ``inline`` marks an elementwise node that gets no kernel and no
    buffer: each kernel reading its value computes it in place (decided by ``passes/fuse.py``)."""

    op: str
    inputs: list[Value]
    attrs: dict[str, Any]
    outputs: list[Value] = field(default_factory=list)
    origin: str | None = None
    inline: bool = False

    @property
    def name(self) -> str:
        """A node is named after its first output."""
        return self.outputs[0].name if self.outputs else f"<{self.op}>"

    def __repr__(self) -> str:
        ins = ", ".join(f"%{v.name}" for v in self.inputs)
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        return f"{outs} = {self.op}({ins})"


class Graph:
    """A function from input tensors to output tensors.

    ``nodes`` is kept in topological order; constants hold weights as NumPy
    arrays and are not produced by any node.
    """

    def __init__(self, name: str = "main") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.constants: list[Value] = []
        self.variables: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.updates: list[tuple[Value, Value]] = []
        self._names: set[str] = set()
        self._counter = itertools.count()

    # -- naming -------------------------------------------------------------
    def fresh_name(self, hint: str = "") -> str:
        """A value name not yet used in this graph (``hint`` if it is free)."""
        if hint and hint not in self._names:
            return hint
        while True:
            name = f"{hint}{next(self._counter)}" if hint else str(next(self._counter))
            if name not in self._names:
                return name

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise IRError(f"value name %{name} is defined twice")
        self._names.add(name)
        return name

    # -- building -------------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        """Append a graph input (always contiguous)."""
        value = Value(self._claim(self.fresh_name(name)), type.contiguous())
        self.inputs.append(value)
        return value

    def add_constant(self, data: np.ndarray, name: str = "c") -> Value:
        """Add a constant (weight) holding a private contiguous copy of ``data``."""
        value = self._data_value(data, name, mutable=False)
        self.constants.append(value)
        return value

    def add_variable(self, data: np.ndarray, name: str = "v") -> Value:
        """Add a variable (persistent state) whose initial value is a copy of ``data``."""
        value = self._data_value(data, name, mutable=True)
        self.variables.append(value)
        return value

    def _data_value(self, data: np.ndarray, name: str, mutable: bool) -> Value:
        array = np.array(data, order="C")
        dtype = DType.from_numpy(array.dtype)
        return Value(self._claim(self.fresh_name(name)), TensorType(array.shape, dtype), data=array, mutable=mutable)

    def set_update(self, variable: Value, value: Value) -> None:
        """After each call, ``variable`` takes ``value`` (replacing an earlier update)."""
        if not variable.is_variable:
            raise IRError(f"%{variable.name} is not a variable; only variables can be updated")
        if value.shape != variable.shape or value.dtype != variable.dtype:
            raise IRError(f"update of %{variable.name}: expected {variable.type.contiguous()}, "
                          f"found {value.type.contiguous()}")
        self.updates = [(var, new) for var, new in self.updates if var is not variable] + [(variable, value)]

    def make_node(self, op: str, inputs: Sequence[Value], attrs: dict[str, Any] | None = None,
                  names: Sequence[str] | None = None, origin: str | None = None) -> Node:
        """Build a typed node without inserting it (see ``append`` / ``insert_node``)."""
        from needlec.compiler.ops.registry import get_op

        opdef = get_op(op)
        norm = opdef.normalize_attrs(attrs or {}, where=f"{op} node")
        out_types = opdef.infer_types([v.type for v in inputs], norm)
        node = Node(op, list(inputs), norm, origin=origin)
        for i, t in enumerate(out_types):
            hint = names[i] if names and i < len(names) else ""
            node.outputs.append(Value(self._claim(self.fresh_name(hint)), t, producer=node))
        return node

    def add_node(self, op: str, inputs: Sequence[Value], attrs: dict[str, Any] | None = None,
                 names: Sequence[str] | None = None, origin: str | None = None) -> Node:
        """Build a node and append it at the end of the graph."""
        node = self.make_node(op, inputs, attrs, names, origin)
        self.nodes.append(node)
        return node

    def add(self, op: str, *inputs: Value, **attrs: Any) -> Value:
        """Shorthand for a single-output node: ``g.add("add", a, b)``."""
        return self.add_node(op, list(inputs), attrs).outputs[0]

    def scalar(self, value: Any, like: Value) -> Value:
        """A scalar constant of ``like``'s dtype (what composites need from a ``GraphBuilder``)."""
        return self.add_constant(np.asarray(value, like.dtype.np), "c")

    def insert_node(self, index: int, op: str, inputs: Sequence[Value],
                    attrs: dict[str, Any] | None = None, origin: str | None = None) -> Node:
        """Build a node and insert it at position ``index`` of ``nodes``."""
        node = self.make_node(op, inputs, attrs, origin=origin)
        self.nodes.insert(index, node)
        return node

    def rename(self, value: Value, name: str) -> None:
        """Give ``value`` the name ``name`` (IRError if another value has it)."""
        if name == value.name:
            return
        self._claim(name)
        self._names.discard(value.name)
        value.name = name

    def set_outputs(self, values: Iterable[Value]) -> None:
        self.outputs = list(values)

    # -- rewriting -----------------------------------------------------------
    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Make every node input and graph output that reads ``old`` read ``new``."""
        for node in self.nodes:
            node.inputs = [new if v is old else v for v in node.inputs]
        self.outputs = [new if v is old else v for v in self.outputs]
        self.updates = [(var, new if v is old else v) for var, v in self.updates]

    def remove_nodes(self, dead: Iterable[Node]) -> None:
        dead_ids = {id(n) for n in dead}
        for node in self.nodes:
            if id(node) in dead_ids:
                for v in node.outputs:
                    self._names.discard(v.name)
        self.nodes = [n for n in self.nodes if id(n) not in dead_ids]

    def remove_constants(self, dead: Iterable[Value]) -> None:
        dead_ids = {id(v) for v in dead}
        for v in self.constants:
            if id(v) in dead_ids:
                self._names.discard(v.name)
        self.constants = [v for v in self.constants if id(v) not in dead_ids]

    def refresh_types(self) -> None:
        """Re-run every node's shape rule in order (after a rewrite changed an input's layout)."""
        from needlec.compiler.ops.registry import get_op

        for node in self.nodes:
            types = get_op(node.op).infer_types([v.type for v in node.inputs], node.attrs)
            for value, t in zip(node.outputs, types):
                value.type = t

    # -- queries --------------------------------------------------------------
    def users(self) -> dict[int, list[Node]]:
        """Map ``id(value)`` to the nodes that read it (in graph order)."""
        result: dict[int, list[Node]] = {}
        for node in self.nodes:
            for v in node.inputs:
                result.setdefault(id(v), []).append(node)
        return result

    def values(self) -> Iterable[Value]:
        """Every value: inputs, constants, variables, then node outputs in order."""
        yield from self.inputs
        yield from self.constants
        yield from self.variables
        for node in self.nodes:
            yield from node.outputs

    def __str__(self) -> str:
        from needlec.compiler.ir.printer import print_graph

        return print_graph(self)

    def copy(self) -> Graph:
        """A structural deep copy (constant arrays are shared, they are never mutated)."""
        clone = Graph(self.name)
        mapping: dict[int, Value] = {}
        for v in self.inputs:
            mapping[id(v)] = clone._adopt(Value(v.name, v.type))
            clone.inputs.append(mapping[id(v)])
        for v in self.constants:
            mapping[id(v)] = clone._adopt(Value(v.name, v.type, data=v.data))
            clone.constants.append(mapping[id(v)])
        for v in self.variables:
            mapping[id(v)] = clone._adopt(Value(v.name, v.type, data=v.data, mutable=True))
            clone.variables.append(mapping[id(v)])
        for node in self.nodes:
            new = Node(node.op, [mapping[id(v)] for v in node.inputs], dict(node.attrs), origin=node.origin,
                       inline=node.inline)
            for v in node.outputs:
                mapping[id(v)] = clone._adopt(Value(v.name, v.type, producer=new))
                new.outputs.append(mapping[id(v)])
            clone.nodes.append(new)
        clone.outputs = [mapping[id(v)] for v in self.outputs]
        clone.updates = [(mapping[id(var)], mapping[id(v)]) for var, v in self.updates]
        return clone

    def _adopt(self, value: Value) -> Value:
        self._claim(value.name)
        return value
