"""``onnx.backend.base.Backend`` for needlec, so standard ONNX tooling (and the conformance suite) can drive it.

``prepare`` imports and compiles a model for the CPU; the returned rep's
``run`` takes inputs in graph-input order (or a dict by name) and returns the
outputs as a tuple of NumPy arrays.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, namedtupledict

from needlec.api import Compiled, compile
from needlec.frontend.onnx.importer import from_onnx


class NeedlecRep(BackendRep):
    """A compiled ONNX model."""

    def __init__(self, compiled: Compiled, output_names: Sequence[str]) -> None:
        self.compiled = compiled
        self.output_names = list(output_names)

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            results = self.compiled(**inputs)
        else:
            arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            results = self.compiled(*arrays)
        results = results if isinstance(results, tuple) else (results,)
        return namedtupledict("Outputs", self.output_names)(*results)


class NeedlecBackend(Backend):
    """Compile ONNX models and nodes with needlec on the CPU."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> NeedlecRep:
        super().prepare(model, device, **kwargs)
        graph = from_onnx(model, kwargs.get("input_shapes"))
        return NeedlecRep(compile(graph), [o.name for o in model.graph.output])

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> Any:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple[Any, Any]] | None = None, **kwargs: Any) -> Any:
        arrays = [np.asarray(x) for x in inputs]
        graph_inputs = [onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(a.dtype),
                                                           a.shape)
                        for name, a in zip(node.input, arrays)]
        graph_outputs = [onnx.helper.make_empty_tensor_value_info(name) for name in node.output]
        graph = onnx.helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
        return cls.run_model(model, arrays, device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper() == "CPU"


prepare = NeedlecBackend.prepare
run_model = NeedlecBackend.run_model
run_node = NeedlecBackend.run_node
supports_device = NeedlecBackend.supports_device
