"""The public entry points: ``compile`` and ``load``.

``compile`` accepts a ``Graph``, a Python callable or ``nn.Module`` (traced
with ``example_inputs``), an ONNX ``ModelProto`` or serialized bytes, or a
model file path (``.onnx``, ``.py``, ``.nir``; ``input_shapes`` fixes an ONNX
model's dynamic dimensions), and returns a ``Compiled``: call it with NumPy
arrays, ``.export(path)`` it as a shared library, read its IR. A compilation
that runs for more than a couple of seconds reports its stages on standard
error (``progress``: see ``needlec/progress.py``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from needlec.abi import DEFAULT_PREFIX, check_prefix
from needlec.build.header import c_header
from needlec.compiler.codegen.cpu import signature_json
from needlec.compiler.ir.graph import Graph
from needlec.compiler.loops.ir import Program
from needlec.compiler.pipeline import PipelineResult
from needlec.compiler.target import Target
from needlec.driver import jit_compile, optimized_llvm_ir, run_pipeline, to_graph, write_artifact
from needlec.progress import Progress
from needlec.runtime.cpu_check import check_cpu_features, missing_features
from needlec.runtime.library import load as load_library
from needlec.runtime.native import NativeModel
from needlec.runtime.signature import Signature


class Compiled:
    """A graph compiled for ``target``: callable on NumPy arrays, exportable as a shared library.

    Code built for a CPU whose features this host lacks is not loaded: it can
    be exported, and calling it raises ``ArtifactError`` naming the features.
    """

    def __init__(self, result: PipelineResult, target: Target, reporter: Progress) -> None:
        self.graph = result.graph
        self.program = result.program
        self.timings = result.timings
        self.target = target
        self.cpu = target.cpu
        self._result = result
        self._loaded = jit_compile(result.program, target, reporter.stage) \
            if not missing_features(target.cpu.features) else None

    @property
    def _native(self) -> NativeModel:
        if self._loaded is None:  # built for features this host lacks: say which
            check_cpu_features(self.cpu.name, self.cpu.features, "the compiled code")
        assert self._loaded is not None
        return self._loaded

    @property
    def signature(self) -> Signature:
        """Inputs, outputs and variables (names, shapes, dtypes) and the CPU the code is for."""
        if self._loaded is not None:
            return self._native.signature
        return Signature.from_json(signature_json(self.program, self.target))

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

    def export(self, path: str, header: str | None = None, name: str = DEFAULT_PREFIX) -> str:
        """Write a self-contained shared library (weights inside) to ``path``, optionally a C header.

        ``name`` is the C symbol prefix (``<name>_run``, ``<name>_signature``, ...;
        default ``needlec``): give models linked into one program different names.
        Variables start from their current values, so a stateful model (a
        training step) continues where this process left off.
        """
        check_prefix(name)
        write_artifact(replace(self._result, program=self._with_current_state()), self.target, "so", path,
                       name=name)
        if header is not None:
            with open(header, "w") as f:
                f.write(c_header(self.signature, os.path.basename(path), name))
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
        return optimized_llvm_ir(self.program, self.target)

    def __repr__(self) -> str:
        return repr(self._native).replace("NativeModel", "Compiled", 1)


def compile(model: Any, example_inputs: Sequence[Any] | np.ndarray | None = None, target: str = "cpu", *,
            cpu: str = "host", input_shapes: Mapping[str, Sequence[int]] | None = None, progress: bool | None = None,
            size_budget: int | None = None, **options: Any) -> Compiled:
    """Compile ``model`` for ``target``; ``options`` are ``PipelineOptions`` fields.

    ``target`` names the backend (``cpu``); ``cpu`` names the CPU the code is for (``compiler/target.py``):
    ``host`` (default), a baseline such as ``x86-64-v2`` / ``x86-64-v3`` /
    ``x86-64-v4`` for portable artifacts, or a CPU name such as ``skylake``.

    ``input_shapes`` maps ONNX input names to static shapes; ``size_budget`` caps the elements of any one
    tensor of an ONNX model (default 2**31; unrolled loop steps: a 2048th of it); ``progress``
    reports each stage on standard error: ``True`` always, ``False`` never,
    ``None`` (default) once the compilation has taken more than a couple of seconds.
    """
    resolved = Target.named(target, cpu)
    reporter = Progress.from_flag(progress)
    with reporter.stage("trace" if callable(model) and not isinstance(model, Graph) else "import"):
        graph = to_graph(model, example_inputs, input_shapes, size_budget)
    result = run_pipeline(graph, resolved, reporter, **options)
    return Compiled(result, resolved, reporter)


def load(path: str) -> NativeModel:
    """Load a shared library written by ``Compiled.export`` or ``needlec compile``."""
    return load_library(path)
