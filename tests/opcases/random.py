"""Cases for ``random_uniform``: compiled output must equal the reference bit for bit."""
from __future__ import annotations

from needlec import DType
from tests.opcases import In, OpCase

# dtype -> a shape of more than 4 KiB in that dtype
BIG = {DType.F16: (50, 50), DType.BF16: (50, 50), DType.F32: (40, 30), DType.F64: (3, 8, 25)}


def _case(shape: tuple[int, ...], seed: int, dtype: DType = DType.F32, offset: int = 0) -> OpCase:
    return OpCase("random_uniform", (), {"shape": shape, "seed": seed, "dtype": dtype, "offset": offset},
                  rtol=0.0, atol=0.0)


CASES = [_case(shape, 3, dtype) for dtype, shape in BIG.items()] + [
    _case(BIG[DType.F32], -7, offset=12345),
    _case(BIG[DType.F64], 2**40, DType.F64, offset=2**62),
    _case(BIG[DType.F16], 0, DType.F16, offset=-1),
    _case((), 11),
    _case((0, 4), 11),
    _case((3, 5), 11, DType.F64),
    # a run-time offset (i64 scalar input) adds to the offset attribute
    OpCase("random_uniform", (In((), DType.I64, data=987654321),), {"shape": (7, 9), "seed": 5, "offset": 3},
           rtol=0.0, atol=0.0),
    OpCase("random_uniform", (In((), DType.I64, low=-2**40, high=2**40),), {"shape": (4,), "seed": 1},
           rtol=0.0, atol=0.0),
]
