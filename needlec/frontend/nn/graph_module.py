"""``GraphModule``: any graph (imported from ONNX, parsed from IR text) as a trainable Module.

Its float constants with more than one element become ``Parameter``s (named
like the constants, with ``.`` replaced by ``_`` so module paths stay
unambiguous); the rest stay constants. ``forward`` inlines the graph into the
active trace, so a GraphModule composes with losses, optimizers and
``compile_training_step`` like any hand-written Module.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

from needlec.compiler.ir.graph import Graph, Value
from needlec.errors import NeedlecError
from needlec.frontend.nn.module import Module, Parameter
from needlec.frontend.tensor import Tensor, active_context, as_tensor


def is_weight(value: Value) -> bool:
    """The default choice of trainable constants: float tensors with more than one element."""
    return value.dtype.is_float and value.type.size > 1


class GraphModule(Module):
    """A Module computing ``graph``; ``trainable`` picks the constants that become Parameters."""

    graph: Graph
    _parameter_of: dict[int, str]  # id of a constant of ``graph`` -> the name of its Parameter

    def __init__(self, graph: Graph, trainable: Callable[[Value], bool] = is_weight) -> None:
        super().__init__()
        object.__setattr__(self, "graph", graph)
        object.__setattr__(self, "_parameter_of", {})
        for value in graph.constants:
            if trainable(value):
                name = value.name.replace(".", "_")
                if name in self._parameters:
                    raise NeedlecError(f"GraphModule: constants %{value.name} and another both map to "
                                       f"parameter name {name!r}")
                assert value.data is not None  # a constant holds its data
                setattr(self, name, Parameter(value.data.copy()))
                self._parameter_of[id(value)] = name

    def forward(self, *inputs: Any) -> Any:
        graph = self.graph
        if len(inputs) != len(graph.inputs):
            raise NeedlecError(f"GraphModule({graph.name}): expected {len(graph.inputs)} input(s), "
                               f"found {len(inputs)}")
        target = active_context(f"GraphModule({graph.name})").graph
        env: dict[int, Value] = {}
        for value, given in zip(graph.inputs, inputs):
            tensor = as_tensor(given, target, f"GraphModule({graph.name})")
            if tensor.value.type.contiguous() != value.type.contiguous():
                raise NeedlecError(f"GraphModule({graph.name}): input %{value.name} expected {value.type}, "
                                   f"found {tensor.value.type}")
            env[id(value)] = tensor.value
        for value in graph.constants:
            name = self._parameter_of.get(id(value))
            if name is not None:
                env[id(value)] = getattr(self, name).traced().value
            else:
                assert value.data is not None  # a constant holds its data
                env[id(value)] = target.add_constant(value.data, value.name)
        for node in graph.nodes:
            copy = target.add_node(node.op, [env[id(v)] for v in node.inputs], node.attrs, origin=node.origin)
            for old, new in zip(node.outputs, copy.outputs):
                env[id(old)] = new
        outputs = [Tensor(env[id(v)], target) for v in graph.outputs]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)
