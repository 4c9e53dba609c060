"""The loop-IR verifier: ``verify_program`` checks a ``Program``'s invariants before code is emitted.

Program level: every buffer has a storage and every storage a buffer; input
and output slots match ``program.inputs`` / ``outputs`` (one buffer per
slot, of the signature's dtype and size); constant and variable buffers hold
data of their size and dtype; once ``plan_memory`` has placed the arena,
every arena buffer a kernel touches lies within ``arena_size``.

Kernel level: parameters are program buffers and every buffer a kernel
loads or stores is a parameter (possibly read as another dtype of the same
element size, as ``bitcast`` does); loop variables and locals are declared
before use and never redeclared while in scope; loop extents are
non-negative; index expressions are i64; operands of a binary op share a
dtype; conditions are bool; a store's value has its buffer's dtype and an
assignment's its local's; an op is one the codegen defines for its dtype; a
constant index outside any ``if`` lies within its buffer.

Errors are ``VerificationError``s naming the kernel and the statement by its
path: ``statement 2.1`` is the first statement in the body of the kernel's
second statement (``2.else.1`` in an ``else`` branch).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.loops.ir import (Assign, Binary, BinaryOp, Buffer, Cast, Const, Expr, If, Kernel, Load, Local,
                                       LocalRef, Loop, Program, Select, Stmt, StorageKind, Store, Unary, UnaryOp, Var)
from needlec.errors import VerificationError

FLOAT_ONLY_UNARY = frozenset(set(UnaryOp) - {UnaryOp.NEG, UnaryOp.ABS, UnaryOp.NOT})
"""Unary ops the codegen defines on floats only (``neg`` and ``abs`` take any number, ``not`` no float)."""
FLOAT_ONLY_BINARY = frozenset({BinaryOp.POW})
INT_ONLY_BINARY = frozenset({BinaryOp.AND, BinaryOp.OR, BinaryOp.XOR, BinaryOp.SHL, BinaryOp.LSHR, BinaryOp.SHR})


def _fail(where: str, message: str) -> VerificationError:
    return VerificationError(f"{where}: {message}")


@dataclass
class _Scope:
    """Names visible at a statement: loop variables (None) and locals (their dtype)."""

    names: dict[str, DType | None] = field(default_factory=dict)

    def child(self) -> _Scope:
        return _Scope(dict(self.names))


class _KernelVerifier:
    """Walks one kernel's statements, tracking scope and the statement path."""

    def __init__(self, kernel: Kernel, buffers: dict[str, Buffer]) -> None:
        self.kernel = kernel
        self.program_buffers = buffers
        self.params = {b.name: b for b in kernel.buffers}
        self.path = ""

    def fail(self, message: str) -> VerificationError:
        where = f"kernel {self.kernel.name}" + (f", statement {self.path}" if self.path else "")
        return _fail(where, message)

    def verify(self) -> None:
        if len(self.params) != len(self.kernel.buffers):
            raise self.fail("a buffer is passed twice")
        for buf in self.kernel.buffers:
            if self.program_buffers.get(buf.name) != buf:
                held = self.program_buffers.get(buf.name)
                found = "no such buffer" if held is None else f"the program's is {held.dtype.value}[{held.size}]"
                raise self.fail(f"parameter %{buf.name}: {buf.dtype.value}[{buf.size}], but {found}")
        self.block(self.kernel.body, _Scope(), "", guarded=False)

    def block(self, stmts: tuple[Stmt, ...], scope: _Scope, prefix: str, guarded: bool) -> None:
        for i, stmt in enumerate(stmts, 1):
            self.path = f"{prefix}{i}"
            self.stmt(stmt, scope, guarded)

    def declare(self, name: str, dtype: DType | None, scope: _Scope) -> None:
        if name in scope.names:
            raise self.fail(f"{name} is declared again while an outer {name} is in scope")
        scope.names[name] = dtype

    def stmt(self, s: Stmt, scope: _Scope, guarded: bool) -> None:
        path = self.path
        if isinstance(s, Loop):
            if s.extent < 0:
                raise self.fail(f"loop {s.var}: extent {s.extent} is negative")
            inner = scope.child()
            self.declare(s.var, None, inner)
            self.block(s.body, inner, f"{path}.", guarded)
        elif isinstance(s, Store):
            self.access("store to", s.buffer, s.index, scope, guarded)
            value = self.expr(s.value, scope, guarded)
            if value is not s.buffer.dtype:
                raise self.fail(f"store to %{s.buffer.name}: value is {value.value}, "
                                f"buffer holds {s.buffer.dtype.value}")
        elif isinstance(s, Local):
            init = self.expr(s.init, scope, guarded)
            self.declare(s.name, init, scope)
        elif isinstance(s, Assign):
            if s.name not in scope.names:
                raise self.fail(f"assignment to undeclared local {s.name}")
            declared = scope.names[s.name]
            if declared is None:
                raise self.fail(f"assignment to loop variable {s.name}")
            value = self.expr(s.value, scope, guarded)
            if value is not declared:
                raise self.fail(f"assignment to {s.name}: value is {value.value}, local is {declared.value}")
        elif isinstance(s, If):
            self.condition("if", s.cond, scope, guarded)
            self.block(s.then, scope.child(), f"{path}.", guarded=True)
            self.block(s.orelse, scope.child(), f"{path}.else.", guarded=True)
        else:
            raise self.fail(f"unknown statement {type(s).__name__}")
        self.path = path

    def condition(self, what: str, cond: Expr, scope: _Scope, guarded: bool) -> None:
        dtype = self.expr(cond, scope, guarded)
        if dtype is not DType.BOOL:
            raise self.fail(f"{what} condition is {dtype.value}, expected bool")

    def access(self, what: str, buffer: Buffer, index: Expr, scope: _Scope, guarded: bool) -> None:
        param = self.params.get(buffer.name)
        if param is None:
            raise self.fail(f"{what} %{buffer.name}: not a parameter of the kernel")
        if param != buffer and (param.size, param.dtype.itemsize) != (buffer.size, buffer.dtype.itemsize):
            raise self.fail(f"{what} %{buffer.name}: accessed as {buffer.dtype.value}[{buffer.size}], "
                            f"the parameter is {param.dtype.value}[{param.size}] "
                            "(a reinterpreting access keeps size and element size)")
        dtype = self.expr(index, scope, guarded)
        if dtype is not DType.I64:
            raise self.fail(f"{what} %{buffer.name}: index is {dtype.value}, expected i64")
        if isinstance(index, Const) and not guarded and not 0 <= int(index.value) < buffer.size:
            raise self.fail(f"{what} %{buffer.name}: index {index.value} is outside the buffer (size {buffer.size})")

    def expr(self, e: Expr, scope: _Scope, guarded: bool) -> DType:
        """The dtype of ``e`` after checking it."""
        if isinstance(e, Const):
            return e.dtype
        if isinstance(e, Var):
            if e.name not in scope.names or scope.names[e.name] is not None:
                raise self.fail(f"loop variable {e.name} is used outside its loop")
            return DType.I64
        if isinstance(e, LocalRef):
            declared = scope.names.get(e.name)
            if declared is None:
                raise self.fail(f"local {e.name} is used before its declaration (or outside its scope)")
            if declared is not e.dtype:
                raise self.fail(f"local {e.name} is read as {e.dtype.value}, declared {declared.value}")
            return e.dtype
        if isinstance(e, Load):
            self.access("load from", e.buffer, e.index, scope, guarded)
            return e.dtype
        if isinstance(e, Unary):
            x = self.expr(e.x, scope, guarded)
            if e.op in FLOAT_ONLY_UNARY and not x.is_float_format or e.op is UnaryOp.NOT and x.is_float_format:
                raise self.fail(f"{e.op} is not defined on {x.value}")
            return e.dtype
        if isinstance(e, Binary):
            a, b = self.expr(e.a, scope, guarded), self.expr(e.b, scope, guarded)
            if a is not b:
                raise self.fail(f"{e.op} operands differ: {a.value} and {b.value}")
            if e.op in FLOAT_ONLY_BINARY and not a.is_float_format or e.op in INT_ONLY_BINARY and a.is_float_format:
                raise self.fail(f"{e.op} is not defined on {a.value}")
            return e.dtype
        if isinstance(e, Select):
            self.condition("select", e.cond, scope, guarded)
            a, b = self.expr(e.a, scope, guarded), self.expr(e.b, scope, guarded)
            if a is not b:
                raise self.fail(f"select branches differ: {a.value} and {b.value}")
            return a
        if isinstance(e, Cast):
            self.expr(e.x, scope, guarded)
            return e.dtype
        raise self.fail(f"unknown expression {type(e).__name__}")


def _verify_signature(program: Program, where: str) -> None:
    """Input/output slots: one buffer each, matching the signature's dtype and element count."""
    for kind, signature in ((StorageKind.INPUT, program.inputs), (StorageKind.OUTPUT, program.outputs)):
        held: dict[int, str] = {}
        for name, storage in program.storage.items():
            if storage.kind is kind:
                if not 0 <= storage.slot < len(signature):
                    raise _fail(where, f"buffer %{name}: {kind} slot {storage.slot} is not in the signature "
                                       f"({len(signature)} {kind}s)")
                if storage.slot in held:
                    raise _fail(where, f"{kind} slot {storage.slot} is held by %{held[storage.slot]} and %{name}")
                held[storage.slot] = name
        for slot, (value, shape, dtype) in enumerate(signature):
            if slot not in held:
                raise _fail(where, f"{kind} {slot} (%{value}) has no buffer")
            buf = program.buffers[held[slot]]
            size = int(np.prod(shape, dtype=np.int64))
            if buf.dtype is not dtype or buf.size != size:
                raise _fail(where, f"{kind} {slot} (%{value}) is {dtype.value}[{size}], "
                                   f"its buffer %{buf.name} is {buf.dtype.value}[{buf.size}]")


def _verify_storage(program: Program, where: str) -> None:
    for name, buf in program.buffers.items():
        if buf.name != name:
            raise _fail(where, f"buffer %{buf.name} is listed as %{name}")
        if name not in program.storage:
            raise _fail(where, f"buffer %{name} has no storage")
        if buf.size < 0:
            raise _fail(where, f"buffer %{name} has negative size {buf.size}")
    for name in program.storage:
        if name not in program.buffers:
            raise _fail(where, f"storage for unknown buffer %{name}")
    _verify_signature(program, where)
    held_data = {StorageKind.CONSTANT, StorageKind.VARIABLE}
    for name, storage in program.storage.items():
        buf = program.buffers[name]
        if storage.kind in held_data:
            if name not in program.constants:
                raise _fail(where, f"{storage.kind} buffer %{name} has no data")
            data = np.asarray(program.constants[name])
            if data.size != buf.size or data.dtype != buf.dtype.np:
                raise _fail(where, f"{storage.kind} %{name}: data is {data.dtype}[{data.size}], "
                                   f"buffer is {buf.dtype.value}[{buf.size}]")
    for name in program.constants:
        if name not in program.storage or program.storage[name].kind not in held_data:
            raise _fail(where, f"data for %{name}, which is not a constant or variable buffer")
    variables = [n for n, s in program.storage.items() if s.kind is StorageKind.VARIABLE]
    if len(variables) != len(program.variables):
        raise _fail(where, f"{len(variables)} variable buffers for {len(program.variables)} variables")
    touched = {b.name for k in program.kernels for b in k.buffers}
    arena = {n: s for n, s in program.storage.items() if s.kind is StorageKind.ARENA and n in touched}
    if any(s.offset >= 0 for s in arena.values()):  # planned
        for name, storage in arena.items():
            buf = program.buffers[name]
            end = storage.offset + buf.size * buf.dtype.itemsize
            if storage.offset < 0 or end > program.arena_size:
                raise _fail(where, f"arena buffer %{name} at offset {storage.offset} ({buf.size * buf.dtype.itemsize} "
                                   f"bytes) is outside the arena ({program.arena_size} bytes)")


def verify_program(program: Program) -> None:
    """Raise ``VerificationError`` naming the kernel and statement (or buffer) of the first broken invariant."""
    where = f"program @{program.name}"
    _verify_storage(program, where)
    names = set()
    for kernel in program.kernels:
        if kernel.name in names:
            raise _fail(where, f"kernel name {kernel.name} is used twice")
        names.add(kernel.name)
        _KernelVerifier(kernel, program.buffers).verify()
