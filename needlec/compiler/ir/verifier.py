"""The structural verifier: runs between passes and names what is broken where.

Checks: unique value names; every input defined before use; producer links;
constants' data matching their types; each node's op known, attributes
normalised against the schema, and recorded output types equal to what the
op's shape rule infers; every inline node (``Node.inline``) computable in
place by the kernels that read it (``_check_inline``).
"""
from __future__ import annotations

from needlec.compiler.ir.graph import Graph
from needlec.compiler.ops.registry import get_op
from needlec.errors import NeedlecError, VerificationError


def verify_graph(graph: Graph) -> None:
    """Raise ``VerificationError`` naming the first broken invariant of ``graph``."""
    defined: set[int] = set()
    names: set[str] = set()

    def define(value_name: str, key: int, where: str) -> None:
        if value_name in names:
            raise VerificationError(f"{where}: value %{value_name} is defined twice")
        names.add(value_name)
        defined.add(key)

    for v in graph.inputs:
        if v.producer is not None or v.data is not None:
            raise VerificationError(f"graph input %{v.name} has a producer or data")
        define(v.name, id(v), f"graph input %{v.name}")
    for kind, values in (("constant", graph.constants), ("variable", graph.variables)):
        for v in values:
            if v.data is None or v.is_variable != (kind == "variable"):
                raise VerificationError(f"{kind} %{v.name} has no data or is listed as the wrong kind")
            if v.data.dtype != v.type.dtype.np or tuple(v.data.shape) != v.type.shape or not v.type.is_contiguous:
                raise VerificationError(f"{kind} %{v.name}: type {v.type} does not match its data "
                                        f"{v.data.dtype.name}{list(v.data.shape)}")
            define(v.name, id(v), f"{kind} %{v.name}")
    for position, node in enumerate(graph.nodes):
        where = f"node #{position} %{node.name} ({node.op})"
        for i, v in enumerate(node.inputs):
            if id(v) not in defined:
                raise VerificationError(f"{where}: input {i} %{v.name} is used before it is defined "
                                        "(or is not in this graph)")
        try:
            opdef = get_op(node.op)
            if opdef.normalize_attrs(node.attrs, where) != node.attrs:
                raise VerificationError(f"{where}: attributes {node.attrs} are not normalised")
            expected = opdef.infer_types([v.type for v in node.inputs], node.attrs)
        except VerificationError:
            raise
        except NeedlecError as exc:
            raise VerificationError(f"{where}: {exc}") from None
        if len(expected) != len(node.outputs):
            raise VerificationError(f"{where}: expected {len(expected)} output(s), found {len(node.outputs)}")
        for i, (v, t) in enumerate(zip(node.outputs, expected)):
            if v.producer is not node:
                raise VerificationError(f"{where}: output {i} %{v.name} does not point back to its node")
            if v.type != t:
                raise VerificationError(f"{where}: output {i} %{v.name} has type {v.type}, expected {t}")
            define(v.name, id(v), where)
    for i, v in enumerate(graph.outputs):
        if id(v) not in defined:
            raise VerificationError(f"graph output {i} %{v.name} is not defined in the graph")
    variables = {id(v) for v in graph.variables}
    for variable, v in graph.updates:
        if id(variable) not in variables:
            raise VerificationError(f"update of %{variable.name}: not a variable of this graph")
        if id(v) not in defined or v.shape != variable.shape or v.dtype != variable.dtype:
            raise VerificationError(f"update of %{variable.name}: %{v.name} is undefined or has type {v.type}, "
                                    f"expected {variable.type}")
    _check_inline(graph)


def _check_inline(graph: Graph) -> None:
    """Inline nodes must be computable in every kernel that reads them (``loops/builder.InlineOperand``)."""
    producers = {id(node.outputs[0]): position for position, node in enumerate(graph.nodes) if node.outputs}
    outputs = {id(v) for v in graph.outputs}
    inline: set[int] = set()
    reads_variable = {id(v) for v in graph.variables}  # values whose in-place computation reads a variable
    for position, node in enumerate(graph.nodes):
        where = f"node #{position} %{node.name} ({node.op})"
        opdef = get_op(node.op)
        for i, v in enumerate(node.inputs):
            if id(v) in inline and (opdef.is_view or node.op == "bitcast"):
                raise VerificationError(f"{where}: input {i} %{v.name} is inline (node #{producers[id(v)]}), "
                                        f"but a {node.op} needs its buffer")
        if not node.inline:
            if opdef.is_view and id(node.inputs[0]) in reads_variable:
                reads_variable.add(id(node.outputs[0]))
            continue
        if opdef.scalar is None or len(node.outputs) != 1:
            raise VerificationError(f"{where}: only single-output elementwise nodes can be inline")
        if id(node.outputs[0]) in outputs:
            raise VerificationError(f"{where}: is inline but is a graph output (outputs need a buffer)")
        inline.add(id(node.outputs[0]))
        if any(id(v) in reads_variable for v in node.inputs):
            reads_variable.add(id(node.outputs[0]))
    for variable, v in graph.updates:
        if id(v) in inline and id(v) in reads_variable:
            raise VerificationError(f"update of %{variable.name}: %{v.name} is inline and reads a variable, "
                                    "which an earlier update may already have overwritten")
