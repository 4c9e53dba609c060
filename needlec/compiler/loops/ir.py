"""Loop IR: kernels over flat buffers, shared by the CPU and GPU backends.

A ``Kernel`` is a list of statements over ``Buffer`` parameters. Statements are
loop nests (``Loop``), stores, scalar locals and conditionals; expressions are
constants, loop variables, loads at index expressions and scalar arithmetic.
Index expressions are ``i64`` expressions built from a value's strides and
offset (see ``builder.Operand``). Loops carry their schedule (``kind``:
serial, parallel, vectorize, or a GPU binding) so that schedule
transformations are rewrites of this IR. All nodes are frozen dataclasses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from needlec.compiler.ir.dtypes import DType

UNARY_OPS = frozenset({"neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "erf",
                       "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
                       "floor", "ceil", "round", "not"})
ARITH_OPS = frozenset({"add", "sub", "mul", "div", "mod", "fmod", "pow", "max", "min",
                       "and", "or", "xor", "shl", "lshr", "shr"})
COMPARE_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
LOOP_KINDS = ("serial", "parallel", "vectorize", "gpu_block", "gpu_thread")


@dataclass(frozen=True)
class Buffer:
    """A flat array of ``size`` elements of ``dtype``, named in its program."""

    name: str
    dtype: DType
    size: int


class Expr:
    """Base of scalar expressions; ``dtype`` is the result type."""

    dtype: DType


@dataclass(frozen=True)
class Const(Expr):
    value: Any
    dtype: DType = DType.I64


@dataclass(frozen=True)
class Var(Expr):
    """A loop index variable (always i64)."""

    name: str
    dtype: DType = field(default=DType.I64, init=False)


@dataclass(frozen=True)
class LocalRef(Expr):
    """Reads a scalar local declared by ``Local``."""

    name: str
    dtype: DType


@dataclass(frozen=True)
class Load(Expr):
    buffer: Buffer
    index: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.buffer.dtype


@dataclass(frozen=True)
class Unary(Expr):
    op: str
    x: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.x.dtype


@dataclass(frozen=True)
class Binary(Expr):
    """Arithmetic (same-typed operands) or comparison (result bool)."""

    op: str
    a: Expr
    b: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return DType.BOOL if self.op in COMPARE_OPS else self.a.dtype


@dataclass(frozen=True)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.a.dtype


@dataclass(frozen=True)
class Cast(Expr):
    dtype: DType
    x: Expr


class Stmt:
    """Base of statements."""


@dataclass(frozen=True)
class Loop(Stmt):
    """``for var in range(start, start + extent)`` with a schedule annotation."""

    var: str
    extent: int
    body: tuple[Stmt, ...]
    kind: str = "serial"
    start: int = 0


@dataclass(frozen=True)
class Store(Stmt):
    buffer: Buffer
    index: Expr
    value: Expr


@dataclass(frozen=True)
class Local(Stmt):
    """Declare a scalar local initialised to ``init``; visible to later statements."""

    name: str
    init: Expr


@dataclass(frozen=True)
class Assign(Stmt):
    name: str
    value: Expr


@dataclass(frozen=True)
class If(Stmt):
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] = ()


@dataclass(frozen=True)
class Source:
    """One graph node a kernel implements: its name, op and attributes (sorted by key).

    A variable update's kernel has ``op="update"`` and the variable's name.
    """

    node: str
    op: str
    attrs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Kernel:
    """One generated function: ``body`` over ``buffers``; ``sources`` are the graph nodes it implements, in order."""

    name: str
    buffers: tuple[Buffer, ...]
    body: tuple[Stmt, ...]
    sources: tuple[Source, ...] = ()

    @property
    def ops(self) -> tuple[str, ...]:
        """The ops this kernel implements, in order (one per source)."""
        return tuple(s.op for s in self.sources)


@dataclass(frozen=True)
class Storage:
    """Where a buffer lives: an ``input``/``output`` slot, a ``constant``, a ``variable`` or the ``arena``."""

    kind: str
    slot: int = 0
    offset: int = -1


@dataclass
class Program:
    """A lowered graph: kernels in execution order plus where each buffer lives.

    ``storage`` maps buffer name to its ``Storage``; ``constants`` maps each
    constant and variable buffer's name to its (initial) data; ``arena_size``
    is in bytes (set by memory planning); ``inputs``, ``outputs`` and
    ``variables`` record (name, shape, dtype) in slot order.
    """

    name: str
    kernels: list[Kernel]
    buffers: dict[str, Buffer]
    storage: dict[str, Storage]
    constants: dict[str, Any]
    inputs: list[tuple[str, tuple[int, ...], DType]]
    outputs: list[tuple[str, tuple[int, ...], DType]]
    variables: list[tuple[str, tuple[int, ...], DType]] = field(default_factory=list)
    arena_size: int = 0
