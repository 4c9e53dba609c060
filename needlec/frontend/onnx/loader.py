"""Reading ONNX models: files, bytes or protos; external data confined to the model's folder.

Weights stored outside the model file (``external data``) are read only from
inside the model's own folder: a location that is absolute, climbs out with
``..``, or resolves (through symlinks) outside the folder is refused. Models
older than opset 7 are upgraded with onnx's version converter.
"""
from __future__ import annotations

import os
from typing import Any

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from needlec.frontend.onnx.context import OnnxImportError

MIN_OPSET = 7


def load_model(source: Any) -> onnx.ModelProto:
    """A validated ``ModelProto`` from a path, bytes or a ``ModelProto``."""
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
    _load_external_data(model, base_dir)
    return _upgrade(model)


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
    tensors = []

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


def _load_external_data(model: onnx.ModelProto, base_dir: str | None) -> None:
    for tensor in _tensors_with_external_data(model):
        info = ExternalDataInfo(tensor)
        if base_dir is None:
            raise OnnxImportError(f"tensor {tensor.name!r} keeps its data in {info.location!r}; load the model "
                                  "from its file path so the data can be found")
        path = safe_external_path(base_dir, info.location, tensor.name)
        with open(path, "rb") as f:
            if info.offset:
                f.seek(int(info.offset))
            data = f.read(int(info.length)) if info.length else f.read()
        if info.length and len(data) != int(info.length):
            raise OnnxImportError(f"tensor {tensor.name!r}: external data file {info.location!r} is truncated "
                                  f"(expected {info.length} bytes, found {len(data)})")
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def default_opset(model: onnx.ModelProto) -> int:
    """The model's opset of the default (ai.onnx) domain."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return MIN_OPSET


def _upgrade(model: onnx.ModelProto) -> onnx.ModelProto:
    if default_opset(model) >= MIN_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # the converter raises several unrelated types
        raise OnnxImportError(f"model uses opset {default_opset(model)}; upgrading it to opset {MIN_OPSET} "
                              f"failed: {exc}") from None
