"""``trace(fn, *example_inputs)``: run a Python function on symbolic Tensors and record a Graph.

The example arrays fix the graph inputs' shapes and dtypes (their values are
never read). Python control flow on shapes and other static values simply
unrolls; control flow on tensor values raises ``TraceError``. An
``nn.Module`` is traced through ``forward``; the Parameters and Buffers it
reads become graph constants named by module path (``layers.0.weight``).

``record`` is the lower-level form for code that builds on a trace (the
gradient API, the training-step compiler): it can make module state graph
inputs instead of constants, collects the buffer updates Modules propose,
and reports which state and Modules the function used.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Graph, Value
from needlec.compiler.ir.types import TensorType
from needlec.errors import TraceError
from needlec.frontend.nn.module import Module, State
from needlec.frontend.tensor import Tensor, TraceContext, describe, pop_context, push_context


def _display_name(fn: Callable[..., Any]) -> str:
    """The traced callable's name: the Module's class or the function's ``__name__``."""
    if isinstance(fn, Module):
        return type(fn).__name__
    return getattr(fn, "__name__", type(fn).__name__)


def _graph_name(fn: Callable[..., Any]) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "", _display_name(fn)) or "main"


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return None


def _input_names(fn: Callable[..., Any], count: int, names: Sequence[str] | None) -> list[str]:
    """``names`` if given, else the callable's positional parameter names, else ``x0, x1, ...``.

    Raises TraceError when ``fn`` cannot be called with ``count`` positional inputs.
    """
    signature = _signature(fn.forward if isinstance(fn, Module) else fn)
    if signature is not None:
        try:
            signature.bind(*range(count))
        except TypeError as exc:
            raise TraceError(f"trace: {_display_name(fn)} cannot be called with {count} example input(s): "
                             f"{exc}") from None
    if names is not None:
        if len(names) != count:
            raise TraceError(f"trace: {len(names)} name(s) given for {count} example input(s)")
        return list(names)
    params = list(signature.parameters.values()) if signature is not None else []
    positional = [p.name for p in params
                  if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    return [positional[i] if i < len(positional) else f"x{i}" for i in range(count)]


def _state_names(fn: Callable[..., Any], module: Module | None) -> dict[int, str]:
    """``id(state) -> dotted path`` for ``module``, else the Module being traced (or owning the traced method)."""
    owner = module if module is not None else fn if isinstance(fn, Module) else getattr(fn, "__self__", None)
    if not isinstance(owner, Module):
        return {}
    return {id(state): name for name, state in [*owner.named_parameters(), *owner.named_buffers()]}


def _output_values(result: Any, context: TraceContext, name: str) -> list[Any]:
    """The graph values of ``fn``'s result: one Tensor or a tuple/list of them."""
    items = list(result) if isinstance(result, (tuple, list)) else [result]
    if not items:
        raise TraceError(f"trace: {name} returned an empty {type(result).__name__}; expected at least one Tensor")
    values = []
    for i, item in enumerate(items):
        if isinstance(item, State):
            item = item.traced()
        if not isinstance(item, Tensor):
            where = f"output {i} of {name}" if isinstance(result, (tuple, list)) else f"{name}'s result"
            raise TraceError(f"trace: {where} is a {type(item).__name__}; expected a Tensor or a tuple/list of "
                             f"Tensors")
        if item.graph is not context.graph:
            raise TraceError(f"trace: {name} returned {describe(item.value)} from another trace")
        values.append(item.value)
    _name_outputs(context.graph, values)
    return values


def _name_outputs(graph: Graph, values: list[Value]) -> None:
    """Name computed outputs ``out`` (one output) or ``out0``, ``out1``, ... so signatures read well."""
    for i, value in enumerate(values):
        if value.producer is not None and values.index(value) == i:
            graph.rename(value, graph.fresh_name("out" if len(values) == 1 else f"out{i}"))


@dataclass
class Recording:
    """A finished trace: the graph, and what the traced function read from and proposed to Modules.

    ``state`` lists each Parameter / Buffer read, in first-use order, with
    its name (module path) and graph value; ``state_updates`` the buffers'
    proposed next values (only when traced with ``track_state_updates``);
    ``modules`` the Modules called; ``step`` the step-counter variable (when
    traced with ``step_variable``).
    """

    graph: Graph
    state: list[tuple[str, State, Value]]
    state_updates: list[tuple[str, State, Value]]
    modules: list[Module]
    step: Value | None = None


def record(fn: Callable[..., Any], *example_inputs: Any, names: Sequence[str] | None = None,
           module: Module | None = None, state_as_inputs: bool = False,
           track_state_updates: bool = False, step_variable: bool = False) -> Recording:
    """Trace ``fn`` like ``trace`` and report the module state it used.

    ``module`` names the state (``fn`` itself, or the owner of a bound method,
    when not given); state outside it is named ``param``. With
    ``state_as_inputs`` each state array read becomes a graph input after the
    example inputs, in first-use order, so the graph reads current values on
    every call instead of baking them in as constants. With
    ``track_state_updates`` Modules may propose new buffer values (train-mode
    BatchNorm running statistics); they are nodes of the graph but not outputs.
    With ``step_variable`` the graph gets an i64 variable ``step`` (0 at first,
    incremented by every call) that random draws add to their stream offset,
    so Dropout in a compiled training step draws a fresh mask each step.
    """
    if not callable(fn):
        raise TraceError(f"trace: expected a function or an nn.Module, found {type(fn).__name__}")
    arrays = [np.asarray(x) for x in example_inputs]
    graph = Graph(_graph_name(fn))
    context = TraceContext(graph, state_names=_state_names(fn, module), state_as_inputs=state_as_inputs,
                           track_state_updates=track_state_updates)
    inputs = []
    for input_name, array in zip(_input_names(fn, len(arrays), names), arrays):
        inputs.append(Tensor(graph.add_input(input_name, TensorType(array.shape, DType.from_numpy(array.dtype))),
                             graph))
    if step_variable:
        step = graph.add_variable(np.zeros((), np.int64), "step")
        graph.set_update(step, graph.add("add", step, graph.add_constant(np.int64(1), "one")))
        context.step = Tensor(step, graph)
    push_context(context)
    try:
        graph.set_outputs(_output_values(fn(*inputs), context, _display_name(fn)))
    finally:
        pop_context()

    def name_of(key: int) -> str:  # the module path, else the name the graph value got
        return context.state_names.get(key) or (context.state[key][1].name if key in context.state else "param")

    state = [(name_of(key), target, value) for key, (target, value) in context.state.items()]
    updates = [(name_of(key), target, new.value) for key, (target, new) in context.state_updates.items()]
    return Recording(graph, state, updates, list(context.modules.values()),
                     None if context.step is None else context.step.value)


def trace(fn: Callable[..., Any], *example_inputs: Any, names: Sequence[str] | None = None) -> Graph:
    """Record ``fn`` (a function or ``nn.Module``) applied to inputs shaped like ``example_inputs``.

    Graph inputs are named by ``names``, else by ``fn``'s parameter names,
    else ``x0, x1, ...``. ``fn`` returns one Tensor or a tuple/list of them.
    """
    return record(fn, *example_inputs, names=names).graph
