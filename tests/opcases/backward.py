"""Cases for what gradient rules build on: ``gather_elements``, ``window_argmax`` and ``pad``'s interior padding."""
from __future__ import annotations

from needlec import DType
from needlec.compiler.ir.dtypes import ALL_DTYPES
from tests.opcases import In, OpCase

I32, I64, F16, F32, F64 = DType.I32, DType.I64, DType.F16, DType.F32, DType.F64
NAN = float("nan")


def _gather_elements() -> list[OpCase]:
    cases = [OpCase("gather_elements", (In((4, 5), d), In((3, 5), I64, low=-4, high=3)), {"axis": 0})
             for d in sorted(ALL_DTYPES, key=lambda d: d.value)]
    cases += [
        OpCase("gather_elements", (In((3, 4)), In((3, 7), I32, low=-4, high=3)), {"axis": -1}),
        # indices smaller than data off the axis read the leading block
        OpCase("gather_elements", (In((4, 5, 3)), In((2, 6, 2), I64, low=-5, high=4)), {"axis": 1}),
        OpCase("gather_elements", (In((4, 5), F64, "permuted"), In((4, 2), I64, "strided", low=0, high=3)),
               {"axis": 0}),
        OpCase("gather_elements", (In((6,)), In((10,), I64, low=-15, high=15)), {"axis": 0}),  # wrap, clamp
        # -1 wraps to 2, 5 clamps to 2, -7 wraps to -4 then clamps to 0
        OpCase("gather_elements", (In((2, 3), F32, data=[[1, 2, 3], [4, 5, 6]]),
                                   In((2, 3), I64, "const", data=[[-1, 5, -7], [0, 1, 2]])), {"axis": 1}),
        OpCase("gather_elements", (In((1,)), In((1,), I32, "const", data=[0])), {"axis": 0}),
        OpCase("gather_elements", (In((3, 4)), In((0, 4), I64)), {"axis": 0}),
        OpCase("gather_elements", (In((0, 4)), In((0, 4), I64)), {"axis": 0}),  # empty axis, no indices
    ]
    return cases


# (input shape, attributes, layout)
WINDOWS = [
    ((1, 1, 5, 5), {"kernel": [2, 2]}, "dense"),
    ((2, 3, 7, 6), {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, "dense"),
    ((1, 2, 7, 7), {"kernel": [3, 3], "strides": [2, 2], "ceil_mode": True}, "dense"),
    ((1, 2, 9, 9), {"kernel": [3, 3], "dilations": [2, 2], "pads": [2, 2, 2, 2]}, "dense"),
    ((3, 10), {"kernel": [4], "strides": [2], "pads": [1, 1]}, "dense"),
    ((1, 2, 4, 5, 4), {"kernel": [2, 2, 2], "strides": [2, 1, 2]}, "dense"),
    ((1, 3), {"kernel": [2], "dilations": [4], "pads": [2, 2]}, "dense"),  # windows of padding only: -1
    ((0, 2, 4, 4), {"kernel": [2, 2]}, "dense"),
    ((2, 3, 6, 5), {"kernel": [3, 2], "pads": [1, 0, 1, 1]}, "permuted"),
    ((2, 5, 6), {"kernel": [2, 2], "strides": [1, 2]}, "strided"),
]


def _window_argmax() -> list[OpCase]:
    cases = [OpCase("window_argmax", (In(shape, F32, layout),), attrs) for shape, attrs, layout in WINDOWS]
    # few distinct values: ties everywhere, the first maximum in kernel order must win
    for dtype in (F16, F64, DType.I8, I32, I64, DType.U8):
        cases.append(OpCase("window_argmax", (In((2, 2, 6, 6), dtype, low=0, high=2),),
                            {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}))
    cases += [
        OpCase("window_argmax", (In((2, 4), F32, data=[[1.0, NAN, 3.0, NAN], [2.0, 2.0, -1.0, 5.0]]),),
               {"kernel": [2]}),
        OpCase("window_argmax", (In((1, 4), F32, data=[[-float("inf")] * 4]),), {"kernel": [2], "pads": [1, 1]}),
    ]
    return cases


def _interior_pad() -> list[OpCase]:
    return [
        OpCase("pad", (In((3, 4)),), {"pads": [0, 0, 0, 0], "interior": [1, 2]}),
        OpCase("pad", (In((3, 4), I64),), {"pads": [2, -1, 1, -3], "interior": [2, 1], "value": 7.0}),
        OpCase("pad", (In((4, 3), F16, "permuted"),), {"pads": [1, 0, 0, 2], "interior": [0, 3]}),
        OpCase("pad", (In((2, 6), F32, "strided"),), {"pads": [-1, 1, 1, -1], "interior": [1, 1]}),
        OpCase("pad", (In((1, 0)),), {"pads": [1, 1, 1, 1], "interior": [2, 2]}),
        OpCase("pad", (In((3,), DType.BOOL),), {"pads": [-5, 1], "interior": [1], "value": 1.0}),  # cropped to nothing
    ]


CASES = _gather_elements() + _window_argmax() + _interior_pad()
