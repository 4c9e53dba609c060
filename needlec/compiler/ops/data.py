"""Data-movement and generator primitives: pad, concat, gather, scatter, iota, fill.

Each op keeps its shape rule, NumPy reference and loop-IR lowering side by
side. Index-driven ops never read or write outside a buffer: gather and
scatter wrap negative indices once (ONNX) and then clamp what is still out of
range to ``[0, dim - 1]``; their references do exactly the same, so compiled
code and reference agree on every input.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import NUMERIC_DTYPES, DType
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import KernelBuilder, Operand, add, all_of, binary, cast, const, select
from needlec.compiler.loops.ir import Assign, Const, Expr, Local, LocalRef, Stmt
from needlec.compiler.ops.common import compute_dtype, normalize_axis
from needlec.compiler.ops.registry import Attr, OpDef, check, register

INDEX_DTYPES = frozenset({DType.I32, DType.I64})
PAD_MODES = ("constant", "reflect", "edge")
# scatter reduction -> (loop-IR binary op, NumPy ufunc applied with ``.at``)
SCATTER_REDUCTIONS: dict[str, tuple[str, np.ufunc] | None] = {
    "none": None,
    "add": ("add", np.add),
    "mul": ("mul", np.multiply),
    "max": ("max", np.maximum),
    "min": ("min", np.minimum),
}


def fill_scalar(value: float, dtype: DType) -> np.generic:
    """``value`` converted to ``dtype`` the way NumPy casts (bool: ``value != 0``).

    Both references and lowerings take their constant from here, so they agree
    even for values the dtype cannot hold.
    """
    with np.errstate(all="ignore"):
        return np.asarray(value, np.float64).astype(dtype.np)[()]


def check_shape(op: str, shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as a tuple, with ShapeError naming ``op`` on a negative dimension."""
    check(all(d >= 0 for d in shape), f"{op}: shape {tuple(shape)} has a negative dimension")
    return tuple(shape)


def check_index_dtype(op: str, indices: TensorType) -> None:
    """ShapeError naming ``op`` unless ``indices`` are i32 or i64."""
    check(indices.dtype in INDEX_DTYPES, f"{op}: indices have dtype {indices.dtype.value}, expected i32 or i64")


def clamp_indices(indices: np.ndarray, dim: int) -> np.ndarray:
    """NumPy twin of ``clamp_index``: wrap negatives once, then clamp into ``[0, dim - 1]``."""
    idx = indices.astype(np.int64)
    idx = np.where(idx < 0, idx + dim, idx)
    return np.clip(idx, 0, dim - 1)


def clamp_index(kb: KernelBuilder, raw: Expr, dim: int) -> tuple[list[Stmt], Expr]:
    """Loop-IR twin of ``clamp_indices`` for one loaded index.

    Returns statements that read ``raw`` once into an i64 local and wrap and
    clamp it there, and the expression reading that local.
    """
    name = kb.name("index")
    i = LocalRef(name, DType.I64)
    wrapped = select(binary("lt", i, Const(0)), binary("add", i, Const(dim)), i)
    return [Local(name, cast(raw, DType.I64)),
            Assign(name, binary("max", binary("min", wrapped, Const(dim - 1)), Const(0)))], i


# -- pad ------------------------------------------------------------------------

def _pad_plan(shape: Sequence[int], pads: Sequence[int], mode: str) -> list[tuple[int, int, int, int]]:
    """Per axis (crop_begin, kept, pad_begin, pad_end): negative pads crop first, then positive pads pad.

    Raises ShapeError when the pads do not fit ``shape`` or ``mode``.
    """
    rank = len(shape)
    check(mode in PAD_MODES, f"pad: mode {mode!r} is not one of {', '.join(PAD_MODES)}")
    check(len(pads) == 2 * rank, f"pad: pads has {len(pads)} entries, expected 2 * rank = {2 * rank}")
    plan = []
    for axis, dim in enumerate(shape):
        begin, end = pads[axis], pads[rank + axis]
        kept = dim - max(-begin, 0) - max(-end, 0)
        check(kept >= 0, f"pad: pads ({begin}, {end}) crop more than the {dim} element(s) of axis {axis}")
        pad_begin, pad_end = max(begin, 0), max(end, 0)
        if mode == "reflect":
            for p in (pad_begin, pad_end):
                check(p == 0 or p < kept, f"pad: reflect padding {p} on axis {axis} needs pad < {kept} "
                                          f"(the axis size after cropping)")
        if mode == "edge":
            check(kept > 0 or pad_begin == pad_end == 0,
                  f"pad: edge mode cannot pad axis {axis}, which is empty after cropping")
        plan.append((max(-begin, 0), kept, pad_begin, pad_end))
    return plan


def _pad_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    plan = _pad_plan(x.shape, attrs["pads"], attrs["mode"])
    return [TensorType(tuple(kept + pb + pe for _, kept, pb, pe in plan), x.dtype)]


def _pad_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    (x,) = args
    mode = attrs["mode"]
    plan = _pad_plan(x.shape, attrs["pads"], mode)
    cropped = x[tuple(slice(crop, crop + kept) for crop, kept, _, _ in plan)]
    if x.ndim == 0:  # np.pad rejects an empty pad list
        return [cropped.copy()]
    width = [(pb, pe) for _, _, pb, pe in plan]
    if mode == "constant":
        value = fill_scalar(attrs["value"], DType.from_numpy(x.dtype))
        result = np.pad(cropped, width, mode="constant", constant_values=value)
    else:
        result = np.pad(cropped, width, mode=mode)
    return [result.astype(x.dtype)]


def _pad_source(j: Expr, lo: int, hi: int, pad_begin: int, pad_end: int, mode: str) -> tuple[Expr, list[Expr]]:
    """(in-bounds source index, conditions for being inside the kept range) for one axis.

    ``j`` is the unmapped input index; the kept range is ``[lo, hi]``.
    """
    inside = []
    if pad_begin:
        inside.append(binary("ge", j, Const(lo)))
    if pad_end:
        inside.append(binary("le", j, Const(hi)))
    if mode == "reflect":
        src = j
        if pad_end:
            src = select(binary("gt", j, Const(hi)), binary("sub", Const(2 * hi), j), src)
        if pad_begin:
            src = select(binary("lt", j, Const(lo)), binary("sub", Const(2 * lo), j), src)
        return src, inside
    src = binary("max", j, Const(lo)) if pad_begin else j
    src = binary("min", src, Const(hi)) if pad_end else src
    return src, inside


def _pad_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[Operand],
               attrs: Mapping[str, Any]) -> list[Stmt]:
    (x,), (out,) = ins, outs
    mode = attrs["mode"]
    plan = _pad_plan(x.shape, attrs["pads"], mode)
    fill = const(fill_scalar(attrs["value"], out.dtype).item(), out.dtype)

    def body(idx: list) -> list[Stmt]:
        if x.type.size == 0:  # constant mode over an empty input: nothing to read
            return [out.store(idx, fill)]
        sources, inside = [], []
        for o, (crop, kept, pad_begin, pad_end) in zip(idx, plan):
            j = add(o, Const(crop - pad_begin))
            src, conds = _pad_source(j, crop, crop + kept - 1, pad_begin, pad_end, mode)
            sources.append(src)
            inside.extend(conds)
        value = x.load(sources)  # constant mode clamps like edge, so padding positions read in bounds too
        if mode == "constant" and inside:
            value = select(all_of(inside), value, fill)
        return [out.store(idx, value)]

    return kb.loop_nest(out.shape, body)


# -- concat ---------------------------------------------------------------------

def _concat_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    check(len(types) >= 1, "concat: needs at least one input, found none")
    first = types[0]
    axis = normalize_axis("concat", attrs["axis"], first.rank)
    expected = tuple("*" if a == axis else d for a, d in enumerate(first.shape))
    for i, t in enumerate(types):
        check(t.dtype is first.dtype, f"concat: input {i} has dtype {t.dtype.value}, expected {first.dtype.value} "
                                      f"(the dtype of input 0)")
        same = t.rank == first.rank and all(d == e for a, (d, e) in enumerate(zip(t.shape, first.shape)) if a != axis)
        check(same, f"concat: input {i} has shape {t.shape}, expected ({', '.join(map(str, expected))}) "
                    f"(concatenating on axis {axis})")
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in types)
    return [TensorType(tuple(shape), first.dtype)]


def _concat_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    axis = normalize_axis("concat", attrs["axis"], args[0].ndim)
    return [np.concatenate(args, axis=axis).astype(args[0].dtype)]


def _concat_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[Operand],
                  attrs: Mapping[str, Any]) -> list[Stmt]:
    (out,) = outs
    axis = normalize_axis("concat", attrs["axis"], out.type.rank)
    stmts: list[Stmt] = []
    offset = 0
    for x in ins:
        if x.type.size:
            def body(idx: list, x: Operand = x, offset: int = offset) -> list[Stmt]:
                target = [*idx[:axis], add(idx[axis], Const(offset)), *idx[axis + 1:]]
                return [out.store(target, x.load(idx))]

            stmts.extend(kb.loop_nest(x.shape, body))
        offset += x.shape[axis]
    return stmts


# -- gather ---------------------------------------------------------------------

def _gather_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    data, indices = types
    check_index_dtype("gather", indices)
    check(data.rank >= 1, "gather: data must have rank >= 1, found a scalar")
    axis = normalize_axis("gather", attrs["axis"], data.rank)
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1:]
    out = TensorType(shape, data.dtype)
    check(data.shape[axis] > 0 or out.size == 0,
          f"gather: axis {axis} of data {data.shape} is empty, so the {indices.size} index(es) select nothing")
    return [out]


def _gather_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    data, indices = args
    axis = normalize_axis("gather", attrs["axis"], data.ndim)
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1:]
    if int(np.prod(shape)) == 0:
        return [np.empty(shape, data.dtype)]
    return [np.take(data, clamp_indices(indices, data.shape[axis]), axis=axis)]


def _gather_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[Operand],
                  attrs: Mapping[str, Any]) -> list[Stmt]:
    (data, indices), (out,) = ins, outs
    if out.type.size == 0:  # also covers an empty gather axis: no index may be read or used
        return []
    axis = normalize_axis("gather", attrs["axis"], data.type.rank)
    q = indices.type.rank

    def body(idx: list) -> list[Stmt]:
        read, i = clamp_index(kb, indices.load(idx[axis:axis + q]), data.shape[axis])
        return [*read, out.store(idx, data.load([*idx[:axis], i, *idx[axis + q:]]))]

    return kb.loop_nest(out.shape, body)


# -- scatter --------------------------------------------------------------------

def _scatter_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    data, indices, updates = types
    reduction = attrs["reduction"]
    check(reduction in SCATTER_REDUCTIONS,
          f"scatter: reduction {reduction!r} is not one of {', '.join(SCATTER_REDUCTIONS)}")
    check(reduction == "none" or data.dtype in NUMERIC_DTYPES,
          f"scatter: reduction {reduction} needs a numeric dtype, found {data.dtype.value}")
    check(updates.dtype is data.dtype, f"scatter: updates have dtype {updates.dtype.value}, expected the dtype "
                                       f"of data ({data.dtype.value})")
    check_index_dtype("scatter", indices)
    check(data.rank >= 1, "scatter: data must have rank >= 1, found a scalar")
    check(indices.rank == data.rank, f"scatter: indices have rank {indices.rank}, expected the rank of data "
                                     f"({data.rank})")
    check(updates.shape == indices.shape, f"scatter: updates have shape {updates.shape}, expected the shape "
                                          f"of indices {indices.shape}")
    axis = normalize_axis("scatter", attrs["axis"], data.rank)
    for a, (i, d) in enumerate(zip(indices.shape, data.shape)):
        check(a == axis or i <= d, f"scatter: indices {indices.shape} exceed data {data.shape} on axis {a}")
    check(indices.size == 0 or data.shape[axis] > 0,
          f"scatter: axis {axis} of data {data.shape} is empty, so {indices.size} update(s) have nowhere to go")
    return [TensorType(data.shape, data.dtype)]


def _scatter_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    data, indices, updates = args
    out = np.array(data, order="C", copy=True)
    if indices.size == 0:
        return [out]
    axis = normalize_axis("scatter", attrs["axis"], data.ndim)
    target = list(np.indices(indices.shape))
    target[axis] = clamp_indices(indices, data.shape[axis])
    flat_target = np.ravel_multi_index(target, data.shape).reshape(-1)
    values = updates.reshape(-1)
    flat_out = out.reshape(-1)
    reduction = SCATTER_REDUCTIONS[attrs["reduction"]]
    if reduction is None:  # row-major order, so the last update of each target wins
        last = flat_target.size - 1 - np.unique(flat_target[::-1], return_index=True)[1]
        flat_out[flat_target[last]] = values[last]
    else:
        with np.errstate(all="ignore"):
            reduction[1].at(flat_out, flat_target, values)
    return [out]


def _scatter_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[Operand],
                   attrs: Mapping[str, Any]) -> list[Stmt]:
    (data, indices, updates), (out,) = ins, outs
    axis = normalize_axis("scatter", attrs["axis"], data.type.rank)
    reduction = SCATTER_REDUCTIONS[attrs["reduction"]]
    stmts: list[Stmt] = kb.loop_nest(data.shape, lambda idx: [out.store(idx, data.load(idx))])
    if indices.type.size == 0:
        return stmts

    def body(pos: list) -> list[Stmt]:
        read, i = clamp_index(kb, indices.load(pos), data.shape[axis])
        target = [*pos[:axis], i, *pos[axis + 1:]]
        value = updates.load(pos)
        if reduction is not None:
            work = compute_dtype(out.dtype)
            value = binary(reduction[0], cast(out.load(target), work), cast(value, work))
        return [*read, out.store(target, value)]

    return stmts + kb.loop_nest(indices.shape, body, hint="p")


# -- iota and fill --------------------------------------------------------------

def _iota_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    shape = check_shape("iota", attrs["shape"])
    dtype = attrs["dtype"]
    check(dtype in NUMERIC_DTYPES, f"iota: dtype {dtype.value} is not numeric")
    check(len(shape) >= 1, "iota: shape must have rank >= 1, found a scalar")
    normalize_axis("iota", attrs["axis"], len(shape))
    return [TensorType(shape, dtype)]


def _iota_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    shape = tuple(attrs["shape"])
    axis = normalize_axis("iota", attrs["axis"], len(shape))
    column = np.arange(shape[axis]).reshape([d if a == axis else 1 for a, d in enumerate(shape)])
    with np.errstate(all="ignore"):
        return [np.broadcast_to(column, shape).astype(attrs["dtype"].np)]


def _iota_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[Operand],
                attrs: Mapping[str, Any]) -> list[Stmt]:
    (out,) = outs
    axis = normalize_axis("iota", attrs["axis"], out.type.rank)
    return kb.loop_nest(out.shape, lambda idx: [out.store(idx, idx[axis])])


def _fill_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    return [TensorType(check_shape("fill", attrs["shape"]), attrs["dtype"])]


def _fill_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    dtype = attrs["dtype"]
    return [np.full(tuple(attrs["shape"]), fill_scalar(attrs["value"], dtype), dtype.np)]


def _fill_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[Operand],
                attrs: Mapping[str, Any]) -> list[Stmt]:
    (out,) = outs
    value = const(fill_scalar(attrs["value"], out.dtype).item(), out.dtype)
    return kb.loop_nest(out.shape, lambda idx: [out.store(idx, value)])


register(OpDef(
    "pad", 1, _pad_infer, _pad_reference, _pad_lower,
    attrs={"pads": Attr("ints"), "mode": Attr("str", "constant"), "value": Attr("float", 0.0)},
    doc="pad (ONNX order: all begins, then all ends) with a constant, mirrored (reflect) or repeated "
        "(edge) border; negative pads crop first"))
register(OpDef(
    "concat", None, _concat_infer, _concat_reference, _concat_lower, attrs={"axis": Attr("int")},
    doc="join inputs of one dtype along axis (other dimensions must match)"))
register(OpDef(
    "gather", 2, _gather_infer, _gather_reference, _gather_lower, attrs={"axis": Attr("int", 0)},
    doc="np.take(data, indices, axis); negative indices wrap once, still out-of-range ones are clamped "
        "to [0, dim-1]; an empty gather axis is an error unless the output is empty"))
register(OpDef(
    "scatter", 3, _scatter_infer, _scatter_reference, _scatter_lower,
    attrs={"axis": Attr("int", 0), "reduction": Attr("str", "none")},
    doc="ONNX ScatterElements: copy data, then combine updates into it at indices along axis in "
        "row-major order (none: last write wins; add, mul, max, min); indices wrap once, then clamp"))
register(OpDef(
    "iota", 0, _iota_infer, _iota_reference, _iota_lower,
    attrs={"shape": Attr("ints"), "axis": Attr("int"), "dtype": Attr("dtype")},
    doc="each element is its index along axis (integers wrap to the dtype)"))
register(OpDef(
    "fill", 0, _fill_infer, _fill_reference, _fill_lower,
    attrs={"shape": Attr("ints"), "value": Attr("float"), "dtype": Attr("dtype")},
    doc="a tensor of one value cast to dtype (bool: value != 0)"))
