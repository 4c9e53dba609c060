"""Reading ONNX models: files, bytes or protos; external data confined to the model's folder.

Weights stored outside the model file (``external data``) are read only from
inside the model's own folder: a location that is absolute, climbs out with
``..``, or resolves (through symlinks) outside the folder is refused, and so
is an offset or length that is not a byte count, disagrees with the tensor's
shape or lies past the end of the file. Every model is validated before it is
imported (``validation.py``: needlec's structural checks, the size budget,
onnx's checker and strict shape inference). Models older than opset 7 are
upgraded with onnx's version converter.
"""
from __future__ import annotations

import math
import os
from typing import Any

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import uses_external_data

from needlec.frontend.onnx.budget import SizeBudget
from needlec.frontend.onnx.context import OnnxImportError
from needlec.frontend.onnx.validation import check_structure, check_with_onnx, subgraphs

MIN_OPSET = 7
PACKED_TYPES = frozenset({onnx.TensorProto.INT4, onnx.TensorProto.UINT4, onnx.TensorProto.FLOAT4E2M1})


def load_model(source: Any, size_budget: int | SizeBudget | None = None) -> onnx.ModelProto:
    """A validated ``ModelProto`` from a path, bytes or a ``ModelProto``.

    ``size_budget`` caps the elements of any one tensor (see ``budget.py``); None keeps the default.
    """
    budget = SizeBudget.of(size_budget)
    path = None
    if isinstance(source, onnx.ModelProto):
        model, base_dir = source, None
    elif isinstance(source, (bytes, bytearray)):
        model, base_dir = _parse(bytes(source), "<bytes>"), None
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise OnnxImportError(f"cannot read {path}: no such file")
        if os.path.isdir(path):
            raise OnnxImportError(f"cannot read {path}: it is a directory, expected an .onnx file")
        with open(path, "rb") as f:
            model = _parse(f.read(), path)
        base_dir = os.path.dirname(os.path.abspath(path))
    else:
        raise OnnxImportError(f"cannot import a {type(source).__name__}: expected a path, bytes or onnx.ModelProto")
    default_opset(model)  # refuses a model that does not say which opset it uses
    check_structure(model, budget)
    _load_external_data(model, base_dir, budget)
    try:
        check_with_onnx(model, path, budget)
    except OnnxImportError as invalid:
        _raise_converter_error(_upgrade(model), budget)
        raise invalid
    return _upgrade(model)


def _raise_converter_error(model: onnx.ModelProto, budget: SizeBudget) -> None:
    """Raise the error needlec's converters give for ``model`` (which onnx's checks refused) when it names a node:
    it says which node, op and opset, where onnx's message often does not. Otherwise return."""
    from needlec.errors import NeedlecError
    from needlec.frontend.onnx.context import DynamicValueError
    from needlec.frontend.onnx.importer import Importer  # the importer imports this module

    try:
        Importer(model, size_budget=budget).run()
    except DynamicValueError:
        return
    except OnnxImportError as exc:
        if str(exc).startswith("node ") and len(str(exc).splitlines()) == 1:
            raise exc from None
    except NeedlecError:  # an internal error in a converter: onnx's message is the better one
        return


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OnnxImportError(f"{where} is not an ONNX model (the protobuf does not parse: {exc})") from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise OnnxImportError(f"{where} is not an ONNX model (no IR version or no graph; truncated or another format)")
    _check_names(model.graph, where)
    return model


def _check_names(graph: onnx.GraphProto, where: str) -> None:
    """Protobuf hands back names that are not valid UTF-8 as bytes: refuse them with a clear error."""
    names = [graph.name, *(v.name for v in [*graph.input, *graph.output, *graph.value_info]),
             *(t.name for t in graph.initializer)]
    for node in graph.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output]
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                _check_names(sub, where)
    for name in names:
        if not isinstance(name, str):
            raise OnnxImportError(f"{where}: name {name!r} is not valid UTF-8")


def _tensors_with_external_data(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    tensors: list[onnx.TensorProto] = []

    def visit(graph: onnx.GraphProto) -> None:
        tensors.extend(t for t in graph.initializer if uses_external_data(t))
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t") and uses_external_data(attribute.t):
                    tensors.append(attribute.t)
                for sub in [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs:
                    visit(sub)

    visit(model.graph)
    return tensors


def safe_external_path(base_dir: str, location: str, tensor: str) -> str:
    """The file ``location`` names, checked to lie inside ``base_dir``; OnnxImportError otherwise."""
    if "\0" in location:  # why: no file name holds a NUL byte (the OS would refuse it with ValueError)
        raise OnnxImportError(f"tensor {tensor!r}: external data location {location!r} contains a NUL byte")
    if os.path.isabs(location) or location.startswith(("/", "\\")):
        raise OnnxImportError(f"tensor {tensor!r}: external data location {location!r} is an absolute path; "
                              "only files inside the model's folder are read")
    if ".." in location.replace("\\", "/").split("/"):
        raise OnnxImportError(f"tensor {tensor!r}: external data location {location!r} leaves the model's folder")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root:
        raise OnnxImportError(f"tensor {tensor!r}: external data location {location!r} resolves outside the "
                              f"model's folder (through a symlink)")
    if not os.path.isfile(path):
        raise OnnxImportError(f"tensor {tensor!r}: external data file {location!r} does not exist")
    return path


def _byte_count(tensor: onnx.TensorProto, key: str, text: str) -> int:
    """External data field ``key`` as a byte count; OnnxImportError unless it is a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise OnnxImportError(f"tensor {tensor.name!r}: external data {key} {text!r} is not a byte count "
                              "(expected an integer >= 0)")
    return value


def _expected_bytes(tensor: onnx.TensorProto) -> int | None:
    """The bytes ``tensor``'s shape and element type need, when its elements have a fixed size."""
    if tensor.data_type in PACKED_TYPES or tensor.data_type == onnx.TensorProto.STRING:
        return None
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        return None
    return math.prod(tensor.dims) * itemsize


def _load_external_data(model: onnx.ModelProto, base_dir: str | None, budget: SizeBudget) -> None:
    for tensor in _tensors_with_external_data(model):
        fields = {entry.key: entry.value for entry in tensor.external_data}
        location = fields.get("location", "")
        if not location:
            raise OnnxImportError(f"tensor {tensor.name!r} is stored externally but names no location")
        if base_dir is None:
            raise OnnxImportError(f"tensor {tensor.name!r} keeps its data in {location!r}; load the model "
                                  "from its file path so the data can be found")
        path = safe_external_path(base_dir, location, tensor.name)
        offset = _byte_count(tensor, "offset", fields.get("offset", "0"))
        expected = _expected_bytes(tensor)
        length = _byte_count(tensor, "length", fields["length"]) if "length" in fields else expected
        if length is not None and expected is not None and length != expected:
            raise OnnxImportError(f"tensor {tensor.name!r}: external data length is {length} bytes, its shape "
                                  f"{list(tensor.dims)} needs {expected} bytes")
        available = max(0, os.path.getsize(path) - offset)
        length = available if length is None else length
        budget.check_elements(length, 1, f"tensor {tensor.name!r}", "its external data")
        if length > available:
            raise OnnxImportError(f"tensor {tensor.name!r}: external data file {location!r} is truncated "
                                  f"(expected {length} bytes, found {available})")
        with open(path, "rb") as f:
            f.seek(offset)
            tensor.raw_data = f.read(length)
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def default_opset(model: onnx.ModelProto) -> int:
    """The model's opset of the default (ai.onnx) domain; OnnxImportError when it imports none."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            newest = onnx.defs.onnx_opset_version()
            if not 1 <= entry.version <= newest:  # why: what an op means in an unknown opset is unknown (as ORT)
                raise OnnxImportError(f"the model imports opset {entry.version} of the default domain; this "
                                      f"installation knows opsets 1 to {newest}")
            return entry.version
    if model.ir_version < 3 and not model.opset_import:  # before IR 3 opsets were not recorded: opset 1
        return 1
    if not _uses_default_domain(model.graph):  # e.g. only ai.onnx.preview.training ops: no default ops to version
        return MIN_OPSET
    raise OnnxImportError("the model imports no opset of the default domain ('' or 'ai.onnx'), so which version "
                          "of each op it means is unknown; add an opset_import entry")


def _uses_default_domain(graph: onnx.GraphProto) -> bool:
    return any(node.domain in ("", "ai.onnx") or any(_uses_default_domain(sub) for sub in subgraphs(node))
               for node in graph.node)


def _upgrade(model: onnx.ModelProto) -> onnx.ModelProto:
    if default_opset(model) >= MIN_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # the converter raises several unrelated types
        raise OnnxImportError(f"model uses opset {default_opset(model)}; upgrading it to opset {MIN_OPSET} "
                              f"failed: {exc}") from None
