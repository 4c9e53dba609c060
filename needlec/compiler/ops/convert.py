"""Dtype conversions: ``cast`` (value conversion) and ``bitcast`` (reinterpreting bits, ONNX BitCast).

``cast`` follows NumPy: float -> int truncates, int -> int wraps, anything ->
bool is ``!= 0``; where NumPy (C) is undefined, an out-of-range float -> int
cast saturates to the target's range and NaN gives 0 (the narrow integers too).
Into bf16 and f16 a value rounds once, from any source (as ``ml_dtypes`` >= 0.7).
Into the narrow float formats a float is rounded once to nearest even
(overflow gives inf, NaN or the largest value, per format); into the narrow
integers an integer keeps its low bits, as ``ml_dtypes`` does; out of them,
values are exact.
A float -> float cast passes the gradient through.

``bitcast`` keeps each element's bits and changes only its dtype, which must
have the same size; it has no gradient.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

import ml_dtypes
import numpy as np

from needlec.compiler.ir.dtypes import NARROW_FLOAT_DTYPES, NARROW_INT_DTYPES, DType
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import BufferOperand, KernelBuilder, Operand, cast
from needlec.compiler.loops.ir import Expr, Stmt
from needlec.compiler.ops.registry import NO_GRAD, Attr, OpDef, check, register

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext


def _cast_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    return [TensorType(types[0].shape, attrs["dtype"])]


# casts from and to the narrow storage formats go through these wide dtypes, which hold every value involved
# exactly (a narrow source's values; a float source before its one rounding), as the lowering does; ml_dtypes
# lacks some direct casts between narrow formats
_FROM_STORAGE = {**{d: DType.F32 for d in NARROW_FLOAT_DTYPES}, DType.I4: DType.I8, DType.I2: DType.I8,
                 DType.U4: DType.U8, DType.U2: DType.U8}
_TO_STORAGE = {**{d: DType.F64 for d in NARROW_FLOAT_DTYPES}, **{d: DType.I64 for d in NARROW_INT_DTYPES}}


def saturating_float_to_int(x: np.ndarray, dtype: DType) -> np.ndarray:
    """Float ``x`` truncated toward zero and saturated to integer ``dtype``'s range; NaN gives 0.

    Why: NumPy's out-of-range float -> int cast is C's undefined behaviour
    (INT_MIN on x86); this is the value the generated code computes on every CPU.
    """
    narrow = dtype in NARROW_INT_DTYPES
    info = ml_dtypes.iinfo(dtype.np) if narrow else np.iinfo(dtype.np)
    wide = np.trunc(x.astype(np.float64))  # every f16/bf16/f32 value exactly; the bounds are powers of two
    low, high = float(info.min), float(info.max) + 1.0
    inside = (wide >= low) & (wide < high)
    value = np.where(inside, wide, 0.0).astype(np.int64 if narrow else dtype.np)
    bound = np.where(wide >= high, info.max, np.where(wide < low, info.min, 0))
    return np.where(inside, value, bound).astype(dtype.np)


def _cast_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    (x,), dtype = args, attrs["dtype"]
    source = DType.from_numpy(x.dtype)
    with np.errstate(all="ignore"):
        if source in _FROM_STORAGE:
            x = x.astype(_FROM_STORAGE[source].np)
        if DType.from_numpy(x.dtype).is_float and (dtype.is_int or dtype in NARROW_INT_DTYPES):
            return [saturating_float_to_int(x, dtype)]
        if dtype in _TO_STORAGE:
            x = x.astype(_TO_STORAGE[dtype].np)
        return [x.astype(dtype.np)]


def _cast_scalar(args: Sequence[Expr], attrs: Mapping[str, Any]) -> Expr:
    return cast(args[0], attrs["dtype"])


def _cast_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """float -> float passes the gradient through (the driver casts it back); through an integer there is none."""
    floats = node.inputs[0].dtype.is_float and node.outputs[0].dtype.is_float
    return [out_grads[0] if floats else None]


# promote=False: a cast converts from its source dtype directly (widening f16 first would add a conversion)
register(OpDef("cast", 1, _cast_infer, _cast_reference, None, attrs={"dtype": Attr("dtype")},
               scalar=_cast_scalar, promote=False, grad=_cast_grad,
               doc="convert to another dtype (float->int truncates and saturates, NaN -> 0; into the "
                   "narrow floats, floats round to nearest even; integers keep their low bits)"))

# unsigned integer of each element size: bitcast copies elements as these, so no float load can touch a bit
_BITS_OF_SIZE = {1: DType.U8, 2: DType.U16, 4: DType.U32, 8: DType.U64}


def _bitcast_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,), dtype = types, attrs["dtype"]
    check(x.dtype.itemsize == dtype.itemsize, f"bitcast: {x.dtype.value} has {8 * x.dtype.itemsize} bits, "
                                              f"expected {8 * dtype.itemsize} (the size of {dtype.value})")
    return [TensorType(x.shape, dtype)]


def _bitcast_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    return [np.array(args[0], order="C").view(attrs["dtype"].np)]  # (ascontiguousarray: 0-d -> 1-d)


def _bitcast_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                   attrs: Mapping[str, Any]) -> list[Stmt]:
    """Both buffers are read and written as unsigned integers of the element size: a bit-exact copy."""
    (x,), (out,) = ins, outs
    bits = _BITS_OF_SIZE[x.dtype.itemsize]
    source, target = x.as_dtype(bits), out.as_dtype(bits)
    return kb.loop_nest(out.shape, lambda idx: [target.store(idx, source.load(idx))])


register(OpDef("bitcast", 1, _bitcast_infer, _bitcast_reference, _bitcast_lower, attrs={"dtype": Attr("dtype")},
               grad=NO_GRAD, doc="reinterpret each element's bits as another dtype of the same size (ONNX BitCast)"))
