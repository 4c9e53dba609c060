"""What an ONNX op converter sees: one node, its inputs as graph values, compile-time constants.

Converters are registered per ONNX op type with ``@converter("Relu", ...)``
and return one graph value per ONNX output (``None`` for an output they do
not produce). They build primitives through ``NodeContext.add`` (a
``GraphBuilder``, so the composites of ``compiler/ops/composites.py`` build
through it too and their shape errors name the node) and read attributes
with ``attr``; ``const(i)`` gives an input's value when it is known at
compile time (initializers, Constant nodes, shape arithmetic), which is how
shape-like inputs (Reshape's shape, Slice's starts, ...) become static.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Sequence

import numpy as np
import onnx

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.errors import NeedlecError
from needlec.frontend.onnx.attributes import attribute_error

if TYPE_CHECKING:
    from needlec.frontend.onnx.importer import Importer


class OnnxImportError(NeedlecError):
    """An ONNX model cannot be imported; the message names the node, op type and opset."""


class DynamicValueError(OnnxImportError):
    """A value the importer needs at compile time (a shape, an index, a trip count, a branch condition) is
    computed at run time. ``inputs`` names the graph inputs it is computed from: a caller that knows their
    values can import again with them fixed (``Importer(..., input_values=...)``)."""

    def __init__(self, message: str, inputs: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.inputs = inputs


_REQUIRED: Any = object()


class EmptyOptional:
    """The binding of an ONNX optional that holds nothing (``EMPTY_OPTIONAL`` is its one instance)."""

    def __repr__(self) -> str:
        return "EMPTY_OPTIONAL"


EMPTY_OPTIONAL = EmptyOptional()

Converter = Callable[["NodeContext"], Sequence["Value | None"]]
CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    """Register the decorated function as the converter of ``op_types`` (default domain); the registered
    converter first validates the node's attributes (``attributes.py``), so ``fn`` sees schema-valid ones."""

    def register(fn: Converter) -> Converter:
        @functools.wraps(fn)
        def validated(ctx: NodeContext) -> Sequence[Value | None]:
            ctx.check_attributes()
            return fn(ctx)

        for op_type in op_types:
            if op_type in CONVERTERS:
                raise ValueError(f"ONNX op {op_type} has two converters")
            CONVERTERS[op_type] = validated
        return fn

    return register


def onnx_dtype(elem_type: int, where: str) -> DType:
    """The DType of an ONNX tensor element type; OnnxImportError for types needlec lacks."""
    name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() \
        else str(elem_type)
    try:
        return DType.from_numpy(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError, NeedlecError):
        raise OnnxImportError(f"{where}: element type {name} is not supported by needlec") from None


@dataclass
class NodeContext:
    """One ONNX node being converted, with access to the importer's values."""

    node: onnx.NodeProto
    opset: int
    importer: Importer

    # -- identity -------------------------------------------------------------------
    @property
    def where(self) -> str:
        name = self.node.name or (self.node.output[0] if self.node.output else "?")
        return f"node {name!r} ({self.node.op_type}, opset {self.opset})"

    def error(self, message: str) -> OnnxImportError:
        return OnnxImportError(f"{self.where}: {message}")

    # -- inputs ---------------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        """Inputs given, trailing empty optional inputs excluded."""
        names = list(self.node.input)
        while names and not names[-1]:
            names.pop()
        return len(names)

    @property
    def num_outputs(self) -> int:
        return len(self.node.output)

    def has_input(self, i: int) -> bool:
        return i < len(self.node.input) and bool(self.node.input[i])

    def has_output(self, i: int) -> bool:
        return i < len(self.node.output) and bool(self.node.output[i])

    def input(self, i: int) -> Value:
        """Input ``i`` as a graph tensor value (error if absent or not a tensor)."""
        if not self.has_input(i):
            raise self.error(f"input {i} is required but missing")
        value = self.importer.lookup(self.node.input[i], self.where)
        if not isinstance(value, Value):
            kind = "a sequence" if isinstance(value, list) else "an empty optional"
            raise self.error(f"input {i} ({self.node.input[i]!r}) is {kind}, expected a tensor")
        return value

    def optional_input(self, i: int) -> Value | None:
        return self.input(i) if self.has_input(i) else None

    def inputs(self) -> list[Value]:
        """Every given input as a tensor value (optional empty inputs skipped)."""
        return [self.input(i) for i in range(len(self.node.input)) if self.has_input(i)]

    def raw_input(self, i: int) -> Any:
        """Input ``i`` as the importer holds it (a tensor value or a list of them for sequences)."""
        return self.importer.lookup(self.node.input[i], self.where)

    def const(self, i: int) -> np.ndarray | None:
        """Input ``i``'s data when it is known at compile time, else None."""
        return self.importer.fold(self.input(i)) if self.has_input(i) else None

    def require_const(self, i: int, what: str) -> np.ndarray:
        """Input ``i``'s compile-time data; DynamicValueError saying ``what`` it is otherwise."""
        data = self.const(i)
        if data is None:
            raise self.dynamic_error(f"input {i} ({what}) must be known at compile time; it is computed from "
                                     "graph inputs (dynamic shapes and data-dependent values are not supported)",
                                     self.input(i))
        return data

    def dynamic_error(self, message: str, *values: Any) -> DynamicValueError:
        """DynamicValueError naming this node and the graph inputs ``values`` (bindings) are computed from."""
        return DynamicValueError(f"{self.where}: {message}", self.importer.inputs_of(values))

    # -- attributes -------------------------------------------------------------------
    def check_attributes(self) -> None:
        """OnnxImportError naming the first attribute that the op's schema or value rules reject."""
        first = self.raw_input(0) if self.has_input(0) else None
        problem = attribute_error(self.node, self.opset, first)
        if problem is not None:
            raise self.error(problem)

    def attr(self, name: str, default: Any = _REQUIRED) -> Any:
        """Attribute ``name`` as a Python value (tensors as NumPy arrays, graphs as GraphProto)."""
        for attribute in self.node.attribute:
            if attribute.name == name:
                value = onnx.helper.get_attribute_value(attribute)
                if isinstance(value, onnx.TensorProto):
                    return onnx.numpy_helper.to_array(value)
                if isinstance(value, bytes):
                    return value.decode("utf-8")
                if isinstance(value, list) and value and isinstance(value[0], bytes):
                    return [v.decode("utf-8") for v in value]
                return value
        if default is _REQUIRED:
            raise self.error(f"required attribute {name!r} is missing")
        return default

    # -- building -------------------------------------------------------------------
    def add(self, op: str, *inputs: Value, **attrs: Any) -> Value:
        """Append a primitive node (single output); shape errors name this ONNX node."""
        return self.add_node(op, *inputs, **attrs)[0]

    def add_node(self, op: str, *inputs: Value, **attrs: Any) -> list[Value]:
        try:
            return self.importer.graph.add_node(op, list(inputs), attrs).outputs
        except NeedlecError as exc:
            raise self.error(str(exc)) from None

    def constant(self, data: Any, dtype: DType | None = None) -> Value:
        """A graph constant holding ``data`` (in ``dtype`` if given)."""
        array = np.asarray(data, dtype.np if dtype is not None else None)
        return self.importer.graph.add_constant(array, "c")

    def scalar(self, value: Any, like: Value) -> Value:
        """A scalar constant in ``like``'s dtype."""
        return self.constant(np.asarray(value).astype(like.dtype.np))
