"""The traced ``Tensor``: a symbolic value whose operations are recorded into a ``Graph``.

A ``Tensor`` holds the graph ``Value`` it stands for and the ``Graph`` being
built. Arithmetic, comparisons, reductions, views and indexing append nodes
(through ``needlec.frontend.tensor_ops``); nothing is computed. Asking for a
Python value (``bool(t)``, ``if t:``, ``float(t)``, ``t.item()``,
``t.numpy()``) raises ``TraceError``: the value does not exist while tracing.

Operands that are not Tensors become constants: a Python scalar is weakly
typed and takes the tensor's dtype (a float scalar with an integer or bool
tensor gives f32, an int scalar with a bool tensor gives i64); a NumPy array
keeps its dtype. Two tensors of different dtypes are promoted NumPy-style
with explicit ``cast`` nodes.
"""
from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterator, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Graph, Value
from needlec.compiler.ir.types import TensorType
from needlec.errors import IRError, TraceError

DTypeLike = Any  # a DType, its short or NumPy name, a NumPy dtype or a Python type
OPEN_END = 2 ** 62  # a slice bound past either end of any axis


def to_dtype(dtype: DTypeLike) -> DType:
    """The ``DType`` for ``f32``, ``"float32"``, ``np.float32``, ``float``, or a DType."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, str):
        return DType.parse(dtype)
    return DType.from_numpy(dtype)


def describe(value: Value) -> str:
    """``%name (produced by op X)`` / ``graph input %x`` / ``constant %w``, for error messages."""
    if value.producer is not None:
        return f"tensor %{value.name} (produced by op {value.producer.op})"
    if value.is_constant:
        return f"constant %{value.name}"
    return f"graph input %{value.name}"


@dataclass
class TraceContext:
    """The state of one trace: its graph and what the traced code read from Modules.

    Every ``Parameter`` or ``Buffer`` (module state) read while tracing becomes
    one graph value on first use: a constant holding its data, or, with
    ``state_as_inputs``, a graph input (so a compiled function reads the
    current data on every call); ``state`` maps ``id(state)`` to the pair
    (state, value) in first-use order. ``state_names`` maps ``id(state)`` to
    its module path (``layers.0.weight``), the value's name. ``state_updates``
    collects the new values Modules propose for buffers (train-mode BatchNorm
    running statistics) when ``track_state_updates`` is set; whoever runs the
    trace decides whether to apply them (e.g. as graph variable updates).
    ``modules`` lists the Modules called, so a cache can tell when their
    settings (``Module.trace_key``) changed. ``step``, when set, is an i64
    scalar tensor counting calls of the compiled program (a training step's
    counter variable): random draws (Dropout) add it to their stream offset so
    every call draws fresh numbers.
    """

    graph: Graph
    state_names: dict[int, str] = field(default_factory=dict)
    state_as_inputs: bool = False
    track_state_updates: bool = False
    state: dict[int, tuple[Any, Value]] = field(default_factory=dict)
    state_updates: dict[int, tuple[Any, Tensor]] = field(default_factory=dict)
    modules: dict[int, Any] = field(default_factory=dict)
    random_offsets: dict[int, int] = field(default_factory=dict)
    step: Tensor | None = None

    def state_value(self, state: Any) -> Value:
        """The graph value holding module state ``state`` (made once per trace, named by module path)."""
        key = id(state)
        if key not in self.state:
            name = self.state_names.get(key, "param")
            if self.state_as_inputs:
                value = self.graph.add_input(name, TensorType(state.data.shape, DType.from_numpy(state.data.dtype)))
            else:
                value = self.graph.add_constant(state.data, name)
            self.state[key] = (state, value)
        return self.state[key][1]

    def propose_update(self, state: Any, new_value: Tensor) -> None:
        """Record ``new_value`` as the next value of buffer ``state`` (the last proposal wins)."""
        self.state_updates[id(state)] = (state, new_value)

    def note_module(self, module: Any) -> None:
        """Remember that ``module`` was called in this trace."""
        self.modules.setdefault(id(module), module)

    def random_offset(self, stream: int, count: int) -> int:
        """How many numbers earlier calls drew from random stream ``stream`` in this trace; reserves ``count`` more.

        Lets a Module called twice in one trace (e.g. a shared Dropout) draw
        different random numbers each time, deterministically.
        """
        start = self.random_offsets.get(stream, 0)
        self.random_offsets[stream] = start + count
        return start


_ACTIVE: list[TraceContext] = []


def push_context(context: TraceContext) -> None:
    """Make ``context`` the active trace (``trace`` pairs this with ``pop_context``)."""
    _ACTIVE.append(context)


def pop_context() -> None:
    """Leave the innermost active trace."""
    _ACTIVE.pop()


def current_context() -> TraceContext | None:
    """The innermost active trace, or None outside tracing."""
    return _ACTIVE[-1] if _ACTIVE else None


def active_context(what: str) -> TraceContext:
    """The innermost active trace; TraceError naming ``what`` when there is none."""
    if not _ACTIVE:
        raise TraceError(f"{what} needs an active trace: call it inside a function passed to needlec.trace "
                         f"or needlec.compile")
    return _ACTIVE[-1]


def graph_of(*operands: Any, what: str) -> Graph:
    """The graph shared by the Tensor ``operands`` (the active trace's if there is none)."""
    graphs = {id(x.graph): x.graph for x in operands if isinstance(x, Tensor)}
    if len(graphs) > 1:
        raise TraceError(f"{what}: operands come from different traces; a Tensor belongs to the trace "
                         f"that created it")
    if graphs:
        return next(iter(graphs.values()))
    return active_context(what).graph


def as_tensor(x: Any, graph: Graph, what: str, dtype: DType | None = None) -> Tensor:
    """``x`` as a Tensor of ``graph``: Tensors pass through, everything else becomes a constant.

    ``dtype`` applies to Python scalars only (weak typing); arrays keep theirs.
    """
    from needlec.frontend.nn.module import State

    if isinstance(x, State):
        x = x.traced()
    if isinstance(x, Tensor):
        if x.graph is not graph:
            raise TraceError(f"{what}: {describe(x.value)} belongs to another trace")
        return x
    if isinstance(x, (np.ndarray, np.generic)):
        return Tensor(graph.add_constant(np.asarray(x), "const"), graph)
    if is_python_scalar(x):
        target = dtype if dtype is not None else default_scalar_dtype(x)
        try:
            data = np.array(x, dtype=target.np)
        except OverflowError:
            raise TraceError(f"{what}: Python scalar {x!r} does not fit dtype {target.value}") from None
        return Tensor(graph.add_constant(data, "const"), graph)
    raise TraceError(f"{what}: cannot use a {type(x).__name__} as a tensor operand; expected a Tensor, "
                     f"a Parameter, a NumPy array or a Python scalar")


def is_python_scalar(x: Any) -> bool:
    """True for Python bools, ints and floats (not NumPy scalars, which are strongly typed)."""
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def default_scalar_dtype(x: bool | int | float) -> DType:
    """The dtype a Python scalar gets on its own: bool, i64 or f32 (as PyTorch does)."""
    if isinstance(x, bool):
        return DType.BOOL
    return DType.I64 if isinstance(x, int) else DType.F32


def scalar_dtype_with(x: bool | int | float, tensor_dtype: DType) -> DType:
    """The dtype of ``tensor op x`` for a Python scalar ``x`` (weak typing)."""
    if isinstance(x, bool) or (isinstance(x, int) and not tensor_dtype.is_bool):
        return tensor_dtype
    if isinstance(x, int):
        return DType.I64
    return tensor_dtype if tensor_dtype.is_float else DType.F32


def result_dtype(dtypes: Sequence[DType], what: str) -> DType:
    """NumPy's promotion of ``dtypes``; TraceError if needlec lacks the result type."""
    promoted = np.result_type(*[d.np for d in dtypes])
    try:
        return DType.from_numpy(promoted)
    except IRError:
        raise TraceError(f"{what}: dtypes {', '.join(d.value for d in dtypes)} promote to {promoted.name}, "
                         f"which needlec does not support; cast explicitly") from None


def promote(operands: Sequence[Any], what: str) -> list[Tensor]:
    """``operands`` as Tensors of one graph and one dtype (casts inserted where needed)."""
    graph = graph_of(*operands, what=what)
    tensors = [None if is_python_scalar(x) else as_tensor(x, graph, what) for x in operands]
    strong = [t for t in tensors if t is not None]
    if strong:
        dtype = result_dtype([t.dtype for t in strong], what)
        for x in operands:
            if is_python_scalar(x):
                dtype = scalar_dtype_with(x, dtype)
    else:
        alone = {default_scalar_dtype(x) for x in operands}
        dtype = DType.F32 if DType.F32 in alone else DType.I64 if DType.I64 in alone else DType.BOOL
    return [(t if t is not None else as_tensor(x, graph, what, dtype)).astype(dtype)
            for t, x in zip(tensors, operands)]


class Tensor:
    """A symbolic tensor recorded into a graph while tracing (see the module docstring)."""

    __array_ufunc__ = None  # ``ndarray op Tensor`` defers to the Tensor's reflected operator
    __hash__ = object.__hash__  # ``==`` is elementwise, hashing stays by identity (as in PyTorch)

    def __init__(self, value: Value, graph: Graph) -> None:
        self.value = value
        self.graph = graph

    # -- static properties ----------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The static shape."""
        return self.value.shape

    @property
    def dtype(self) -> DType:
        """The element type."""
        return self.value.dtype

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """The number of elements."""
        return self.value.type.size

    def __len__(self) -> int:
        if not self.shape:
            raise TraceError(f"len() of 0-d {describe(self.value)}: a 0-d tensor has no length")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        """Iterate over the first axis (static: the loop unrolls into one index view per row)."""
        if not self.shape:
            raise TraceError(f"cannot iterate over 0-d {describe(self.value)}")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self) -> str:
        return f"Tensor({describe(self.value)}: {self.value.type})"

    # -- data-dependent Python values are not available while tracing ----------
    def _no_data(self, use: str) -> TraceError:
        return TraceError(f"{use} needs the value of {describe(self.value)}, which does not exist while "
                          f"tracing: data-dependent Python control flow cannot be traced; use "
                          f"needlec.ops.where(cond, a, b) to select values instead")

    def __bool__(self) -> bool:
        raise self._no_data("bool() (an `if`, `while`, `and`/`or` or `not` on a tensor)")

    def __int__(self) -> int:
        raise self._no_data("int()")

    def __float__(self) -> float:
        raise self._no_data("float()")

    def __index__(self) -> int:
        raise self._no_data("using a tensor as a Python index")

    def item(self) -> Any:
        """Unavailable while tracing: raises TraceError."""
        raise self._no_data(".item()")

    def numpy(self) -> np.ndarray:
        """Unavailable while tracing: raises TraceError."""
        raise self._no_data(".numpy()")

    def tolist(self) -> list:
        """Unavailable while tracing: raises TraceError."""
        raise self._no_data(".tolist()")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise self._no_data("converting to a NumPy array")

    # -- arithmetic -------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return F.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return F.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return F.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return F.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return F.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return F.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return F.true_divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return F.true_divide(other, self)

    def __floordiv__(self, other: Any) -> Tensor:
        return F.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return F.floor_divide(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return F.mod(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return F.mod(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return F.pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return F.pow(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return F.matmul(other, self)

    def __neg__(self) -> Tensor:
        return F.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return F.abs(self)

    # -- comparisons (elementwise, bool results) ---------------------------------
    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.ne(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return F.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return F.le(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return F.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return F.ge(self, other)

    # -- boolean logic (bool tensors only) ----------------------------------------
    def __and__(self, other: Any) -> Tensor:
        return F.logical_and(self, other)

    def __rand__(self, other: Any) -> Tensor:
        return F.logical_and(other, self)

    def __or__(self, other: Any) -> Tensor:
        return F.logical_or(self, other)

    def __ror__(self, other: Any) -> Tensor:
        return F.logical_or(other, self)

    def __xor__(self, other: Any) -> Tensor:
        return F.logical_xor(self, other)

    def __rxor__(self, other: Any) -> Tensor:
        return F.logical_xor(other, self)

    def __invert__(self) -> Tensor:
        return F.logical_not(self)

    # -- views and shape changes ----------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """Same elements, new shape (one dimension may be -1); copies first when not dense."""
        return F.reshape(self, _shape_args(shape))

    def permute(self, *dims: int | Sequence[int]) -> Tensor:
        """Reorder axes: output axis i is input axis ``dims[i]``."""
        return F.permute(self, _shape_args(dims))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        """Swap two axes."""
        return F.transpose(self, dim0, dim1)

    @property
    def T(self) -> Tensor:
        """All axes reversed (NumPy's ``.T``)."""
        return F.permute(self, tuple(reversed(range(self.ndim))))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge axes ``start_dim..end_dim`` into one."""
        return F.flatten(self, start_dim, end_dim)

    def unsqueeze(self, axis: int) -> Tensor:
        """Insert a size-1 axis at ``axis``."""
        return F.unsqueeze(self, axis)

    def squeeze(self, axis: int | Sequence[int] | None = None) -> Tensor:
        """Remove size-1 axes (all of them, or the given ones)."""
        return F.squeeze(self, axis)

    def broadcast_to(self, *shape: int | Sequence[int]) -> Tensor:
        """NumPy broadcast to ``shape`` (a view)."""
        return F.broadcast_to(self, _shape_args(shape))

    def astype(self, dtype: DTypeLike) -> Tensor:
        """Convert to ``dtype`` (no node when it already has it)."""
        return F.cast(self, dtype)

    def __getitem__(self, key: Any) -> Tensor:
        return index(self, key)

    # -- reductions ------------------------------------------------------------------
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes when None)."""
        return F.sum(self, axis, keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Arithmetic mean over ``axis`` (all axes when None)."""
        return F.mean(self, axis, keepdims)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis`` (all axes when None)."""
        return F.max(self, axis, keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis`` (all axes when None)."""
        return F.min(self, axis, keepdims)

    def prod(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Product over ``axis`` (all axes when None)."""
        return F.prod(self, axis, keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Index (i64) of the first maximum along ``axis`` (of the flattened tensor when None)."""
        return F.argmax(self, axis, keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Index (i64) of the first minimum along ``axis`` (of the flattened tensor when None)."""
        return F.argmin(self, axis, keepdims)

    # -- elementwise math ------------------------------------------------------------
    def exp(self) -> Tensor:
        """e ** x."""
        return F.exp(self)

    def log(self) -> Tensor:
        """Natural logarithm."""
        return F.log(self)

    def sqrt(self) -> Tensor:
        """Square root."""
        return F.sqrt(self)

    def rsqrt(self) -> Tensor:
        """1 / sqrt(x)."""
        return F.rsqrt(self)

    def reciprocal(self) -> Tensor:
        """1 / x."""
        return F.reciprocal(self)

    def abs(self) -> Tensor:
        """|x|."""
        return F.abs(self)

    def tanh(self) -> Tensor:
        """Hyperbolic tangent."""
        return F.tanh(self)

    def sigmoid(self) -> Tensor:
        """1 / (1 + e ** -x)."""
        return F.sigmoid(self)

    def relu(self) -> Tensor:
        """max(x, 0)."""
        return F.relu(self)

    def softmax(self, axis: int = -1) -> Tensor:
        """Softmax along ``axis``."""
        return F.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        """Log-softmax along ``axis``."""
        return F.log_softmax(self, axis)


def _shape_args(args: Sequence[int | Sequence[int]]) -> tuple[int, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` both mean the shape/axes ``(2, 3)``."""
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        return tuple(int(d) for d in args[0])
    return tuple(int(d) for d in args)  # type: ignore[arg-type]


def index(x: Tensor, key: Any) -> Tensor:
    """Basic indexing: ints, slices, ``None`` and ``...`` (a slice view, then a reshape if needed)."""
    items = list(key) if isinstance(key, tuple) else [key]
    for item in items:
        if isinstance(item, (bool, np.bool_)) or not (
                item is None or item is Ellipsis or isinstance(item, (builtins.slice, int, np.integer))):
            raise TraceError(f"indexing {describe(x.value)} with a {type(item).__name__}: only ints, slices, "
                             f"None and ... are supported; use needlec.ops.gather for index arrays")
    consumed = sum(1 for item in items if item is not None and item is not Ellipsis)
    if consumed > x.ndim:
        raise TraceError(f"too many indices for {describe(x.value)}: rank {x.ndim}, found {consumed}")
    if sum(1 for item in items if item is Ellipsis) > 1:
        raise TraceError(f"indexing {describe(x.value)}: at most one ... is allowed")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at:at + 1] = [builtins.slice(None)] * (x.ndim - consumed)
    else:
        items += [builtins.slice(None)] * (x.ndim - consumed)
    bounds: list[tuple[int, int, int, int]] = []  # (start, stop, step, axis) of each sliced axis
    out_shape: list[int] = []
    axis = 0
    for item in items:
        if item is None:
            out_shape.append(1)
            continue
        dim = x.shape[axis]
        if isinstance(item, builtins.slice):
            step = 1 if item.step is None else int(item.step)
            if step == 0:
                raise TraceError(f"indexing {describe(x.value)}: slice step must not be 0")
            start = (0 if step > 0 else OPEN_END) if item.start is None else int(item.start)
            stop = (OPEN_END if step > 0 else -OPEN_END) if item.stop is None else int(item.stop)
            if (start, stop, step) != (0, OPEN_END, 1):
                bounds.append((start, stop, step, axis))
            out_shape.append(len(range(dim)[builtins.slice(start, stop, step)]))
        else:
            i = int(item)
            if not -dim <= i < dim:
                raise TraceError(f"index {i} is out of bounds for axis {axis} of {describe(x.value)} "
                                 f"with size {dim}")
            i %= dim
            bounds.append((i, i + 1, 1, axis))
        axis += 1
    if bounds:
        starts, stops, steps, axes = zip(*bounds)
        x = F.slice(x, starts, stops, steps, axes)
    return x if tuple(out_shape) == x.shape else F.reshape(x, out_shape)


from needlec.frontend import tensor_ops as F  # noqa: E402  (tensor_ops builds on Tensor)
