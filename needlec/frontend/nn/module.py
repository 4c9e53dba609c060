"""``Module``, ``Parameter`` and ``Buffer``: PyTorch-style layers holding NumPy state.

A ``Module`` registers the ``Parameter``s (trainable arrays), ``Buffer``s
(non-trainable state such as BatchNorm running statistics) and sub-Modules
assigned to its attributes. ``named_parameters`` / ``named_buffers`` name
them by module path (``layers.0.weight``); those paths become the names of
the graph values when the module is traced, and the keys of ``state_dict``
(in PyTorch's order, so a PyTorch ``state_dict`` converted to NumPy loads
directly). Weights are float32 and initialised as PyTorch does, drawn from
the generator set by ``manual_seed`` or from an ``rng=`` argument.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Hashable, Iterator, Mapping

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.errors import NeedlecError, TraceError
from needlec.frontend.tensor import Tensor, active_context, current_context

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator that initialises every module created without ``rng=``."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator(rng: np.random.Generator | None) -> np.random.Generator:
    """``rng``, or the generator set by ``manual_seed`` when None."""
    return rng if rng is not None else _generator


def uniform(rng: np.random.Generator | None, bound: float, shape: tuple[int, ...]) -> np.ndarray:
    """float32 values uniform in [-bound, bound) (PyTorch's default init with bound 1/sqrt(fan_in))."""
    return generator(rng).uniform(-bound, bound, shape).astype(np.float32)


class NoActiveTraceAttributeError(TraceError, AttributeError):
    """A ``Parameter``/``Buffer`` Tensor attribute asked for outside a trace (``hasattr`` answers False)."""


class State:
    """A NumPy array owned by a Module (a ``Parameter`` or a ``Buffer``).

    While tracing it acts as a Tensor: the graph value holding it (one per
    trace). ``np.asarray(state)`` and, outside a trace, ``state.numpy()`` give
    the data, so NumPy code (references, optimisers) uses it directly; other
    Tensor attributes (``.T``, ``.sum``) exist only inside a trace, and
    ``hasattr`` answers False for them outside one.
    """

    def __init__(self, data: Any) -> None:
        self.data = np.array(data, order="C")

    @property
    def shape(self) -> tuple[int, ...]:
        """The data's shape."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> DType:
        """The data's element type."""
        return DType.from_numpy(self.data.dtype)

    @property
    def ndim(self) -> int:
        """The data's number of axes."""
        return self.data.ndim

    def traced(self) -> Tensor:
        """This array in the active trace (one named graph value per trace)."""
        context = active_context(f"using a {type(self).__name__} as a tensor")
        return Tensor(context.state_value(self), context.graph)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def numpy(self) -> np.ndarray:
        """A copy of the data outside a trace; inside one, ``Tensor.numpy`` (a TraceError: no value yet)."""
        if current_context() is not None:
            return self.traced().numpy()
        return self.data.copy()

    def __getattr__(self, name: str) -> Any:
        # Tensor methods and properties (.T, .reshape, .sum, ...) act on the traced value.
        if name.startswith("_") or not hasattr(Tensor, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        if current_context() is None:
            # Outside a trace there is no Tensor to forward to: an AttributeError (so hasattr / getattr
            # with a default answer) that is also the TraceError explaining why.
            kind = type(self).__name__
            raise NoActiveTraceAttributeError(
                f"{kind}.{name} is the traced Tensor's and needs an active trace: use it inside a function "
                f"passed to needlec.trace or needlec.compile (outside one, np.asarray(...) or .numpy() give the data)")
        return getattr(self.traced(), name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dtype.value}{list(self.shape)})"

    if TYPE_CHECKING:
        # Installed below by ``_forward_to_traced``; declared here so the type checker sees them.
        def __add__(self, other: Any) -> Tensor: ...
        def __radd__(self, other: Any) -> Tensor: ...
        def __sub__(self, other: Any) -> Tensor: ...
        def __rsub__(self, other: Any) -> Tensor: ...
        def __mul__(self, other: Any) -> Tensor: ...
        def __rmul__(self, other: Any) -> Tensor: ...
        def __truediv__(self, other: Any) -> Tensor: ...
        def __rtruediv__(self, other: Any) -> Tensor: ...
        def __floordiv__(self, other: Any) -> Tensor: ...
        def __rfloordiv__(self, other: Any) -> Tensor: ...
        def __mod__(self, other: Any) -> Tensor: ...
        def __rmod__(self, other: Any) -> Tensor: ...
        def __pow__(self, other: Any) -> Tensor: ...
        def __rpow__(self, other: Any) -> Tensor: ...
        def __matmul__(self, other: Any) -> Tensor: ...
        def __rmatmul__(self, other: Any) -> Tensor: ...
        def __neg__(self) -> Tensor: ...
        def __pos__(self) -> Tensor: ...
        def __abs__(self) -> Tensor: ...
        def __getitem__(self, key: Any) -> Tensor: ...


class Parameter(State):
    """A trainable array: ``Module.parameters`` lists it and gradients are taken with respect to it."""


class Buffer(State):
    """A non-trainable array saved in ``state_dict`` (e.g. BatchNorm's running statistics)."""


def _forward_to_traced(name: str) -> Callable[..., Tensor]:
    def method(self: State, *args: Any) -> Tensor:
        return getattr(self.traced(), name)(*args)

    method.__name__ = name
    method.__doc__ = f"``Tensor.{name}`` on this array's value in the active trace."
    return method


# Operators must be defined on the class (Python looks them up there, not through __getattr__).
# Comparisons are left out: ``p == q`` stays identity-based, and ``p < t`` reaches ``Tensor.__gt__``.
for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
              "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__",
              "__matmul__", "__rmatmul__", "__neg__", "__pos__", "__abs__", "__getitem__"):
    setattr(State, _name, _forward_to_traced(_name))


class Module:
    """Base class of every layer and model: call it to run ``forward``.

    Subclasses call ``super().__init__()`` first, then assign Parameters,
    Buffers and Modules as attributes; they are registered in assignment
    order. Called outside a trace on NumPy arrays, a Module runs eagerly:
    traced at those inputs and evaluated by the reference interpreter,
    returning NumPy arrays (slow; for checking a model, ``needlec.compile``
    is the fast path).
    """

    # set by __init__ (through object.__setattr__, as __setattr__ needs them)
    _parameters: dict[str, Parameter]
    _buffers: dict[str, Buffer]
    _modules: dict[str, Module]
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise NeedlecError(f"{type(self).__name__}.__init__ must call super().__init__() before "
                               f"assigning attribute {name!r}")
        self._unregister(name)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Buffer):
            self._buffers[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._unregister(name)
        object.__delattr__(self, name)

    def _unregister(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._modules.pop(name, None)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every concrete Module defines it."""
        raise NeedlecError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        context = current_context()
        if context is None:
            return self._call_eagerly(args, kwargs)
        context.note_module(self)
        return self.forward(*args, **kwargs)

    def _call_eagerly(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``model(x)`` outside a trace: trace ``forward`` once at these inputs, run the reference interpreter.

        A convenience for checking a model: NumPy arrays in, NumPy arrays out
        (a tuple/list when ``forward`` returns one), with the graph
        interpreter's reference semantics and speed; ``needlec.compile`` is
        the fast path. NumPy arrays among the positional arguments become the
        graph's inputs; other arguments (Python scalars, flags, None) are
        passed to ``forward`` as they are. In training mode the buffer
        updates Modules propose (BatchNorm running statistics) are applied,
        as PyTorch does. Tensors and Parameters cannot be inputs: TraceError.
        """
        from needlec.compiler.interpreter import evaluate  # lazily: the trace module imports this one
        from needlec.frontend.trace import record

        name = type(self).__name__
        for i, arg in enumerate([*args, *kwargs.values()]):
            if isinstance(arg, (Tensor, State)):
                raise TraceError(f"calling {name} outside a trace with a {type(arg).__name__} (argument {i}): "
                                 f"an eager call takes NumPy arrays (np.asarray(...) gives a Parameter's data); "
                                 f"a Tensor exists only inside needlec.trace or needlec.compile")
        for key, arg in kwargs.items():
            if isinstance(arg, (np.ndarray, np.generic)):
                raise TraceError(f"calling {name} outside a trace: pass array argument {key!r} positionally "
                                 f"(keyword arguments of an eager call are static settings)")
        positions = [i for i, arg in enumerate(args) if isinstance(arg, (np.ndarray, np.generic))]
        returned: list[Any] = []

        def run(*tensors: Tensor) -> Any:
            call_args = list(args)
            for i, tensor in zip(positions, tensors):
                call_args[i] = tensor
            result = self(*call_args, **kwargs)
            returned.append(result)
            return result

        recording = record(run, *[args[i] for i in positions], names=[f"x{i}" for i in positions], module=self,
                           track_state_updates=self.training)
        graph = recording.graph
        outputs = list(graph.outputs)
        updates = recording.state_updates
        if updates:
            graph.set_outputs([*outputs, *(value for _, _, value in updates)])
        results, _ = evaluate(graph, [np.asarray(args[i]) for i in positions])
        for (_, state, _), array in zip(updates, results[len(outputs):]):
            state.data = np.array(array, dtype=state.data.dtype, order="C")
        results = results[:len(outputs)]
        if isinstance(returned[0], (tuple, list)):
            return type(returned[0])(results) if isinstance(returned[0], list) else tuple(results)
        return results[0]

    def trace_key(self) -> Hashable:
        """This module's own settings that change what a trace records (the training flag by default).

        ``needlec.grad`` re-traces when the key of a module it called changes;
        modules whose trace depends on more (Dropout's step) extend it.
        """
        return self.training

    # -- the module tree ------------------------------------------------------
    def children(self) -> Iterator[Module]:
        """The direct sub-Modules, in registration order."""
        return iter(self._modules.values())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (named ``prefix``) and every sub-Module, depth first, by dotted path."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> list[Module]:
        """This module and every sub-Module, in ``named_modules`` order."""
        return [m for _, m in self.named_modules()]

    def _named_state(self, kind: str, prefix: str, unique: bool) -> Iterator[tuple[str, State]]:
        seen: set[int] = set()
        for path, module in self.named_modules(prefix):
            for name, state in getattr(module, kind).items():
                if not unique or id(state) not in seen:
                    seen.add(id(state))
                    yield (f"{path}.{name}" if path else name), state

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every Parameter by dotted path (a shared Parameter once, under its first path)."""
        return self._named_state("_parameters", prefix, unique=True)  # type: ignore[return-value]

    def parameters(self) -> list[Parameter]:
        """Every Parameter, in ``named_parameters`` order."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Buffer]]:
        """Every Buffer by dotted path (a shared Buffer once, under its first path)."""
        return self._named_state("_buffers", prefix, unique=True)  # type: ignore[return-value]

    def buffers(self) -> list[Buffer]:
        """Every Buffer, in ``named_buffers`` order."""
        return [b for _, b in self.named_buffers()]

    def train(self, mode: bool = True) -> Module:
        """Set the training flag on this module and every sub-Module; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """``train(False)``."""
        return self.train(False)

    # -- weights in and out -------------------------------------------------------
    def _state_entries(self) -> Iterator[tuple[str, State]]:
        """Every Parameter and Buffer under every path, in PyTorch's ``state_dict`` order.

        Per module (depth first): its Parameters, then its Buffers. A shared
        array appears under each of its paths, as in PyTorch.
        """
        for path, module in self.named_modules():
            for name, state in [*module._parameters.items(), *module._buffers.items()]:
                yield (f"{path}.{name}" if path else name), state

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every Parameter's and Buffer's data, by dotted path."""
        return {name: state.data.copy() for name, state in self._state_entries()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into the Parameters and Buffers; names, shapes and dtypes must match (all checked first).

        With ``strict=False`` missing and unexpected names are ignored.
        """
        own = dict(self._state_entries())
        missing = [n for n in own if n not in state]
        unexpected = [n for n in state if n not in own]
        if strict and (missing or unexpected):
            raise NeedlecError(f"load_state_dict into {type(self).__name__}: missing {missing or 'none'}, "
                               f"unexpected {unexpected or 'none'}")
        arrays = {}
        for name, target in own.items():
            if name not in state:
                continue
            array = np.asarray(state[name])
            if array.shape != target.data.shape or array.dtype != target.data.dtype:
                raise NeedlecError(f"load_state_dict: {name} expected {target.data.dtype.name}"
                                   f"{list(target.data.shape)}, found {array.dtype.name}{list(array.shape)}")
            arrays[name] = array
        for name, array in arrays.items():
            own[name].data = np.array(array, order="C")

    # -- printing ----------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr``."""
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"
