"""Loop IR -> LLVM IR function bodies, shared by every LLVM-based backend.

``emit_kernel`` writes one ``Kernel`` as an LLVM function whose parameters are
the kernel's buffers. Scalar semantics follow NumPy: integer division
truncates and yields 0 for a zero divisor (never trapping), ``mod`` is
floor-mod and ``fmod`` truncated (C's fmod: the sign of the dividend; 0 for a
zero integer divisor), ``max``/``min`` propagate NaN, unsigned dtypes divide,
compare and convert as unsigned. Float -> integer conversions truncate toward
zero and saturate: an out-of-range value gives the nearest bound of the
target type (the narrow integers included) and NaN gives 0, for every dtype on
every CPU (``llvm.fpto[su]i.sat``; plain ``fptosi`` of such a value is poison,
which LLVM folds differently per target; ONNX leaves it undefined, ONNX
Runtime saturates its int4 casts). Shifts read their amount as unsigned and
never produce poison: ``shl`` and ``lshr`` by the bit width or more give 0,
``shr`` (the dtype's own right shift: arithmetic for signed, logical for
unsigned) fills with the sign bit. Bool is ``i1`` in registers and one byte in
memory. bf16 is 16 bits in memory and an f32 in registers holding a value
that bf16 represents: loads widen exactly, and every operation producing a
bf16 result rounds it to nearest even (NaN becomes the quiet NaN, keeping its
sign), as ``ml_dtypes`` does; a cast rounds once, from any source. f16 is
LLVM's ``half``; its conversions are exact or round once on every CPU (see
``half_libcalls.py`` for CPUs without F16C). The narrow storage formats are one byte in
memory; their floats are f32 in registers (a load decodes through a table of
every code's value, a cast rounds to nearest even, a store encodes) and their
integers are i8 holding the value (a store keeps the low bits, a load
extends them; an integer cast into them keeps the low bits, a float cast
saturates).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import llvmlite.ir as ir
import numpy as np

from needlec.compiler.codegen import vector_math
from needlec.compiler.ir.dtypes import NARROW_FLOAT_DTYPES, NARROW_INT_BITS, NARROW_INT_DTYPES, STORAGE_DTYPES, DType
from needlec.compiler.codegen.parallel import emit_parallel_loop
from needlec.compiler.loops.ir import (EXACT_ON_BF16, Assign, Binary, Cast, Const, Expr, If, Kernel, Load, Local,
                                       LocalRef, Loop, LoopKind, Select, Stmt, Store, Unary, Var)
from needlec.compiler.target import Target
from needlec.errors import CodegenError

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()

_MEMORY_TYPES: dict[DType, ir.Type] = {
    DType.F16: ir.HalfType(), DType.BF16: I16, DType.F32: F32, DType.F64: F64,
    DType.I8: I8, DType.I16: I16, DType.I32: I32, DType.I64: I64,
    DType.U8: I8, DType.U16: I16, DType.U32: I32, DType.U64: I64, DType.BOOL: I8,
    **{d: I8 for d in STORAGE_DTYPES},
}
# the dtype whose LLVM type and scalar semantics a dtype borrows in registers
_REGISTER_AS: dict[DType, DType] = {DType.BF16: DType.F32, **{d: DType.F32 for d in NARROW_FLOAT_DTYPES},
                                    DType.I4: DType.I8, DType.I2: DType.I8, DType.U4: DType.U8, DType.U2: DType.U8}
_REGISTER_TYPES: dict[DType, ir.Type] = {**_MEMORY_TYPES, DType.BOOL: I1,
                                         **{d: _MEMORY_TYPES[a] for d, a in _REGISTER_AS.items()}}
# float unary op -> the math function (``Target.math``) computing it
_FLOAT_MATH = {"exp": "exp", "log": "log", "sqrt": "sqrt", "sin": "sin", "cos": "cos", "tan": "tan",
               "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh",
               "tanh": "tanh", "floor": "floor", "ceil": "ceil", "round": "roundeven", "abs": "fabs",
               "erf": "erf", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh"}
_FCMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _type_suffix(ty: ir.Type) -> str:
    """LLVM's overload suffix of a float type (``f16``, ``f32``, ``f64``)."""
    return {"half": "f16", "float": "f32", "double": "f64"}[str(ty)]


def llvm_name(text: str) -> str:
    """``text`` as a readable LLVM symbol part: letters, digits, ``_`` and ``.`` only, at most 48 characters.

    Why: names come from models (ONNX value names hold any bytes, NUL and
    1,000-character names included); LLVM truncates long local names into
    collisions. Callers keep names unique with a prefix of their own.
    """
    return re.sub(r"[^A-Za-z0-9_.]", "_", text)[:48]


def f32_rounded_to_odd(b: ir.IRBuilder, d: ir.Value) -> ir.Value:
    """f64 ``d`` as the f32 nearest to it rounded to odd: truncated toward zero, low bit set when inexact.

    Rounding this to any format of at most 22 significant bits (f16, bf16)
    gives the correctly rounded value of ``d``: no double rounding.
    """
    r = b.fptrunc(d, F32)
    back = b.fpext(r, F64)
    fabs = b.module.declare_intrinsic("llvm.fabs", [F64])
    away = b.fcmp_ordered(">", b.call(fabs, [back]), b.call(fabs, [d]))  # RNE went away from zero
    bits = b.bitcast(r, I32)
    bits = b.select(away, b.sub(bits, ir.Constant(I32, 1)), bits)
    inexact = b.fcmp_ordered("!=", back, d)  # false for NaN
    return b.bitcast(b.select(inexact, b.or_(bits, ir.Constant(I32, 1)), bits), F32)


def is_accumulation(s: Assign) -> bool:
    """Whether ``s`` is a float accumulation ``acc = acc + x`` (or ``*``), whose rounding the emitter lets LLVM
    change: reordered inside a ``vectorize`` loop, ``acc + a * b`` contracted to a fused multiply-add.

    Such sums are the only results whose rounding may differ between CPUs
    (the vectorizer's order depends on the vector width; FMA exists on some).
    """
    v = s.value
    return (isinstance(v, Binary) and v.op in ("add", "mul") and v.dtype.is_float
            and LocalRef(s.name, v.dtype) in (v.a, v.b))


def memory_type(dtype: DType) -> ir.Type:
    """The LLVM type a dtype has in memory."""
    return _MEMORY_TYPES[dtype]


def register_type(dtype: DType) -> ir.Type:
    """The LLVM type a dtype has in registers (bool is i1, bf16 an f32)."""
    return _REGISTER_TYPES[dtype]


def _register_as(dtype: DType) -> DType:
    """The dtype whose register type and semantics ``dtype`` uses (bf16 and narrow floats: f32)."""
    return _REGISTER_AS.get(dtype, dtype)


@dataclass(frozen=True)
class NarrowFloat:
    """An ONNX float format narrower than f16: sign, exponent and ``mantissa`` bits in ``bits`` bits.

    ``overflow`` is what a finite value beyond ``max_finite`` (after rounding)
    becomes: ``inf``, ``nan`` or ``saturate`` (the largest finite value).
    ``nan_code`` is the code of a NaN (the sign bit is added unless
    ``unsigned_zero``: the fnuz formats have no -0, and their NaN is the sign
    bit alone); f4e2m1 has no NaN and, as ``ml_dtypes``, turns NaN into the
    zero of the opposite sign.
    """

    bits: int
    mantissa: int
    bias: int
    max_finite: float
    overflow: str
    nan_code: int | None
    unsigned_zero: bool = False
    inf_code: int | None = None

    @property
    def min_exponent(self) -> int:
        """The exponent of the smallest normal value."""
        return 1 - self.bias


NARROW_FLOATS = {
    DType.F8E4M3FN: NarrowFloat(8, 3, 7, 448.0, "nan", 0x7F),
    DType.F8E4M3FNUZ: NarrowFloat(8, 3, 8, 240.0, "nan", 0x80, unsigned_zero=True),
    DType.F8E5M2: NarrowFloat(8, 2, 15, 57344.0, "inf", 0x7E, inf_code=0x7C),
    DType.F8E5M2FNUZ: NarrowFloat(8, 2, 16, 57344.0, "nan", 0x80, unsigned_zero=True),
    DType.F4E2M1: NarrowFloat(4, 1, 1, 6.0, "saturate", None),
}


class KernelEmitter:
    """Emits one kernel into an LLVM module for ``target`` (its math functions and loop kinds)."""

    def __init__(self, module: ir.Module, kernel: Kernel, target: Target, linkage: str = "internal",
                 function: ir.Function | None = None) -> None:
        """An emitter of ``kernel`` into a new function named after it, or into ``function`` (an outlined part of
        the kernel, ``codegen/parallel.py``: whoever outlines fills ``buffers`` and ``locals``)."""
        self.module = module
        self.kernel = kernel
        self.target = target
        self.buffers: dict[str, ir.Value] = {}
        if function is None:
            fnty = ir.FunctionType(ir.VoidType(), [PTR] * len(kernel.buffers))
            function = ir.Function(module, fnty, name=llvm_name(kernel.name))
            function.linkage = linkage
            for arg in function.args:
                arg.add_attribute("noalias")
            self.buffers = {b.name: arg for b, arg in zip(kernel.buffers, function.args)}
        self.function = function
        # locals' allocas get a block of their own: two builders writing one block corrupt its order
        self.entry_builder = ir.IRBuilder(self.function.append_basic_block("entry"))
        self.body_block = self.function.append_basic_block("body")
        self.builder = ir.IRBuilder(self.body_block)
        self.vars: dict[str, ir.Value] = {}
        self.locals: dict[str, tuple[ir.Value, DType]] = {}
        self.loop_kinds: list[LoopKind] = []  # the kinds of the loops around the statement being emitted

    def emit(self) -> ir.Function:
        for stmt in self.kernel.body:
            self.stmt(stmt)
        self.builder.ret_void()
        self.entry_builder.branch(self.body_block)
        return self.function

    # -- statements -----------------------------------------------------------
    def stmt(self, s: Stmt) -> None:
        b = self.builder
        if isinstance(s, Loop):
            self.loop(s)
        elif isinstance(s, Store):
            value = self.expr(s.value)
            if s.value.dtype is DType.BOOL:
                value = b.zext(value, I8)
            elif s.value.dtype is DType.BF16:  # the register holds a bf16 value: its top 16 bits are it
                value = b.trunc(b.lshr(b.bitcast(value, I32), ir.Constant(I32, 16)), I16)
            elif s.value.dtype in NARROW_FLOATS:
                value = self.encode_narrow_float(s.value.dtype, value)
            elif s.value.dtype in NARROW_INT_DTYPES:  # the value's low bits, as ml_dtypes stores them
                value = b.and_(value, ir.Constant(I8, (1 << NARROW_INT_BITS[s.value.dtype]) - 1))
            b.store(value, self.address(s.buffer.name, s.buffer.dtype, s.index))
        elif isinstance(s, Local):
            slot = self.entry_builder.alloca(register_type(s.init.dtype), name=s.name)
            self.locals[s.name] = (slot, s.init.dtype)
            b.store(self.expr(s.init), slot)
        elif isinstance(s, Assign):
            b.store(self.assigned_value(s), self.locals[s.name][0])
        elif isinstance(s, If):
            cond = self.expr(s.cond)
            with b.if_else(cond) as (then, orelse):
                with then:
                    for inner in s.then:
                        self.stmt(inner)
                with orelse:
                    for inner in s.orelse:
                        self.stmt(inner)
        else:
            raise CodegenError(f"kernel {self.kernel.name}: cannot emit statement {type(s).__name__}")

    def assigned_value(self, s: Assign) -> ir.Value:
        """The value of an assignment; a float accumulation (``is_accumulation``) may be rounded differently.

        Why: accumulations are reductions. LLVM only vectorizes a float
        reduction it may reorder, so inside a loop scheduled ``vectorize`` it
        may (``reassoc``); elsewhere the order stays sequential, so a
        register-blocked kernel's many accumulators are vectorized across
        (SLP) and not along the reduction. ``acc + a * b`` may become one
        fused multiply-add (``contract`` on both). The result differs from
        the sequential, unfused order by rounding only, as BLAS and every
        vectorized reduction does.
        """
        v = s.value
        if not is_accumulation(s):
            return self.expr(v)
        assert isinstance(v, Binary)
        flags = ("reassoc", "contract") if self.loop_kinds[-1:] == [LoopKind.VECTORIZE] else ("contract",)
        operands = []
        for x in (v.a, v.b):
            if v.op == "add" and isinstance(x, Binary) and x.op == "mul":  # the product an FMA may absorb
                operands.append(self.builder.fmul(self.expr(x.a), self.expr(x.b), flags=("contract",)))
            else:
                operands.append(self.expr(x))
        emit = self.builder.fadd if v.op == "add" else self.builder.fmul
        return emit(*operands, flags=flags)

    def loop(self, s: Loop) -> None:
        if s.kind not in self.target.loop_kinds:  # why: running a parallel or GPU loop serially hides a bug
            raise CodegenError(f"kernel {self.kernel.name}: loop {s.var} is scheduled {s.kind}, which target "
                               f"{self.target.name} cannot emit (it emits {', '.join(sorted(self.target.loop_kinds))})")
        if s.kind == LoopKind.PARALLEL:
            emit_parallel_loop(self, s)
        else:  # vectorize: a plain loop that LLVM's loop vectorizer (O3) turns into SIMD code
            self.counted_loop(s, ir.Constant(I64, s.start), ir.Constant(I64, s.start + s.extent))

    def counted_loop(self, s: Loop, begin: ir.Value, end: ir.Value) -> None:
        """``s``'s body for its variable from ``begin`` up to ``end`` (i64 values), serially."""
        b = self.builder
        pre = b.block
        header = self.function.append_basic_block(f"{s.var}.header")
        body = self.function.append_basic_block(f"{s.var}.body")
        done = self.function.append_basic_block(f"{s.var}.done")
        b.branch(header)
        b.position_at_end(header)
        index = b.phi(I64, name=s.var)
        index.add_incoming(begin, pre)
        b.cbranch(b.icmp_signed("<", index, end), body, done)
        b.position_at_end(body)
        self.vars[s.var] = index
        self.loop_kinds.append(s.kind)
        for inner in s.body:
            self.stmt(inner)
        self.loop_kinds.pop()
        del self.vars[s.var]  # out of scope: an outlined loop later receives only the variables around it
        step = b.add(index, ir.Constant(I64, 1), name=f"{s.var}.next", flags=["nsw"])
        index.add_incoming(step, b.block)
        b.branch(header)
        b.position_at_end(done)

    # -- expressions ----------------------------------------------------------
    def address(self, buffer: str, dtype: DType, index: Expr) -> ir.Value:
        return self.builder.gep(self.buffers[buffer], [self.expr(index)], inbounds=True,
                                source_etype=memory_type(dtype))

    def expr(self, e: Expr) -> ir.Value:
        b = self.builder
        if isinstance(e, Const):
            if e.dtype.is_float_format:  # through the dtype's NumPy twin: a bf16 or f8 constant is rounded to it
                return ir.Constant(register_type(e.dtype), float(np.asarray(e.value, np.float64).astype(e.dtype.np)))
            return ir.Constant(register_type(e.dtype), int(e.value))
        if isinstance(e, Var):
            return self.vars[e.name]
        if isinstance(e, LocalRef):
            slot, dtype = self.locals[e.name]
            return b.load(slot, typ=register_type(dtype))
        if isinstance(e, Load):
            value = b.load(self.address(e.buffer.name, e.dtype, e.index), typ=memory_type(e.dtype))
            if e.dtype is DType.BF16:
                return b.bitcast(b.shl(b.zext(value, I32), ir.Constant(I32, 16)), F32)
            if e.dtype in NARROW_FLOATS:
                return self.decode_narrow_float(e.dtype, value)
            if e.dtype in NARROW_INT_DTYPES:
                return self.wrap_narrow_int(e.dtype, value)
            return b.icmp_unsigned("!=", value, ir.Constant(I8, 0)) if e.dtype is DType.BOOL else value
        if isinstance(e, Unary):
            result = self.unary(e.op, e.x.dtype, self.expr(e.x))
            return self.round_bf16(result) if e.dtype is DType.BF16 and e.op not in EXACT_ON_BF16 else result
        if isinstance(e, Binary):
            result = self.binary(e.op, e.a.dtype, self.expr(e.a), self.expr(e.b))
            return self.round_bf16(result) if e.dtype is DType.BF16 and e.op not in EXACT_ON_BF16 else result
        if isinstance(e, Select):
            return b.select(self.expr(e.cond), self.expr(e.a), self.expr(e.b))
        if isinstance(e, Cast):
            return self.cast(self.expr(e.x), e.x.dtype, e.dtype)
        raise CodegenError(f"kernel {self.kernel.name}: cannot emit expression {type(e).__name__}")

    def round_bf16(self, x: ir.Value) -> ir.Value:
        """f32 ``x`` rounded to the nearest bf16 value, ties to even (overflow gives inf; NaN the quiet NaN)."""
        b = self.builder
        bits = b.bitcast(x, I32)
        odd = b.and_(b.lshr(bits, ir.Constant(I32, 16)), ir.Constant(I32, 1))
        rounded = b.and_(b.add(bits, b.add(odd, ir.Constant(I32, 0x7FFF))), ir.Constant(I32, -0x10000))
        quiet_nan = b.or_(b.and_(bits, ir.Constant(I32, -0x80000000)), ir.Constant(I32, 0x7FC00000))
        return b.bitcast(b.select(b.fcmp_unordered("uno", x, x), quiet_nan, rounded), F32)

    def intrinsic(self, name: str, dtype: DType, args: list[ir.Value]) -> ir.Value:
        """Call math function ``name`` on ``dtype`` values through the target's math table."""
        dtype = _register_as(dtype)
        return self.intrinsic_call(self.target.math_symbol(name, dtype.value), register_type(dtype), args)

    def intrinsic_call(self, symbol: str, result: ir.Type, args: list[ir.Value]) -> ir.Value:
        """Call the function ``symbol`` returning ``result``; on first use it is declared, or defined when
        ``vector_math`` has its body (the target's math table names those)."""
        fn = self.module.globals.get(symbol)
        if fn is None and symbol in vector_math.DEFINITIONS:
            fn = vector_math.define(self.module, symbol)
        elif fn is None:
            fn = ir.Function(self.module, ir.FunctionType(result, [a.type for a in args]), name=symbol)
        return self.builder.call(fn, args)

    def unary(self, op: str, dtype: DType, x: ir.Value) -> ir.Value:
        b = self.builder
        if dtype.is_float:
            if op == "neg":
                return b.fneg(x)
            if op in _FLOAT_MATH:
                return self.intrinsic(_FLOAT_MATH[op], dtype, [x])
        elif op == "neg":
            return b.neg(x)
        elif op == "abs":
            return b.select(b.icmp_signed("<", x, ir.Constant(x.type, 0)), b.neg(x), x) if dtype.is_signed else x
        elif op == "not":  # every bit flipped: boolean not on i1, bitwise not on integers
            return b.not_(x)
        raise CodegenError(f"unary {op} is not defined for {dtype.value}")

    def binary(self, op: str, dtype: DType, x: ir.Value, y: ir.Value) -> ir.Value:
        return (self.float_binary if dtype.is_float else self.int_binary)(op, dtype, x, y)

    def float_binary(self, op: str, dtype: DType, x: ir.Value, y: ir.Value) -> ir.Value:
        b = self.builder
        simple: dict[str, Callable[[ir.Value, ir.Value], ir.Value]] = {
            "add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}
        if op in simple:
            return simple[op](x, y)
        if op in _FCMP:
            return b.fcmp_unordered("!=", x, y) if op == "ne" else b.fcmp_ordered(_FCMP[op], x, y)
        if op == "pow":
            return self.intrinsic("pow", dtype, [x, y])
        if op in ("max", "min"):
            return self.intrinsic("maximum" if op == "max" else "minimum", dtype, [x, y])
        if op == "fmod":
            return b.frem(x, y)
        if op == "mod":  # floor-mod: fmod, then move into the divisor's sign
            zero = ir.Constant(x.type, 0.0)
            r = b.frem(x, y)
            fix = b.and_(b.fcmp_ordered("!=", r, zero),
                         b.icmp_unsigned("!=", b.fcmp_ordered("<", r, zero), b.fcmp_ordered("<", y, zero)))
            return b.select(fix, b.fadd(r, y), r)
        raise CodegenError(f"binary {op} is not defined for {dtype.value}")

    def int_binary(self, op: str, dtype: DType, x: ir.Value, y: ir.Value) -> ir.Value:
        b = self.builder
        signed = dtype.is_signed
        simple: dict[str, Callable[[ir.Value, ir.Value], ir.Value]] = {
            "add": b.add, "sub": b.sub, "mul": b.mul, "and": b.and_, "or": b.or_, "xor": b.xor}
        if op in simple:
            return simple[op](x, y)
        if op in ("shl", "lshr", "shr"):
            return self.shift(op, signed, x, y)
        if op in _FCMP:
            return (b.icmp_signed if signed else b.icmp_unsigned)(_FCMP[op], x, y)
        if op in ("max", "min"):
            cmp = (b.icmp_signed if signed else b.icmp_unsigned)(">" if op == "max" else "<", x, y)
            return b.select(cmp, x, y)
        if op in ("div", "mod", "fmod"):
            return self.int_divmod(op, signed, x, y)
        raise CodegenError(f"binary {op} is not defined for {dtype.value}")

    def shift(self, op: str, signed: bool, x: ir.Value, y: ir.Value) -> ir.Value:
        """``x`` shifted by ``y`` read as unsigned; LLVM's poison for ``y >= width`` is never produced."""
        b = self.builder
        width = ir.Constant(x.type, x.type.width)
        too_far = b.icmp_unsigned(">=", y, width)
        if op == "shr" and signed:  # shifting by width - 1 already fills with the sign bit
            return b.ashr(x, b.select(too_far, ir.Constant(x.type, x.type.width - 1), y))
        safe = b.select(too_far, ir.Constant(x.type, 0), y)
        shifted = b.shl(x, safe) if op == "shl" else b.lshr(x, safe)
        return b.select(too_far, ir.Constant(x.type, 0), shifted)

    def int_divmod(self, op: str, signed: bool, x: ir.Value, y: ir.Value) -> ir.Value:
        """Division that never traps: a zero divisor gives 0, and ``MIN / -1`` wraps (its remainders are 0)."""
        b = self.builder
        zero, one = ir.Constant(x.type, 0), ir.Constant(x.type, 1)
        is_zero = b.icmp_unsigned("==", y, zero)
        if not signed:
            safe = b.select(is_zero, one, y)
            return b.select(is_zero, zero, b.udiv(x, safe) if op == "div" else b.urem(x, safe))
        minus_one = ir.Constant(x.type, -1)
        is_minus_one = b.icmp_signed("==", y, minus_one)
        safe = b.select(b.or_(is_zero, is_minus_one), one, y)
        if op == "div":
            return b.select(is_zero, zero, b.select(is_minus_one, b.neg(x), b.sdiv(x, safe)))
        r = b.srem(x, safe)
        if op == "fmod":  # truncated: srem already has the dividend's sign
            return b.select(b.or_(is_zero, is_minus_one), zero, r)
        fix = b.and_(b.icmp_signed("!=", r, zero),
                     b.icmp_unsigned("!=", b.icmp_signed("<", r, zero), b.icmp_signed("<", y, zero)))
        r = b.select(fix, b.add(r, safe), r)
        return b.select(b.or_(is_zero, is_minus_one), zero, r)

    def cast(self, x: ir.Value, src: DType, dst: DType) -> ir.Value:
        if src is dst:
            return x
        src = _register_as(src)
        if dst is DType.BF16:  # rounded once: through an f32 rounded to odd, which holds what decides the rounding
            return self.round_bf16(self.f32_for_rounding(x, src))
        if dst in NARROW_FLOATS:  # rounded once, in f64 (which holds every f32 and f16 exactly)
            return self.round_narrow_float(dst, self.convert(x, src, DType.F64))
        if dst in NARROW_INT_DTYPES:
            if src.is_float:  # truncate toward zero, then saturate to the narrow range (NaN gives 0)
                bits = NARROW_INT_BITS[dst]
                low, high = (-(1 << bits - 1), (1 << bits - 1) - 1) if dst.is_signed else (0, (1 << bits) - 1)
                b, wide = self.builder, self.convert(x, src, DType.I32)
                wide = b.select(b.icmp_signed("<", wide, ir.Constant(I32, low)), ir.Constant(I32, low), wide)
                wide = b.select(b.icmp_signed(">", wide, ir.Constant(I32, high)), ir.Constant(I32, high), wide)
                return b.trunc(wide, I8)
            # an integer keeps its low bits (ONNX: fixed point to fixed point discards the higher bits)
            return self.wrap_narrow_int(dst, self.builder.trunc(self.convert(x, src, DType.I64), I8))
        return self.convert(x, src, dst)

    def f32_for_rounding(self, x: ir.Value, src: DType) -> ir.Value:
        """``x`` as an f32 whose rounding to bf16 is the correct single rounding of ``x``.

        Narrower floats and integers of up to 16 bits widen exactly; f64 and
        wider integers go through f64 (exact: a 64-bit integer's bits below
        bit 11 first collapse into a sticky bit when it has more than 53) and
        then to f32 rounded to odd.
        """
        b = self.builder
        if src.is_float and src.itemsize <= 4 or src is DType.BOOL or src.itemsize <= 2:
            return self.convert(x, src, DType.F32)
        if src.itemsize == 8 and not src.is_float:
            negative = b.icmp_signed("<", x, ir.Constant(I64, 0)) if src.is_signed else ir.Constant(I1, 0)
            magnitude = b.select(negative, b.neg(x), x)  # INT64_MIN stays 2**63, read as unsigned
            sticky = b.select(b.icmp_unsigned("!=", b.and_(magnitude, ir.Constant(I64, 0x7FF)), ir.Constant(I64, 0)),
                              ir.Constant(I64, 0x800), ir.Constant(I64, 0))
            compressed = b.or_(b.and_(magnitude, ir.Constant(I64, ~0x7FF)), sticky)
            magnitude = b.select(b.icmp_unsigned(">=", magnitude, ir.Constant(I64, 1 << 53)), compressed, magnitude)
            wide = b.uitofp(magnitude, F64)
            x = b.select(negative, b.fneg(wide), wide)
        else:
            x = self.convert(x, src, DType.F64)
        return f32_rounded_to_odd(b, x)

    # -- narrow storage formats -------------------------------------------------
    def decode_narrow_float(self, dtype: DType, code: ir.Value) -> ir.Value:
        """The f32 value of a stored code: a lookup in a table of every code's value."""
        fmt, b = NARROW_FLOATS[dtype], self.builder
        name = f"narrow.{dtype.value}"
        table = self.module.globals.get(name)
        if table is None:
            codes = np.arange(1 << fmt.bits, dtype=np.uint8).view(dtype.np).astype(np.float32)
            ty = ir.ArrayType(F32, codes.size)
            table = ir.GlobalVariable(self.module, ty, name=name)
            table.initializer = ir.Constant(ty, [float(v) for v in codes])
            table.global_constant = True
            table.linkage = "private"
        index = b.zext(b.and_(code, ir.Constant(I8, (1 << fmt.bits) - 1)), I64)
        return b.load(b.gep(table, [ir.Constant(I64, 0), index], inbounds=True), typ=F32)

    def round_narrow_float(self, dtype: DType, x: ir.Value) -> ir.Value:
        """f64 ``x`` rounded to the nearest value of ``dtype`` (ties to even), as an f32.

        The quantum at ``x`` is ``2**(max(exponent(x), min_exponent) - mantissa)``
        (fixed below the normal range, so subnormals round right); dividing by
        a power of two is exact, so ``roundeven(|x| / q) * q`` is the rounding.
        """
        fmt, b = NARROW_FLOATS[dtype], self.builder
        magnitude = self.intrinsic("fabs", DType.F64, [x])
        exponent = b.sub(b.lshr(b.bitcast(magnitude, I64), ir.Constant(I64, 52)), ir.Constant(I64, 1023))
        lowest = ir.Constant(I64, fmt.min_exponent)
        exponent = b.select(b.icmp_signed("<", exponent, lowest), lowest, exponent)
        quantum_bits = b.shl(b.add(exponent, ir.Constant(I64, 1023 - fmt.mantissa)), ir.Constant(I64, 52))
        quantum = b.bitcast(quantum_bits, F64)
        rounded = b.fmul(self.intrinsic("roundeven", DType.F64, [b.fdiv(magnitude, quantum)]), quantum)
        beyond = {"inf": float("inf"), "nan": float("nan"), "saturate": fmt.max_finite}[fmt.overflow]
        rounded = b.select(b.fcmp_ordered(">", rounded, ir.Constant(F64, fmt.max_finite)),
                           ir.Constant(F64, beyond), rounded)
        negative = b.icmp_signed("<", b.bitcast(x, I64), ir.Constant(I64, 0))  # the sign bit, also of -0 and NaN
        signed = b.select(negative, b.fneg(rounded), rounded)
        if fmt.unsigned_zero:  # no -0: a negative value rounding to zero is +0
            signed = b.select(b.fcmp_ordered("==", rounded, ir.Constant(F64, 0.0)), ir.Constant(F64, 0.0), signed)
        if fmt.nan_code is None:  # no NaN: the zero of the opposite sign (ml_dtypes)
            zero = b.select(negative, ir.Constant(F64, 0.0), ir.Constant(F64, -0.0))
            signed = b.select(b.fcmp_unordered("uno", x, x), zero, signed)
        return b.fptrunc(signed, F32)

    def encode_narrow_float(self, dtype: DType, x: ir.Value) -> ir.Value:
        """The i8 code of f32 ``x``, a value of ``dtype`` (or NaN / inf where the format has them)."""
        fmt, b = NARROW_FLOATS[dtype], self.builder
        bits = b.bitcast(x, I32)
        exponent = b.sub(b.and_(b.lshr(bits, ir.Constant(I32, 23)), ir.Constant(I32, 0xFF)), ir.Constant(I32, 127))
        mantissa = b.and_(b.lshr(bits, ir.Constant(I32, 23 - fmt.mantissa)), ir.Constant(I32, (1 << fmt.mantissa) - 1))
        normal = b.or_(b.shl(b.add(exponent, ir.Constant(I32, fmt.bias)), ir.Constant(I32, fmt.mantissa)), mantissa)
        magnitude = self.intrinsic("fabs", DType.F32, [x])
        scale = ir.Constant(F32, 2.0 ** (fmt.mantissa - fmt.min_exponent))  # subnormal codes count quanta
        subnormal = self.convert(b.fmul(magnitude, scale), DType.F32, DType.U32)
        code = b.select(b.icmp_signed("<", exponent, ir.Constant(I32, fmt.min_exponent)), subnormal, normal)
        if fmt.inf_code is not None:
            code = b.select(b.fcmp_ordered("==", magnitude, ir.Constant(F32, float("inf"))),
                            ir.Constant(I32, fmt.inf_code), code)
        if fmt.nan_code is not None:
            code = b.select(b.fcmp_unordered("uno", x, x), ir.Constant(I32, fmt.nan_code), code)
        sign = b.shl(b.lshr(bits, ir.Constant(I32, 31)), ir.Constant(I32, fmt.bits - 1))
        if fmt.unsigned_zero:  # no sign on a zero code (the sign bit alone is NaN, whose code has it already)
            sign = b.select(b.icmp_unsigned("==", b.and_(code, ir.Constant(I32, 0x7F)), ir.Constant(I32, 0)),
                            ir.Constant(I32, 0), sign)
        return b.trunc(b.or_(code, sign), I8)

    def wrap_narrow_int(self, dtype: DType, x: ir.Value) -> ir.Value:
        """The i8 holding the value of ``x``'s low bits in ``dtype`` (sign-extended if signed)."""
        b, width = self.builder, NARROW_INT_BITS[dtype]
        if dtype.is_signed:
            shift = ir.Constant(I8, 8 - width)
            return b.ashr(b.shl(x, shift), shift)
        return b.and_(x, ir.Constant(I8, (1 << width) - 1))

    def convert(self, x: ir.Value, src: DType, dst: DType) -> ir.Value:
        """``x`` converted from ``src`` to ``dst`` (both with their own register semantics)."""
        b = self.builder
        if src is dst:
            return x
        to = register_type(dst)
        if dst is DType.BOOL:
            if src.is_float:
                return b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0))
            return b.icmp_unsigned("!=", x, ir.Constant(x.type, 0))
        if src is DType.BOOL:
            return b.uitofp(x, to) if dst.is_float else b.zext(x, to)
        if src.is_float and dst.is_float:
            return b.fpext(x, to) if src.itemsize < dst.itemsize else b.fptrunc(x, to)
        if src.is_float:  # saturating: out of range gives the nearest bound, NaN gives 0 (never poison)
            kind = "s" if dst.is_signed else "u"
            return self.intrinsic_call(f"llvm.fpto{kind}i.sat.i{to.width}.{_type_suffix(x.type)}", to, [x])
        if dst.is_float:
            return b.sitofp(x, to) if src.is_signed else b.uitofp(x, to)
        if src.itemsize > dst.itemsize:
            return b.trunc(x, to)
        if src.itemsize < dst.itemsize:
            return b.sext(x, to) if src.is_signed else b.zext(x, to)
        return x
