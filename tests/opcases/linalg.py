"""Cases for matmul: 1-D / 2-D / batched / broadcast-batch operands, empty and size-1 dims, views, dtypes."""
from __future__ import annotations

import numpy as np

from needlec import DType
from tests.opcases import In, OpCase

TOL = {DType.F16: (2e-3, 2e-3), DType.BF16: (1e-2, 1e-2), DType.F32: (1e-5, 1e-4), DType.F64: (1e-12, 1e-12)}


def _random_batched(seed: int = 4) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    rng = np.random.default_rng(seed)
    m, k, n = (int(d) for d in rng.integers(1, 9, 3))
    batch = tuple(int(d) for d in rng.integers(1, 4, 2))
    return (batch[0], 1, m, k), (batch[1], k, n), "dense"


# (shape a, shape b, layout)
FULL = [((3, 4), (4, 5), "dense"), ((4,), (4, 5), "dense"), ((3, 4), (4,), "dense"), ((4,), (4,), "dense"),
        ((2, 3, 4), (4, 5), "dense"), ((3, 4), (2, 4, 5), "dense"), ((2, 1, 3, 4), (5, 4, 6), "dense"),
        ((4,), (2, 4, 3), "dense"), ((2, 3, 4), (4,), "dense"), ((1, 1), (1, 1), "dense"),
        ((0, 4), (4, 5), "dense"), ((3, 0), (0, 5), "dense"), ((3, 4), (4, 0), "dense"), ((0,), (0,), "dense"),
        ((17, 33), (33, 19), "dense"), ((3, 4), (4, 5), "permuted"), ((2, 3, 4), (2, 4, 6), "permuted"),
        ((3, 6), (6, 4), "strided"), _random_batched()]
SHORT = [((2, 3, 8), (8, 5), "dense"), ((7,), (7, 2), "permuted")]


def _matmul() -> list[OpCase]:
    cases = []
    for dtype in (DType.F16, DType.BF16, DType.F32, DType.F64, DType.I8, DType.I16, DType.I32, DType.I64, DType.U8,
                  DType.U16, DType.U32, DType.U64):
        rtol, atol = TOL.get(dtype, (0.0, 0.0))
        for a, b, layout in FULL if dtype is DType.F32 else SHORT:
            cases.append(OpCase("matmul", (In(a, dtype, layout), In(b, dtype, layout)), rtol=rtol, atol=atol))
    return cases


# sizes the packed GEMM schedule (loops/gemm.py) takes, at tile tails: 6 x 16 register tiles on AVX2, reduction
# chunks of at most 256, row blocks shared by threads (130 x 300 x 267), a prime depth (one chunk), broadcast and
# shared batches, transposed operands
TILED = [((7, 13), (13, 29), DType.F32, "dense"), ((4, 8), (8, 8), DType.F32, "dense"),
         ((130, 300), (300, 267), DType.F32, "dense"), ((2, 31, 257), (257, 17), DType.F32, "dense"),
         ((3, 19, 23), (3, 23, 37), DType.F32, "dense"), ((19, 23), (23, 37), DType.F32, "permuted"),
         ((5, 40), (40, 9), DType.F32, "strided"), ((13, 17), (17, 11), DType.F64, "dense"),
         ((9, 20), (20, 33), DType.F16, "dense"), ((9, 20), (20, 33), DType.BF16, "permuted")]


def _tiled() -> list[OpCase]:
    cases = []
    for a, b, dtype, layout in TILED:
        rtol, atol = TOL[dtype]
        cases.append(OpCase("matmul", (In(a, dtype, layout), In(b, dtype, layout)), rtol=rtol, atol=max(atol, 1e-4)))
    return cases


CASES = _matmul() + _tiled() + [
    # integer products and sums wrap in the operands' dtype
    OpCase("matmul", (In((3, 20), DType.I8, low=-128, high=127), In((20, 4), DType.I8, low=-128, high=127))),
    OpCase("matmul", (In((2, 30), DType.U8, low=0, high=255), In((30, 3), DType.U8, low=0, high=255))),
    # a constant weight and a broadcast (stride-0) batch view
    OpCase("matmul", (In((2, 3, 4)), In((4, 5), layout="const")), rtol=1e-5, atol=1e-4),
    OpCase("matmul", (In((3, 4), layout="const"), In((2, 4, 5), layout="strided")), rtol=1e-5, atol=1e-4),
]
