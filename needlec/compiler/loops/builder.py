"""Helpers that op lowerings use to build loop IR.

``Operand`` is a graph value as a kernel reads it: ``load(idx)`` gives the
element at a multi-index of its shape, ``load_broadcast`` the element for an
index of a wider output (NumPy broadcasting). Two kinds exist:
``BufferOperand`` holds the value in a buffer (its shape, strides and offset
turn a multi-index into the flat index ``offset + sum(idx[i] * strides[i])``;
outputs are always of this kind), and ``InlineOperand`` computes each element
from a producer's inputs through the producer's ``OpDef.scalar``, so a
consumer kernel can fold an elementwise producer in. Elementwise ops lower
through one generic nest, ``lower_elementwise``. ``KernelBuilder`` hands out
fresh variable names; ``loop_nest`` builds a nest over a shape.
"""
from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.ir import (Binary, Buffer, Cast, Const, Expr, Load, Loop, Select, Source, Stmt, Store,
                                       Unary, Var)
from needlec.errors import CodegenError

if TYPE_CHECKING:
    from needlec.compiler.ops.registry import OpDef

# an elementwise op's scalar expression: (arguments, already widened to the compute dtype; attributes) -> result
ScalarFn = Callable[[Sequence[Expr], Mapping[str, Any]], Expr]


def const(value: object, dtype: DType = DType.I64) -> Const:
    """A typed constant (Python bool/int/float normalised to the dtype's kind)."""
    if dtype is DType.BOOL:
        return Const(bool(value), dtype)
    if dtype.is_float_format:
        return Const(float(value), dtype)  # type: ignore[arg-type]
    return Const(int(value), dtype)  # type: ignore[call-overload]


def add(a: Expr, b: Expr) -> Expr:
    """``a + b`` with constant folding of zeros (keeps index expressions short)."""
    if isinstance(b, Const) and b.value == 0:
        return a
    if isinstance(a, Const) and a.value == 0:
        return b
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(a.value + b.value, a.dtype)
    return Binary("add", a, b)


def mul(a: Expr, b: Expr) -> Expr:
    """``a * b`` folding multiplications by 0 and 1."""
    for x, y in ((a, b), (b, a)):
        if isinstance(x, Const):
            if x.value == 1:
                return y
            if x.value == 0 and x.dtype is DType.I64:
                return x
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(a.value * b.value, a.dtype)
    return Binary("mul", a, b)


def linear_index(terms: Sequence[tuple[Expr, int]], offset: int = 0) -> Expr:
    """``offset + sum(e * s)`` over (expression, stride) pairs."""
    result: Expr = Const(offset)
    for expr, stride in terms:
        result = add(result, mul(expr, Const(stride)))
    return result


def cast(x: Expr, dtype: DType) -> Expr:
    return x if x.dtype is dtype else Cast(dtype, x)


def select(cond: Expr, a: Expr, b: Expr) -> Expr:
    return Select(cond, a, b)


def unary(op: str, x: Expr) -> Expr:
    return Unary(op, x)


def binary(op: str, a: Expr, b: Expr) -> Expr:
    return Binary(op, a, b)


def all_of(conds: Sequence[Expr]) -> Expr:
    """Conjunction of boolean expressions (``True`` when empty)."""
    result: Expr = Const(True, DType.BOOL)
    for c in conds:
        result = c if isinstance(result, Const) else Binary("and", result, c)
    return result


def compute_dtype(dtype: DType) -> DType:
    """The type arithmetic is done in: f16 and bf16 compute in f32 (as NumPy and ml_dtypes do)."""
    return DType.F32 if dtype in (DType.F16, DType.BF16) else dtype


class Operand(ABC):
    """A graph value as a kernel reads it (a lowering reads its inputs only through this interface)."""

    type: TensorType

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    @abstractmethod
    def buffers(self) -> tuple[Buffer, ...]:
        """The buffers reading this value touches (the kernel's parameters)."""

    @property
    @abstractmethod
    def sources(self) -> tuple[Source, ...]:
        """The graph nodes computed inside the reading kernel to produce this value, producers first."""

    @abstractmethod
    def load(self, idx: Sequence[Expr]) -> Expr:
        """The element at multi-index ``idx``, of dtype ``self.dtype``."""

    @abstractmethod
    def as_dtype(self, dtype: DType) -> Operand:
        """The same elements' bits read as ``dtype`` (of the same size): ``bitcast``."""

    def load_broadcast(self, idx: Sequence[Expr], out_shape: Sequence[int]) -> Expr:
        """Load with NumPy broadcasting from an output index ``idx`` of ``out_shape``."""
        lead = len(out_shape) - self.type.rank
        mine = [Const(0) if dim == 1 and out_shape[lead + i] != 1 else idx[lead + i]
                for i, dim in enumerate(self.shape)]
        return self.load(mine)


@dataclass(frozen=True)
class BufferOperand(Operand):
    """A value held in a buffer: the buffer and the value's layout in it."""

    buffer: Buffer
    type: TensorType

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        return (self.buffer,)

    @property
    def sources(self) -> tuple[Source, ...]:
        return ()

    def index(self, idx: Sequence[Expr]) -> Expr:
        """Flat buffer index of the element at multi-index ``idx``."""
        assert len(idx) == self.type.rank, (idx, self.type)
        return linear_index(list(zip(idx, self.type.strides_or_default)), self.type.offset)

    def load(self, idx: Sequence[Expr]) -> Expr:
        return Load(self.buffer, self.index(idx))

    def store(self, idx: Sequence[Expr], value: Expr) -> Store:
        return Store(self.buffer, self.index(idx), cast(value, self.dtype))

    def as_dtype(self, dtype: DType) -> BufferOperand:
        return BufferOperand(replace(self.buffer, dtype=dtype), replace(self.type, dtype=dtype))


@dataclass(frozen=True)
class FusedOutput(BufferOperand):
    """A kernel's output stored through its elementwise consumers (an epilogue): ``store(idx, v)`` stores
    ``finish(idx, v)`` into ``buffer``, the last consumer's buffer.

    ``type`` is the value's own type (the lowering sizes its loops and
    accumulator by it); ``finish`` computes the consumers' expression from the
    value (rounded to ``type.dtype`` first, as a store and load would) and
    their other inputs, read through ``inputs``; ``epilogue`` names the
    consumer nodes, in order.
    """

    finish: Callable[[Sequence[Expr], Expr], Expr]
    inputs: tuple[Operand, ...]
    epilogue: tuple[Source, ...]

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        return tuple(dict.fromkeys([self.buffer, *(b for x in self.inputs for b in x.buffers)]))

    @property
    def sources(self) -> tuple[Source, ...]:
        return (*dict.fromkeys(s for x in self.inputs for s in x.sources), *self.epilogue)

    def load(self, idx: Sequence[Expr]) -> Expr:
        raise CodegenError(f"an output stored through {', '.join(s.op for s in self.epilogue)} cannot be read back")

    def store(self, idx: Sequence[Expr], value: Expr) -> Store:
        return Store(self.buffer, self.index(idx), cast(self.finish(idx, cast(value, self.dtype)), self.buffer.dtype))


@dataclass(frozen=True)
class InlineOperand(Operand):
    """The output of an elementwise node ``source``, computed where it is read instead of loaded.

    Element ``idx`` is ``op.scalar`` of the inputs broadcast to ``type.shape``
    (the producer's contiguous output type), rounded to ``type.dtype``: the
    bits a store and a load of the intermediate would give (f16/bf16 results
    round), so folding a node in changes no result. NaN payloads aside: LLVM
    may fold a conversion round trip in registers (f32 -> f64 -> f32, a narrow
    float's rounding) where a store would quiet or encode the NaN.
    """

    op: OpDef
    attrs: Mapping[str, Any]
    inputs: tuple[Operand, ...]
    type: TensorType
    source: Source

    def __post_init__(self) -> None:
        if self.op.scalar is None:
            raise CodegenError(f"node %{self.source.node} ({self.op.name}): only elementwise ops can be inlined")

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        return tuple(dict.fromkeys(b for x in self.inputs for b in x.buffers))

    @property
    def sources(self) -> tuple[Source, ...]:
        return (*dict.fromkeys(s for x in self.inputs for s in x.sources), self.source)

    def load(self, idx: Sequence[Expr]) -> Expr:
        assert self.op.scalar is not None
        args = [x.load_broadcast(idx, self.shape) for x in self.inputs]
        return cast(elementwise_value(self.op.scalar, self.op.promote, args, self.attrs), self.dtype)

    def as_dtype(self, dtype: DType) -> Operand:
        # why: the loop IR has no expression reinterpreting bits, only loads of a buffer with another dtype
        raise CodegenError(f"node %{self.source.node} ({self.op.name}): a value read as another dtype "
                           "(bitcast) must be in a buffer; it cannot be inlined")


def elementwise_value(scalar: ScalarFn, promote: bool, args: Sequence[Expr], attrs: Mapping[str, Any]) -> Expr:
    """``scalar`` of ``args``, widened first to the compute dtype when ``promote`` (f16/bf16 compute in f32)."""
    if promote:
        args = [cast(a, compute_dtype(a.dtype)) for a in args]
    return scalar(args, attrs)


def lower_elementwise(scalar: ScalarFn, promote: bool, kb: KernelBuilder, ins: Sequence[Operand],
                      outs: Sequence[BufferOperand], attrs: Mapping[str, Any]) -> list[Stmt]:
    """The lowering of every elementwise op: one nest over the output storing ``scalar`` of broadcast loads.

    ``OpDef`` binds ``scalar`` and ``promote``; the store rounds the result to the output dtype.
    """
    (out,) = outs
    return kb.loop_nest(out.shape, lambda idx: [
        out.store(idx, elementwise_value(scalar, promote, [x.load_broadcast(idx, out.shape) for x in ins], attrs))])


class KernelBuilder:
    """Hands out kernel-unique names for loop variables and locals."""

    def __init__(self) -> None:
        self._ids = itertools.count()

    def name(self, hint: str) -> str:
        return f"{hint}{next(self._ids)}"

    def var(self, hint: str = "i") -> Var:
        return Var(self.name(hint))

    def loop_nest(self, shape: Sequence[int], body: Callable[[list[Var]], list[Stmt]],
                  hint: str = "i") -> list[Stmt]:
        """A perfect nest over ``shape`` whose innermost body is ``body(index_vars)``."""
        idx = [self.var(hint) for _ in shape]
        stmts: list[Stmt] = list(body(idx))
        for var, extent in reversed(list(zip(idx, shape))):
            stmts = [Loop(var.name, extent, tuple(stmts))]
        return stmts
