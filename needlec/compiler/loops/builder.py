"""Helpers that op lowerings use to build loop IR.

``Operand`` is a graph value as a kernel sees it: a buffer plus the value's
shape, strides and offset, so ``operand.load(idx)`` turns a multi-index into
the flat index ``offset + sum(idx[i] * strides[i])``. ``KernelBuilder`` hands
out fresh variable names; ``loop_nest`` builds a nest over a shape.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.ir import (Binary, Buffer, Cast, Const, Expr, Load, Loop, Select, Stmt,
                                       Store, Unary, Var)


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


@dataclass(frozen=True)
class Operand:
    """A graph value inside a kernel: its buffer and its layout in that buffer."""

    buffer: Buffer
    type: TensorType

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    def index(self, idx: Sequence[Expr]) -> Expr:
        """Flat buffer index of the element at multi-index ``idx``."""
        assert len(idx) == self.type.rank, (idx, self.type)
        return linear_index(list(zip(idx, self.type.strides_or_default)), self.type.offset)

    def load(self, idx: Sequence[Expr]) -> Expr:
        return Load(self.buffer, self.index(idx))

    def store(self, idx: Sequence[Expr], value: Expr) -> Store:
        return Store(self.buffer, self.index(idx), cast(value, self.dtype))

    def load_broadcast(self, idx: Sequence[Expr], out_shape: Sequence[int]) -> Expr:
        """Load with NumPy broadcasting from an output index ``idx`` of ``out_shape``."""
        lead = len(out_shape) - self.type.rank
        mine = [Const(0) if dim == 1 and out_shape[lead + i] != 1 else idx[lead + i]
                for i, dim in enumerate(self.shape)]
        return self.load(mine)


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
