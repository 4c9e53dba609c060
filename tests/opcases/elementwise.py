"""Cases for unary and binary elementwise ops, float predicates, where and cast, over every allowed dtype.

The u16/u32/u64 and bf16 dtypes run a short list of layouts (their scalar
semantics, not the layouts, are what they add); data-driven rows pin unsigned
values above the signed range, shifts by the bit width or more, fmod signs,
NaN/inf predicates and bf16 rounding.
"""
from __future__ import annotations

import numpy as np

from needlec import DType
from needlec.compiler.ir.dtypes import FLOAT_DTYPES, UNSIGNED_DTYPES
from needlec.compiler.ops.elementwise import BINARY, PREDICATES, UNARY
from tests.opcases import In, OpCase, binary_shapes, unary_shapes

# (low, high) of the random inputs, where an op's domain or conditioning needs it
DOMAIN = {"log": (0.1, 3.0), "sqrt": (0.0, 3.0), "rsqrt": (0.1, 3.0), "reciprocal": (0.5, 3.0),
          "tan": (-1.2, 1.2), "asin": (-0.9, 0.9), "acos": (-0.9, 0.9), "atanh": (-0.9, 0.9), "acosh": (1.1, 3.0)}
# dtypes whose tolerances are wider (f16 and bf16 round after every op)
TOL = {DType.F16: (2e-3, 2e-3), DType.BF16: (1e-2, 1e-2), DType.F32: (1e-5, 1e-6), DType.F64: (1e-12, 1e-12)}
# the full layout list runs for every (op, dtype) pair except these dtypes and the ops listed in
# FULL_LAYOUT_DTYPES, which run it on those dtypes only: the layout handling (lower_elementwise) is
# shared, only the scalar code differs per dtype, and the short list still covers every dtype
SHORT_DTYPES = frozenset({DType.U16, DType.U32, DType.U64, DType.BF16})
FULL_LAYOUT_DTYPES = {
    **{op: {DType.F32} for op in ("tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh")},
    "fmod": {DType.F32, DType.I32},
    **{op: {DType.I32, DType.U8} for op in ("bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor",
                                            "shift_left", "shift_right")},
}
NAN, INF = float("nan"), float("inf")
U64_BIG = [2**64 - 1, 2**63, 2**63 + 5, 7, 0, 2**40 + 3]
U32_BIG = [2**32 - 1, 2**31, 2**31 + 5, 7, 0, 2**20 + 3]
U16_BIG = [2**16 - 1, 2**15, 2**15 + 5, 7, 0, 300]


def _tol(dtype: DType) -> tuple[float, float]:
    return TOL.get(dtype, (0.0, 0.0))


def _dtypes(allowed: frozenset[DType]) -> list[DType]:
    return sorted(allowed, key=lambda d: d.value)


def _full_layouts(op: str, dtype: DType) -> bool:
    return dtype in FULL_LAYOUT_DTYPES[op] if op in FULL_LAYOUT_DTYPES else dtype not in SHORT_DTYPES


def _unary() -> list[OpCase]:
    cases = []
    for name, (dtypes, *_rest) in UNARY.items():
        low, high = DOMAIN.get(name, (-3.0, 3.0))
        for dtype in _dtypes(dtypes):
            shapes = unary_shapes()
            for shape, layout in shapes if _full_layouts(name, dtype) else [shapes[i] for i in (0, 3, 6)]:
                rtol, atol = _tol(dtype)
                cases.append(OpCase(name, (In(shape, dtype, layout, low=low, high=high),), rtol=rtol, atol=atol))
    return cases


def _binary() -> list[OpCase]:
    cases = []
    for name, (dtypes, *_rest) in BINARY.items():
        for dtype in _dtypes(dtypes):
            low_a = 0.1 if name == "pow" else -3.0
            # float division stays away from 0; integer division deliberately includes 0 divisors
            low_b = 0.5 if name == "div" and dtype.is_float else -3.0
            shapes = binary_shapes()
            for a, b, layout in shapes if _full_layouts(name, dtype) else [shapes[i] for i in (3, 4, 9)]:
                rtol, atol = _tol(dtype)
                cases.append(OpCase(name, (In(a, dtype, layout, low=low_a), In(b, dtype, layout, low=low_b)),
                                    rtol=rtol, atol=atol))
    return cases


def _predicates() -> list[OpCase]:
    special = [NAN, -INF, INF, 0.0, -1.5, 65504.0, -NAN, -3e4]
    cases = []
    for name in PREDICATES:
        for dtype in _dtypes(FLOAT_DTYPES):
            cases.append(OpCase(name, (In((8,), dtype, data=special),)))
            cases.append(OpCase(name, (In((2, 4), dtype, "permuted", data=special),)))
        cases.append(OpCase(name, (In((3, 0), DType.F32),)))
        cases.append(OpCase(name, (In((), DType.F64, data=-INF),)))
    return cases


def _unsigned_edges() -> list[OpCase]:
    """Values above the signed range: division, remainders, order, shifts and conversions must be unsigned."""
    cases = []
    for dtype, values in ((DType.U64, U64_BIG), (DType.U32, U32_BIG), (DType.U16, U16_BIG)):
        a = In((6, 1), dtype, data=[[v] for v in values])
        b = In((1, 6), dtype, data=[values[::-1]])
        for name in ("div", "mod", "fmod", "max", "min", "lt", "ge", "sub", "mul", "shift_right", "bitwise_xor"):
            cases.append(OpCase(name, (a, b)))
        for name in ("neg", "abs", "sign", "relu", "bitwise_not"):
            cases.append(OpCase(name, (a,)))
        cases.append(OpCase("reduce_max", (In((6,), dtype, data=values),), {"axes": [0]}))
        cases.append(OpCase("reduce_sum", (In((6,), dtype, data=values),), {"axes": [0]}))
        for target in (DType.F64, DType.F32, DType.I64, DType.U8, DType.BOOL):
            cases.append(OpCase("cast", (a,), {"dtype": target}, rtol=1e-7))
        floats = In((5,), DType.F64, data=[float(values[1]), 1.5, 0.0, float(values[1]) * 1.5, 3e3])
        cases.append(OpCase("cast", (floats,), {"dtype": dtype}))
    return cases


def _shifts() -> list[OpCase]:
    """Shift amounts up to past 64 bits (and negative ones: read as unsigned, so huge) on every width."""
    cases = []
    for dtype in _dtypes(BINARY["shift_left"][0]):
        low = -2 if dtype.is_signed else 0
        values = In((4, 1), dtype, data=[[1], [5], [-7 if dtype.is_signed else 200], [3]])
        amounts = In((1, 9), dtype, data=[[0, 1, 3, 7, 8, 15, 31, 63, 64]], low=low)
        for name in ("shift_left", "shift_right"):
            cases.append(OpCase(name, (values, amounts)))
            cases.append(OpCase(name, (In((3, 5), dtype), In((3, 5), dtype, low=low, high=70))))
    return cases


def _fmod_signs() -> list[OpCase]:
    """C fmod keeps the dividend's sign: every sign pairing, zero divisors, and MIN fmod -1 for integers."""
    cases = []
    for dtype in (DType.F32, DType.F64, DType.F16):
        a = In((8,), dtype, data=[5.5, -5.5, 5.5, -5.5, 0.0, -0.0, INF, 3.0])
        b = In((8,), dtype, data=[2.0, 2.0, -2.0, -2.0, 3.0, 3.0, 2.0, 0.0])
        cases.append(OpCase("fmod", (a, b)))
    for dtype in (DType.I8, DType.I32, DType.I64):
        info = np.iinfo(dtype.np)
        a = In((8,), dtype, data=[7, -7, 7, -7, int(info.min), int(info.min), 5, int(info.max)])
        b = In((8,), dtype, data=[3, 3, -3, -3, -1, 0, 0, -1])
        cases.append(OpCase("fmod", (a, b)))
    return cases


def _bfloat16() -> list[OpCase]:
    """bf16 rounds to nearest even (ties included), overflows to inf and keeps NaN through casts."""
    f32_data = [1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-8 + 2**-20, 3.4e38, -3.4e38, NAN, -0.0, 1e-40]
    return [
        OpCase("cast", (In((8,), DType.F32, data=f32_data),), {"dtype": DType.BF16}),
        OpCase("cast", (In((8,), DType.F64, data=f32_data),), {"dtype": DType.BF16}),
        OpCase("cast", (In((4,), DType.I64, data=[2**24 + 2**16 + 1, -257, 255, 2**40 + 2**32]),),
               {"dtype": DType.BF16}),
        OpCase("add", (In((8,), DType.BF16, data=[1.0] * 8), In((8,), DType.BF16, data=f32_data)), rtol=0.0,
               atol=0.0),
        OpCase("mul", (In((5, 7), DType.BF16), In((7,), DType.BF16)), rtol=0.0, atol=0.0),
    ]


def _where_and_cast() -> list[OpCase]:
    cases = []
    for dtype in (DType.F32, DType.I64, DType.BOOL, DType.F16, DType.U8, DType.BF16, DType.U64):
        for a, b, layout in binary_shapes():
            cases.append(OpCase("where", (In(a, DType.BOOL, layout), In(b, dtype, layout), In((), dtype))))
    dtypes = [DType.F16, DType.BF16, DType.F32, DType.F64, DType.I8, DType.I16, DType.I32, DType.I64, DType.U8,
              DType.U16, DType.U32, DType.U64, DType.BOOL]
    for src in dtypes:
        for dst in dtypes:
            low = 0.0 if UNSIGNED_DTYPES & {src, dst} else -100.0
            rtol = 1e-2 if DType.BF16 in (src, dst) else 1e-3 if DType.F16 in (src, dst) else 1e-6
            cases.append(OpCase("cast", (In((3, 5), src, "permuted", low=low, high=100.0),), {"dtype": dst},
                                rtol=rtol))
        cases.append(OpCase("cast", (In((0, 2), src),), {"dtype": DType.F32}))
    return cases


def _bitcasts() -> list[OpCase]:
    """Bit-exact reinterpretation between every pair of element types of one size (NaN payloads included)."""
    pairs = [(DType.F32, DType.I32), (DType.I32, DType.F32), (DType.U32, DType.F32), (DType.F64, DType.I64),
             (DType.U64, DType.F64), (DType.F16, DType.I16), (DType.BF16, DType.U16), (DType.U16, DType.BF16),
             (DType.I16, DType.F16), (DType.I8, DType.U8), (DType.BOOL, DType.U8)]
    cases = [OpCase("bitcast", (In((3, 4), src, layout, low=-2**15, high=2**15),), {"dtype": dst})
             for src, dst in pairs for layout in ("permuted", "strided")]
    specials = In((5,), DType.F32, data=[NAN, -INF, -0.0, 1e-45, -NAN])
    return cases + [OpCase("bitcast", (In((4,), DType.U32, data=[0x7FC00123, 0xFFC00000, 0x7F800000, 1]),),
                           {"dtype": DType.F32}),
                    OpCase("bitcast", (specials,), {"dtype": DType.I32}),
                    OpCase("bitcast", (In((4,), DType.U8, data=[0, 1, 2, 255]),), {"dtype": DType.BOOL}),
                    OpCase("bitcast", (In((), DType.F32, data=-0.0),), {"dtype": DType.I32})]


CASES = (_unary() + _binary() + _predicates() + _unsigned_edges() + _shifts() + _fmod_signs() + _bfloat16()
         + _where_and_cast() + _bitcasts())
