"""Loading models named on the command line: ONNX files, Python model files and IR text files.

An ``.onnx`` file is imported (``needlec.from_onnx``); ``input_shapes`` fixes
its dynamic dimensions (CLI: ``--input-shape NAME=1x3x224x224``). A Python
model file defines two module-level names: ``model`` (an ``nn.Module`` or a
function) and ``example_inputs`` (a tuple of NumPy arrays); it is traced with
them. A ``.nir`` file holds graph IR text.
"""
from __future__ import annotations

import os
import runpy
from typing import Any, Mapping, Sequence

import numpy as np

from needlec.compiler.ir.graph import Graph
from needlec.errors import NeedlecError
from needlec.frontend.nn import GraphModule, Module

MODEL_SUFFIXES = (".onnx", ".py", ".nir")


def load_model_file(path: str, input_shapes: Mapping[str, Sequence[int]] | None = None,
                    size_budget: int | None = None) -> Graph:
    """The graph a model file describes (imported, traced or parsed); ``input_shapes`` and ``size_budget``
    (the most elements of one tensor, ``frontend/onnx/budget.py``) are for ONNX files."""
    if not os.path.exists(path):
        raise NeedlecError(f"model file {path} does not exist")
    if os.path.isdir(path):
        raise NeedlecError(f"model path {path} is a directory, expected a file")
    suffix = os.path.splitext(path)[1]
    if suffix == ".onnx":
        from needlec.frontend.onnx import from_onnx

        graph = from_onnx(path, input_shapes, size_budget)
        graph.name = os.path.splitext(os.path.basename(path))[0]  # like Python model files: named by the file
        return graph
    if input_shapes:
        raise NeedlecError(f"input shapes apply to ONNX models only; {path} fixes its own shapes")
    if suffix == ".nir":
        from needlec.compiler.ir.parser import parse_graph

        with open(path, encoding="utf-8") as f:
            return parse_graph(f.read())
    if suffix == ".py":
        return _trace_python_model(path)
    raise NeedlecError(f"cannot read model {path}: unsupported file type {suffix or '(none)'}; "
                       f"expected one of {', '.join(MODEL_SUFFIXES)}")


def _run_python_model(path: str) -> tuple[Any, tuple[np.ndarray, ...]]:
    """The ``model`` and ``example_inputs`` a Python model file defines."""
    try:
        namespace: dict[str, Any] = runpy.run_path(path, run_name="needlec_model")
    except NeedlecError:
        raise
    except Exception as exc:
        raise NeedlecError(f"running model file {path} failed: {type(exc).__name__}: {exc}") from exc
    missing = [n for n in ("model", "example_inputs") if n not in namespace]
    if missing:
        raise NeedlecError(f"model file {path} must define {' and '.join(missing)} "
                           "(a Module or function, and a tuple of example NumPy arrays)")
    return namespace["model"], tuple(np.asarray(x) for x in namespace["example_inputs"])


def _trace_python_model(path: str) -> Graph:
    from needlec.api import to_graph

    graph = to_graph(*_run_python_model(path))
    graph.name = os.path.splitext(os.path.basename(path))[0]
    return graph


def load_trainable_model(path: str, input_shapes: Mapping[str, Sequence[int]] | None = None,
                         size_budget: int | None = None) -> tuple[Module, tuple[np.ndarray, ...]]:
    """A Module and example inputs for training: a Python file's Module, or any other model as a GraphModule.

    A GraphModule trains the model's float weight constants; its example
    inputs are zeros of the graph's input types.
    """
    if os.path.splitext(path)[1] == ".py" and os.path.exists(path):
        model, example_inputs = _run_python_model(path)
        if not isinstance(model, Module):
            raise NeedlecError(f"model file {path}: training needs `model` to be an nn.Module, "
                               f"found {type(model).__name__}")
        return model, example_inputs
    graph = load_model_file(path, input_shapes, size_budget)
    return GraphModule(graph), tuple(np.zeros(v.shape, v.dtype.np) for v in graph.inputs)
