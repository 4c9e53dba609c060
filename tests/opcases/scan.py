"""Cases for cumulative (running sum / product): every exclusive x reverse combination, axes, views, dtypes."""
from __future__ import annotations

from needlec import DType
from needlec.compiler.ir.dtypes import NUMERIC_DTYPES
from tests.opcases import In, OpCase

TOL = {DType.F16: (2e-3, 2e-3), DType.BF16: (1e-2, 1e-2), DType.F32: (1e-5, 1e-5), DType.F64: (1e-12, 1e-12)}
# (shape, axis, layout)
SHAPES = [((7,), 0, "dense"), ((3, 4), 1, "dense"), ((3, 4), -2, "dense"), ((2, 3, 4), -2, "permuted"),
          ((3, 5), 1, "strided"), ((0, 3), 0, "dense"), ((3, 0), 0, "dense"), ((1, 1), 0, "dense")]


def _cumulative() -> list[OpCase]:
    cases = []
    for kind in ("sum", "prod"):
        # products of many factors leave the range where relative tolerances mean anything
        low, high = (0.5, 1.5) if kind == "prod" else (-3.0, 3.0)
        for exclusive in (False, True):
            for reverse in (False, True):
                flags = {"kind": kind, "exclusive": exclusive, "reverse": reverse}
                for shape, axis, layout in SHAPES:
                    cases.append(OpCase("cumulative", (In(shape, DType.F32, layout, low, high),),
                                        {**flags, "axis": axis}))
        for dtype in sorted(NUMERIC_DTYPES - {DType.F32}, key=lambda d: d.value):
            rtol, atol = TOL.get(dtype, (0.0, 0.0))
            cases.append(OpCase("cumulative", (In((3, 6), dtype, "permuted", low, high),),
                                {"kind": kind, "axis": 1, "exclusive": True}, rtol, atol))
    return cases + [
        # integers wrap; f16 accumulates in f32 and rounds each output once
        OpCase("cumulative", (In((20,), DType.I8, low=-9, high=9),), {"kind": "prod", "axis": 0}),
        OpCase("cumulative", (In((40,), DType.U8, low=0, high=255),), {"kind": "sum", "axis": 0, "reverse": True}),
        OpCase("cumulative", (In((2, 300), DType.F16, low=0.0, high=4.0),), {"kind": "sum", "axis": 1}, 1e-3, 1e-3),
        OpCase("cumulative", (In((6,), DType.F32, data=[1.0, float("nan"), 2.0, 0.0, 3.0, 4.0]),),
               {"kind": "prod", "axis": 0}),
    ]


CASES = _cumulative()
