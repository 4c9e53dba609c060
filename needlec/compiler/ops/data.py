"""Data-movement and generator primitives: pad, concat, gather, gather_elements, scatter, iota, fill.

Each op keeps its shape rule, NumPy reference and loop-IR lowering side by
side. Index-driven ops never read or write outside a buffer: gather and
scatter wrap negative indices once (ONNX) and then clamp what is still out of
range to ``[0, dim - 1]``; their references do exactly the same, so compiled
code and reference agree on every input. ``gather_elements`` (ONNX
GatherElements) is the elementwise twin of ``scatter``; it exists for
scatter's gradient and for the ONNX importer. Gradients of indexed ops route g
through the same clamped indices, so they match the forward op exactly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple
from collections.abc import Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import NUMERIC_DTYPES, DType
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import (BufferOperand, KernelBuilder, Operand, add, all_of, binary, cast,
                                            compute_dtype, const, select)
from needlec.compiler.loops.ir import Assign, Const, Expr, Local, LocalRef, Stmt
from needlec.compiler.ops.common import grad_flip, grad_place, grad_where, normalize_axis
from needlec.compiler.ops.registry import NO_GRAD, Attr, OpDef, check, register

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext

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
        zero_d = np.asarray(value, np.float64).astype(dtype.np)
    return zero_d[()]  # type: ignore[return-value]  # [()] of a 0-d array is a scalar; the stubs say ndarray


def fill_constant(value: float, dtype: DType) -> Const:
    """``fill_scalar`` as a loop-IR constant (a narrow float keeps its fraction: it computes as f32)."""
    scalar = fill_scalar(value, dtype)
    if dtype.is_float_format:
        return Const(float(scalar), dtype)
    return const(scalar.item(), dtype)


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

class PadAxis(NamedTuple):
    """How ``pad`` maps one axis: the input spread by ``step`` (interior padding), ``crop`` elements of that
    cut from the front, ``kept`` elements kept, then ``before`` / ``after`` elements of padding."""

    crop: int
    kept: int
    before: int
    after: int
    step: int


def _pad_plan(shape: Sequence[int], pads: Sequence[int], mode: str, interior: Sequence[int]) -> list[PadAxis]:
    """Per axis: interior padding first, then negative pads crop, then positive pads pad.

    Raises ShapeError when the pads do not fit ``shape`` or ``mode``.
    """
    rank = len(shape)
    check(mode in PAD_MODES, f"pad: mode {mode!r} is not one of {', '.join(PAD_MODES)}")
    check(len(pads) == 2 * rank, f"pad: pads has {len(pads)} entries, expected 2 * rank = {2 * rank}")
    interior = tuple(interior) or (0,) * rank
    check(len(interior) == rank and all(i >= 0 for i in interior),
          f"pad: interior {tuple(interior)} needs {rank} value(s) >= 0")
    check(mode == "constant" or not any(interior), f"pad: interior padding needs constant mode, found {mode}")
    plan = []
    for axis, (dim, gap) in enumerate(zip(shape, interior)):
        spread = (dim - 1) * (gap + 1) + 1 if dim else 0
        begin, end = pads[axis], pads[rank + axis]
        kept = spread - max(-begin, 0) - max(-end, 0)
        check(kept >= 0, f"pad: pads ({begin}, {end}) crop more than the {spread} element(s) of axis {axis}")
        pad_begin, pad_end = max(begin, 0), max(end, 0)
        if mode == "reflect":
            for p in (pad_begin, pad_end):
                check(p == 0 or p < kept, f"pad: reflect padding {p} on axis {axis} needs pad < {kept} "
                                          f"(the axis size after cropping)")
        if mode == "edge":
            check(kept > 0 or pad_begin == pad_end == 0,
                  f"pad: edge mode cannot pad axis {axis}, which is empty after cropping")
        plan.append(PadAxis(max(-begin, 0), kept, pad_begin, pad_end, gap + 1))
    return plan


def _plan_of(x: TensorType | np.ndarray, attrs: Mapping[str, Any]) -> list[PadAxis]:
    return _pad_plan(x.shape, attrs["pads"], attrs["mode"], attrs["interior"])


def _pad_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    return [TensorType(tuple(a.kept + a.before + a.after for a in _plan_of(x, attrs)), x.dtype)]


def _pad_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    (x,) = args
    mode = attrs["mode"]
    plan = _plan_of(x, attrs)
    value = fill_scalar(attrs["value"], DType.from_numpy(x.dtype))
    if any(a.step > 1 for a in plan):
        spread = np.full(tuple((d - 1) * a.step + 1 if d else 0 for d, a in zip(x.shape, plan)), value, x.dtype)
        spread[tuple(slice(None, None, a.step) for a in plan)] = x
        x = spread
    cropped = x[tuple(slice(a.crop, a.crop + a.kept) for a in plan)]
    if x.ndim == 0:  # np.pad rejects an empty pad list
        return [cropped.copy()]
    width = [(a.before, a.after) for a in plan]
    if mode == "constant":
        result = np.pad(cropped, width, mode="constant", constant_values=value)
    else:
        result = np.pad(cropped, width, mode=mode)
    return [result.astype(x.dtype)]


def _pad_source(j: Expr, axis: PadAxis, mode: str) -> tuple[Expr, list[Expr]]:
    """(in-bounds source index, conditions for reading the input) for one axis.

    ``j`` is the index into the spread (interior-padded) input, whose kept
    range is ``[crop, crop + kept - 1]``.
    """
    lo, hi = axis.crop, axis.crop + axis.kept - 1
    inside = []
    if axis.before:
        inside.append(binary("ge", j, Const(lo)))
    if axis.after:
        inside.append(binary("le", j, Const(hi)))
    if mode == "reflect":
        src = j
        if axis.after:
            src = select(binary("gt", j, Const(hi)), binary("sub", Const(2 * hi), j), src)
        if axis.before:
            src = select(binary("lt", j, Const(lo)), binary("sub", Const(2 * lo), j), src)
        return src, inside
    src = binary("max", j, Const(lo)) if axis.before else j
    src = binary("min", src, Const(hi)) if axis.after else src
    if axis.step > 1:  # only every step-th spread position holds an input element
        inside.append(binary("eq", binary("mod", j, Const(axis.step)), Const(0)))
        src = binary("div", src, Const(axis.step))
    return src, inside


def _pad_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
               attrs: Mapping[str, Any]) -> list[Stmt]:
    (x,), (out,) = ins, outs
    mode = attrs["mode"]
    plan = _plan_of(x.type, attrs)
    fill = fill_constant(attrs["value"], out.dtype)

    def body(idx: list) -> list[Stmt]:
        if x.type.size == 0:  # constant mode over an empty input: nothing to read
            return [out.store(idx, fill)]
        sources, inside = [], []
        for o, axis in zip(idx, plan):
            src, conds = _pad_source(add(o, Const(axis.crop - axis.before)), axis, mode)
            sources.append(src)
            inside.extend(conds)
        value = x.load(sources)  # constant mode clamps like edge, so padding positions read in bounds too
        if mode == "constant" and inside:
            value = select(all_of(inside), value, fill)
        return [out.store(idx, value)]

    return kb.loop_nest(out.shape, body)


def _pad_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """constant: slice away the padding, zero-fill what was cropped, take every step-th element (undoing
    interior padding). reflect / edge: per axis, the border gradients are added back onto the elements
    they copied (mirrored, or summed onto the edge element), then the crop is undone."""
    (x,), (g,) = node.inputs, out_grads
    if x.type.rank == 0:
        return [g]
    plan = _plan_of(x.type, node.attrs)
    axes = list(range(x.type.rank))
    spread = [(d - 1) * a.step + 1 if d else 0 for d, a in zip(x.shape, plan)]
    if node.attrs["mode"] == "constant":
        kept = ctx.add("slice", g, starts=[a.before for a in plan], stops=[a.before + a.kept for a in plan],
                       steps=[1] * len(plan), axes=axes)
        uncropped = grad_place(ctx, kept, {i: (a.crop, spread[i], 1) for i, a in enumerate(plan)
                                           if a.kept < spread[i]})
        return [ctx.add("slice", uncropped, starts=[0] * len(plan), stops=spread, steps=[a.step for a in plan],
                        axes=axes)]
    for axis, a in enumerate(plan):
        def part(start: int, stop: int, axis: int = axis, g: Value = g) -> Value:
            return ctx.add("slice", g, starts=[start], stops=[stop], steps=[1], axes=[axis])

        core = part(a.before, a.before + a.kept)
        for size, start, edge in ((a.before, 0, 0), (a.after, a.before + a.kept, a.kept - 1)):
            if not size:
                continue
            border = part(start, start + size)
            if node.attrs["mode"] == "reflect":  # mirrored around the edge element, which is not repeated
                back = grad_flip(ctx, border, [axis])
                begin = 1 if edge == 0 else edge - size
            else:
                back, begin = ctx.add("reduce_sum", border, axes=[axis], keepdims=True), edge
            core = ctx.add("add", core, grad_place(ctx, back, {axis: (begin, a.kept, 1)}))
        g = grad_place(ctx, core, {axis: (a.crop, x.shape[axis], 1)})
    return [g]


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


def _concat_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
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


def _concat_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """Each input gets its slice of g."""
    axis = normalize_axis("concat", node.attrs["axis"], node.outputs[0].type.rank)
    grads: list[Value | None] = []
    offset = 0
    for x in node.inputs:
        grads.append(ctx.add("slice", out_grads[0], starts=[offset], stops=[offset + x.shape[axis]], steps=[1],
                             axes=[axis]))
        offset += x.shape[axis]
    return grads


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


def _gather_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
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


def _gather_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """Scatter-add g into zeros: the index block is flattened to one axis and broadcast over the others,
    which makes it an elementwise scatter along ``axis``."""
    (data, indices), (g,) = node.inputs, out_grads
    axis = normalize_axis("gather", node.attrs["axis"], data.type.rank)
    before, after = data.shape[:axis], data.shape[axis + 1:]
    flat = before + (indices.type.size,) + after
    column = ctx.reshape(indices, (1,) * len(before) + (indices.type.size,) + (1,) * len(after))
    return [ctx.add("scatter", ctx.zeros(data), ctx.broadcast(column, flat), ctx.reshape(g, flat), axis=axis,
                    reduction="add"), None]


def _check_element_indices(op: str, data: TensorType, indices: TensorType, axis: int) -> int:
    """Element-wise indices (gather_elements, scatter): integer, data's rank, within data off ``axis``.

    Returns ``axis`` normalised.
    """
    check_index_dtype(op, indices)
    check(data.rank >= 1, f"{op}: data must have rank >= 1, found a scalar")
    check(indices.rank == data.rank, f"{op}: indices have rank {indices.rank}, expected the rank of data "
                                     f"({data.rank})")
    axis = normalize_axis(op, axis, data.rank)
    for a, (i, d) in enumerate(zip(indices.shape, data.shape)):
        check(a == axis or i <= d, f"{op}: indices {indices.shape} exceed data {data.shape} on axis {a}")
    return axis


# -- gather_elements ----------------------------------------------------------------

def _gather_elements_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    data, indices = types
    axis = _check_element_indices("gather_elements", data, indices, attrs["axis"])
    check(indices.size == 0 or data.shape[axis] > 0,
          f"gather_elements: axis {axis} of data {data.shape} is empty, so the {indices.size} index(es) "
          f"select nothing")
    return [TensorType(indices.shape, data.dtype)]


def _gather_elements_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    data, indices = args
    if indices.size == 0:
        return [np.empty(indices.shape, data.dtype)]
    axis = normalize_axis("gather_elements", attrs["axis"], data.ndim)
    source: list[np.ndarray] = list(np.indices(indices.shape))
    source[axis] = clamp_indices(indices, data.shape[axis])
    return [data[tuple(source)]]


def _gather_elements_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                           attrs: Mapping[str, Any]) -> list[Stmt]:
    (data, indices), (out,) = ins, outs
    if out.type.size == 0:
        return []
    axis = normalize_axis("gather_elements", attrs["axis"], data.type.rank)

    def body(idx: list) -> list[Stmt]:
        read, i = clamp_index(kb, indices.load(idx), data.shape[axis])
        return [*read, out.store(idx, data.load([*idx[:axis], i, *idx[axis + 1:]]))]

    return kb.loop_nest(out.shape, body)


def _gather_elements_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """Scatter-add g into zeros at the same indices."""
    (data, indices), (g,) = node.inputs, out_grads
    return [ctx.add("scatter", ctx.zeros(data), indices, g, axis=node.attrs["axis"], reduction="add"), None]


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
    axis = _check_element_indices("scatter", data, indices, attrs["axis"])
    check(updates.shape == indices.shape, f"scatter: updates have shape {updates.shape}, expected the shape "
                                          f"of indices {indices.shape}")
    check(indices.size == 0 or data.shape[axis] > 0,
          f"scatter: axis {axis} of data {data.shape} is empty, so {indices.size} update(s) have nowhere to go")
    return [TensorType(data.shape, data.dtype)]


def _scatter_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    data, indices, updates = args
    out = np.array(data, order="C", copy=True)
    if indices.size == 0:
        return [out]
    axis = normalize_axis("scatter", attrs["axis"], data.ndim)
    target: list[np.ndarray] = list(np.indices(indices.shape))
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


def _scatter_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
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


def _positions(ctx: GradContext, shape: Sequence[int]) -> Value:
    """i64 row-major position of every element of ``shape`` (an id per element)."""
    size = int(np.prod(shape))
    return ctx.reshape(ctx.add("iota", shape=[size], axis=0, dtype=DType.I64), shape)


def _scatter_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """Per reduction: none: data gets g where no update landed, each update gets g at its target if it
    was the one written last. add: data gets g, updates gather it. mul: g times the product of the other
    factors of the target (exact at zeros). max / min: g goes to what equals the result, ties split evenly."""
    (data, indices, updates), (out,), (g,) = node.inputs, node.outputs, out_grads
    axis, reduction = node.attrs["axis"], node.attrs["reduction"]

    def scatter(base: Value, values: Value, how: str) -> Value:
        return ctx.add("scatter", base, indices, values, axis=axis, reduction=how)

    def gather(values: Value) -> Value:
        return ctx.add("gather_elements", values, indices, axis=axis)

    def filled(value: float, like: Value) -> Value:
        return ctx.add("fill", shape=list(like.shape), value=value, dtype=like.dtype)

    if reduction == "none":
        ids = _positions(ctx, indices.shape)
        writer = scatter(ctx.add("fill", shape=list(data.shape), value=-1.0, dtype=DType.I64), ids, "none")
        written = ctx.add("ne", writer, ctx.const(-1, writer))
        won = ctx.add("eq", gather(writer), ids)
        return [ctx.add("where", written, ctx.const(0.0, g), g), None, grad_where(ctx, won, gather(g))]
    if reduction == "add":
        return [g, None, gather(g)]
    if reduction == "mul":
        zero = ctx.add("eq", updates, ctx.const(0.0, updates))
        nonzero = ctx.add("where", zero, ctx.const(1.0, updates), updates)
        zeros_at = scatter(ctx.zeros(data), ctx.add("cast", zero, dtype=data.dtype), "add")
        others_of_zero = grad_where(ctx, ctx.add("eq", zeros_at, ctx.const(1.0, data)),
                                    ctx.add("mul", data, scatter(filled(1.0, data), nonzero, "mul")))
        at_zero = gather(ctx.add("mul", g, others_of_zero))
        at_nonzero = ctx.add("div", gather(ctx.add("mul", g, out)), nonzero)
        product = scatter(filled(1.0, data), updates, "mul")
        return [ctx.add("mul", g, product), None, ctx.add("where", zero, at_zero, at_nonzero)]
    data_hit = ctx.add("eq", data, out)
    update_hit = ctx.add("eq", updates, gather(out))
    ties = ctx.add("add", ctx.add("cast", data_hit, dtype=data.dtype),
                   scatter(ctx.zeros(data), ctx.add("cast", update_hit, dtype=data.dtype), "add"))
    share = ctx.add("div", g, ties)
    return [grad_where(ctx, data_hit, share), None, grad_where(ctx, update_hit, gather(share))]


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


def _iota_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                attrs: Mapping[str, Any]) -> list[Stmt]:
    (out,) = outs
    axis = normalize_axis("iota", attrs["axis"], out.type.rank)
    return kb.loop_nest(out.shape, lambda idx: [out.store(idx, idx[axis])])


def _fill_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    return [TensorType(check_shape("fill", attrs["shape"]), attrs["dtype"])]


def _fill_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    dtype = attrs["dtype"]
    return [np.full(tuple(attrs["shape"]), fill_scalar(attrs["value"], dtype), dtype.np)]


def _fill_scalar(args: Sequence[Expr], attrs: Mapping[str, Any]) -> Expr:
    return fill_constant(attrs["value"], attrs["dtype"])


register(OpDef(
    "pad", 1, _pad_infer, _pad_reference, _pad_lower, grad=_pad_grad,
    attrs={"pads": Attr("ints"), "mode": Attr("str", "constant"), "value": Attr("float", 0.0),
           "interior": Attr("ints", ())},
    doc="pad (ONNX order: all begins, then all ends) with a constant, mirrored (reflect) or repeated "
        "(edge) border; negative pads crop first; constant mode may first insert interior[i] values "
        "between neighbours on axis i (XLA's interior padding)"))
register(OpDef(
    "concat", None, _concat_infer, _concat_reference, _concat_lower, attrs={"axis": Attr("int")},
    grad=_concat_grad,
    doc="join inputs of one dtype along axis (other dimensions must match)"))
register(OpDef(
    "gather", 2, _gather_infer, _gather_reference, _gather_lower, attrs={"axis": Attr("int", 0)},
    grad=_gather_grad,
    doc="np.take(data, indices, axis); negative indices wrap once, still out-of-range ones are clamped "
        "to [0, dim-1]; an empty gather axis is an error unless the output is empty"))
register(OpDef(
    "gather_elements", 2, _gather_elements_infer, _gather_elements_reference, _gather_elements_lower,
    attrs={"axis": Attr("int", 0)}, grad=_gather_elements_grad,
    doc="np.take_along_axis / ONNX GatherElements: out[p] = data[p with axis replaced by indices[p]]; indices "
        "have data's rank and fit inside data off axis; they wrap once, then clamp (as gather)"))
register(OpDef(
    "scatter", 3, _scatter_infer, _scatter_reference, _scatter_lower,
    attrs={"axis": Attr("int", 0), "reduction": Attr("str", "none")}, grad=_scatter_grad,
    doc="ONNX ScatterElements: copy data, then combine updates into it at indices along axis in "
        "row-major order (none: last write wins; add, mul, max, min); indices wrap once, then clamp"))
register(OpDef(
    "iota", 0, _iota_infer, _iota_reference, _iota_lower,
    attrs={"shape": Attr("ints"), "axis": Attr("int"), "dtype": Attr("dtype")}, grad=NO_GRAD,
    doc="each element is its index along axis (integers wrap to the dtype)"))
register(OpDef(
    "fill", 0, _fill_infer, _fill_reference, None, scalar=_fill_scalar,
    attrs={"shape": Attr("ints"), "value": Attr("float"), "dtype": Attr("dtype")}, grad=NO_GRAD,
    doc="a tensor of one value cast to dtype (bool: value != 0)"))
