"""Cases for the data-movement and generator ops: pad, concat, gather, scatter, iota, fill.

Generators (iota, fill) have no inputs, so ``constant_fold`` folds them when the
result is small; the large shapes here (over 4 KiB) keep them as kernels so
their lowerings run.
"""
from __future__ import annotations

import numpy as np

from needlec import DType
from needlec.compiler.ir.dtypes import ALL_DTYPES, NUMERIC_DTYPES
from tests.opcases import In, OpCase

I32, I64, F16, F32 = DType.I32, DType.I64, DType.F16, DType.F32
EVERY_DTYPE = sorted(ALL_DTYPES, key=lambda d: d.value)
NUMERIC = sorted(NUMERIC_DTYPES, key=lambda d: d.value)
BIG = (70, 64)  # 4480 elements: more than 4 KiB in every dtype, so never constant-folded
RNG = np.random.default_rng(7)


def _random_shape(rank: int, low: int = 1, high: int = 5) -> tuple[int, ...]:
    return tuple(int(d) for d in RNG.integers(low, high + 1, rank))


def _pad() -> list[OpCase]:
    cases = [OpCase("pad", (In((3, 4), d),), {"pads": [1, 0, 2, 1], "value": 2.75}) for d in EVERY_DTYPE]
    for d in (F16, F32, I64, DType.U8, DType.BOOL):
        cases.append(OpCase("pad", (In((4, 5), d),), {"pads": [2, 1, 3, 4], "mode": "reflect"}))
        cases.append(OpCase("pad", (In((4, 5), d),), {"pads": [2, 1, 3, 4], "mode": "edge"}))
    shape = _random_shape(3, 2, 5)
    random_pads = [int(RNG.integers(-1, dim)) for dim in shape] * 2  # reflect-legal: -1 <= pad <= dim - 1
    for mode in ("constant", "reflect", "edge"):
        cases += [
            OpCase("pad", (In(shape),), {"pads": random_pads, "mode": mode}),
            OpCase("pad", (In((5, 6)),), {"pads": [-2, 1, 2, -3], "mode": mode}),  # crop one side, pad the other
            OpCase("pad", (In((4, 5), F32, "permuted"),), {"pads": [1, -1, 2, 2], "mode": mode}),
            OpCase("pad", (In((3, 6), I32, "strided"),), {"pads": [0, 2, 1, 0], "mode": mode}),
            OpCase("pad", (In((1, 3)),), {"pads": [0, 1, 0, 2], "mode": mode}),
            OpCase("pad", (In(()),), {"pads": [], "mode": mode}),
            OpCase("pad", (In((0, 3)),), {"pads": [0, 1, 0, 1], "mode": mode}),  # empty stays empty
        ]
    cases += [
        OpCase("pad", (In((1, 3)),), {"pads": [2, 0, 3, 1], "mode": "edge"}),
        OpCase("pad", (In((0, 3)),), {"pads": [1, 1, 2, 0], "value": -4.0}),  # empty input: all padding
        OpCase("pad", (In((3, 4)),), {"pads": [-3, 0, 0, 0]}),  # cropped to nothing
        OpCase("pad", (In((3, 4)),), {"pads": [-3, 1, 2, 0], "value": 9.0}),  # cropped to nothing, then padded
        OpCase("pad", (In((2,), DType.I8),), {"pads": [5, 7], "value": -1.0}),
        OpCase("pad", (In((3, 4), DType.U8),), {"pads": [1, 1, 1, 1], "value": 300.0}),  # wraps like NumPy's cast
        OpCase("pad", (In((2, 3), DType.F64),), {"pads": [1, 1, 1, 1], "value": float("nan")}),
    ]
    return cases


def _concat() -> list[OpCase]:
    cases = [OpCase("concat", (In((2, 3), d), In((1, 3), d), In((4, 3), d)), {"axis": 0}) for d in EVERY_DTYPE]
    a, b = _random_shape(3), _random_shape(3)
    cases += [
        OpCase("concat", (In((2, 1)), In((2, 4)), In((2, 0))), {"axis": -1}),
        OpCase("concat", (In((3, 2, 4)),), {"axis": 1}),
        OpCase("concat", (In((3, 4), F32, "permuted"), In((3, 2), F32, "strided"), In((3, 1))), {"axis": 1}),
        OpCase("concat", (In((0,), I64), In((3,), I64), In((0,), I64)), {"axis": 0}),
        OpCase("concat", (In((0, 2)), In((0, 3))), {"axis": -1}),
        OpCase("concat", tuple(In((2, k, 3), F16) for k in (1, 2, 1, 3, 2)), {"axis": -2}),
        OpCase("concat", (In(a), In((b[0],) + a[1:]), In(a, F32, "permuted")), {"axis": 0}),
        OpCase("concat", (In(a[:2] + (b[2],)), In(a), In(a[:2] + (1,))), {"axis": 2}),
    ]
    return cases


def _gather() -> list[OpCase]:
    cases = [OpCase("gather", (In((5, 4), d), In((3,), I64, low=-5, high=4)), {"axis": 0}) for d in EVERY_DTYPE]
    data = _random_shape(3, 2, 5)
    cases += [
        OpCase("gather", (In((3, 4, 2)), In((2, 3), I32, low=-4, high=3)), {"axis": -2}),
        OpCase("gather", (In(data, F32, "permuted"), In((2, 2), I64, low=-data[2], high=data[2] - 1)), {"axis": 2}),
        OpCase("gather", (In((5, 3), DType.F64), In((4, 4), I32, "strided", low=-5, high=4)), {"axis": 0}),
        OpCase("gather", (In((5,)), In((30,), I64, low=-12, high=12)), {"axis": 0}),  # out of range: clamped
        # -1 wraps to 4, -5 to 0, 7 clamps to 4, -9 wraps to -4 then clamps to 0, 5 clamps to 4
        OpCase("gather", (In((5, 2), I64), In((6,), I64, "const", data=[-1, -5, 4, 7, -9, 5])), {"axis": 0}),
        OpCase("gather", (In((4, 3)), In((), I64, "const", data=2)), {"axis": 1}),  # scalar index drops the axis
        OpCase("gather", (In((4, 3)), In((), I32, "const", data=-1)), {"axis": 0}),
        OpCase("gather", (In((4, 3)), In((0,), I64)), {"axis": 0}),
        OpCase("gather", (In((0, 3)), In((0,), I32)), {"axis": 0}),  # empty gather axis, no indices
        OpCase("gather", (In((0, 3)), In((2,), I64)), {"axis": 1}),  # empty output
        OpCase("gather", (In((1, 1, 6), DType.U8), In((1, 2), I64, low=-6, high=5)), {"axis": -1}),
    ]
    return cases


def _scatter_case(data: tuple[int, ...], indices: tuple[int, ...], axis: int, reduction: str = "none",
                  dtype: DType = F32, index_dtype: DType = I64, layouts: tuple[str, str, str] = ("dense",) * 3,
                  low: int | None = None, high: int | None = None) -> OpCase:
    """Random indices in ``[low, high]`` (default ``[-dim, dim - 1]``): duplicates are likely."""
    dim = data[axis]
    low = -dim if low is None else low
    high = dim - 1 if high is None else high
    # small update values keep repeated integer products/sums exact and readable
    return OpCase("scatter", (In(data, dtype, layouts[0]), In(indices, index_dtype, layouts[1], low=low, high=high),
                              In(indices, dtype, layouts[2], low=-3, high=3)),
                  {"axis": axis, "reduction": reduction}, rtol=1e-3 if dtype is F16 else 1e-5)


def _scatter() -> list[OpCase]:
    cases = [_scatter_case((4, 5), (3, 5), 0, dtype=d) for d in EVERY_DTYPE]
    for reduction in ("add", "mul", "max", "min"):
        cases += [_scatter_case((3, 4), (3, 6), 1, reduction, dtype=d) for d in NUMERIC]
        # every update hits row 1 or 0 of its column: exact duplicates combined in row-major order
        cases.append(OpCase("scatter", (In((2, 3)), In((3, 3), I64, "const", data=[[1, 1, 0], [1, -1, 0], [-2, 1, 0]]),
                                        In((3, 3), data=np.arange(1, 10) * 0.5)), {"reduction": reduction}))
        cases.append(_scatter_case((5, 3), (4, 3), 0, reduction, index_dtype=I32, low=-12, high=12))
    data = _random_shape(3, 2, 5)
    cases += [
        OpCase("scatter", (In((2, 3)), In((3, 3), I64, "const", data=[[1, 1, 0], [1, -1, 0], [-2, 1, 0]]),
                           In((3, 3), data=np.arange(9.0)))),  # last write wins
        _scatter_case((4, 6), (4, 3), -1, "add", layouts=("permuted", "dense", "strided")),
        _scatter_case((3, 4), (3, 6), 1, "none", DType.I16, I32, layouts=("strided", "permuted", "permuted")),
        _scatter_case((6,), (9,), 0, "none", low=-20, high=20),  # out of range: wrapped once, then clamped
        _scatter_case((2, 3), (0, 3), 0, "add"),
        _scatter_case((0, 3), (0, 3), 0),
        _scatter_case((1, 4, 1), (1, 4, 1), 1, "max", DType.I64),
        _scatter_case(data, (data[0], 2 * data[1], data[2]), 1, "add", DType.F64),
        _scatter_case(data, (1, data[1], data[2]), -3, "min", DType.I8, layouts=("permuted", "dense", "dense")),
    ]
    return cases


def _iota() -> list[OpCase]:
    cases = [OpCase("iota", (), {"shape": BIG, "axis": i % 2, "dtype": d}) for i, d in enumerate(NUMERIC)]
    cases += [
        OpCase("iota", (), {"shape": (300, 16), "axis": 0, "dtype": DType.U8}),  # wraps past 255
        OpCase("iota", (), {"shape": (300, 16), "axis": -2, "dtype": DType.I8}),
        OpCase("iota", (), {"shape": (3000, 2), "axis": 0, "dtype": F16}),  # rounds above 2048
        OpCase("iota", (), {"shape": (4, 50, 30), "axis": -1, "dtype": I32}),
        OpCase("iota", (), {"shape": (5,), "axis": 0, "dtype": F32}),
        OpCase("iota", (), {"shape": (3, 0), "axis": 0, "dtype": I64}),
    ]
    return cases


def _fill() -> list[OpCase]:
    cases = [OpCase("fill", (), {"shape": BIG, "value": 2.75, "dtype": d}) for d in EVERY_DTYPE]
    cases += [
        OpCase("fill", (), {"shape": BIG, "value": 0.0, "dtype": DType.BOOL}),
        OpCase("fill", (), {"shape": BIG, "value": -3.5, "dtype": DType.I16}),
        OpCase("fill", (), {"shape": (2000, 3), "value": float("nan"), "dtype": F32}),
        OpCase("fill", (), {"shape": (), "value": 1.5, "dtype": F32}),
        OpCase("fill", (), {"shape": (0, 5), "value": 1.0, "dtype": I64}),
    ]
    return cases


CASES = _pad() + _concat() + _gather() + _scatter() + _iota() + _fill()
