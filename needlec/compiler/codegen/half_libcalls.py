"""The f16 conversion routines LLVM calls on CPUs without F16C, defined inside every module.

On x86 without F16C (``x86-64``, ``x86-64-v2``), and for f64 -> f16 on every
x86 CPU, LLVM lowers ``fpext half`` / ``fptrunc ... to half`` to the
compiler-runtime calls ``__extendhfsf2``, ``__truncsfhf2`` and
``__truncdfhf2``. They are not in a Python process (MCJIT would jump to
address 0) and not in every libgcc, so each module defines them itself, with
hidden visibility, from integer operations only (nothing in them lowers to a
libcall again). They compute exactly what F16C's ``vcvtph2ps`` /
``vcvtps2ph`` compute (round to nearest even; NaN quieted, payload kept), so
a model gives the same bits with and without F16C; f64 -> f16 rounds once
(through f32 rounded to odd, which is exact for any rounding to 11 bits).
"""
from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ir

from needlec.compiler.codegen.llvm_emit import F32, F64, I16, I32, f32_rounded_to_odd

HALF = ir.HalfType()


def _c32(value: int) -> ir.Constant:
    return ir.Constant(I32, value)


def _f32_to_half_bits(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """The i16 code of f32 ``x`` rounded to nearest even (overflow gives inf; NaN quieted keeping its payload)."""
    bits = b.bitcast(x, I32)
    sign = b.and_(b.lshr(bits, _c32(16)), _c32(0x8000))
    mag = b.and_(bits, _c32(0x7FFFFFFF))
    nan = b.or_(_c32(0x7E00), b.and_(b.lshr(mag, _c32(13)), _c32(0x3FF)))
    odd = b.and_(b.lshr(mag, _c32(13)), _c32(1))
    normal = b.lshr(b.add(b.add(mag, _c32(0xFFF - 0x38000000)), odd), _c32(13))  # rebias 127 -> 15, round
    # below 2**-14 the code counts 2**-24 quanta: adding 0.5 (whose ulp is 2**-24) rounds to them exactly
    tiny = b.sub(b.bitcast(b.fadd(b.bitcast(mag, F32), ir.Constant(F32, 0.5)), I32), _c32(0x3F000000))
    code = b.select(b.icmp_unsigned("<", mag, _c32(0x38800000)), tiny, normal)
    code = b.select(b.icmp_unsigned(">=", mag, _c32(0x477FF000)), _c32(0x7C00), code)  # >= 65520: inf
    code = b.select(b.icmp_unsigned(">", mag, _c32(0x7F800000)), nan, code)
    return b.trunc(b.or_(code, sign), I16)


def _half_to_f32(b: ir.IRBuilder, h: ir.Value) -> ir.Value:
    """The f32 value of half ``h`` (exact; NaN keeps its payload)."""
    bits = b.zext(b.bitcast(h, I16), I32)
    sign = b.shl(b.and_(bits, _c32(0x8000)), _c32(16))
    exponent = b.and_(b.lshr(bits, _c32(10)), _c32(0x1F))
    mantissa = b.and_(bits, _c32(0x3FF))
    normal = b.or_(b.shl(b.add(exponent, _c32(112)), _c32(23)), b.shl(mantissa, _c32(13)))
    special = b.or_(_c32(0x7F800000), b.shl(mantissa, _c32(13)))  # inf and NaN
    subnormal = b.bitcast(b.fmul(b.uitofp(mantissa, F32), ir.Constant(F32, 2.0 ** -24)), I32)
    magnitude = b.select(b.icmp_unsigned("==", exponent, _c32(0x1F)), special, normal)
    magnitude = b.select(b.icmp_unsigned("==", exponent, _c32(0)), subnormal, magnitude)
    return b.bitcast(b.or_(magnitude, sign), F32)


def _define(module: ir.Module, name: str, result: ir.Type, arg: ir.Type,
            body: Callable[[ir.IRBuilder, ir.Value], ir.Value]) -> None:
    fn = ir.Function(module, ir.FunctionType(result, [arg]), name=name)
    fn.visibility = "hidden"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(body(b, fn.args[0]))


def define_half_libcalls(module: ir.Module) -> None:
    """Add ``__extendhfsf2``, ``__truncsfhf2`` and ``__truncdfhf2`` to ``module`` (hidden, so never exported)."""
    _define(module, "__extendhfsf2", F32, HALF, _half_to_f32)
    _define(module, "__truncsfhf2", HALF, F32, lambda b, x: b.bitcast(_f32_to_half_bits(b, x), HALF))
    _define(module, "__truncdfhf2", HALF, F64,
            lambda b, d: b.bitcast(_f32_to_half_bits(b, f32_rounded_to_odd(b, d)), HALF))
