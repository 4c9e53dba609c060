"""Cases for window_reduce (max / sum pooling): pads, strides, dilations, ceil_mode, 1-D to 3-D windows, dtypes."""
from __future__ import annotations

from needlec import DType
from tests.opcases import In, OpCase

NAN = float("nan")
TOL = {DType.F16: (1e-3, 1e-3), DType.BF16: (1e-2, 1e-2), DType.F32: (1e-5, 1e-5), DType.F64: (1e-12, 1e-12)}

# (input shape, attributes other than kind, layout)
FULL = [
    ((1, 1, 5, 5), {"kernel": [2, 2]}, "dense"),
    ((2, 3, 7, 6), {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, "dense"),
    ((1, 2, 7, 7), {"kernel": [3, 3], "strides": [2, 2], "ceil_mode": True}, "dense"),
    ((1, 2, 6, 8), {"kernel": [2, 3], "strides": [2, 3], "pads": [0, 1, 1, 0], "ceil_mode": True}, "dense"),
    # ceil mode: the last window would start in the end padding and is dropped (3 -> 2 outputs)
    ((2, 5), {"kernel": [3], "strides": [3], "pads": [0, 2], "ceil_mode": True}, "dense"),
    ((1, 2, 9, 9), {"kernel": [3, 3], "dilations": [2, 2], "pads": [2, 2, 2, 2]}, "dense"),
    ((1, 1, 8, 7), {"kernel": [2, 3], "strides": [3, 2], "dilations": [2, 1], "pads": [0, 1, 2, 0]}, "dense"),
    ((3, 10), {"kernel": [4], "strides": [2], "pads": [1, 1]}, "dense"),
    ((1, 2, 4, 5, 4), {"kernel": [2, 2, 2], "strides": [2, 1, 2]}, "dense"),
    ((5, 6), {"kernel": [2, 2]}, "dense"),
    ((1, 1, 2, 2), {"kernel": [3, 3], "pads": [1, 1, 1, 1]}, "dense"),
    ((0, 2, 4, 4), {"kernel": [2, 2]}, "dense"),
    ((2, 0, 4, 4), {"kernel": [2, 2], "strides": [2, 2]}, "dense"),
    ((2, 3, 6, 5), {"kernel": [3, 2], "pads": [1, 0, 1, 1]}, "permuted"),
    ((2, 5, 6), {"kernel": [2, 2], "strides": [1, 2]}, "strided"),
]
SHORT = [((2, 2, 6, 6), {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, "dense"),
         ((1, 2, 5, 5), {"kernel": [2, 2], "dilations": [2, 1], "ceil_mode": True}, "permuted")]


def _pooling() -> list[OpCase]:
    cases = []
    for kind in ("max", "sum"):
        for dtype in (DType.F16, DType.BF16, DType.F32, DType.F64, DType.I8, DType.I32, DType.I64, DType.U8,
                      DType.U32, DType.U64):
            rtol, atol = TOL.get(dtype, (0.0, 0.0))
            for shape, attrs, layout in FULL if dtype is DType.F32 else SHORT:
                cases.append(OpCase("window_reduce", (In(shape, dtype, layout),), {"kind": kind, **attrs},
                                    rtol, atol))
    return cases


CASES = _pooling() + [
    # integer window sums wrap; max sees negative values next to padding
    OpCase("window_reduce", (In((2, 6, 6), DType.I8, low=-128, high=127),),
           {"kind": "sum", "kernel": [3, 3], "pads": [1, 1, 1, 1]}),
    OpCase("window_reduce", (In((2, 6, 6), DType.I16, low=-100, high=-1),),
           {"kind": "max", "kernel": [3, 3], "pads": [1, 1, 1, 1]}),
    OpCase("window_reduce", (In((1, 4), DType.F32, data=[1.0, NAN, 3.0, 2.0]),), {"kind": "max", "kernel": [2]}),
    # f16 sums of many elements accumulate in f32
    OpCase("window_reduce", (In((2, 40), DType.F16, low=0.0, high=4.0),), {"kind": "sum", "kernel": [32]},
           1e-3, 1e-3),
]
