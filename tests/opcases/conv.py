"""Cases for conv2d: groups (incl. depthwise), strides, dilations, asymmetric pads, empty dims, views, dtypes."""
from __future__ import annotations

from needlec import DType
from tests.opcases import In, OpCase

TOL = {DType.F16: (2e-3, 2e-3), DType.BF16: (1e-2, 1e-2), DType.F32: (1e-5, 1e-4), DType.F64: (1e-12, 1e-12)}

# (x shape, w shape, attributes, x layout, w layout)
FULL = [
    ((1, 1, 5, 5), (1, 1, 3, 3), {}, "dense", "dense"),
    ((2, 3, 7, 6), (4, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, "dense", "dense"),
    ((1, 4, 5, 5), (6, 2, 3, 3), {"groups": 2}, "dense", "dense"),
    ((2, 4, 6, 6), (4, 1, 3, 3), {"groups": 4, "pads": [1, 1, 1, 1]}, "dense", "dense"),
    ((1, 3, 5, 5), (6, 1, 3, 3), {"groups": 3, "strides": [2, 1]}, "dense", "dense"),
    ((1, 2, 9, 9), (3, 2, 3, 3), {"dilations": [2, 2]}, "dense", "dense"),
    ((1, 2, 8, 7), (2, 2, 2, 3), {"pads": [0, 1, 2, 0], "strides": [1, 2], "dilations": [2, 1]}, "dense", "dense"),
    ((2, 5, 4, 4), (3, 5, 1, 1), {}, "dense", "dense"),
    ((1, 1, 2, 2), (1, 1, 3, 3), {"pads": [1, 1, 1, 1]}, "dense", "dense"),
    ((1, 2, 4, 6), (2, 2, 4, 2), {"pads": [1, 0, 2, 3], "strides": [3, 2]}, "dense", "dense"),
    ((0, 2, 4, 4), (3, 2, 3, 3), {}, "dense", "dense"),
    ((1, 0, 4, 4), (2, 0, 3, 3), {}, "dense", "dense"),
    ((1, 2, 4, 4), (0, 2, 3, 3), {}, "dense", "dense"),
    ((2, 3, 6, 5), (4, 3, 3, 2), {"pads": [1, 1, 0, 1]}, "permuted", "dense"),
    ((1, 4, 6, 6), (4, 2, 2, 4), {"groups": 2}, "dense", "strided"),
    ((1, 3, 6, 6), (2, 3, 3, 3), {"pads": [1, 1, 1, 1]}, "dense", "const"),
]
SHORT = [((1, 4, 6, 6), (4, 2, 3, 3), {"groups": 2, "pads": [1, 0, 1, 2], "strides": [2, 1]}, "dense", "dense"),
         ((2, 2, 5, 5), (2, 1, 3, 3), {"groups": 2, "dilations": [1, 2]}, "permuted", "dense")]

# sizes the implicit-GEMM schedule (loops/gemm.py) takes: output channels as rows at tile tails, padding guards in
# the im2col packing, groups as a batch, channel chunks (40 channels x 9 taps), dilation
TILED = [
    ((2, 5, 11, 9), (7, 5, 3, 3), {"pads": [1, 1, 1, 1]}, DType.F32, "dense"),
    ((1, 6, 13, 13), (8, 3, 3, 3), {"groups": 2, "strides": [2, 2], "pads": [1, 0, 2, 1]}, DType.F32, "dense"),
    ((1, 40, 9, 9), (16, 40, 3, 3), {"pads": [1, 1, 1, 1]}, DType.F32, "dense"),
    ((1, 3, 12, 12), (5, 3, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, DType.F32, "permuted"),
    ((1, 4, 7, 7), (6, 4, 3, 3), {"pads": [1, 1, 1, 1]}, DType.F64, "dense"),
    ((1, 4, 7, 7), (6, 4, 3, 3), {"pads": [1, 1, 1, 1]}, DType.F16, "dense"),
]


def _conv() -> list[OpCase]:
    cases = []
    for dtype in (DType.F16, DType.BF16, DType.F32, DType.F64):
        rtol, atol = TOL[dtype]
        for x, w, attrs, x_layout, w_layout in FULL if dtype is DType.F32 else SHORT:
            cases.append(OpCase("conv2d", (In(x, dtype, x_layout), In(w, dtype, w_layout)), attrs, rtol, atol))
    for x, w, attrs, dtype, x_layout in TILED:
        rtol, atol = TOL[dtype]
        cases.append(OpCase("conv2d", (In(x, dtype, x_layout), In(w, dtype)), attrs, rtol, max(atol, 1e-4)))
    return cases


CASES = _conv()
