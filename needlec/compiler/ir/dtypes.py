"""Element types: one ``DType`` per supported scalar type, with its NumPy twin."""
from __future__ import annotations

import enum

import numpy as np

from needlec.errors import IRError


class DType(enum.Enum):
    """A tensor element type. The value is the short name used in IR text."""

    F16 = "f16"
    F32 = "f32"
    F64 = "f64"
    I8 = "i8"
    I16 = "i16"
    I32 = "i32"
    I64 = "i64"
    U8 = "u8"
    BOOL = "bool"

    @property
    def np(self) -> np.dtype:
        """The NumPy dtype with the same storage."""
        return np.dtype(_TO_NUMPY[self])

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
        return self in FLOAT_DTYPES or self in (DType.I8, DType.I16, DType.I32, DType.I64)

    @property
    def is_bool(self) -> bool:
        return self is DType.BOOL

    @staticmethod
    def from_numpy(dtype: object) -> "DType":
        """The DType for a NumPy dtype (or anything ``np.dtype`` accepts)."""
        name = np.dtype(dtype).name
        for member, np_name in _TO_NUMPY.items():
            if np_name == name:
                return member
        raise IRError(f"unsupported dtype {name}; supported: {', '.join(_TO_NUMPY.values())}")

    @staticmethod
    def parse(text: str) -> "DType":
        """The DType named by its IR short name (``f32``) or NumPy name (``float32``)."""
        for member in DType:
            if member.value == text or _TO_NUMPY[member] == text:
                return member
        raise IRError(f"unknown dtype {text!r}")

    def __repr__(self) -> str:
        return f"DType.{self.name}"


_TO_NUMPY = {
    DType.F16: "float16",
    DType.F32: "float32",
    DType.F64: "float64",
    DType.I8: "int8",
    DType.I16: "int16",
    DType.I32: "int32",
    DType.I64: "int64",
    DType.U8: "uint8",
    DType.BOOL: "bool",
}

FLOAT_DTYPES = frozenset({DType.F16, DType.F32, DType.F64})
INT_DTYPES = frozenset({DType.I8, DType.I16, DType.I32, DType.I64, DType.U8})
NUMERIC_DTYPES = FLOAT_DTYPES | INT_DTYPES
SIGNED_DTYPES = FLOAT_DTYPES | frozenset({DType.I8, DType.I16, DType.I32, DType.I64})
ALL_DTYPES = NUMERIC_DTYPES | frozenset({DType.BOOL})
