"""``needlec.grad`` and ``needlec.value_and_grad``: compiled gradients of traced Python functions.

``grad(fn)`` returns a function of NumPy arrays that computes the gradient
of ``fn``'s scalar float result. On the first call with given argument
shapes and dtypes it traces ``fn``, extends the graph with reverse-mode
gradients (``compiler.passes.autodiff.gradients``), compiles it with
``needlec.compile`` and caches it; later calls with the same signature run
the compiled code only.

What to differentiate:

* ``argnums``: an argument index (the gradient is one array) or a tuple of
  indices (a tuple of arrays). Defaults to ``0``, or to ``()`` when
  ``wrt_params`` is given.
* ``wrt_params``: a Module; its trainable Parameters' gradients come back as
  a dict from module path (``layers.0.weight``) to array. A Parameter the
  function does not use gets zeros.

The result is ``grads_of_argnums``, ``param_grads``, or
``(grads_of_argnums, param_grads)`` when both are requested;
``value_and_grad`` returns ``(value, that)`` with the value a 0-d array.

Module state is read at call time, not baked in: every Parameter and
Buffer the function reads is traced as a graph input (see
``trace.record(state_as_inputs=True)``) and fed its current ``.data`` on
each call, so updating weights between calls needs no recompilation. A
cached graph is re-traced when a Module it called changes its
``trace_key`` (``train()`` / ``eval()``, a Dropout's step), a state array
changes shape or dtype, or a Parameter of ``wrt_params`` is replaced by
another object; any other Python value ``fn`` reads is frozen at trace
time, as under ``jax.jit``.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from needlec.api import compile_graph
from needlec.compiler.ir.graph import Value
from needlec.compiler.passes.gradients import gradients
from needlec.errors import TraceError
from needlec.frontend.nn.module import Module, State
from needlec.frontend.trace import record

ArgNums = int | Sequence[int] | None


@dataclass
class _Compiled:
    """One cached gradient program and the conditions under which it stays valid."""

    run: Callable[..., Any]
    state: list[State]  # fed, in order, after the arguments
    state_layouts: list[tuple[tuple[int, ...], np.dtype]]
    module_keys: list[tuple[Module, Hashable]]
    param_slots: dict[str, int]  # wrt_params name -> position among the gradient outputs
    param_ids: list[int]  # identities of the wrt_params Parameters when traced

    def is_current(self, wrt_params: Module | None) -> bool:
        """True while no state array changed shape or dtype, no called Module changed its trace key, and
        ``wrt_params`` holds the same Parameter objects (none was replaced)."""
        return (all(s.data.shape == shape and s.data.dtype == dtype
                    for s, (shape, dtype) in zip(self.state, self.state_layouts))
                and all(m.trace_key() == key for m, key in self.module_keys)
                and self.param_ids == _parameter_ids(wrt_params))


def _parameter_ids(module: Module | None) -> list[int]:
    return [] if module is None else [id(p) for p in module.parameters()]


class GradientFunction:
    """The callable ``grad`` / ``value_and_grad`` return; see the module docstring."""

    def __init__(self, fn: Callable[..., Any], argnums: ArgNums, wrt_params: Module | None, with_value: bool) -> None:
        if not callable(fn):
            raise TraceError(f"grad: expected a function or an nn.Module, found {type(fn).__name__}")
        if wrt_params is not None and not isinstance(wrt_params, Module):
            raise TraceError(f"grad: wrt_params must be an nn.Module, found {type(wrt_params).__name__}")
        if argnums is None:
            argnums = () if wrt_params is not None else 0
        self.single = isinstance(argnums, (int, np.integer))
        self.argnums = (int(argnums),) if isinstance(argnums, (int, np.integer)) else tuple(int(a) for a in argnums)
        if len(set(self.argnums)) != len(self.argnums):
            raise TraceError(f"grad: argnums {self.argnums} repeats an index")
        if not self.argnums and wrt_params is None:
            raise TraceError("grad: nothing to differentiate: argnums is empty and no wrt_params Module is given")
        self.fn, self.wrt_params, self.with_value = fn, wrt_params, with_value
        self.cache: dict[tuple[Any, ...], _Compiled] = {}

    def __call__(self, *args: Any) -> Any:
        arrays = [np.asarray(a) for a in args]
        for i in self.argnums:
            if not -len(arrays) <= i < len(arrays):
                raise TraceError(f"grad: argnums index {i} is out of range for {len(arrays)} argument(s)")
            if arrays[i].dtype.kind != "f":
                raise TraceError(f"grad: argument {i} has dtype {arrays[i].dtype.name}; only float arguments "
                                 f"have gradients")
        key = tuple((a.shape, a.dtype.str) for a in arrays)
        compiled = self.cache.get(key)
        if compiled is None or not compiled.is_current(self.wrt_params):
            compiled = self.cache[key] = self._compile(arrays)
        outputs = compiled.run(*arrays, *[s.data for s in compiled.state])
        if not isinstance(outputs, tuple):  # only the value: no wrt_params Parameter was used
            outputs = (outputs,)
        value, grads = outputs[0], list(outputs[1:])
        result = self._package(grads, compiled)
        return (value, result) if self.with_value else result

    def _compile(self, arrays: list[np.ndarray]) -> _Compiled:
        recording = record(self.fn, *arrays, module=self.wrt_params, state_as_inputs=True)
        graph = recording.graph
        loss = self._scalar_output(graph.outputs)
        xs = [graph.inputs[i % len(arrays)] for i in self.argnums]
        values_by_state = {id(state): value for _, state, value in recording.state}
        param_slots: dict[str, int] = {}
        if self.wrt_params is not None:
            for name, parameter in self.wrt_params.named_parameters():
                if id(parameter) in values_by_state:
                    param_slots[name] = len(xs)
                    xs.append(values_by_state[id(parameter)])
        graph.set_outputs([loss, *gradients(graph, [loss], xs)])
        return _Compiled(compile_graph(graph, None), [state for _, state, _ in recording.state],
                         [(state.data.shape, state.data.dtype) for _, state, _ in recording.state],
                         [(m, m.trace_key()) for m in recording.modules], param_slots,
                         _parameter_ids(self.wrt_params))

    def _scalar_output(self, outputs: list[Value]) -> Value:
        """The traced function's one output, which must be a float scalar."""
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        if len(outputs) != 1 or outputs[0].shape != () or not outputs[0].dtype.is_float:
            found = ", ".join(str(v.type) for v in outputs)
            raise TraceError(f"grad: {name} must return one scalar (0-d) float Tensor, found {found}")
        return outputs[0]

    def _package(self, grads: list[np.ndarray], compiled: _Compiled) -> Any:
        """Arrange the gradient outputs as the caller asked (see the module docstring)."""
        of_args: Any = grads[0] if self.single else tuple(grads[:len(self.argnums)])
        if self.wrt_params is None:
            return of_args
        of_params = {name: grads[compiled.param_slots[name]] if name in compiled.param_slots
                     else np.zeros_like(parameter.data) for name, parameter in self.wrt_params.named_parameters()}
        return of_params if not self.argnums else (of_args, of_params)


def grad(fn: Callable[..., Any], argnums: ArgNums = None, wrt_params: Module | None = None) -> GradientFunction:
    """The gradient of ``fn`` (returning a scalar float Tensor) as a compiled function of NumPy arrays.

    ``argnums`` picks arguments (int: one array, tuple: a tuple of arrays;
    default 0, or none with ``wrt_params``); ``wrt_params=model`` adds a dict
    of the model's Parameter gradients by module path. See the module
    docstring for caching and how module state is read.
    """
    return GradientFunction(fn, argnums, wrt_params, with_value=False)


def value_and_grad(fn: Callable[..., Any], argnums: ArgNums = None,
                   wrt_params: Module | None = None) -> GradientFunction:
    """Like ``grad``, but the function returns ``(value, gradients)`` from one compiled program."""
    return GradientFunction(fn, argnums, wrt_params, with_value=True)
