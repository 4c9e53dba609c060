"""Element types: one ``DType`` per supported scalar type, with its NumPy twin.

``BF16`` (bfloat16: f32's sign and exponent with an 8-bit significand, as in
ONNX) has no NumPy dtype of its own; its twin is ``ml_dtypes.bfloat16``, whose
arithmetic computes in f32 and rounds to nearest even, as needlec's does.

The narrow formats of ONNX (8-bit floats ``f8e4m3fn``, ``f8e4m3fnuz``,
``f8e5m2``, ``f8e5m2fnuz``, the 4-bit float ``f4e2m1`` and the 4- and 2-bit
integers ``i4``, ``u4``, ``i2``, ``u2``) are storage types: one element per
byte, as their ``ml_dtypes`` twins hold them (sub-byte values in the low bits).
No arithmetic takes them; ``cast`` converts to and from them (rounding to
nearest even like ``ml_dtypes``) and data movement carries them.
"""
from __future__ import annotations

import enum

import ml_dtypes
import numpy as np
from numpy.typing import DTypeLike

from needlec.errors import IRError


class DType(enum.Enum):
    """A tensor element type. The value is the short name used in IR text."""

    F16 = "f16"
    BF16 = "bf16"
    F32 = "f32"
    F64 = "f64"
    I8 = "i8"
    I16 = "i16"
    I32 = "i32"
    I64 = "i64"
    U8 = "u8"
    U16 = "u16"
    U32 = "u32"
    U64 = "u64"
    BOOL = "bool"
    F8E4M3FN = "f8e4m3fn"
    F8E4M3FNUZ = "f8e4m3fnuz"
    F8E5M2 = "f8e5m2"
    F8E5M2FNUZ = "f8e5m2fnuz"
    F4E2M1 = "f4e2m1"
    I4 = "i4"
    U4 = "u4"
    I2 = "i2"
    U2 = "u2"

    @property
    def np(self) -> np.dtype:
        """The NumPy dtype with the same storage."""
        return _NUMPY_DTYPES[self]

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    @property
    def is_float(self) -> bool:
        return self in FLOAT_DTYPES

    @property
    def is_int(self) -> bool:
        return self in INT_DTYPES

    @property
    def is_signed(self) -> bool:
        return self in SIGNED_DTYPES

    @property
    def is_bool(self) -> bool:
        return self is DType.BOOL

    @property
    def is_float_format(self) -> bool:
        """Any floating-point format, the narrow storage floats included (``is_float``: the arithmetic ones)."""
        return self in FLOAT_DTYPES or self in NARROW_FLOAT_DTYPES

    @property
    def is_storage(self) -> bool:
        """A narrow storage format: cast and data movement only (see the module docstring)."""
        return self in STORAGE_DTYPES

    @staticmethod
    def from_numpy(dtype: DTypeLike) -> DType:
        """The DType for a NumPy dtype (or anything ``np.dtype`` accepts)."""
        name = np.dtype(dtype).name
        for member, np_dtype in _NUMPY_DTYPES.items():
            if np_dtype.name == name:
                return member
        raise IRError(f"unsupported dtype {name}; supported: "
                      f"{', '.join(d.name for d in _NUMPY_DTYPES.values())}")

    @staticmethod
    def parse(text: str) -> DType:
        """The DType named by its IR short name (``f32``) or NumPy name (``float32``)."""
        for member in DType:
            if member.value == text or _NUMPY_DTYPES[member].name == text:
                return member
        raise IRError(f"unknown dtype {text!r}")

    def __repr__(self) -> str:
        return f"DType.{self.name}"


_NUMPY_DTYPES: dict[DType, np.dtype] = {
    DType.F16: np.dtype(np.float16),
    DType.BF16: np.dtype(ml_dtypes.bfloat16),
    DType.F32: np.dtype(np.float32),
    DType.F64: np.dtype(np.float64),
    DType.I8: np.dtype(np.int8),
    DType.I16: np.dtype(np.int16),
    DType.I32: np.dtype(np.int32),
    DType.I64: np.dtype(np.int64),
    DType.U8: np.dtype(np.uint8),
    DType.U16: np.dtype(np.uint16),
    DType.U32: np.dtype(np.uint32),
    DType.U64: np.dtype(np.uint64),
    DType.BOOL: np.dtype(np.bool_),
    DType.F8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    DType.F8E4M3FNUZ: np.dtype(ml_dtypes.float8_e4m3fnuz),
    DType.F8E5M2: np.dtype(ml_dtypes.float8_e5m2),
    DType.F8E5M2FNUZ: np.dtype(ml_dtypes.float8_e5m2fnuz),
    DType.F4E2M1: np.dtype(ml_dtypes.float4_e2m1fn),
    DType.I4: np.dtype(ml_dtypes.int4),
    DType.U4: np.dtype(ml_dtypes.uint4),
    DType.I2: np.dtype(ml_dtypes.int2),
    DType.U2: np.dtype(ml_dtypes.uint2),
}

FLOAT_DTYPES = frozenset({DType.F16, DType.BF16, DType.F32, DType.F64})
SIGNED_INT_DTYPES = frozenset({DType.I8, DType.I16, DType.I32, DType.I64})
UNSIGNED_DTYPES = frozenset({DType.U8, DType.U16, DType.U32, DType.U64})
INT_DTYPES = SIGNED_INT_DTYPES | UNSIGNED_DTYPES
NUMERIC_DTYPES = FLOAT_DTYPES | INT_DTYPES
ALL_DTYPES = NUMERIC_DTYPES | frozenset({DType.BOOL})
NARROW_FLOAT_DTYPES = frozenset({DType.F8E4M3FN, DType.F8E4M3FNUZ, DType.F8E5M2, DType.F8E5M2FNUZ, DType.F4E2M1})
NARROW_INT_DTYPES = frozenset({DType.I4, DType.U4, DType.I2, DType.U2})
NARROW_INT_BITS: dict[DType, int] = {DType.I4: 4, DType.U4: 4, DType.I2: 2, DType.U2: 2}  # value bits of each
STORAGE_DTYPES = NARROW_FLOAT_DTYPES | NARROW_INT_DTYPES
SIGNED_DTYPES = FLOAT_DTYPES | SIGNED_INT_DTYPES | NARROW_FLOAT_DTYPES | frozenset({DType.I4, DType.I2})
