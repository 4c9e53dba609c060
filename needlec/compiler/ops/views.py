"""View primitives (reshape, permute, broadcast_to, slice) and the contiguous ``copy``.

A view produces no kernel: its output type carries strides and an offset
into its input's buffer, and every reader indexes through them. ``copy``
materialises any layout as a fresh contiguous buffer; passes insert it where
a copy pays off or is required (graph outputs, reshaping a strided value).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

import numpy as np

from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.ops.common import grad_flip, grad_place, normalize_axis
from needlec.compiler.ops.registry import Attr, OpDef, check, register

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext


def _reshape_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    shape = tuple(attrs["shape"])
    check(all(d >= 0 for d in shape), f"reshape: target shape {shape} has a negative dimension")
    check(math.prod(shape) == x.size, f"reshape: cannot reshape {x.shape} ({x.size} elements) to {shape}")
    check(x.is_dense, f"reshape: input layout {x} is not dense; copy it first")
    return [TensorType(shape, x.dtype, None, x.offset)]


def _permute_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    perm = tuple(attrs["perm"])
    check(sorted(perm) == list(range(x.rank)), f"permute: perm {perm} is not a permutation of rank {x.rank}")
    strides = x.strides_or_default
    return [TensorType(tuple(x.shape[p] for p in perm), x.dtype, tuple(strides[p] for p in perm), x.offset)]


def _broadcast_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    shape = tuple(attrs["shape"])
    lead = len(shape) - x.rank
    check(lead >= 0, f"broadcast_to: cannot broadcast {x.shape} to lower rank {shape}")
    strides = [0] * lead
    for i, (d, s) in enumerate(zip(x.shape, x.strides_or_default)):
        check(d == shape[lead + i] or d == 1, f"broadcast_to: cannot broadcast {x.shape} to {shape}")
        strides.append(s if d == shape[lead + i] else 0)
    return [TensorType(shape, x.dtype, tuple(strides), x.offset)]


def slice_bounds(dim: int, start: int, stop: int, step: int) -> tuple[int, int]:
    """(first index, element count) of ``range(dim)[start:stop:step]`` (Python semantics)."""
    indices = range(dim)[slice(start, stop, step)]
    return (indices.start if len(indices) else 0), len(indices)


def _slice_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    starts, stops, steps, axes = attrs["starts"], attrs["stops"], attrs["steps"], attrs["axes"]
    check(len(starts) == len(stops) == len(steps) == len(axes),
          "slice: starts, stops, steps and axes must have equal lengths")
    shape = list(x.shape)
    strides = list(x.strides_or_default)
    offset = x.offset
    for start, stop, step, axis in zip(starts, stops, steps, axes):
        axis = normalize_axis("slice", axis, x.rank)
        check(step != 0, "slice: step must not be 0")
        first, count = slice_bounds(x.shape[axis], start, stop, step)
        offset += first * strides[axis] if count else 0
        shape[axis] = count
        strides[axis] *= step
    return [TensorType(tuple(shape), x.dtype, tuple(strides), offset)]


def _slice_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    (x,) = args
    index = [slice(None)] * x.ndim
    for start, stop, step, axis in zip(attrs["starts"], attrs["stops"], attrs["steps"], attrs["axes"]):
        index[axis % x.ndim] = slice(start, stop, step)
    return [x[tuple(index)]]


def _reshape_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    return [ctx.reshape(out_grads[0], node.inputs[0].shape)]


def _permute_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """The inverse permutation."""
    inverse = [0] * len(node.attrs["perm"])
    for i, p in enumerate(node.attrs["perm"]):
        inverse[p] = i
    return [ctx.add("permute", out_grads[0], perm=inverse)]


def _slice_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """Zeros with g written back where the slice read: flip the negative-step axes, then one pad
    places each axis at its lowest index read, spread by the step."""
    (x,), (g,) = node.inputs, out_grads
    attrs = node.attrs
    placements: dict[int, tuple[int, int, int]] = {}
    flipped = []
    for start, stop, step, axis in zip(attrs["starts"], attrs["stops"], attrs["steps"], attrs["axes"]):
        axis = normalize_axis("slice", axis, x.type.rank)
        first, count = slice_bounds(x.shape[axis], start, stop, step)
        if step < 0:
            flipped.append(axis)
            first += (count - 1) * step if count else 0
        placements[axis] = (first, x.shape[axis], abs(step))
    return [grad_place(ctx, grad_flip(ctx, g, flipped), placements)]


def _copy_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    return [types[0].contiguous()]


INTS = Attr("ints")

def _identity_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """The gradient passes through (for broadcast_to the driver sums it back over the broadcast axes)."""
    return [out_grads[0]]


register(OpDef("reshape", 1, _reshape_infer, lambda a, at: [a[0].reshape(at["shape"])], None,
               attrs={"shape": INTS}, is_view=True, grad=_reshape_grad,
               doc="same elements, new shape (dense inputs only)"))
register(OpDef("permute", 1, _permute_infer, lambda a, at: [np.transpose(a[0], at["perm"])], None,
               attrs={"perm": INTS}, is_view=True, grad=_permute_grad,
               doc="reorder axes (output axis i is input axis perm[i])"))
register(OpDef("broadcast_to", 1, _broadcast_infer, lambda a, at: [np.broadcast_to(a[0], at["shape"])], None,
               attrs={"shape": INTS}, is_view=True, grad=_identity_grad, doc="NumPy broadcast as a stride-0 view"))
register(OpDef("slice", 1, _slice_infer, _slice_reference, None,
               attrs={"starts": INTS, "stops": INTS, "steps": INTS, "axes": INTS}, is_view=True, grad=_slice_grad,
               doc="x[start:stop:step] on the given axes (Python semantics, negative steps allowed)"))
# promote=False: a copy moves elements unchanged, with no conversion
register(OpDef("copy", 1, _copy_infer, lambda a, at: [np.array(a[0], order="C")], None,
               scalar=lambda args, attrs: args[0], promote=False, grad=_identity_grad,
               doc="materialise any layout as a contiguous buffer"))
