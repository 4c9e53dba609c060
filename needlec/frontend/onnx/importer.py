"""ONNX graph -> needlec graph IR.

``Importer`` walks the ONNX graph in dependency order (sorting it first, so
cycles and dangling names are reported by name), converts each node with the
converter registered for its op type, and keeps an environment from ONNX
names to graph values. Subgraphs (If/Loop/Scan bodies) are converted into the
same needlec graph in a nested scope. ``fold`` evaluates a value at compile
time when everything it depends on is constant: that is how shape
computations become static.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import onnx

import needlec.frontend.onnx.ops  # noqa: F401  (registers every converter)
from needlec.compiler.ir.graph import Graph, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.ops.registry import get_op
from needlec.errors import NeedlecError
from needlec.frontend.onnx.context import CONVERTERS, NodeContext, OnnxImportError, onnx_dtype
from needlec.frontend.onnx.loader import default_opset, load_model

NOT_FOLDED = frozenset({"random_uniform"})
Binding = Any  # a graph Value, a list of Values (a sequence), or None (an absent optional)


def _graph_inputs_of(graph: onnx.GraphProto) -> set[str]:
    """Names a (sub)graph reads from outside itself."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                used.update(_graph_inputs_of(sub))
        defined.update(node.output)
    return used - defined


def _node_dependencies(node: onnx.NodeProto) -> list[str]:
    names = [n for n in node.input if n]
    for attribute in node.attribute:
        for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
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


class Importer:
    """Converts one ONNX model into one needlec ``Graph``."""

    def __init__(self, model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> None:
        self.model = model
        self.input_shapes = dict(input_shapes or {})
        self.opsets = {(e.domain or "ai.onnx"): e.version for e in model.opset_import}
        self.opsets.setdefault("ai.onnx", default_opset(model))
        self.graph = Graph(model.graph.name or "onnx_model")
        self.scopes: list[dict[str, Binding]] = [{}]
        self._folded: dict[int, np.ndarray | None] = {}

    # -- environment ------------------------------------------------------------------
    def lookup(self, name: str, where: str) -> Binding:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise OnnxImportError(f"{where}: reads {name!r}, which is not defined")

    def bind(self, name: str, value: Binding) -> None:
        self.scopes[-1][name] = value

    def fold(self, value: Value) -> np.ndarray | None:
        """``value``'s data when it depends only on constants (evaluated with the references), else None."""
        if value.is_constant:
            return value.data
        key = id(value)
        if key not in self._folded:
            node = value.producer
            result = None
            if node is not None and node.op not in NOT_FOLDED:
                args = [self.fold(v) for v in node.inputs]
                if all(a is not None for a in args):
                    outputs = get_op(node.op).reference(args, node.attrs)
                    for out, array in zip(node.outputs, outputs):
                        self._folded[id(out)] = np.asarray(array)
                    result = self._folded[key]
            self._folded[key] = result
        return self._folded[key]

    # -- conversion -------------------------------------------------------------------
    def run(self) -> Graph:
        graph = self.model.graph
        for tensor in graph.initializer:
            self.bind(tensor.name, self._initializer(tensor))
        for info in graph.input:
            if info.name not in self.scopes[0]:
                self.bind(info.name, self.graph.add_input(info.name, self._input_type(info)))
        unknown = sorted(set(self.input_shapes) - {i.name for i in graph.input})
        if unknown:
            raise OnnxImportError(f"input_shapes names {', '.join(unknown)}, which the model does not have as inputs")
        self.convert_nodes(graph.node, "graph")
        outputs = []
        for info in graph.output:
            value = self.lookup(info.name, "graph output")
            if not isinstance(value, Value):
                raise OnnxImportError(f"graph output {info.name!r} is not a tensor (sequences and optional "
                                      "outputs are not supported)")
            if value.producer is not None and value not in outputs and value.name != info.name:
                self.graph.rename(value, self.graph.fresh_name(info.name))
            outputs.append(value)
        self.graph.set_outputs(outputs)
        return self.graph

    def convert_nodes(self, nodes: Sequence[onnx.NodeProto], where: str) -> None:
        available = {name for scope in self.scopes for name in scope}
        for node in sort_nodes(nodes, available, where):
            self.convert_node(node)

    def convert_node(self, node: onnx.NodeProto) -> None:
        domain = node.domain or "ai.onnx"
        key = node.op_type if domain == "ai.onnx" else f"{domain}::{node.op_type}"
        opset = self.opsets.get(domain)
        ctx = NodeContext(node, opset or 0, self)
        convert = CONVERTERS.get(key)
        if convert is None or opset is None:
            raise OnnxImportError(f"{ctx.where}: unsupported op {node.op_type} in domain {domain} "
                                  f"(opset {opset if opset is not None else 'not imported'})")
        try:
            results = list(convert(ctx))
        except NeedlecError as exc:
            if ctx.where in str(exc):
                raise
            raise OnnxImportError(f"{ctx.where}: {exc}") from exc
        except Exception as exc:  # a converter bug or a malformed node: still name the node
            raise OnnxImportError(f"{ctx.where}: {type(exc).__name__}: {exc}") from exc
        for i, name in enumerate(node.output):
            if not name:
                continue
            if i >= len(results) or (results[i] is None and ctx.has_output(i)):
                raise ctx.error(f"output {i} ({name!r}) is not produced by needlec's converter")
            self.bind(name, results[i])

    def convert_subgraph(self, graph: onnx.GraphProto, inputs: Sequence[Binding], where: str) -> list[Binding]:
        """Inline ``graph`` (an If/Loop/Scan body) with its formal inputs bound to ``inputs``."""
        if len(inputs) != len(graph.input):
            raise OnnxImportError(f"{where}: subgraph {graph.name!r} takes {len(graph.input)} inputs, "
                                  f"given {len(inputs)}")
        self.scopes.append({})
        try:
            for tensor in graph.initializer:
                self.bind(tensor.name, self._initializer(tensor))
            for info, value in zip(graph.input, inputs):
                self.bind(info.name, value)
            self.convert_nodes(graph.node, f"{where} subgraph {graph.name!r}")
            return [self.lookup(info.name, f"{where} subgraph output") for info in graph.output]
        finally:
            self.scopes.pop()

    # -- tensors ---------------------------------------------------------------------
    def _initializer(self, tensor: onnx.TensorProto) -> Value:
        onnx_dtype(tensor.data_type, f"initializer {tensor.name!r}")
        try:
            data = onnx.numpy_helper.to_array(tensor)
        except Exception as exc:
            raise OnnxImportError(f"initializer {tensor.name!r} cannot be read (corrupted data?): {exc}") from None
        return self.graph.add_constant(data, tensor.name or "init")

    def _input_type(self, info: onnx.ValueInfoProto) -> TensorType:
        where = f"graph input {info.name!r}"
        if not info.type.HasField("tensor_type"):
            raise OnnxImportError(f"{where} is not a tensor (sequence, map and optional inputs are not supported)")
        tensor_type = info.type.tensor_type
        dtype = onnx_dtype(tensor_type.elem_type, where)
        given = self.input_shapes.get(info.name)
        if not tensor_type.HasField("shape"):
            if given is None:
                raise OnnxImportError(f"{where} has no declared shape; give it with input_shapes "
                                      f"(CLI: --input-shape {info.name}=2x3)")
            return TensorType(tuple(given), dtype)
        dims = tensor_type.shape.dim
        if given is not None:
            if len(given) != len(dims):
                raise OnnxImportError(f"{where}: input_shapes gives rank {len(given)}, the model declares rank "
                                      f"{len(dims)}")
            for axis, (dim, size) in enumerate(zip(dims, given)):
                if dim.HasField("dim_value") and dim.dim_value != size:
                    raise OnnxImportError(f"{where}: input_shapes gives {size} for axis {axis}, the model fixes "
                                          f"it to {dim.dim_value}")
            return TensorType(tuple(int(s) for s in given), dtype)
        shape = []
        for axis, dim in enumerate(dims):
            if not dim.HasField("dim_value"):
                label = dim.dim_param or "?"
                raise OnnxImportError(f"{where} has a dynamic dimension {label!r} (axis {axis}); fix it with "
                                      f"input_shapes={{'{info.name}': (...)}} (CLI: --input-shape "
                                      f"{info.name}=1x3x224x224)")
            shape.append(dim.dim_value)
        return TensorType(tuple(shape), dtype)


def from_onnx(source: Any, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Import an ONNX model (path, bytes or ModelProto) as a needlec graph with static shapes."""
    return Importer(load_model(source), input_shapes).run()
