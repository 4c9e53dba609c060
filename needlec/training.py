"""``compile_training_step``: forward pass, backward pass and optimizer update as one compiled graph.

The step is built by four graph transformations, each visible in the IR::

    trace       loss = loss_fn(model(*inputs), *targets); module state read becomes constants;
                a ``step`` counter variable (Dropout draws a fresh mask from it every step)
    variables   the constants of the optimized Parameters, and of the Buffers the model
                proposes new values for (train-mode BatchNorm statistics), become variables
    autodiff    d loss / d parameter appended to the graph (``passes.autodiff``)
    optimizer   the optimizer's update rule appended (``needlec.optim``)

and the result is compiled like any graph: one native entry point whose only
output is the loss (computed before the update, as PyTorch reports it) and
whose variables are the parameters, the updated buffers and the optimizer
state. ``TrainingStep`` runs it, reads the state back, copies it into the
Module, and exports the step as a shared library with a C header.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from needlec.abi import DEFAULT_PREFIX
from needlec.api import Compiled, compile_graph
from needlec.compiler.ir.graph import Graph, Value
from needlec.compiler.passes.gradients import gradients
from needlec.errors import NeedlecError
from needlec.frontend.nn import Module, Parameter
from needlec.frontend.trace import Recording, record
from needlec.optim import Optimizer, ParameterSlot
from needlec.runtime.signature import Signature

__all__ = ["compile_training_step", "TrainingStep", "constants_to_variables"]

GRAPH_NAME = "train_step"
LOSS_NAME = "loss"


class TrainingStep:
    """A compiled training step: ``step(*inputs, *targets)`` runs one update and returns the loss.

    The parameters, the updated buffers and the optimizer state live in the
    compiled module as variables: ``parameters()``, ``buffers()`` and
    ``optimizer_state()`` read copies at any time, ``load_into`` copies the
    trained state into a Module, ``export`` writes a shared library and header.
    ``graph`` is the training graph as built (before optimisation).
    """

    def __init__(self, model: Module, graph: Graph, compiled: Compiled, parameter_names: Sequence[str],
                 buffer_names: Sequence[str]) -> None:
        self.model = model
        self.graph = graph
        self.compiled = compiled
        self.parameter_names = tuple(parameter_names)
        self.buffer_names = tuple(buffer_names)

    @property
    def signature(self) -> Signature:
        """Inputs (model inputs, then targets), the loss output and the variables of the step."""
        return self.compiled.signature

    def step(self, *arrays: np.ndarray, **named: np.ndarray) -> float:
        """One training step on a batch (model inputs then targets); returns the loss before the update."""
        return float(self.compiled(*arrays, **named))

    __call__ = step

    def parameters(self) -> dict[str, np.ndarray]:
        """Copies of the trained parameters' current values, by module path."""
        return {name: self.compiled.get_variable(name) for name in self.parameter_names}

    def buffers(self) -> dict[str, np.ndarray]:
        """Copies of the buffers the step updates (e.g. BatchNorm running statistics), by module path."""
        return {name: self.compiled.get_variable(name) for name in self.buffer_names}

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """Copies of the step counter and the optimizer's state (``step``, ``<param>.momentum_buffer``, ...)."""
        model_state = set(self.parameter_names) | set(self.buffer_names)
        return {name: value for name, value in self.compiled.variables().items() if name not in model_state}

    def load_into(self, model: Module) -> None:
        """Copy the trained parameters and updated buffers into ``model``'s state of the same names."""
        state = {**self.parameters(), **self.buffers()}
        own = model.state_dict()
        missing = [name for name in state if name not in own]
        if missing:
            raise NeedlecError(f"load_into {type(model).__name__}: the model has no parameter or buffer "
                               f"{', '.join(missing)}")
        model.load_state_dict(state, strict=False)

    def sync_to_model(self) -> None:
        """Copy the trained state into the Module this step was compiled from."""
        self.load_into(self.model)

    def export(self, path: str, header: str | None = None, name: str = DEFAULT_PREFIX) -> tuple[str, str]:
        """Write the step as a shared library at ``path`` and its C header (default: ``path`` with ``.h``).

        The library starts from the current parameters and optimizer state,
        so training can continue in C where Python left off; ``name`` is its C
        symbol prefix (``Compiled.export``). Returns the library and header paths.
        """
        header = header if header is not None else os.path.splitext(path)[0] + ".h"
        self.compiled.export(path, header=header, name=name)
        return path, header

    def __repr__(self) -> str:
        ins = ", ".join(spec.describe() for spec in self.signature.inputs)
        return f"<TrainingStep {self.signature.name}({ins}) -> loss; {len(self.parameter_names)} parameter(s)>"


def constants_to_variables(graph: Graph, constants: Sequence[Value]) -> list[Value]:
    """Replace each of ``constants`` by a variable of the same name and data; every use moves over."""
    variables = []
    for constant in constants:
        assert constant.data is not None
        graph.remove_constants([constant])
        variable = graph.add_variable(constant.data, constant.name)
        graph.replace_all_uses(constant, variable)
        variables.append(variable)
    return variables


def _arrays(group: Any, what: str) -> tuple[np.ndarray, ...]:
    """One array or a tuple/list of arrays (``what``: "input" or "target"), as a tuple of arrays."""
    items = tuple(group) if isinstance(group, (tuple, list)) else (group,)
    for i, item in enumerate(items):
        if not isinstance(item, (np.ndarray, np.generic)):
            raise NeedlecError(f"compile_training_step: example {what} {i} must be a NumPy array, "
                               f"found {type(item).__name__}")
    return tuple(np.asarray(item) for item in items)


def _input_names(prefix: str, count: int) -> list[str]:
    return [prefix] if count == 1 else [f"{prefix}{i}" for i in range(count)]


def _check_arguments(model: Any, optimizer: Any, example_inputs: Any) -> None:
    if not isinstance(model, Module):
        raise NeedlecError(f"compile_training_step: model must be an nn.Module, found {type(model).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise NeedlecError(f"compile_training_step: optimizer must be a needlec.optim optimizer, "
                           f"found {type(optimizer).__name__}")
    if not isinstance(example_inputs, (tuple, list)) or len(example_inputs) != 2:
        raise NeedlecError("compile_training_step: example_inputs must be a pair (inputs, targets), each an "
                           "array or a tuple of arrays")
    owned = {id(p) for p in model.parameters()}
    for parameter in optimizer.parameters():
        if id(parameter) not in owned:
            raise NeedlecError(f"compile_training_step: the optimizer's {parameter!r} is not a parameter of "
                               f"the model ({type(model).__name__})")


def _trace_objective(model: Module, loss_fn: Callable[..., Any], inputs: tuple[np.ndarray, ...],
                     targets: tuple[np.ndarray, ...], input_names: Sequence[str] | None) -> Recording:
    """Record ``loss_fn(model(*inputs), *targets)`` with buffer updates; check the loss is one float scalar."""
    def objective(*arrays: Any) -> Any:
        return loss_fn(model(*arrays[:len(inputs)]), *arrays[len(inputs):])

    names = list(input_names) if input_names is not None else _input_names("input", len(inputs))
    if len(names) != len(inputs):
        raise NeedlecError(f"compile_training_step: {len(names)} input name(s) for {len(inputs)} input(s)")
    recording = record(objective, *inputs, *targets, module=model, track_state_updates=True, step_variable=True,
                       names=names + _input_names("target", len(targets)))
    recording.graph.name = GRAPH_NAME
    outputs = recording.graph.outputs
    if len(outputs) != 1 or outputs[0].shape != () or not outputs[0].dtype.is_float:
        found = ", ".join(str(v.type) for v in outputs)
        raise NeedlecError(f"compile_training_step: loss_fn must return one float scalar, found {found}")
    return recording


def _state_variables(model: Module, optimizer: Optimizer,
                     recording: Recording) -> tuple[list[tuple[Parameter, Value]], list[Value]]:
    """Make variables of the optimized Parameters the trace read and of the Buffers it proposed updates for.

    Returns ``(parameter, variable)`` pairs and the buffer variables (their
    updates set), each in the model's ``named_parameters`` / ``named_buffers``
    order.
    """
    graph = recording.graph
    read = {id(state): value for _, state, value in recording.state}
    optimized = {id(p) for p in optimizer.parameters()}
    trained = [p for _, p in model.named_parameters() if id(p) in optimized and id(p) in read]
    proposed = {id(buffer): new for _, buffer, new in recording.state_updates}
    updated = [(name, b) for name, b in model.named_buffers() if id(b) in proposed]
    for name, buffer in updated:
        if id(buffer) not in read:  # proposed without being read: its variable starts from the buffer's data
            read[id(buffer)] = graph.add_constant(buffer.data, name)
    variables = constants_to_variables(graph, [read[id(p)] for p in trained] +
                                       [read[id(b)] for _, b in updated])
    buffer_variables = variables[len(trained):]
    for variable, (_, buffer) in zip(buffer_variables, updated):
        graph.set_update(variable, proposed[id(buffer)])
    return list(zip(trained, variables)), buffer_variables


def compile_training_step(model: Module, loss_fn: Callable[..., Any], optimizer: Optimizer,
                          example_inputs: tuple[Any, Any], target: str = "cpu",
                          input_names: Sequence[str] | None = None, **options: Any) -> TrainingStep:
    """Compile one training step of ``model`` under ``loss_fn`` and ``optimizer``.

    ``example_inputs`` is ``(inputs, targets)``, each an array or a tuple of
    arrays, fixing the batch's shapes and dtypes; the step computes
    ``loss = loss_fn(model(*inputs), *targets)`` (a float scalar), its
    gradients with respect to the optimizer's parameters, the optimizer's
    update, and the buffer updates the model proposes in training mode.
    Parameters outside the optimizer stay constants (frozen). The graph's
    ``step`` variable counts the steps; Dropout adds it to its random stream
    offset, so every step draws a fresh mask. The step's inputs are named
    ``input`` / ``input0, input1, ...`` (or ``input_names``), then ``target`` /
    ``target0, ...``. ``options`` are ``needlec.compile`` options (``print_after``, ...).
    A batch of another size (a short last batch) compiles another
    specialisation of the step, which continues from the same parameters and
    optimizer state.
    """
    _check_arguments(model, optimizer, example_inputs)
    inputs, targets = _arrays(example_inputs[0], "input"), _arrays(example_inputs[1], "target")
    graph, parameter_names, buffer_names = _training_graph(model, loss_fn, optimizer, inputs, targets, input_names)

    def rebuild(arrays: Sequence[np.ndarray], names: Sequence[str] | None) -> Graph:
        batch = tuple(arrays)
        return _training_graph(model, loss_fn, optimizer, batch[:len(inputs)], batch[len(inputs):], input_names)[0]

    compiled = compile_graph(graph, rebuild, target=target, **options)
    return TrainingStep(model, graph, compiled, parameter_names, buffer_names)


def _training_graph(model: Module, loss_fn: Callable[..., Any], optimizer: Optimizer, inputs: tuple[np.ndarray, ...],
                    targets: tuple[np.ndarray, ...],
                    input_names: Sequence[str] | None) -> tuple[Graph, list[str], list[str]]:
    """The training graph for a batch like ``inputs`` and ``targets``, its parameter and buffer variable names."""
    recording = _trace_objective(model, loss_fn, inputs, targets, input_names)
    graph = recording.graph
    (loss,) = graph.outputs
    parameters, buffer_variables = _state_variables(model, optimizer, recording)
    grads = gradients(graph, [loss], [variable for _, variable in parameters])
    assert recording.step is not None
    optimizer.add_updates(graph, {id(p): ParameterSlot(variable.name, variable, grad)
                                  for (p, variable), grad in zip(parameters, grads)}, recording.step)
    if loss.producer is not None:
        graph.rename(loss, graph.fresh_name(LOSS_NAME))  # the output's name in the signature and the C header
    return graph, [variable.name for _, variable in parameters], [variable.name for variable in buffer_variables]
