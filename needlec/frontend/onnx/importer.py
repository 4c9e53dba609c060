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

import math
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

import needlec.frontend.onnx.converters  # noqa: F401  (registers every converter)
from needlec.compiler.ir.graph import Graph, Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.ops.registry import get_op
from needlec.errors import InternalError, NeedlecError
from needlec.frontend.onnx.budget import SizeBudget
from needlec.frontend.onnx.context import (CONVERTERS, EMPTY_OPTIONAL, DynamicValueError, NodeContext,
                                           OnnxImportError, onnx_dtype)
from needlec.frontend.onnx.loader import default_opset, load_model
from needlec.frontend.onnx.validation import check_dims, sort_nodes

NOT_FOLDED = frozenset({"random_uniform"})
Binding = Any  # a graph Value, a list of Values (a sequence), or EMPTY_OPTIONAL (an optional holding nothing)


class Importer:
    """Converts one ONNX model into one needlec ``Graph``.

    ``input_shapes`` fixes input shapes; for a sequence input it lists one shape per element (the
    graph then takes the elements as inputs ``NAME_0``, ``NAME_1``, ...), and ``None`` marks an
    optional input that holds nothing. Sequence outputs likewise become one graph output per
    element; ``output_layout`` says how the graph's outputs regroup into the ONNX outputs.
    ``input_values`` fixes inputs to known values (arrays, lists of arrays, ``None``): they become
    constants, not graph inputs, so shapes computed from them are static (a backend that specializes on
    them must recompile when they change; ``DynamicValueError.inputs`` says which inputs need it).
    ``size_budget`` (``budget.py``) caps every value's elements, windowed work and unrolled steps; each is
    checked before anything is allocated or unrolled.
    """

    def __init__(self, model: onnx.ModelProto, input_shapes: Mapping[str, Any] | None = None,
                 input_values: Mapping[str, Any] | None = None,
                 size_budget: int | SizeBudget | None = None) -> None:
        self.model = model
        self.budget = SizeBudget.of(size_budget)
        self.unrolled_steps = 0  # subgraph bodies converted so far (Loop and Scan steps, If branches)
        self.input_shapes = dict(input_shapes or {})
        self.input_values = dict(input_values or {})
        self.input_names: dict[int, str] = {}  # id of a graph input value -> its ONNX input name
        # per ONNX output: ("tensor", 1), ("sequence", element count) or ("empty", 0) graph outputs
        self.output_layout: list[tuple[str, int]] = []
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

    def inputs_of(self, bindings: Sequence[Binding]) -> frozenset[str]:
        """ONNX names of the graph inputs that ``bindings`` (values or sequences of them) are computed from."""
        pending = [v for b in bindings for v in (b if isinstance(b, list) else [b]) if isinstance(v, Value)]
        seen: set[int] = set()
        names = set()
        while pending:
            value = pending.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            if id(value) in self.input_names:
                names.add(self.input_names[id(value)])
            elif value.producer is not None:
                pending.extend(value.producer.inputs)
        return frozenset(names)

    def fold(self, value: Value) -> np.ndarray | None:
        """``value``'s data when it depends only on constants (evaluated with the references), else None."""
        if value.is_constant:
            return value.data
        key = id(value)
        if key not in self._folded:
            node = value.producer
            result = None
            if node is not None and node.op not in NOT_FOLDED:
                folded = [self.fold(v) for v in node.inputs]
                args = [a for a in folded if a is not None]
                if len(args) == len(folded):
                    self._check_node(node, f"folding {node.op}")  # before the reference allocates
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
                self.bind(info.name, self._input_binding(info.name, info.type, f"graph input {info.name!r}"))
        unknown = sorted((set(self.input_shapes) | set(self.input_values)) - {i.name for i in graph.input})
        if unknown:
            raise OnnxImportError(f"input_shapes or input_values name {', '.join(unknown)}, which the model does "
                                  "not have as inputs")
        self.convert_nodes(graph.node, "graph")
        outputs: list[Value] = []
        for info in graph.output:
            binding = self.lookup(info.name, "graph output")
            if isinstance(binding, Value):
                _check_declared_type(info, binding)
                self.output_layout.append(("tensor", 1))
                named = [(binding, info.name)]
            elif isinstance(binding, list):
                self.output_layout.append(("sequence", len(binding)))
                named = [(value, f"{info.name}_{i}") for i, value in enumerate(binding)]
            else:
                self.output_layout.append(("empty", 0))
                named = []
            for value, name in named:
                if value.producer is not None and value not in outputs and value.name != name:
                    self.graph.rename(value, self.graph.fresh_name(name))
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
        first_new = len(self.graph.nodes)
        try:
            results = list(convert(ctx))
            for new in self.graph.nodes[first_new:]:
                self._check_node(new, ctx.where)
                if new.origin is None and node.name:  # provenance: the ONNX node (inner subgraph nodes keep theirs)
                    new.origin = node.name
        except NeedlecError as exc:
            if ctx.where in str(exc):
                raise
            if isinstance(exc, DynamicValueError):
                raise DynamicValueError(f"{ctx.where}: {exc}", exc.inputs) from exc
            raise OnnxImportError(f"{ctx.where}: {exc}") from exc
        except MemoryError:  # an allocation no budget check foresaw: the machine's memory, not a bug
            raise OnnxImportError(f"{ctx.where}: converting it needs more memory than is available; the model "
                                  "asks for very large tensors") from None
        except Exception as exc:  # a bug: validation should have refused the node with a proper error
            message = " ".join(str(exc).split())[:300]
            raise InternalError(f"internal error in the converter of {node.op_type} at node "
                                f"{node.name or (node.output[0] if node.output else '?')!r} (opset {ctx.opset}), "
                                f"please report: {type(exc).__name__}: {message}") from exc
        for i, name in enumerate(node.output):
            if not name:
                continue
            if i >= len(results) or (results[i] is None and ctx.has_output(i)):
                raise ctx.error(f"output {i} ({name!r}) is not produced by needlec's converter")
            self.bind(name, results[i])

    def check_unroll(self, steps: int, where: str) -> None:
        """SizeBudgetError when ``steps`` more subgraph conversions would exceed the unrolling budget."""
        self.budget.check_steps(self.unrolled_steps + steps, where)

    def _check_node(self, node: Node, where: str) -> None:
        """SizeBudgetError when a new node's outputs or its window work exceed the size budget."""
        for out in node.outputs:
            self.budget.check_shape(out.shape, out.dtype.itemsize, where, f"{node.op} output {list(out.shape)}")
        kernel = node.attrs.get("kernel")
        if kernel:
            self.budget.check_window(math.prod(node.outputs[0].shape), math.prod(kernel), where)

    def convert_subgraph(self, graph: onnx.GraphProto, inputs: Sequence[Binding], where: str) -> list[Binding]:
        """Inline ``graph`` (an If/Loop/Scan body) with its formal inputs bound to ``inputs``."""
        if len(inputs) != len(graph.input):
            raise OnnxImportError(f"{where}: subgraph {graph.name!r} takes {len(graph.input)} inputs, "
                                  f"given {len(inputs)}")
        self.check_unroll(1, where)
        self.unrolled_steps += 1
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

    def _input_binding(self, name: str, type_proto: onnx.TypeProto, where: str) -> Binding:
        """Graph input ``name``: a tensor input, a list of element inputs (a sequence) or EMPTY_OPTIONAL."""
        if name in self.input_values:
            return self._fixed_input(name, self.input_values[name])
        kind = type_proto.WhichOneof("value")
        if kind == "tensor_type":
            value = self.graph.add_input(name, self._input_type(name, type_proto.tensor_type, where))
            self.input_names[id(value)] = name
            return value
        if kind == "optional_type":
            if name in self.input_shapes and self.input_shapes[name] is None:
                return EMPTY_OPTIONAL
            return self._input_binding(name, type_proto.optional_type.elem_type, where)
        if kind == "sequence_type" and type_proto.sequence_type.elem_type.WhichOneof("value") == "tensor_type":
            shapes = self.input_shapes.get(name)
            if shapes is None:
                raise OnnxImportError(f"{where} is a sequence; give its element shapes with input_shapes="
                                      f"{{'{name}': [(2, 3), ...]}}")
            dtype = onnx_dtype(type_proto.sequence_type.elem_type.tensor_type.elem_type, where)
            elements = [self.graph.add_input(f"{name}_{i}", TensorType(tuple(int(d) for d in shape), dtype))
                        for i, shape in enumerate(shapes)]
            self.input_names.update((id(value), name) for value in elements)
            return elements
        raise OnnxImportError(f"{where} has a {kind or 'missing'} type; needlec takes tensors, sequences of tensors "
                              "and optionals of those")

    def _fixed_input(self, name: str, data: Any) -> Binding:
        """An input fixed by ``input_values``: constants (a list of them for a sequence), EMPTY_OPTIONAL for None."""
        if data is None:
            return EMPTY_OPTIONAL
        if isinstance(data, list):
            return [self.graph.add_constant(np.asarray(item), f"{name}_{i}") for i, item in enumerate(data)]
        return self.graph.add_constant(np.asarray(data), name)

    def _input_type(self, name: str, tensor_type: onnx.TypeProto.Tensor, where: str) -> TensorType:
        dtype = onnx_dtype(tensor_type.elem_type, where)
        given = self.input_shapes.get(name)
        if not tensor_type.HasField("shape"):
            if given is None:
                raise OnnxImportError(f"{where} has no declared shape; give it with input_shapes "
                                      f"(CLI: --input-shape {_escaped(name)}=2x3)")
            check_dims([int(s) for s in given], tensor_type.elem_type, self.budget, f"{where}: input_shapes")
            return TensorType(tuple(int(s) for s in given), dtype)
        dims = tensor_type.shape.dim
        if given is not None:
            if len(given) != len(dims):
                raise OnnxImportError(f"{where}: input_shapes gives rank {len(given)}, the model declares rank "
                                      f"{len(dims)}")
            for axis, (dim, size) in enumerate(zip(dims, given)):
                if dim.HasField("dim_value") and dim.dim_value != size:
                    raise OnnxImportError(f"{where}: input_shapes gives {size} for axis {axis}, the model fixes "
                                          f"it to {dim.dim_value}")
            check_dims([int(s) for s in given], tensor_type.elem_type, self.budget, f"{where}: input_shapes")
            return TensorType(tuple(int(s) for s in given), dtype)
        shape = []
        for axis, dim in enumerate(dims):
            if not dim.HasField("dim_value"):
                label = dim.dim_param or "?"
                raise OnnxImportError(f"{where} has a dynamic dimension {label!r} (axis {axis}); fix it with "
                                      f"input_shapes={{'{_escaped(name)}': (...)}} (CLI: --input-shape "
                                      f"{_escaped(name)}=1x3x224x224)")
            shape.append(dim.dim_value)
        return TensorType(tuple(shape), dtype)


def _escaped(name: str) -> str:
    """``name`` with control characters escaped, so a message quoting it stays on one line."""
    return name.encode("unicode_escape").decode("ascii")


def _check_declared_type(info: onnx.ValueInfoProto, value: Value) -> None:
    """OnnxImportError when graph output ``info`` declares an element type, rank or dimension ``value`` lacks."""
    if info.type.WhichOneof("value") != "tensor_type":
        return
    declared = info.type.tensor_type
    where = f"graph output {info.name!r}"
    if declared.elem_type and onnx_dtype(declared.elem_type, where) != value.dtype:
        raise OnnxImportError(f"{where}: the model declares element type "
                              f"{onnx.TensorProto.DataType.Name(declared.elem_type)}, needlec computes "
                              f"{value.dtype.value} (the model is inconsistent)")
    if not declared.HasField("shape"):
        return
    dims = [d.dim_value if d.HasField("dim_value") else None for d in declared.shape.dim]
    if len(dims) != value.type.rank or any(d is not None and d != s for d, s in zip(dims, value.shape)):
        shown = ["?" if d is None else d for d in dims]
        raise OnnxImportError(f"{where}: the model declares shape {shown}, needlec computes {list(value.shape)} "
                              "(the model is inconsistent)")


def from_onnx(source: Any, input_shapes: Mapping[str, Any] | None = None,
              size_budget: int | SizeBudget | None = None) -> Graph:
    """Import an ONNX model (path, bytes or ModelProto) as a needlec graph with static shapes.

    ``size_budget`` caps the elements of any one tensor (default 2**31; ``budget.py``).
    """
    budget = SizeBudget.of(size_budget)
    return Importer(load_model(source, budget), input_shapes, size_budget=budget).run()
