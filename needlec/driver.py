"""The driver: load a model -> run the target's passes -> build, one assembly for the API, the CLI and training.

Loading (``to_graph``, ``load_model_file``): a ``Graph``, an ONNX model or
``.onnx`` file (``input_shapes`` fixes its dynamic dimensions; CLI:
``--input-shape NAME=1x3x224x224``), a Python model file defining
``model`` (an ``nn.Module`` or a function) and ``example_inputs`` (a tuple of
NumPy arrays), which is traced with them, a ``.nir`` graph-IR text file, or a
callable/Module plus example inputs.

Compiling (``run_pipeline``): the pass table of a ``Target`` with the
instrumentation the options ask for plus a ``Progress``.

Building (``render``, ``jit_compile``, ``write_artifact``): the target's code
generator renders the program as an artifact; the build step
(``needlec/build``) turns it into a loaded module, a shared library, an
object or an executable, which the runtime runs.
"""
from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from needlec.abi import DEFAULT_PREFIX, check_prefix
from needlec.build.jit import jit_load
from needlec.build.llvm import llvm_text
from needlec.build.native import emit_object, export_executable, export_shared
from needlec.compiler.codegen.cpu import CpuArtifact, render
from needlec.compiler.ir.graph import Graph
from needlec.compiler.ir.parser import parse_graph
from needlec.compiler.ir.printer import print_graph
from needlec.compiler.loops.ir import Program
from needlec.compiler.loops.printer import print_program
from needlec.compiler.instrument import Stage, no_stage
from needlec.compiler.pipeline import Pipeline, PipelineOptions, PipelineResult
from needlec.compiler.target import Target
from needlec.errors import NeedlecError
from needlec.frontend.nn import GraphModule, Module
from needlec.frontend.onnx import from_onnx
from needlec.frontend.trace import trace
from needlec.progress import Progress
from needlec.runtime.native import NativeModel
from needlec.torch_bridge import from_torch, is_torch_module

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
        graph = from_onnx(path, input_shapes, size_budget)
        graph.name = os.path.splitext(os.path.basename(path))[0]  # like Python model files: named by the file
        return graph
    if input_shapes:
        raise NeedlecError(f"input shapes apply to ONNX models only; {path} fixes its own shapes")
    if suffix == ".nir":
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


def _is_onnx_model(model: Any) -> bool:
    """Whether ``model`` is an ``onnx.ModelProto`` (onnx is loaded already if it is one)."""
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)


def to_graph(model: Any, example_inputs: Sequence[Any] | np.ndarray | None = None,
             input_shapes: Mapping[str, Sequence[int]] | None = None, size_budget: int | None = None) -> Graph:
    """A graph from a ``Graph``, an ONNX model or model file, or a traceable callable/Module plus example inputs.

    ``size_budget`` caps the elements of any one tensor of an ONNX model (``frontend/onnx/budget.py``).
    A bare ``np.ndarray`` as ``example_inputs`` is one input (not a sequence of rows).
    """
    if isinstance(model, (str, os.PathLike)):
        _refuse_example_inputs(model, example_inputs)
        return load_model_file(os.fspath(model), input_shapes, size_budget)
    if _is_onnx_model(model) or isinstance(model, (bytes, bytearray)):
        _refuse_example_inputs(model, example_inputs)
        return from_onnx(model, input_shapes, size_budget)
    if input_shapes is not None:
        raise NeedlecError(f"input_shapes apply to ONNX models only, not to a {type(model).__name__}")
    if isinstance(model, Graph):
        return model
    if is_torch_module(model):
        return from_torch(model, example_inputs)
    if callable(model):
        if example_inputs is None:
            raise NeedlecError("compiling a Python function or Module needs example_inputs")
        if isinstance(example_inputs, np.ndarray):
            example_inputs = [example_inputs]
        return trace(model, *[np.asarray(x) for x in example_inputs])
    raise NeedlecError(f"cannot compile a {type(model).__name__}: expected a Graph, an ONNX model or model file "
                       "path, a function or an nn.Module")


def _refuse_example_inputs(model: Any, example_inputs: object) -> None:
    if example_inputs is not None:
        what = model if isinstance(model, (str, os.PathLike)) else "an ONNX model"
        raise NeedlecError(f"example_inputs apply to functions and Modules; {what} fixes its own input types "
                           "(use input_shapes for an ONNX model's dynamic dimensions)")


def run_pipeline(graph: Graph, target: Target, progress: Progress, **options: Any) -> PipelineResult:
    """Run ``target``'s pass table over ``graph`` with ``PipelineOptions(**options)``; each pass is a progress stage."""
    pipeline = Pipeline(PipelineOptions(**options), target, instruments=[progress])
    progress.expect(len(pipeline.passes))
    return pipeline.run(graph)


def jit_compile(program: Program, target: Target, stage: Stage = no_stage) -> NativeModel:
    """Render ``program`` for ``target`` and load it into this process (ArtifactError if this CPU cannot run it)."""
    with stage("render"):
        artifact = render(program, target)
    return jit_load(artifact, stage)


EMITS = ("so", "exe", "obj", "llvm", "ir", "loops")
# the stages each build reports after the pipeline ("jit": jit_compile; "so", "exe", "obj" with a weights object):
# with the pass count they size the progress bar
BUILD_STAGES = {"jit": 4, "so": 7, "exe": 7, "obj": 8, "llvm": 2, "ir": 0, "loops": 0}


def write_artifact(result: PipelineResult, target: Target, emit: str, path: str, stage: Stage = no_stage,
                   name: str = DEFAULT_PREFIX) -> None:
    """Write ``result`` to ``path`` as ``emit``: shared library, executable, object, LLVM IR, graph or loop IR.

    ``name`` is the C symbol prefix of native artifacts (``<name>_run``, ...: ``needlec/abi.py``).
    """
    if emit not in EMITS:
        raise NeedlecError(f"unknown output kind {emit!r}; expected one of {', '.join(EMITS)}")
    check_prefix(name)
    if emit in ("ir", "loops"):
        text = print_graph(result.graph) if emit == "ir" else print_program(result.program)
        with open(path, "w") as f:
            f.write(text)
        return
    with stage("render"):
        artifact: CpuArtifact = render(result.program, target, name)
    if emit == "so":
        export_shared(artifact, path, stage)
    elif emit == "exe":
        export_executable(artifact, path, stage)
    elif emit == "obj":
        data = emit_object(artifact, stage)
        with open(path, "wb") as f:
            f.write(data)
    else:
        with stage("llvm"):
            text = llvm_text(artifact)
        with open(path, "w") as f:
            f.write(text)


def optimized_llvm_ir(program: Program, target: Target, stage: Stage = no_stage) -> str:
    """The optimised LLVM IR text of ``program`` for ``target``."""
    with stage("llvm"):
        return llvm_text(render(program, target))
