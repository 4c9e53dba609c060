"""The public entry points: ``compile`` and ``load``.

``compile`` accepts a ``Graph``, a Python callable or ``nn.Module`` (traced
with ``example_inputs``), an ONNX ``ModelProto`` or serialized bytes, or a
model file path (``.onnx``, ``.py``, ``.nir``; ``input_shapes`` fixes an ONNX
model's dynamic dimensions), and returns a ``Compiled``: call it with NumPy
arrays, ``.export(path)`` it as a shared library, read its IR.

Shapes are specialised on demand, as ``torch.compile`` and ``jax.jit`` do: a
call with new input shapes or dtypes compiles (and keeps) another
specialisation when the model can be rebuilt for them (a traced callable is
traced again, an ONNX model re-imported with the new shapes for its dynamic
dimensions); a ``Graph`` or ``.nir`` file has one. Variables (a training
step's parameters and optimizer state) carry over from one specialisation to
the next. Without ``example_inputs`` a callable compiles at its first call, so
``compile`` decorates a function: ``@needlec.compile`` or
``@needlec.compile(progress=False)``. A compilation
that runs for more than a couple of seconds on a terminal shows a progress
bar on standard error (``progress``: see ``needlec/progress.py``); stages and
totals are also ``logging`` records, silent unless the application asks.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
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
from needlec.driver import BUILD_STAGES, jit_compile, optimized_llvm_ir, run_pipeline, to_graph, write_artifact
from needlec.errors import NeedlecError
from needlec.frontend.trace import trace
from needlec.progress import Progress
from needlec.runtime.cpu_check import check_cpu_features, missing_features
from needlec.runtime.library import load as load_library
from needlec.runtime.native import NativeModel
from needlec.runtime.profile import Profile
from needlec.runtime.signature import Signature
from needlec.torch_bridge import from_torch, is_torch_module

log = logging.getLogger(__name__)

MAX_SPECIALIZATIONS = 8  # compiled shapes kept per Compiled; the least recently used beyond it is dropped
ShapeKey = tuple[tuple[tuple[int, ...], str], ...]  # (shape, dtype name) of each input, in order
Rebuild = Callable[[Sequence[np.ndarray], Sequence[str] | None], Graph]  # the graph for inputs like these (names)


class Specialization:
    """One compiled shape of a model: its pipeline result and, where this host can run it, its loaded code."""

    def __init__(self, result: PipelineResult, target: Target, reporter: Progress) -> None:
        self.result = result
        self.target = target
        self.loaded = jit_compile(result.program, target, reporter.stage) \
            if not missing_features(target.cpu.features) else None

    @property
    def native(self) -> NativeModel:
        if self.loaded is None:  # built for features this host lacks: say which
            check_cpu_features(self.target.cpu.name, self.target.cpu.features, "the compiled code")
        assert self.loaded is not None
        return self.loaded

    @property
    def signature(self) -> Signature:
        if self.loaded is not None:
            return self.loaded.signature
        return Signature.from_json(signature_json(self.result.program, self.target))

    @property
    def key(self) -> ShapeKey:
        return tuple((spec.shape, np.dtype(spec.dtype).name) for spec in self.signature.inputs)


class Compiled:
    """A model compiled for ``target``: callable on NumPy arrays, exportable as a shared library.

    New input shapes compile a new specialisation where the model can be
    rebuilt for them (see the module docstring); ``graph``, ``program``,
    ``signature`` and ``export`` describe the one used last. Code built for a
    CPU whose features this host lacks is not loaded: it can be exported,
    and calling it raises ``ArtifactError`` naming the features.
    """

    def __init__(self, target: Target, rebuild: Rebuild | None, options: Mapping[str, Any],
                 first: Specialization | None = None, input_names: Sequence[str] | None = None) -> None:
        self.target = target
        self.cpu = target.cpu
        self._rebuild = rebuild
        self._options = dict(options)
        self._input_names = list(input_names) if input_names is not None else None
        self._threads: int | None = None  # set_num_threads's count, for specialisations compiled later
        self._specializations: OrderedDict[ShapeKey, Specialization] = OrderedDict()
        self._active: Specialization | None = None
        if first is not None:
            self._specializations[first.key] = self._active = first
            self._input_names = [spec.name for spec in first.signature.inputs]

    @property
    def _current(self) -> Specialization:
        if self._active is None:
            raise NeedlecError("this function is compiled at its first call (no example_inputs were given); "
                               "call it once, or pass example_inputs to needlec.compile")
        return self._active

    @property
    def graph(self) -> Graph:
        """The graph after the graph passes."""
        return self._current.result.graph

    @property
    def program(self) -> Program:
        """The loop-IR program the code was generated from."""
        return self._current.result.program

    @property
    def timings(self) -> list[tuple[str, float]]:
        """Seconds each pass took."""
        return list(self._current.result.timings)

    @property
    def signature(self) -> Signature:
        """Inputs, outputs and variables (names, shapes, dtypes) and the CPU the code is for."""
        return self._current.signature

    @property
    def shapes(self) -> list[ShapeKey]:
        """The input shapes and dtypes compiled so far, least recently used first."""
        return list(self._specializations)

    def set_num_threads(self, count: int) -> None:
        """Run parallel loops on ``count`` threads from now on, in every specialisation, present and future
        (0: the OpenMP runtime's default; without a call, ``NEEDLEC_NUM_THREADS`` else every core)."""
        if count < 0:
            raise NeedlecError(f"set_num_threads expects a count >= 0, found {count}")
        self._threads = count
        for spec in self._specializations.values():
            if spec.loaded is not None:
                spec.loaded.set_num_threads(count)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        arrays = self._bind(args, kwargs)
        wrong = [i for i, a in enumerate(arrays) if not isinstance(a, np.ndarray)]
        if self._active is not None and (wrong or len(arrays) != len(self._current.signature.inputs)):
            return self._current.native(*args, **kwargs)  # the runtime's message names the wrong argument
        if wrong:
            raise NeedlecError(f"input {wrong[0]} must be a numpy array, found {type(arrays[wrong[0]]).__name__}")
        key = tuple((tuple(a.shape), a.dtype.name) for a in arrays)
        chosen = self._specializations.get(key)
        if chosen is None and self._rebuild is None:
            return self._current.native(*args, **kwargs)  # the one specialisation names the mismatch
        if chosen is None:
            chosen = self._specialize(key, arrays)
        self._specializations.move_to_end(key)
        self._activate(chosen)
        return chosen.native(*arrays)

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[np.ndarray]:
        """The call's inputs in order (named ones placed by the input names), as arrays where they are arrays."""
        if not kwargs:
            return [np.asarray(a) if isinstance(a, (np.ndarray, np.generic)) else a for a in args]
        names = self._input_names
        if names is None:
            raise NeedlecError("pass the inputs positionally at the first call (the input names are not known yet)")
        given = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names or name in given:
                return self._current.native.signature.bind(args, dict(kwargs))  # the runtime's precise message
            given[name] = value
        if set(given) != set(names):
            return self._current.native.signature.bind(args, dict(kwargs))
        return [np.asarray(given[n]) if isinstance(given[n], (np.ndarray, np.generic)) else given[n] for n in names]

    def _specialize(self, key: ShapeKey, arrays: Sequence[np.ndarray]) -> Specialization:
        """Compile the model for inputs like ``arrays`` and keep it (dropping the least recently used)."""
        assert self._rebuild is not None
        described = ", ".join(f"{dtype}{list(shape)}" for shape, dtype in key)
        log.info("compiling a specialisation for inputs %s", described)
        with Progress(self._options.get("progress"), expected=1 + BUILD_STAGES["jit"]) as reporter:
            try:
                with reporter.stage("trace"):
                    graph = self._rebuild(arrays, self._input_names)
            except NeedlecError as exc:
                raise type(exc)(f"cannot compile for inputs {described}: {exc}") from None
            result = run_pipeline(graph, self.target, reporter, **self._pipeline_options())
            built = Specialization(result, self.target, reporter)
        if self._threads is not None and built.loaded is not None:
            built.loaded.set_num_threads(self._threads)
        self._specializations[key] = built
        if self._input_names is None:
            self._input_names = [spec.name for spec in built.signature.inputs]
        while len(self._specializations) > MAX_SPECIALIZATIONS:
            oldest = next(iter(self._specializations))
            if self._specializations[oldest] is self._active:
                self._specializations.move_to_end(oldest)
                continue
            del self._specializations[oldest]
        return built

    def _pipeline_options(self) -> dict[str, Any]:
        return {k: v for k, v in self._options.items() if k != "progress"}

    def _activate(self, chosen: Specialization) -> None:
        """Make ``chosen`` the one in use; its variables take the values of the one used before."""
        previous, self._active = self._active, chosen
        if previous is None or previous is chosen or previous.loaded is None:
            return
        for name, value in previous.native.variables().items():
            chosen.native.set_variable(name, value)

    def get_variable(self, name: str) -> np.ndarray:
        """A copy of variable ``name``'s current value (parameters, optimizer state)."""
        return self._current.native.get_variable(name)

    def set_variable(self, name: str, value: np.ndarray) -> None:
        """Overwrite variable ``name`` (shape and dtype are checked)."""
        self._current.native.set_variable(name, value)

    def variables(self) -> dict[str, np.ndarray]:
        """Copies of every variable, by name."""
        return self._current.native.variables()

    def profile(self, *args: Any, repeat: int = 10, trace: str | os.PathLike[str] | None = None,
                **kwargs: Any) -> Profile:
        """Time every kernel over ``repeat`` runs on these inputs; the ``Profile`` (print it: kernels by time).

        One untimed run comes first: it picks (or compiles) the specialisation for the inputs' shapes and warms
        the caches. ``trace`` is a path to write a Chrome trace-event JSON to (Perfetto, chrome://tracing).
        A stateful model's variables advance with every run, the untimed one included.
        """
        self(*args, **kwargs)
        return self._current.native.profile(*args, repeat=repeat, warmup=0, trace=trace, **kwargs)

    def export(self, path: str, header: str | None = None, name: str = DEFAULT_PREFIX) -> str:
        """Write a self-contained shared library (weights inside) to ``path``, optionally a C header.

        ``name`` is the C symbol prefix (``<name>_run``, ``<name>_signature``, ...;
        default ``needlec``): give models linked into one program different names.
        Variables start from their current values, so a stateful model (a
        training step) continues where this process left off. The library
        has the input shapes of the specialisation used last.
        """
        check_prefix(name)
        current = self._current
        write_artifact(replace(current.result, program=self._with_current_state(current)), self.target, "so", path,
                       name=name)
        if header is not None:
            with open(header, "w") as f:
                f.write(c_header(self.signature, os.path.basename(path), name))
        return path

    @staticmethod
    def _with_current_state(current: Specialization) -> Program:
        program = current.result.program
        if current.loaded is None:  # never run here: the variables still hold their first values
            return program
        buffers = [name for name, where in program.storage.items() if where.kind == "variable"]
        values = current.loaded.variables()
        constants = dict(program.constants)
        for buffer, (name, _, _) in zip(buffers, program.variables):
            constants[buffer] = values[name]
        return replace(program, constants=constants)

    def llvm_ir(self) -> str:
        """The optimised LLVM IR text of the whole module."""
        return optimized_llvm_ir(self.program, self.target)

    def __repr__(self) -> str:
        if self._active is None:
            return "<Compiled: not compiled yet, compiles at its first call>"
        text = repr(self._current.native).replace("NativeModel", "Compiled", 1)
        more = len(self._specializations) - 1
        return text[:-1] + f"; {more} more shape(s)>" if more else text


def _rebuilder(model: Any, size_budget: int | None) -> Rebuild | None:
    """How to rebuild ``model``'s graph for new inputs, where it can be: traced again, or ONNX re-imported.

    A ``Graph`` and the ``.nir`` and ``.py`` files have one specialisation (a ``.py`` file runs arbitrary code to
    produce its example inputs, so it is not re-run)."""
    if isinstance(model, Graph) or (isinstance(model, (str, os.PathLike)) and
                                    not os.fspath(model).endswith(".onnx")):
        return None
    if isinstance(model, (str, os.PathLike)) or not callable(model):  # an ONNX model: its dynamic dimensions
        def reimport(arrays: Sequence[np.ndarray], names: Sequence[str] | None) -> Graph:
            assert names is not None  # known from the first specialisation
            shapes = {name: tuple(a.shape) for name, a in zip(names, arrays)}
            return to_graph(model, input_shapes=shapes, size_budget=size_budget)
        return reimport
    if is_torch_module(model):
        return lambda arrays, names: from_torch(model, list(arrays))
    return lambda arrays, names: trace(model, *arrays)


def compile(model: Any = None, example_inputs: Sequence[Any] | np.ndarray | None = None, target: str = "cpu", *,
            cpu: str = "host", input_shapes: Mapping[str, Sequence[int]] | None = None, progress: bool | None = None,
            size_budget: int | None = None, **options: Any) -> Any:
    """Compile ``model`` for ``target`` and return a ``Compiled``; ``options`` are ``PipelineOptions`` fields.

    ``target`` names the backend (``cpu``); ``cpu`` names the CPU the code is for (``compiler/target.py``):
    ``host`` (default), a baseline such as ``x86-64-v2`` / ``x86-64-v3`` /
    ``x86-64-v4`` for portable artifacts, or a CPU name such as ``skylake``.

    ``input_shapes`` maps ONNX input names to static shapes; ``size_budget`` caps the elements of any one
    tensor of an ONNX model (default 2**31; unrolled loop steps: a 2048th of it); ``progress``
    shows the stages on standard error (``needlec/progress.py``): ``True`` a bar on a terminal, else a line
    per stage; ``None`` (default) a bar only on a terminal and only after a couple of seconds; ``False``
    nothing. Each stage is also a DEBUG record on the ``needlec.progress`` logger.

    A callable without ``example_inputs`` compiles at its first call; ``compile`` without a model returns a
    decorator with these settings (``@needlec.compile(progress=False)``).
    """
    settings = dict(target=target, cpu=cpu, input_shapes=input_shapes, progress=progress, size_budget=size_budget,
                    **options)
    if model is None:
        return functools.partial(compile, example_inputs=example_inputs, **settings)
    resolved = Target.named(target, cpu)
    rebuild = _rebuilder(model, size_budget)
    if example_inputs is None and callable(model) and not isinstance(model, Graph):
        if input_shapes is not None:
            raise NeedlecError(f"input_shapes apply to ONNX models only, not to a {type(model).__name__}")
        lazy = Compiled(resolved, rebuild, {"progress": progress, **options},
                        input_names=_parameter_names(model))
        if inspect.isfunction(model) or inspect.ismethod(model):
            functools.update_wrapper(lazy, model)
        return lazy
    with Progress(progress, expected=1 + BUILD_STAGES["jit"]) as reporter:
        with reporter.stage("trace" if callable(model) and not isinstance(model, Graph) else "import"):
            graph = to_graph(model, example_inputs, input_shapes, size_budget)
        result = run_pipeline(graph, resolved, reporter, **options)
        first = Specialization(result, resolved, reporter)
    return Compiled(resolved, rebuild, {"progress": progress, **options}, first)


def compile_graph(graph: Graph, rebuild: Rebuild | None, target: str = "cpu", *, cpu: str = "host",
                  progress: bool | None = None, **options: Any) -> Compiled:
    """Compile a graph built by code (a training step); ``rebuild(arrays, names)`` builds it for new input shapes."""
    resolved = Target.named(target, cpu)
    with Progress(progress, expected=BUILD_STAGES["jit"]) as reporter:
        first = Specialization(run_pipeline(graph, resolved, reporter, **options), resolved, reporter)
    return Compiled(resolved, rebuild, {"progress": progress, **options}, first)


def _parameter_names(fn: Callable[..., Any]) -> list[str] | None:
    """A function's positional parameter names (its inputs' names when traced), if it has a plain signature."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in parameters if p.kind in kinds]
    return names if len(names) == len(parameters) else None


def load(path: str) -> NativeModel:
    """Load a shared library written by ``Compiled.export`` or ``needlec compile``."""
    return load_library(path)
