"""The loop-IR reference interpreter: ``run_program`` executes a ``Program`` with NumPy.

Scalar semantics are the LLVM codegen's (``codegen/llvm_emit.py``): integer
arithmetic wraps, division by zero gives 0 and ``MIN / -1`` wraps, ``mod`` is
floor-mod and ``fmod`` truncated, shifts read their amount as unsigned (too
far gives 0, or the sign for ``shr`` of a signed value), ``max``/``min``
propagate NaN, float -> integer casts truncate and saturate (NaN gives 0), f16
computes in f16 (each op rounded), bf16 computes in f32 and rounds every
inexact op, and the narrow storage formats round on cast.

Execution is vectorised, not element by element: a value is a NumPy array
broadcast over the loops running "at once". A loop runs at once (its
variable an ``arange`` on a new leading axis) when its iterations are
disjoint (``transforms.iterations_disjoint``: no local declared outside is
assigned, and no two iterations touch a common element of a buffer the loop
writes); otherwise it runs as a Python loop. ``If`` narrows a
mask of active lanes, loads and stores gather and scatter under it, and
assignments merge with it. A load or store outside its buffer raises
``VerificationError``.

Memory: once ``plan_memory`` has placed the arena, arena buffers are views
into one byte array of ``arena_size`` bytes, so a wrong plan gives wrong
numbers; before that each buffer is an array of its own. Memory that no
kernel wrote reads as all-ones bytes (NaN for floats), so reading it shows.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import ml_dtypes
import numpy as np

from needlec.compiler.ir.dtypes import NARROW_FLOAT_DTYPES, NARROW_INT_BITS, NARROW_INT_DTYPES, DType
from needlec.compiler.loops.ir import (EXACT_ON_BF16, Assign, Binary, BinaryOp, Buffer, Cast, Const, Expr, If, Kernel,
                                       Load, Local, LocalRef, Loop, Program, Select, Stmt, StorageKind, Store, Unary,
                                       UnaryOp, Var)
from needlec.compiler.loops.transforms import iterations_disjoint
from needlec.errors import VerificationError

_erf = np.vectorize(math.erf, otypes=[np.float64])
_FLOAT_UNARY = {
    UnaryOp.NEG: np.negative, UnaryOp.ABS: np.abs, UnaryOp.EXP: np.exp, UnaryOp.LOG: np.log, UnaryOp.SQRT: np.sqrt,
    UnaryOp.SIN: np.sin, UnaryOp.COS: np.cos, UnaryOp.TAN: np.tan, UnaryOp.TANH: np.tanh, UnaryOp.ASIN: np.arcsin,
    UnaryOp.ACOS: np.arccos, UnaryOp.ATAN: np.arctan, UnaryOp.SINH: np.sinh, UnaryOp.COSH: np.cosh,
    UnaryOp.ASINH: np.arcsinh, UnaryOp.ACOSH: np.arccosh, UnaryOp.ATANH: np.arctanh, UnaryOp.FLOOR: np.floor,
    UnaryOp.CEIL: np.ceil, UnaryOp.ROUND: np.rint,
}
_COMPARE = {BinaryOp.EQ: np.equal, BinaryOp.NE: np.not_equal, BinaryOp.LT: np.less, BinaryOp.LE: np.less_equal,
            BinaryOp.GT: np.greater, BinaryOp.GE: np.greater_equal}
_SIMPLE = {BinaryOp.ADD: np.add, BinaryOp.SUB: np.subtract, BinaryOp.MUL: np.multiply,
           BinaryOp.AND: np.bitwise_and, BinaryOp.OR: np.bitwise_or, BinaryOp.XOR: np.bitwise_xor}


def register_dtype(dtype: DType) -> np.dtype:
    """The NumPy dtype a value of ``dtype`` has in registers (bf16 and narrow floats: f32; narrow ints: 8 bits)."""
    if dtype is DType.BF16 or dtype in NARROW_FLOAT_DTYPES:
        return np.dtype(np.float32)
    if dtype in NARROW_INT_DTYPES:
        return np.dtype(np.int8 if dtype.is_signed else np.uint8)
    return dtype.np


def _round_bf16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def _wrap_narrow(x: np.ndarray, dtype: DType) -> np.ndarray:
    """The low bits of integer ``x`` as a value of narrow ``dtype`` (sign-extended if signed), in registers."""
    bits = NARROW_INT_BITS[dtype]
    low = np.asarray(x).astype(np.int64) & ((1 << bits) - 1)
    if dtype.is_signed:
        low = np.where(low >= 1 << (bits - 1), low - (1 << bits), low)
    return low.astype(register_dtype(dtype))


def _saturate(x: np.ndarray, low: int, high: int, dtype: np.dtype) -> np.ndarray:
    """Float ``x`` truncated toward zero and clamped to ``[low, high]`` (NaN gives 0), as ``dtype``."""
    t = np.trunc(np.asarray(x, np.float64))
    inside = (t > low) & (t < high)  # NaN is outside both
    result = np.where(inside, t, 0).astype(dtype)
    result = np.where(t >= high, np.array(high).astype(dtype), result)
    return np.where(t <= low, np.array(low).astype(dtype), result)


def cast(x: np.ndarray, src: DType, dst: DType) -> np.ndarray:
    """``x`` (registers of ``src``) converted to ``dst`` as the codegen does: one rounding, saturating float -> int."""
    if src is dst:
        return x
    if dst is DType.BOOL:
        return np.not_equal(x, 0)
    if dst is DType.BF16 or dst in NARROW_FLOAT_DTYPES:  # rounded once, from f64 (which holds every source float)
        return np.asarray(x).astype(np.float64).astype(dst.np).astype(np.float32)
    if dst in NARROW_INT_DTYPES:
        if src.is_float_format:
            bits = NARROW_INT_BITS[dst]
            low, high = (-(1 << bits - 1), (1 << bits - 1) - 1) if dst.is_signed else (0, (1 << bits) - 1)
            return _saturate(x, low, high, register_dtype(dst))
        return _wrap_narrow(x, dst)
    target = register_dtype(dst)
    if src.is_float_format and not dst.is_float_format:
        info = np.iinfo(target)
        return _saturate(x, int(info.min), int(info.max), target)
    return np.asarray(x).astype(target)


def _constant(expr: Const) -> np.ndarray:
    dtype = expr.dtype
    if dtype is DType.BOOL:
        return np.array(bool(expr.value))
    if dtype.is_float_format:  # through the dtype's NumPy twin, as the codegen rounds a constant
        return np.asarray(float(expr.value), np.float64).astype(dtype.np).astype(register_dtype(dtype))
    bits = 8 * register_dtype(dtype).itemsize
    value = int(expr.value) % (1 << bits)
    if dtype.is_signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    if dtype in NARROW_INT_DTYPES:
        return _wrap_narrow(np.array(value), dtype)
    return np.array(value, register_dtype(dtype))


def _unary(op: UnaryOp, dtype: DType, x: np.ndarray) -> np.ndarray:
    if op is UnaryOp.NOT:
        return np.logical_not(x) if dtype is DType.BOOL else np.invert(x)
    if dtype.is_float_format:
        if op is UnaryOp.ERF:
            return _erf(x).astype(np.asarray(x).dtype)
        return _FLOAT_UNARY[op](x)
    if op is UnaryOp.NEG:
        return np.negative(x)
    if op is UnaryOp.ABS:
        return np.where(x < 0, np.negative(x), x) if dtype.is_signed else x
    raise VerificationError(f"unary {op} is not defined for {dtype.value}")


def _unsigned(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.view(np.dtype(f"u{x.dtype.itemsize}"))


def _shift(op: BinaryOp, dtype: DType, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = np.asarray(x), np.asarray(y)
    width = 8 * x.dtype.itemsize
    too_far = _unsigned(y) >= width
    safe = np.where(too_far, 0, y).astype(x.dtype)
    if op is BinaryOp.SHR and dtype.is_signed:
        return np.right_shift(x, np.where(too_far, width - 1, safe).astype(x.dtype))
    if op is BinaryOp.SHL:
        shifted = np.left_shift(x, safe)
    else:
        shifted = np.right_shift(_unsigned(x), _unsigned(safe)).astype(x.dtype)
    return np.where(too_far, np.zeros((), x.dtype), shifted)


def _int_divmod(op: BinaryOp, dtype: DType, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Division that never traps: a zero divisor gives 0; ``MIN / -1`` wraps and its remainders are 0."""
    x, y = np.asarray(x), np.asarray(y)
    zero = np.zeros((), x.dtype)
    special = (y == 0) | (y == -1) if dtype.is_signed else y == 0
    safe = np.where(special, np.ones((), y.dtype), y)
    if op is BinaryOp.DIV:
        q = np.floor_divide(x, safe)
        if dtype.is_signed:  # truncate toward zero
            q = q + ((np.remainder(x, safe) != 0) & ((x < 0) != (safe < 0))).astype(x.dtype)
            q = np.where(y == -1, np.negative(x), q)
        return np.where(y == 0, zero, q)
    r = np.remainder(x, safe) if op is BinaryOp.MOD else np.fmod(x, safe)
    return np.where(special, zero, r)


def _binary(op: BinaryOp, dtype: DType, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if op in _COMPARE:
        return _COMPARE[op](x, y)
    if op in _SIMPLE:
        if dtype is DType.BOOL and op in (BinaryOp.ADD, BinaryOp.SUB):
            return np.not_equal(x, y)  # i1 arithmetic wraps: add and sub are xor
        if dtype is DType.BOOL and op is BinaryOp.MUL:
            return np.logical_and(x, y)
        return _SIMPLE[op](x, y)
    if op in (BinaryOp.MAX, BinaryOp.MIN):
        return (np.maximum if op is BinaryOp.MAX else np.minimum)(x, y)
    if dtype.is_float_format:
        if op is BinaryOp.DIV:
            return np.divide(x, y)
        if op is BinaryOp.POW:
            return np.power(x, y)
        r = np.fmod(x, y)
        if op is BinaryOp.FMOD:
            return r
        fix = (r != 0) & ((r < 0) != (np.asarray(y) < 0))  # floor-mod: into the divisor's sign
        return np.where(fix, r + y, r)
    if op in (BinaryOp.SHL, BinaryOp.LSHR, BinaryOp.SHR):
        return _shift(op, dtype, x, y)
    if op in (BinaryOp.DIV, BinaryOp.MOD, BinaryOp.FMOD):
        return _int_divmod(op, dtype, x, y)
    raise VerificationError(f"binary {op} is not defined for {dtype.value}")


class _KernelRun:
    """One kernel's execution: loop variables, locals and the mask of active lanes."""

    def __init__(self, kernel: Kernel, memory: dict[str, np.ndarray], plans: dict[int, bool]) -> None:
        self.kernel = kernel
        self.memory = memory
        self.plans = plans  # id(loop) -> whether it runs at once
        self.env: dict[str, np.ndarray] = {}
        self.rank = 0  # loops running at once around the current statement

    def run(self) -> None:
        self.block(self.kernel.body, None)

    def block(self, stmts: tuple[Stmt, ...], mask: np.ndarray | None) -> None:
        for s in stmts:
            self.stmt(s, mask)

    def at_once(self, loop: Loop) -> bool:
        if id(loop) not in self.plans:
            self.plans[id(loop)] = iterations_disjoint(loop)
        return self.plans[id(loop)]

    def stmt(self, s: Stmt, mask: np.ndarray | None) -> None:
        if isinstance(s, Loop):
            if s.extent == 0:
                return
            if self.at_once(s):
                self.rank += 1
                self.env[s.var] = np.arange(s.start, s.start + s.extent, dtype=np.int64).reshape(
                    (s.extent,) + (1,) * (self.rank - 1))
                self.block(s.body, mask)
                self.rank -= 1
            else:
                for i in range(s.start, s.start + s.extent):
                    self.env[s.var] = np.array(i, np.int64)
                    self.block(s.body, mask)
        elif isinstance(s, Store):
            index = self.expr(s.index, mask)
            value = self.expr(s.value, mask)
            self.store(s.buffer, index, value, mask)
        elif isinstance(s, Local):
            self.env[s.name] = np.asarray(self.expr(s.init, mask))
        elif isinstance(s, Assign):
            value = np.asarray(self.expr(s.value, mask))
            self.env[s.name] = value if mask is None else np.where(mask, value, self.env[s.name])
        elif isinstance(s, If):
            cond = np.asarray(self.expr(s.cond, mask))
            if cond.ndim == 0:
                self.block(s.then if cond else s.orelse, mask)
                return
            for body, lanes in ((s.then, cond), (s.orelse, ~cond)):
                inner = lanes if mask is None else mask & lanes
                if body and inner.any():
                    self.block(body, inner)
        else:
            raise VerificationError(f"kernel {self.kernel.name}: unknown statement {type(s).__name__}")

    def view(self, buffer: Buffer) -> np.ndarray:
        memory = self.memory[buffer.name]
        return memory if memory.dtype == buffer.dtype.np else memory.view(buffer.dtype.np)

    def lanes(self, what: str, buffer: Buffer, index: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """The active lanes' indices, checked against the buffer."""
        if mask is not None:
            shape = np.broadcast_shapes(index.shape, mask.shape)
            index = np.broadcast_to(index, shape)[np.broadcast_to(mask, shape)]
        if index.size and (index.min() < 0 or index.max() >= buffer.size):
            bad = index[(index < 0) | (index >= buffer.size)].flat[0]
            raise VerificationError(f"kernel {self.kernel.name}: {what} %{buffer.name}: index {bad} is outside "
                                    f"the buffer (size {buffer.size})")
        return index

    def load(self, buffer: Buffer, index: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        memory = self.view(buffer)
        if mask is None:
            values = memory[self.lanes("load from", buffer, index, None)]
        else:  # inactive lanes read element 0 (or nothing from an empty buffer)
            self.lanes("load from", buffer, index, mask)
            full = np.broadcast_shapes(index.shape, mask.shape)
            safe = np.where(mask, index, 0)
            values = memory[safe] if buffer.size else np.zeros(full, memory.dtype)
        dtype = buffer.dtype
        if dtype in NARROW_INT_DTYPES:
            return _wrap_narrow(values.astype(np.int64), dtype)
        return values.astype(register_dtype(dtype))

    def store(self, buffer: Buffer, index: np.ndarray, value: np.ndarray, mask: np.ndarray | None) -> None:
        shape = np.broadcast_shapes(np.shape(index), np.shape(value), () if mask is None else mask.shape)
        index = np.broadcast_to(index, shape)
        value = np.broadcast_to(value, shape)
        if mask is not None:
            mask = np.broadcast_to(mask, shape)
            value = value[mask]
        positions = self.lanes("store to", buffer, index, mask)
        if buffer.dtype in NARROW_INT_DTYPES:
            value = _wrap_narrow(value, buffer.dtype)
        self.view(buffer)[positions.reshape(-1)] = np.asarray(value).reshape(-1).astype(buffer.dtype.np)

    def expr(self, e: Expr, mask: np.ndarray | None) -> np.ndarray:
        if isinstance(e, Const):
            return _constant(e)
        if isinstance(e, (Var, LocalRef)):
            return self.env[e.name]
        if isinstance(e, Load):
            return self.load(e.buffer, np.asarray(self.expr(e.index, mask)), mask)
        if isinstance(e, Unary):
            result = _unary(e.op, e.x.dtype, self.expr(e.x, mask))
        elif isinstance(e, Binary):
            result = _binary(e.op, e.a.dtype, self.expr(e.a, mask), self.expr(e.b, mask))
        elif isinstance(e, Select):
            return np.where(self.expr(e.cond, mask), self.expr(e.a, mask), self.expr(e.b, mask))
        elif isinstance(e, Cast):
            return cast(self.expr(e.x, mask), e.x.dtype, e.dtype)
        else:
            raise VerificationError(f"kernel {self.kernel.name}: unknown expression {type(e).__name__}")
        if e.dtype is DType.BF16 and e.op not in EXACT_ON_BF16:
            return _round_bf16(result)
        return result


def _memory(program: Program) -> dict[str, np.ndarray]:
    """Every buffer's memory: arena buffers are views into one arena once it is planned."""
    touched = {b.name for k in program.kernels for b in k.buffers}
    planned = any(s.kind is StorageKind.ARENA and s.offset >= 0 and n in touched for n, s in program.storage.items())
    arena = np.full(program.arena_size, 0xFF, np.uint8)
    memory = {}
    for name, buf in program.buffers.items():
        storage = program.storage[name]
        nbytes = buf.size * buf.dtype.itemsize
        if storage.kind is StorageKind.ARENA and planned and name in touched:
            memory[name] = arena[storage.offset:storage.offset + nbytes].view(buf.dtype.np)
        elif storage.kind in (StorageKind.CONSTANT, StorageKind.VARIABLE):
            memory[name] = np.array(program.constants[name], buf.dtype.np).reshape(-1)
        else:
            memory[name] = np.full(nbytes, 0xFF, np.uint8).view(buf.dtype.np)
    return memory


def run_statements(kernel: Kernel, memory: dict[str, np.ndarray]) -> None:
    """Run ``kernel`` on ``memory`` (each of its buffers' flat array, by name), which it updates in place.

    Raises ``VerificationError`` for an access outside a buffer.
    """
    with np.errstate(all="ignore"):
        _KernelRun(kernel, memory, {}).run()


def run_program(program: Program, inputs: Sequence[np.ndarray]) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Run ``program`` on ``inputs`` (in slot order).

    Returns the outputs in slot order and the final value of every variable
    by variable name. Raises ``ValueError`` for inputs that do not match the
    signature and ``VerificationError`` for an access outside a buffer.
    """
    if len(inputs) != len(program.inputs):
        raise ValueError(f"program @{program.name} takes {len(program.inputs)} inputs, got {len(inputs)}")
    memory = _memory(program)
    slots = {(s.kind, s.slot): n for n, s in program.storage.items()
             if s.kind in (StorageKind.INPUT, StorageKind.OUTPUT)}
    for slot, ((name, shape, dtype), array) in enumerate(zip(program.inputs, inputs)):
        array = np.asarray(array)
        if array.shape != tuple(shape) or array.dtype != dtype.np:
            raise ValueError(f"input {slot} (%{name}): expected {dtype.value}{list(shape)}, "
                             f"got {array.dtype}{list(array.shape)}")
        memory[slots[StorageKind.INPUT, slot]][...] = array.reshape(-1)
    plans: dict[int, bool] = {}
    with np.errstate(all="ignore"):
        for kernel in program.kernels:
            _KernelRun(kernel, memory, plans).run()
    outputs = [memory[slots[StorageKind.OUTPUT, slot]].reshape(shape).copy()
               for slot, (_, shape, _) in enumerate(program.outputs)]
    variable_buffers = [n for n, s in program.storage.items() if s.kind is StorageKind.VARIABLE]
    variables = {name: memory[buf].reshape(shape).copy()
                 for (name, shape, _), buf in zip(program.variables, variable_buffers)}
    return outputs, variables
