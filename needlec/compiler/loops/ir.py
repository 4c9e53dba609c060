"""Loop IR: kernels over flat buffers, shared by the CPU and GPU backends.

A ``Kernel`` is a list of statements over ``Buffer`` parameters. Statements are
loop nests (``Loop``), stores, scalar locals and conditionals; expressions are
constants, loop variables, loads at index expressions and scalar arithmetic.
Index expressions are ``i64`` expressions built from a value's strides and
offset (see ``builder.Operand``). Loops carry their schedule (``kind``:
serial, parallel, vectorize, or a GPU binding) so that schedule
transformations are rewrites of this IR. All nodes are frozen dataclasses.

Operators, loop kinds and storage kinds are string enums (``UnaryOp``,
``BinaryOp``, ``LoopKind``, ``StorageKind``): nodes accept their names
(``Binary("add", a, b)``) and coerce them on construction, so a misspelt name
fails there. ``verifier.verify_program`` checks a program, ``interpreter``
runs it with NumPy, and ``printer`` / ``parser`` write and read its text.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from needlec.compiler.ir.dtypes import DType
from needlec.errors import IRError

class _Named(str, enum.Enum):
    """A string enum whose members print as their value (``str`` and f-strings), so ``"add" == BinaryOp.ADD``."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def coerce(cls, value: object, where: str) -> Any:
        """``value`` as a member; IRError naming ``where`` and the valid values when it is none."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise IRError(f"{where}: unknown {cls.__name__} {value!r} (expected one of {valid})") from None


class LoopKind(_Named):
    """How a loop runs: its schedule annotation."""

    SERIAL = "serial"
    PARALLEL = "parallel"
    VECTORIZE = "vectorize"
    GPU_BLOCK = "gpu_block"
    GPU_THREAD = "gpu_thread"


class UnaryOp(_Named):
    """Operators of ``Unary`` (``not`` is boolean not on bool, bitwise not on integers)."""

    NEG = "neg"
    ABS = "abs"
    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    SIN = "sin"
    COS = "cos"
    TAN = "tan"
    TANH = "tanh"
    ERF = "erf"
    ASIN = "asin"
    ACOS = "acos"
    ATAN = "atan"
    SINH = "sinh"
    COSH = "cosh"
    ASINH = "asinh"
    ACOSH = "acosh"
    ATANH = "atanh"
    FLOOR = "floor"
    CEIL = "ceil"
    ROUND = "round"
    NOT = "not"


class BinaryOp(_Named):
    """Operators of ``Binary``: arithmetic and bitwise (result has the operands' dtype) or comparison (bool)."""

    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    MOD = "mod"
    FMOD = "fmod"
    POW = "pow"
    MAX = "max"
    MIN = "min"
    AND = "and"
    OR = "or"
    XOR = "xor"
    SHL = "shl"
    LSHR = "lshr"
    SHR = "shr"
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"

    @property
    def is_comparison(self) -> bool:
        """True for ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge`` (bool result)."""
        return self in _COMPARISONS


_COMPARISONS = frozenset({BinaryOp.EQ, BinaryOp.NE, BinaryOp.LT, BinaryOp.LE, BinaryOp.GT, BinaryOp.GE})


# ops whose result on bf16 operands is a bf16 value already: no rounding back to bf16 (codegen and interpreter)
EXACT_ON_BF16 = frozenset({UnaryOp.NEG, UnaryOp.ABS, UnaryOp.FLOOR, UnaryOp.CEIL, UnaryOp.ROUND,
                           BinaryOp.MAX, BinaryOp.MIN})


class StorageKind(_Named):
    """Where a buffer lives: a caller's ``input``/``output`` slot, a ``constant``, a ``variable`` or the ``arena``."""

    INPUT = "input"
    OUTPUT = "output"
    CONSTANT = "constant"
    VARIABLE = "variable"
    ARENA = "arena"


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
    op: UnaryOp
    x: Expr

    if TYPE_CHECKING:  # the op may be given by name; the dataclass __init__ coerces it
        def __init__(self, op: UnaryOp | str, x: Expr) -> None: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", UnaryOp.coerce(self.op, "unary expression"))

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.x.dtype


@dataclass(frozen=True)
class Binary(Expr):
    """Arithmetic (same-typed operands) or comparison (result bool)."""

    op: BinaryOp
    a: Expr
    b: Expr

    if TYPE_CHECKING:  # the op may be given by name; the dataclass __init__ coerces it
        def __init__(self, op: BinaryOp | str, a: Expr, b: Expr) -> None: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", BinaryOp.coerce(self.op, "binary expression"))

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return DType.BOOL if self.op.is_comparison else self.a.dtype


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
    kind: LoopKind = LoopKind.SERIAL
    start: int = 0

    if TYPE_CHECKING:  # the kind may be given by name; the dataclass __init__ coerces it
        def __init__(self, var: str, extent: int, body: tuple[Stmt, ...], kind: LoopKind | str = LoopKind.SERIAL,
                     start: int = 0) -> None: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", LoopKind.coerce(self.kind, f"loop {self.var}"))


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
    """One graph node a kernel implements: its name, op and attributes (sorted by key), and the node's
    ``origin`` (its provenance, such as the ONNX node ``/0/Conv``; None when it has none).

    A variable update's kernel has ``op="update"`` and the variable's name.
    """

    node: str
    op: str
    attrs: tuple[tuple[str, Any], ...] = ()
    origin: str | None = None


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

    kind: StorageKind
    slot: int = 0
    offset: int = -1

    if TYPE_CHECKING:  # the kind may be given by name; the dataclass __init__ coerces it
        def __init__(self, kind: StorageKind | str, slot: int = 0, offset: int = -1) -> None: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", StorageKind.coerce(self.kind, "storage"))


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
