"""Tensor types: shape, element type and the layout (strides, offset) of a value.

Strides and offset count elements, not bytes, and describe where a value's
elements live inside the buffer that holds it. A value produced by a computing
op is contiguous (row-major, offset 0); a view op (reshape, permute, broadcast,
slice) produces a value whose strides point into its source's buffer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from needlec.compiler.ir.dtypes import DType
from needlec.errors import ShapeError


MAX_BYTES = 1 << 62  # the largest tensor (in bytes) whose byte offsets fit in an int64 index


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides (in elements) for ``shape``."""
    strides: list[int] = []
    step = 1
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    return tuple(reversed(strides))


@dataclass(frozen=True)
class TensorType:
    """The static type of an SSA value.

    ``strides=None`` means contiguous; use ``.strides_or_default`` to read them.
    """

    shape: tuple[int, ...]
    dtype: DType
    strides: tuple[int, ...] | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if any(d < 0 for d in self.shape):  # why: a negative extent would index memory backwards
            raise ShapeError(f"tensor type {self}: negative dimension in shape {list(self.shape)}")
        if self.size * self.dtype.itemsize >= MAX_BYTES:  # why: byte offsets must fit in a signed 64-bit index
            raise ShapeError(f"tensor type {self}: {self.size} elements of {self.dtype.value} exceed the "
                             f"addressable {MAX_BYTES} bytes")
        if self.strides is not None:
            strides: tuple[int, ...] | None = tuple(int(s) for s in self.strides)
            if strides == contiguous_strides(self.shape):
                strides = None
            object.__setattr__(self, "strides", strides)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def strides_or_default(self) -> tuple[int, ...]:
        return self.strides if self.strides is not None else contiguous_strides(self.shape)

    @property
    def is_contiguous(self) -> bool:
        """True when the value occupies its buffer row-major from element 0."""
        return self.offset == 0 and (self.strides is None or self.size == 0)

    @property
    def is_dense(self) -> bool:
        """True when the value is row-major without gaps (any offset), so a reshape can alias its buffer."""
        return self.size == 0 or all(s == c for s, c, d in zip(self.strides_or_default, contiguous_strides(self.shape),
                                                               self.shape) if d != 1)

    def with_layout(self, strides: tuple[int, ...] | None, offset: int = 0) -> TensorType:
        return TensorType(self.shape, self.dtype, strides, offset)

    def contiguous(self) -> TensorType:
        """The same shape and dtype, laid out row-major from offset 0."""
        return TensorType(self.shape, self.dtype)

    def span(self) -> int:
        """Elements of the underlying buffer this layout can touch (max index + 1)."""
        if self.size == 0:
            return 0
        return self.offset + sum((d - 1) * s for d, s in zip(self.shape, self.strides_or_default)) + 1

    def __str__(self) -> str:
        text = f"{self.dtype.value}[{', '.join(str(d) for d in self.shape)}]"
        if self.strides is not None or self.offset:
            layout = f"strides=[{', '.join(str(s) for s in self.strides_or_default)}]"
            if self.offset:
                layout += f", offset={self.offset}"
            text += "{" + layout + "}"
        return text
