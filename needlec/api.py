"""The public entry points: ``compile`` and ``load``.

``compile`` accepts a ``Graph``, a Python callable or ``nn.Module`` (traced
with ``example_inputs``), an ONNX ``ModelProto`` or serialized bytes, or a
model file path (``.onnx``, ``.py``, ``.nir``; ``input_shapes`` fixes an ONNX
model's dynamic dimensions), and returns a ``Compiled``: call it with NumPy
arrays, ``.export(path)`` it as a shared library, read its IR. A compilation
that runs for more than a couple of seconds reports its stages on standard
error (``progress``: see ``runtime/progress.py``).
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from needlec.compiler.codegen.target import CpuTarget
from needlec.compiler.ir.graph import Graph
from needlec.compiler.loops.ir import Program
from needlec.compiler.passes import PASSES
from needlec.compiler.pipeline import Pipeline, PipelineOptions, PipelineResult
from needlec.errors import NeedlecError
from needlec.runtime.cpu_check import check_cpu_features, missing_features
from needlec.runtime.jit import jit_compile
from needlec.runtime.library import export_shared, llvm_text, program_signature
from needlec.runtime.library import load as load_library
from needlec.runtime.header import c_header
from needlec.runtime.native import NativeModel
from needlec.runtime.progress import Progress

TARGETS = ("cpu",)


class Compiled:
    """A compiled graph for ``cpu`` (a ``CpuTarget``): callable on NumPy arrays, exportable as a shared library.

    Code built for a CPU whose features this host lacks is not loaded: it can
    be exported, and calling it raises ``ArtifactError`` naming the features.
    """

    def __init__(self, result: PipelineResult, cpu: CpuTarget, reporter: Progress) -> None:
        self.graph = result.graph
        self.program = result.program
        self.timings = result.timings
        self.cpu = cpu
        self._loaded = jit_compile(result.program, cpu, reporter.stage) if not missing_features(cpu.features) \
            else None

    @property
    def _native(self) -> NativeModel:
        if self._loaded is None:  # built for features this host lacks: say which
            check_cpu_features(self.cpu.name, self.cpu.features, "the compiled code")
        assert self._loaded is not None
        return self._loaded

    @property
    def signature(self):  # type: ignore[no-untyped-def]
        return self._native.signature if self._loaded is not None else program_signature(self.program, self.cpu)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._native(*args, **kwargs)

    def get_variable(self, name: str) -> np.ndarray:
        """A copy of variable ``name``'s current value (parameters, optimizer state)."""
        return self._native.get_variable(name)

    def set_variable(self, name: str, value: np.ndarray) -> None:
        """Overwrite variable ``name`` (shape and dtype are checked)."""
        self._native.set_variable(name, value)

    def variables(self) -> dict[str, np.ndarray]:
        """Copies of every variable, by name."""
        return self._native.variables()

    def export(self, path: str, header: str | None = None) -> str:
        """Write a self-contained shared library (weights inside) to ``path``, optionally a C header.

        Variables start from their current values, so a stateful model (a
        training step) continues where this process left off.
        """
        export_shared(self._with_current_state(), self.cpu, path)
        if header is not None:
            with open(header, "w") as f:
                f.write(c_header(self.signature, os.path.basename(path)))
        return path

    def _with_current_state(self) -> Program:
        if self._loaded is None:  # never run here: the variables still hold their first values
            return self.program
        buffers = [name for name, where in self.program.storage.items() if where.kind == "variable"]
        current = self._native.variables()
        constants = dict(self.program.constants)
        for buffer, (name, _, _) in zip(buffers, self.program.variables):
            constants[buffer] = current[name]
        return replace(self.program, constants=constants)

    def llvm_ir(self) -> str:
        """The optimised LLVM IR text of the whole module."""
        return llvm_text(self.program, self.cpu)

    def __repr__(self) -> str:
        return repr(self._native).replace("NativeModel", "Compiled", 1)


def _is_onnx_model(model: Any) -> bool:
    """Whether ``model`` is an ``onnx.ModelProto`` (onnx is loaded already if it is one)."""
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)


def to_graph(model: Any, example_inputs: Sequence[Any] | None = None,
             input_shapes: Mapping[str, Sequence[int]] | None = None, size_budget: int | None = None) -> Graph:
    """A graph from a ``Graph``, an ONNX model or model file, or a traceable callable/Module plus example inputs.

    ``size_budget`` caps the elements of any one tensor of an ONNX model (``frontend/onnx/budget.py``).
    """
    if isinstance(model, (str, os.PathLike)):
        from needlec.models import load_model_file

        _refuse_example_inputs(model, example_inputs)
        return load_model_file(os.fspath(model), input_shapes, size_budget)
    if _is_onnx_model(model) or isinstance(model, (bytes, bytearray)):
        from needlec.frontend.onnx import from_onnx

        _refuse_example_inputs(model, example_inputs)
        return from_onnx(model, input_shapes, size_budget)
    if input_shapes is not None:
        raise NeedlecError(f"input_shapes apply to ONNX models only, not to a {type(model).__name__}")
    if isinstance(model, Graph):
        return model
    if callable(model):
        if example_inputs is None:
            raise NeedlecError("compiling a Python function or Module needs example_inputs")
        from needlec.frontend.trace import trace

        return trace(model, *[np.asarray(x) for x in example_inputs])
    raise NeedlecError(f"cannot compile a {type(model).__name__}: expected a Graph, an ONNX model or model file "
                       "path, a function or an nn.Module")


def _refuse_example_inputs(model: Any, example_inputs: Sequence[Any] | None) -> None:
    if example_inputs is not None:
        what = model if isinstance(model, (str, os.PathLike)) else "an ONNX model"
        raise NeedlecError(f"example_inputs apply to functions and Modules; {what} fixes its own input types "
                           "(use input_shapes for an ONNX model's dynamic dimensions)")


def run_pipeline(graph: Graph, progress: Progress, **options: Any) -> PipelineResult:
    """Run the pass table over ``graph`` with ``PipelineOptions(**options)``, reporting each pass to ``progress``."""
    if "print_after" in options:
        names = options["print_after"]
        options["print_after"] = frozenset([names] if isinstance(names, str) else names)
    return Pipeline(PipelineOptions(**options), progress.passes(PASSES)).run(graph)


def compile(model: Any, example_inputs: Sequence[Any] | None = None, target: str = "cpu", *, cpu: str = "host",
            input_shapes: Mapping[str, Sequence[int]] | None = None, progress: bool | None = None,
            size_budget: int | None = None, **options: Any) -> Compiled:
    """Compile ``model`` for ``target``; ``options`` are ``PipelineOptions`` fields.

    ``cpu`` names the CPU the code is for (``compiler/codegen/target.py``):
    ``host`` (default), a baseline such as ``x86-64-v2`` / ``x86-64-v3`` /
    ``x86-64-v4`` for portable artifacts, or a CPU name such as ``skylake``.

    ``input_shapes`` maps ONNX input names to static shapes; ``size_budget`` caps the elements of any one
    tensor of an ONNX model (default 2**31; unrolled loop steps: a 2048th of it); ``progress``
    reports each stage on standard error: ``True`` always, ``False`` never,
    ``None`` (default) once the compilation has taken more than a couple of seconds.
    """
    if target not in TARGETS:
        raise NeedlecError(f"unknown target {target!r}; available: {', '.join(TARGETS)}")
    cpu_target = CpuTarget.named(cpu)
    reporter = Progress.from_flag(progress)
    with reporter.stage("trace" if callable(model) and not isinstance(model, Graph) else "import"):
        graph = to_graph(model, example_inputs, input_shapes, size_budget)
    result = run_pipeline(graph, reporter, **options)
    return Compiled(result, cpu_target, reporter)


def load(path: str) -> NativeModel:
    """Load a shared library written by ``Compiled.export`` or ``needlec compile``."""
    return load_library(path)
