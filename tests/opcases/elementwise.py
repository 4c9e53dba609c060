"""Cases for unary and binary elementwise ops, where and cast, over every allowed dtype."""
from __future__ import annotations

from needlec import DType
from needlec.compiler.ops.elementwise import BINARY, UNARY
from tests.opcases import In, OpCase, binary_shapes, unary_shapes

POSITIVE = {"log": 0.1, "sqrt": 0.0, "rsqrt": 0.1, "reciprocal": 0.5}
# dtypes whose tolerances are wider (f16 rounds after every op)
TOL = {DType.F16: (2e-3, 2e-3), DType.F32: (1e-5, 1e-6), DType.F64: (1e-12, 1e-12)}


def _tol(dtype: DType) -> tuple[float, float]:
    return TOL.get(dtype, (0.0, 0.0))


def _unary() -> list[OpCase]:
    cases = []
    for name, (dtypes, *_rest) in UNARY.items():
        for dtype in sorted(dtypes, key=lambda d: d.value):
            low = POSITIVE.get(name, -3.0)
            for shape, layout in unary_shapes():
                rtol, atol = _tol(dtype)
                cases.append(OpCase(name, (In(shape, dtype, layout, low=low),), rtol=rtol, atol=atol))
    return cases


def _binary() -> list[OpCase]:
    cases = []
    for name, (dtypes, *_rest) in BINARY.items():
        for dtype in sorted(dtypes, key=lambda d: d.value):
            low_a = 0.1 if name == "pow" else -3.0
            # float division stays away from 0; integer division deliberately includes 0 divisors
            low_b = 0.5 if name == "div" and dtype.is_float else -3.0
            for a, b, layout in binary_shapes():
                rtol, atol = _tol(dtype)
                cases.append(OpCase(name, (In(a, dtype, layout, low=low_a), In(b, dtype, layout, low=low_b)),
                                    rtol=rtol, atol=atol))
    return cases


def _where_and_cast() -> list[OpCase]:
    cases = []
    for dtype in (DType.F32, DType.I64, DType.BOOL, DType.F16, DType.U8):
        for a, b, layout in binary_shapes():
            cases.append(OpCase("where", (In(a, DType.BOOL, layout), In(b, dtype, layout), In((), dtype))))
    dtypes = [DType.F16, DType.F32, DType.F64, DType.I8, DType.I16, DType.I32, DType.I64, DType.U8, DType.BOOL]
    for src in dtypes:
        for dst in dtypes:
            low = 0.0 if dst is DType.U8 or src is DType.U8 else -100.0
            cases.append(OpCase("cast", (In((3, 5), src, "permuted", low=low, high=100.0),), {"dtype": dst},
                                rtol=1e-3 if DType.F16 in (src, dst) else 1e-6))
        cases.append(OpCase("cast", (In((0, 2), src),), {"dtype": DType.F32}))
    return cases


CASES = _unary() + _binary() + _where_and_cast()
