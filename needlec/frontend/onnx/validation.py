"""Refusing invalid ONNX models before anything is converted or allocated.

Two layers. needlec's own structural checks come first, with messages that
name the value: negative dimensions, tensors over the size budget, values
defined twice, dangling names and cycles (``sort_nodes``). Then onnx's
checker (``full_check``) and strict shape inference with data propagation
refuse what ONNX Runtime would refuse (wrong attribute types, declared shapes
that disagree with the inferred ones, corrupt tensors). Inferred shapes are
checked against the size budget too, so an attribute asking for a huge
tensor is refused before a converter allocates it.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable, Iterator, Sequence

import onnx
from onnx import checker, shape_inference

from needlec.frontend.onnx.budget import SizeBudget
from needlec.frontend.onnx.context import OnnxImportError

# onnx's own function bodies for these ops fail its strict inference (MVN's body uses a Constant that its
# schema check rejects), yet ONNX Runtime runs them: models using them get the non-strict checks
BROKEN_FUNCTION_BODIES = frozenset({"MeanVarianceNormalization"})
# refusals of what needlec (and ONNX Runtime) compute anyway fall back to the non-strict checks: element types
# outside an op's schema (bf16 and f16 activations, computed in f32 and rounded once) and Einsum ellipses that
# broadcast over different ranks
RELAXED = ("has unsupported type", "Ellipsis for input")
PROTOBUF_LIMIT = 2 ** 31 - 1  # onnx's Python checker and inference serialize the model: 2 GiB at most


# -- dependency order ----------------------------------------------------------------------------------

def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs in ``node``'s attributes (If branches, Loop and Scan bodies)."""
    return [g for a in node.attribute for g in ([a.g] if a.HasField("g") else []) + list(a.graphs)]


def _graph_inputs_of(graph: onnx.GraphProto) -> set[str]:
    """Names a (sub)graph reads from outside itself."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for sub in subgraphs(node):
            used.update(_graph_inputs_of(sub))
        defined.update(node.output)
    return used - defined


def _node_dependencies(node: onnx.NodeProto) -> list[str]:
    names = [n for n in node.input if n]
    for sub in subgraphs(node):
        names.extend(sorted(_graph_inputs_of(sub)))
    return names


def sort_nodes(nodes: Sequence[onnx.NodeProto], available: set[str], where: str) -> list[onnx.NodeProto]:
    """``nodes`` in dependency order; OnnxImportError naming a dangling input or a cycle."""
    producers: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                producers[out] = i
    pending = {i: {n for n in _node_dependencies(node) if n not in available} for i, node in enumerate(nodes)}
    for i, deps in pending.items():
        for name in deps:
            if name not in producers:
                node = nodes[i]
                raise OnnxImportError(f"{where}: node {node.name or node.op_type!r} ({node.op_type}) reads "
                                      f"{name!r}, which no node, input or initializer defines (dangling name)")
    order: list[onnx.NodeProto] = []
    done: set[str] = set(available)
    remaining = list(range(len(nodes)))
    while remaining:
        ready = [i for i in remaining if pending[i] <= done]
        if not ready:
            stuck = ", ".join(repr(nodes[i].name or nodes[i].op_type) for i in remaining[:5])
            raise OnnxImportError(f"{where}: the graph has a cycle through node(s) {stuck}")
        for i in ready:
            order.append(nodes[i])
            done.update(n for n in nodes[i].output if n)
        remaining = [i for i in remaining if i not in set(ready)]
    return order


def _sort_in_place(graph: onnx.GraphProto, outer: set[str], where: str) -> bool:
    """Put ``graph``'s nodes (and its subgraphs') in dependency order; whether anything moved."""
    available = outer | {i.name for i in graph.input} | {t.name for t in graph.initializer}
    order = sort_nodes(graph.node, available, where)
    moved = [id(n) for n in order] != [id(n) for n in graph.node]
    scope = available | {name for node in graph.node for name in node.output}
    for node in graph.node:
        for sub in subgraphs(node):
            moved |= _sort_in_place(sub, scope, f"{where} subgraph {sub.name!r}")
    if moved:
        copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in order]
        del graph.node[:]
        graph.node.extend(copies)
    return moved


def _typeless(infos: Sequence[onnx.ValueInfoProto]) -> list[onnx.ValueInfoProto]:
    return [info for info in infos if info.type.WhichOneof("value") is None]


def checkable(model: onnx.ModelProto, strict: bool) -> onnx.ModelProto:
    """``model`` as onnx's checker wants it, copied only when it must change. ONNX Runtime sorts graphs and
    infers the types of graph outputs declared without one (``onnx.backend``'s ``run_node`` declares them so);
    onnx's checker insists on both, so it sees a sorted copy whose typeless outputs have the inferred types."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    changed = _sort_in_place(copy.graph, set(), "graph")
    if _typeless(copy.graph.output):  # strict, so a type that cannot be inferred is refused with the reason
        inferred = {info.name: info for info in _run("onnx shape inference", lambda: shape_inference.infer_shapes(
            copy, strict_mode=strict).graph.output)}
        for info in _typeless(copy.graph.output):
            if info.name in inferred and inferred[info.name].HasField("type"):
                info.type.CopyFrom(inferred[info.name].type)
        changed = True
    return copy if changed else model


# -- needlec's structural checks -----------------------------------------------------------------------

def _tensor_types(type_proto: onnx.TypeProto) -> Iterator[onnx.TypeProto.Tensor]:
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        yield type_proto.tensor_type
    elif kind == "sequence_type":
        yield from _tensor_types(type_proto.sequence_type.elem_type)
    elif kind == "optional_type":
        yield from _tensor_types(type_proto.optional_type.elem_type)


def _itemsize(elem_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize or 1
    except (KeyError, ValueError, TypeError):
        return 1


def check_dims(dims: Sequence[int], elem_type: int, budget: SizeBudget, where: str) -> None:
    """OnnxImportError for a negative dimension; SizeBudgetError when ``dims`` hold too many elements."""
    for axis, size in enumerate(dims):
        if size < 0:
            raise OnnxImportError(f"{where}: dimension {axis} is {size}; dimensions must be >= 0")
    budget.check_shape(dims, _itemsize(elem_type), where, f"a tensor of shape {list(dims)}")


def _check_value_info(info: onnx.ValueInfoProto, what: str, budget: SizeBudget) -> None:
    for tensor_type in _tensor_types(info.type):
        if not tensor_type.HasField("shape"):
            continue
        dims = tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value < 0:
                raise OnnxImportError(f"{what} {info.name!r}: dimension {axis} is {dim.dim_value}; dimensions "
                                      "must be >= 0")
        if all(d.HasField("dim_value") for d in dims):
            check_dims([d.dim_value for d in dims], tensor_type.elem_type, budget, f"{what} {info.name!r}")


def _check_tensor(tensor: onnx.TensorProto, what: str, budget: SizeBudget) -> None:
    check_dims(list(tensor.dims), tensor.data_type, budget, f"{what} {tensor.name!r}")


def _check_definitions(graph: onnx.GraphProto, where: str) -> None:
    """OnnxImportError for a value defined twice: two nodes, or a node and an input or initializer."""
    definer: dict[str, str] = {}

    def define(name: str, by: str) -> None:
        if name in definer:
            raise OnnxImportError(f"{where}: value {name!r} is defined twice, by {definer[name]} and by {by}; "
                                  "every value needs exactly one definition")
        definer[name] = by

    for info in graph.input:
        define(info.name, "a graph input")
    inputs = {i.name for i in graph.input}
    for tensor in graph.initializer:
        if tensor.name not in inputs:  # an initializer may give a graph input its default value
            define(tensor.name, "an initializer")
    for node in graph.node:
        for name in node.output:
            if name:
                define(name, f"node {node.name or node.op_type!r} ({node.op_type})")


def check_structure(model: onnx.ModelProto, budget: SizeBudget) -> None:
    """needlec's own checks of every (sub)graph: dimensions, the size budget, single definitions."""

    def visit(graph: onnx.GraphProto, where: str) -> None:
        _check_definitions(graph, where)
        for info in graph.input:
            _check_value_info(info, f"{where} input", budget)
        for info in graph.output:
            _check_value_info(info, f"{where} output", budget)
        for info in graph.value_info:
            _check_value_info(info, f"{where} value_info", budget)
        for tensor in graph.initializer:
            _check_tensor(tensor, f"{where} initializer", budget)
        for node in graph.node:
            for attribute in node.attribute:
                for tensor in ([attribute.t] if attribute.HasField("t") else []) + list(attribute.tensors):
                    _check_tensor(tensor, f"node {node.name or node.op_type!r} ({node.op_type}) attribute "
                                          f"{attribute.name!r} tensor", budget)
            if node.op_type == "Einsum" and node.domain in ("", "ai.onnx"):
                _check_einsum(node)
            _check_axis_attributes(node)
            for sub in subgraphs(node):
                visit(sub, f"{where} subgraph {sub.name!r}")

    visit(model.graph, "graph")


AXIS_ATTRIBUTES = frozenset({"axis", "axes", "batch_axis", "time_axis", "stash_type_axis"})


def _check_axis_attributes(node: onnx.NodeProto) -> None:
    """OnnxImportError for an axis attribute outside the int32 range: onnx's shape inference truncates it to a
    32-bit int and indexes with the result (a crash of the whole process), so it must be refused before onnx
    sees it. No tensor has 2**31 dimensions, so such an axis is wrong for any input."""
    for attribute in node.attribute:
        if attribute.name in AXIS_ATTRIBUTES:
            for value in [attribute.i, *attribute.ints]:
                if not -2 ** 31 <= value < 2 ** 31:
                    raise OnnxImportError(f"node {node.name or node.op_type!r} ({node.op_type}): attribute "
                                          f"{attribute.name!r} is {value}, out of range for any tensor's rank")


def _check_einsum(node: onnx.NodeProto) -> None:
    """OnnxImportError for an Einsum equation with a '.' outside '...': onnx's shape inference never returns
    on one (an endless loop in its parser), so it must be refused before onnx sees it."""
    for attribute in node.attribute:
        if attribute.name == "equation" and b"." in attribute.s.replace(b"...", b""):
            raise OnnxImportError(f"node {node.name or node.op_type!r} (Einsum): equation "
                                  f"{attribute.s.decode(errors='replace')!r} has a '.' outside an ellipsis '...'; "
                                  "equations use letters, ',', '->' and '...'")


# -- onnx's checker and shape inference ----------------------------------------------------------------

def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).strip().splitlines()[:1]).strip() or type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "..."


def _uses_broken_function(graph: onnx.GraphProto) -> bool:
    return any((node.domain in ("", "ai.onnx") and node.op_type in BROKEN_FUNCTION_BODIES)
               or any(_uses_broken_function(sub) for sub in subgraphs(node)) for node in graph.node)


def check_with_onnx(model: onnx.ModelProto, path: str | None, budget: SizeBudget) -> None:
    """Run onnx's checker and strict shape inference; OnnxImportError with the first line of what they say.

    A model over protobuf's 2 GiB limit is checked by ``path`` (onnx reads it and its external data itself).
    """
    strict = not _uses_broken_function(model.graph)
    if model.ByteSize() > PROTOBUF_LIMIT:
        if path is not None:
            _run("onnx checker", lambda: checker.check_model(path, full_check=strict))
        return
    try:
        inferred = _check_proto(model, strict)
    except OnnxImportError as exc:
        if not strict or not any(marker in str(exc) for marker in RELAXED):
            raise
        inferred = _check_proto(model, False)  # a type outside the op's schema: needlec's converter decides
    for info in [*inferred.graph.value_info, *inferred.graph.output]:
        _check_value_info(info, "value (as onnx's shape inference infers it)", budget)


def _check_proto(model: onnx.ModelProto, strict: bool) -> onnx.ModelProto:
    """The checker, then shape inference (strict or not) on ``model``; the inferred model."""
    model = checkable(model, strict)
    if not _unknown_types(model.graph):  # the checker insists on them; ONNX Runtime infers them
        _run("onnx checker", lambda: checker.check_model(model, full_check=strict))
    return _run("onnx shape inference", lambda: shape_inference.infer_shapes(
        model, check_type=strict, strict_mode=strict, data_prop=True))


def _unknown_types(graph: onnx.GraphProto) -> bool:
    """Whether a graph input or output has no type, or a tensor type without a shape (an unknown rank)."""
    return any(info.type.WhichOneof("value") is None or (info.type.WhichOneof("value") == "tensor_type"
                                             and not info.type.tensor_type.HasField("shape"))
               for info in [*graph.input, *graph.output])


def _run(what: str, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except Exception as exc:  # the checker and inference raise ValidationError, InferenceError and others
        raise OnnxImportError(f"invalid model ({what}): {_first_line(exc)}") from None
