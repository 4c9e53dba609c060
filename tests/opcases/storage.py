"""Cases for the narrow storage formats (8- and 4-bit floats, 4- and 2-bit integers).

Every code of every format is cast to the wide dtypes, every f16 value is
rounded into every narrow float (all ties, subnormals, overflow, NaN and
infinities included), and the formats ride through data movement (copy of a
view, concat, gather, pad and fill with a rounded value) and bitcast. Results
must match ``ml_dtypes`` bit for bit.
"""
from __future__ import annotations

import numpy as np

from needlec import DType
from needlec.compiler.ir.dtypes import NARROW_FLOAT_DTYPES, NARROW_INT_DTYPES, STORAGE_DTYPES
from tests.opcases import In, OpCase

NARROW_FLOATS = sorted(NARROW_FLOAT_DTYPES, key=lambda d: d.value)
NARROW_INTS = sorted(NARROW_INT_DTYPES, key=lambda d: d.value)
WIDE = (DType.F32, DType.F16, DType.F64, DType.BF16, DType.I32, DType.U8, DType.I8, DType.BOOL)
EVERY_F16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
SPECIAL = [0.0, -0.0, 1e-9, -1e-9, 0.3, 447.0, 448.0, 460.0, 464.0, 465.0, 480.0, 1e6, np.inf, -np.inf, np.nan,
           -np.nan, 57344.0, 61440.0, 61441.0, 240.0, 247.0, 248.0, 6.0, 7.0, 5.0, 0.25, 0.75, -0.25]


def _codes(dtype: DType) -> np.ndarray:
    """Every code of a narrow format, as its ml_dtypes array."""
    bits = 4 if dtype in (DType.F4E2M1, DType.I4, DType.U4) else 2 if dtype in (DType.I2, DType.U2) else 8
    return np.arange(1 << bits, dtype=np.uint8).view(dtype.np)


def _casts() -> list[OpCase]:
    cases = []
    for dtype in NARROW_FLOATS:
        cases.append(OpCase("cast", (In(EVERY_F16.shape, DType.F16, data=EVERY_F16),), {"dtype": dtype}))
        cases.append(OpCase("cast", (In((len(SPECIAL),), DType.F32, data=SPECIAL),), {"dtype": dtype}))
        cases.append(OpCase("cast", (In((4, 50), DType.F64, "permuted", low=-300.0, high=300.0),), {"dtype": dtype}))
        codes = _codes(dtype)
        for wide in WIDE:
            finite = np.where(np.isfinite(codes.astype(np.float32)), codes, 0).astype(dtype.np)
            data = codes if wide.is_float or wide.is_bool else finite  # NaN has no integer value
            cases.append(OpCase("cast", (In(data.shape, dtype, data=data),), {"dtype": wide}))
    for dtype in NARROW_INTS:
        cases.append(OpCase("cast", (In((601,), DType.I32, data=np.arange(-300, 301)),), {"dtype": dtype}))
        cases.append(OpCase("cast", (In((5, 8), DType.F32, "strided", low=-20.0, high=20.0),), {"dtype": dtype}))
        for wide in WIDE:
            codes = _codes(dtype)
            cases.append(OpCase("cast", (In(codes.shape, dtype, data=codes),), {"dtype": wide}))
    for dtype in sorted(STORAGE_DTYPES, key=lambda d: d.value):
        for wide in WIDE:
            cases.append(OpCase("cast", (In((4, 6), wide, low=-20.0, high=20.0),), {"dtype": dtype}))
    for src, dst in ((DType.F8E5M2, DType.F8E4M3FN), (DType.F8E4M3FN, DType.F4E2M1), (DType.F8E4M3FNUZ, DType.I4),
                     (DType.I4, DType.U2), (DType.U4, DType.F8E5M2FNUZ)):
        codes = _codes(src)
        cases.append(OpCase("cast", (In(codes.shape, src, data=codes),), {"dtype": dst}))
    return cases


def _data_movement() -> list[OpCase]:
    cases = []
    for dtype in sorted(STORAGE_DTYPES, key=lambda d: d.value):
        cases.append(OpCase("copy", (In((3, 5), dtype, "permuted"),)))
        cases.append(OpCase("concat", (In((2, 3), dtype), In((1, 3), dtype, "strided")), {"axis": 0}))
        cases.append(OpCase("gather", (In((5, 4), dtype), In((3,), DType.I64, low=-5, high=4)), {"axis": 0}))
        cases.append(OpCase("pad", (In((3, 4), dtype),), {"pads": [1, 0, 2, 1], "value": 2.75}))
        cases.append(OpCase("fill", (), {"shape": (70, 64), "value": -1.75, "dtype": dtype}))  # > 4 KiB: not folded
    return cases + [OpCase("bitcast", (In((16,), DType.U8, data=np.arange(0, 256, 16)),), {"dtype": d})
                    for d in (DType.F8E4M3FN, DType.F8E5M2FNUZ)] + [
        OpCase("bitcast", (In((256,), DType.F8E5M2, data=_codes(DType.F8E5M2)),), {"dtype": DType.I8})]


CASES = _casts() + _data_movement()
