"""``onnx.backend.base.Backend`` for needlec, so standard ONNX tooling (and the conformance suite) can drive it.

``prepare`` imports and compiles a model for the CPU; the returned rep's
``run`` takes inputs in graph-input order (or a dict by name) and returns the
outputs. needlec compiles static shapes, so a model whose shapes depend on
the *values* of some inputs (Reshape's shape, TopK's K, Loop's trip count
given as graph inputs) is compiled at ``run`` time, specialised on the values
of exactly those inputs (the importer's ``DynamicValueError`` names them), and
cached per distinct value. Sequence inputs are passed element by element and
sequence outputs regrouped into lists.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, namedtupledict

from needlec.api import Compiled, compile
from needlec.frontend.onnx.context import DynamicValueError, OnnxImportError
from needlec.frontend.onnx.importer import Importer
from needlec.frontend.onnx.loader import load_model


def _as_array(x: Any) -> Any:
    """Run-time data as NumPy (TensorProto converted; sequences element by element; None kept)."""
    if isinstance(x, onnx.TensorProto):
        return onnx.numpy_helper.to_array(x)
    if isinstance(x, (list, tuple)):
        return [_as_array(item) for item in x]
    return None if x is None else np.asarray(x)


def _key(x: Any) -> Hashable:
    if x is None:
        return None
    if isinstance(x, list):
        return tuple(_key(item) for item in x)
    return (x.dtype.str, x.shape, x.tobytes())


class NeedlecRep(BackendRep):
    """An ONNX model compiled (or, for value-dependent shapes, compiled per distinct specialising value)."""

    def __init__(self, model: onnx.ModelProto, input_shapes: dict[str, Any] | None = None,
                 cpu: str = "host") -> None:
        self.model = model
        self.cpu = cpu
        self.input_shapes = dict(input_shapes or {})
        initializers = {t.name for t in model.graph.initializer}
        self.inputs = [i for i in model.graph.input if i.name not in initializers]
        self.output_names = [o.name for o in model.graph.output]
        self.specialize: set[str] = set()
        # tensor inputs with symbolic dimensions take their shapes from the arrays given at run time
        self.symbolic = {i.name for i in self.inputs if i.type.HasField("tensor_type")
                         and any(not d.HasField("dim_value") for d in i.type.tensor_type.shape.dim)}
        self._cache: dict[Hashable, tuple[Compiled, Importer]] = {}
        if all(i.type.WhichOneof("value") == "tensor_type" for i in self.inputs):
            try:  # compile now, so prepare() reports import errors; value-dependent models wait for run()
                self._compiled({})
            except DynamicValueError as exc:
                self.specialize |= set(exc.inputs)

    def _compiled(self, given: dict[str, Any]) -> tuple[Compiled, Importer]:
        shapes = dict(self.input_shapes)
        for name, value in given.items():
            if value is None or isinstance(value, list):
                shapes[name] = None if value is None else [item.shape for item in value]
            elif name in self.symbolic and name not in self.input_shapes:
                shapes[name] = value.shape
        while True:
            values = {name: given[name] for name in self.specialize if name in given}
            key = (tuple(sorted((n, repr(s)) for n, s in shapes.items())),
                   tuple(sorted((n, _key(v)) for n, v in values.items())))
            if key in self._cache:
                return self._cache[key]
            importer = Importer(self.model, shapes, values)
            try:
                graph = importer.run()
            except DynamicValueError as exc:
                new = set(exc.inputs) - self.specialize
                if not new or not new <= set(given):
                    raise
                self.specialize |= new
                continue
            self._cache[key] = (compile(graph, cpu=self.cpu), importer)
            return self._cache[key]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        names = [i.name for i in self.inputs]
        if isinstance(inputs, dict):
            given = {name: _as_array(value) for name, value in inputs.items()}
        else:
            items = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            if len(items) > len(names):
                raise OnnxImportError(f"model takes {len(names)} input(s), given {len(items)}")
            given = {name: _as_array(value) for name, value in zip(names, items)}
        compiled, importer = self._compiled(given)
        feed: list[np.ndarray] = []
        for name in names:
            if name in self.specialize or name not in given:
                continue
            value = given[name]
            feed.extend(value if isinstance(value, list) else [] if value is None else [value])
        results = compiled(*feed)
        flat = list(results) if isinstance(results, tuple) else [results]
        outputs: list[Any] = []
        for kind, count in importer.output_layout:
            taken, flat = flat[:count], flat[count:]
            outputs.append(taken[0] if kind == "tensor" else taken if kind == "sequence" else None)
        return namedtupledict("Outputs", self.output_names)(*outputs)


class NeedlecBackend(Backend):
    """Compile ONNX models and nodes with needlec on the CPU."""

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> NeedlecRep:
        proto = load_model(model)
        super().prepare(proto, device, **kwargs)
        return NeedlecRep(proto, kwargs.get("input_shapes"), kwargs.get("cpu", "host"))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> Any:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple[Any, Any]] | None = None, **kwargs: Any) -> Any:
        arrays = [np.asarray(_as_array(x)) for x in inputs]
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
