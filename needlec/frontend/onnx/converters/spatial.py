"""Helpers shared by the convolution, pooling, normalization and quantization converters.

ONNX spatial ops read their geometry from the same attributes (``kernel_shape``,
``strides``, ``dilations``, ``pads``, ``auto_pad``); ``window_attrs`` resolves
them once, ``SAME_*`` padding included, into explicit begin/end pads. The
value helpers (``reshape``, ``cast``, ``per_axis``) hide the small chores of
building primitives: copying a strided view before a reshape, skipping no-op
casts, shaping a per-channel vector to broadcast against a tensor.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


@dataclass(frozen=True)
class WindowAttrs:
    """A sliding window's explicit geometry over the spatial axes (pads: all begins, then all ends)."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.kernel)

    def spans(self) -> tuple[int, ...]:
        """The dilated kernel extent on each spatial axis."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations))

    def out_dims(self, in_dims: Sequence[int]) -> tuple[int, ...]:
        """Output extents of a floor-mode window over ``in_dims``."""
        rank = self.rank
        return tuple((n + self.pads[i] + self.pads[rank + i] - span) // s + 1
                     for i, (n, span, s) in enumerate(zip(in_dims, self.spans(), self.strides)))


def int_list(ctx: NodeContext, name: str, count: int, default: int) -> tuple[int, ...]:
    """Attribute ``name`` as ``count`` ints (``default`` each when absent); error on a wrong length."""
    values = ctx.attr(name, None)
    if values is None:
        return (default,) * count
    if len(values) != count:
        raise ctx.error(f"attribute {name!r} has {len(values)} values, expected {count} (one per spatial axis"
                        f"{', begins then ends' if count and name == 'pads' else ''})")
    return tuple(int(v) for v in values)


def same_pads(auto_pad: str, in_dims: Sequence[int], spans: Sequence[int], strides: Sequence[int]) -> tuple[int, ...]:
    """Begin/end pads of ``SAME_UPPER`` / ``SAME_LOWER``: output extent ceil(in / stride), the odd pad at the end
    (upper) or the beginning (lower)."""
    begins, ends = [], []
    for n, span, s in zip(in_dims, spans, strides):
        total = max(0, (-(-n // s) - 1) * s + span - n)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return (*begins, *ends)


def window_attrs(ctx: NodeContext, in_dims: Sequence[int], kernel: Sequence[int] | None = None) -> WindowAttrs:
    """Resolve kernel_shape (or ``kernel``, e.g. from a weight), strides, dilations, pads and auto_pad."""
    rank = len(in_dims)
    if kernel is None:
        kernel = ctx.attr("kernel_shape")
    elif ctx.attr("kernel_shape", None) is not None and tuple(ctx.attr("kernel_shape")) != tuple(kernel):
        raise ctx.error(f"kernel_shape {tuple(ctx.attr('kernel_shape'))} does not match the weight's spatial "
                        f"shape {tuple(kernel)}")
    if len(kernel) != rank:
        raise ctx.error(f"kernel_shape {tuple(kernel)} has {len(kernel)} axes, the input has {rank} spatial axes")
    strides = int_list(ctx, "strides", rank, 1)
    dilations = int_list(ctx, "dilations", rank, 1)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad not in AUTO_PADS:
        raise ctx.error(f"auto_pad {auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
    if auto_pad == "NOTSET":
        pads = int_list(ctx, "pads", 2 * rank, 0)
    elif auto_pad == "VALID":
        pads = (0,) * (2 * rank)
    else:
        spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
        pads = same_pads(auto_pad, in_dims, spans, strides)
    if any(p < 0 for p in pads) or any(s < 1 for s in strides) or any(d < 1 for d in dilations):
        raise ctx.error(f"pads {pads} must be >= 0, strides {strides} and dilations {dilations} >= 1")
    return WindowAttrs(tuple(int(k) for k in kernel), strides, dilations, pads)


def float_input(ctx: NodeContext, index: int) -> Value:
    """Input ``index``, which must have a float dtype."""
    x = ctx.input(index)
    if not x.dtype.is_float:
        raise ctx.error(f"input {index} has dtype {x.dtype.value}, expected a float type")
    return x


def check_channels_first(ctx: NodeContext, x: Value) -> None:
    """``x`` must be (N, C, D1, ...): the layout of every ONNX conv, pool and normalization input."""
    if x.type.rank < 3:
        raise ctx.error(f"input X must be (N, C, D1, ...), found shape {x.shape}")


def dense(ctx: NodeContext, x: Value) -> Value:
    """``x`` itself when its layout is dense, else a contiguous copy."""
    return x if x.type.is_dense else ctx.add("copy", x)


def reshape(ctx: NodeContext, x: Value, shape: Sequence[int]) -> Value:
    """``x`` reshaped to ``shape`` (copied first when it is a strided view)."""
    shape = tuple(int(d) for d in shape)
    if shape == x.shape:
        return x
    return ctx.add("reshape", dense(ctx, x), shape=list(shape))


def cast(ctx: NodeContext, x: Value, dtype: DType) -> Value:
    """``x`` converted to ``dtype`` (no node when it already has it)."""
    return x if x.dtype is dtype else ctx.add("cast", x, dtype=dtype)


def per_axis(ctx: NodeContext, v: Value, rank: int, axis: int) -> Value:
    """A 1-D ``v`` shaped to broadcast along ``axis`` of a rank-``rank`` tensor (scalars pass through)."""
    if v.type.rank == 0 or v.type.size == 1 and v.type.rank == 1:
        return reshape(ctx, v, ())
    if v.type.rank != 1:
        raise ctx.error(f"expected a scalar or a 1-D tensor, found shape {v.shape}")
    return reshape(ctx, v, [v.shape[0] if i == axis else 1 for i in range(rank)])


def axes_from(start: int, rank: int) -> list[int]:
    """The axes ``start .. rank - 1``."""
    return list(range(start, rank))
