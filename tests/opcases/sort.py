"""Cases for topk: k from 0 to the whole axis (a stable sort), both directions, ties, NaN, views, dtypes."""
from __future__ import annotations

from needlec import DType
from needlec.compiler.ir.dtypes import NUMERIC_DTYPES
from tests.opcases import In, OpCase

NAN = float("nan")
# (shape, k, axis, layout)
SHAPES = [((7,), 3, 0, "dense"), ((3, 5), 5, -1, "dense"), ((4, 6), 2, 0, "permuted"), ((3, 6), 4, 1, "strided"),
          ((2, 3, 4), 2, 1, "dense"), ((2, 3, 4), 0, -1, "dense"), ((0, 4), 2, 1, "dense"), ((1,), 1, 0, "dense"),
          ((2, 40), 7, 1, "dense")]
NAN_ROWS = [[1.0, 3.0, 3.0, NAN, 2.0, NAN], [5.0, 5.0, -0.0, 0.0, NAN, -1.0], [0.5, 0.25, 4.0, 4.0, -3.0, 2.0]]


def _topk() -> list[OpCase]:
    cases = []
    for largest in (True, False):
        for shape, k, axis, layout in SHAPES:
            cases.append(OpCase("topk", (In(shape, DType.F32, layout),), {"k": k, "axis": axis, "largest": largest}))
        # a small integer range makes ties everywhere: the lower index must come first
        for dtype in sorted(NUMERIC_DTYPES - {DType.F32}, key=lambda d: d.value):
            cases.append(OpCase("topk", (In((3, 9), dtype, low=0, high=3),), {"k": 6, "largest": largest}))
        for dtype in (DType.F32, DType.F16, DType.F64):
            cases.append(OpCase("topk", (In((3, 6), dtype, data=NAN_ROWS),), {"k": 6, "largest": largest}))
            cases.append(OpCase("topk", (In((3, 6), dtype, data=NAN_ROWS),), {"k": 2, "axis": 0, "largest": largest}))
    cases.append(OpCase("topk", (In((4, 5), DType.F32),), {"k": 3, "sorted": False}))
    return cases


CASES = _topk()
