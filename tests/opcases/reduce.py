"""Cases for reduce_{sum,max,min,prod} and argmax/argmin over every allowed dtype.

f32 runs the full table (scalar, size-1, empty reduced and kept extents,
keepdims both ways, negative and multiple axes, identity ``axes=()``,
permuted and strided views); every other dtype runs a shorter table. Extra
rows pin integer wrap-around, NaN propagation and tie breaking.
"""
from __future__ import annotations

import numpy as np

from needlec import DType
from needlec.compiler.ops.reduce import REDUCTIONS
from tests.opcases import In, OpCase

NAN = float("nan")
# float sums/products are added in a different order than NumPy's pairwise sum
TOL = {DType.F16: (1e-3, 1e-3), DType.BF16: (1e-2, 1e-2), DType.F32: (1e-5, 1e-5), DType.F64: (1e-12, 1e-12)}


def _random_config(seed: int = 3) -> tuple[tuple[int, ...], tuple[int, ...], bool, str]:
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(1, 6, 4))
    axes = tuple(int(a) - 4 for a in rng.choice(4, 2, replace=False))
    return shape, axes, True, "dense"


# (shape, axes, keepdims, layout)
FULL = [((), (), False, "dense"), ((5,), (0,), False, "dense"), ((3, 4), (-1,), True, "dense"),
        ((2, 3, 4), (0, 2), False, "dense"), ((2, 3, 4), (-3, -2, -1), False, "dense"),
        ((2, 3, 4), (2, 0, 1), True, "dense"), ((0, 4), (0,), False, "dense"), ((3, 0), (0,), True, "dense"),
        ((4, 1, 5), (1,), False, "dense"), ((2, 3), (), False, "dense"), ((7, 40), (1,), False, "dense"),
        ((3, 4, 5), (1,), False, "permuted"), ((4, 6), (0, 1), True, "strided"), _random_config()]
SHORT = [((2, 3, 4), (0, -1), False, "dense"), ((0, 4), (0,), True, "dense"), ((3, 4, 5), (1,), False, "permuted")]


def _reductions() -> list[OpCase]:
    cases = []
    for name, (dtypes, *_rest) in REDUCTIONS.items():
        # products of many factors leave the range where relative tolerances mean anything
        low, high = (0.5, 1.5) if name == "reduce_prod" else (-3.0, 3.0)
        for dtype in sorted(dtypes, key=lambda d: d.value):
            rtol, atol = TOL.get(dtype, (0.0, 0.0))
            for shape, axes, keepdims, layout in FULL if dtype is DType.F32 else SHORT:
                cases.append(OpCase(name, (In(shape, dtype, layout, low, high),),
                                    {"axes": list(axes), "keepdims": keepdims}, rtol, atol))
    return cases


def _edge_reductions() -> list[OpCase]:
    nan_data = [[1.0, NAN, 3.0], [2.0, -1.0, 0.5]]
    return [
        OpCase("reduce_sum", (In((12, 5), DType.I8, low=-128, high=127),), {"axes": [0]}),
        OpCase("reduce_sum", (In((30,), DType.U8, low=0, high=255),), {"axes": [0]}),
        OpCase("reduce_prod", (In((9, 4), DType.I8, low=-9, high=9),), {"axes": [0]}),
        OpCase("reduce_prod", (In((9, 4), DType.I32, low=-300, high=300),), {"axes": [0]}),
        OpCase("reduce_prod", (In((0, 3), DType.I64),), {"axes": [0, 1]}),
        OpCase("reduce_max", (In((2, 3), DType.F32, data=nan_data),), {"axes": [1]}),
        OpCase("reduce_min", (In((2, 3), DType.F64, data=nan_data),), {"axes": [0, 1]}),
        OpCase("reduce_sum", (In((2, 3), DType.F32, data=nan_data),), {"axes": [1]}),
        OpCase("reduce_sum", (In((64, 3), DType.F16, low=0.0, high=4.0),), {"axes": [0]}, 1e-3, 1e-3),
        OpCase("reduce_max", (In((0, 5), DType.BOOL),), {"axes": [0]}),
        OpCase("reduce_min", (In((0, 5), DType.BOOL),), {"axes": [0], "keepdims": True}),
    ]


# (shape, axis, keepdims, layout): argmax/argmin never see an empty axis
ARG_FULL = [((5,), 0, False, "dense"), ((3, 4), -1, True, "dense"), ((2, 3, 4), 1, False, "dense"),
            ((1, 6), 0, False, "dense"), ((0, 4), 1, False, "dense"), ((3, 4, 5), 0, True, "permuted"),
            ((4, 6), -1, False, "strided")]


def _arg_reductions() -> list[OpCase]:
    cases = []
    nan_data = [[1.0, NAN, 3.0, NAN], [2.0, -1.0, 2.0, -1.0], [NAN, NAN, 0.0, 5.0]]
    for name in ("argmax", "argmin"):
        for last in (False, True):
            for shape, axis, keepdims, layout in ARG_FULL:
                cases.append(OpCase(name, (In(shape, DType.F32, layout),),
                                    {"axis": axis, "keepdims": keepdims, "select_last_index": last}))
            # a small integer range makes ties everywhere, so first/last selection matters
            for dtype in (DType.F16, DType.BF16, DType.F64, DType.I8, DType.I16, DType.I32, DType.I64, DType.U8,
                          DType.U16, DType.U64, DType.BOOL):
                cases.append(OpCase(name, (In((4, 7), dtype, low=0, high=2),),
                                    {"axis": -1, "select_last_index": last}))
            cases.append(OpCase(name, (In((3, 4), DType.F32, data=nan_data),),
                                {"axis": 1, "select_last_index": last}))
            cases.append(OpCase(name, (In((3, 4), DType.F64, data=nan_data),),
                                {"axis": 0, "keepdims": True, "select_last_index": last}))
    return cases


CASES = _reductions() + _edge_reductions() + _arg_reductions()
