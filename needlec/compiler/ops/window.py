"""``window_reduce`` (max / sum pooling), ``window_argmax``, and the sliding-window geometry shared with ``conv2d``.

The kernel covers the last ``len(kernel)`` axes; every leading axis (batch,
channels) is carried through. ``pads`` use ONNX order (all begins, then all
ends). Output extents follow ONNX MaxPool: ``floor`` (or ``ceil`` with
``ceil_mode``) of ``(in + pads - span) / stride + 1``, where ``span`` is the
dilated kernel extent; in ceil mode a window that would start inside the end
padding is dropped (ONNX / PyTorch). Padded positions are skipped by max and
count as 0 in sum; a window lying wholly in padding yields the identity.
Integer sums wrap; f16 accumulates in f32.

``window_argmax`` gives, per window, the row-major flat index into the whole
input of the element ``window_reduce`` max returns (ONNX MaxPool's Indices
output): the first maximum in kernel order, NaN above every number, -1 for a
window lying wholly in padding.

The gradient of a window sum is the transposed window sum: g spread by the
strides and padded (one interior-padding ``pad``), then summed by a stride-1
window of the same kernel. The gradient of a window max scatter-adds g onto
the positions ``window_argmax`` picks, so ties go to the first maximum, as in
PyTorch's max_pool; its own gradient (scatter -> gather_elements) makes
double backward work.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import NUMERIC_DTYPES, DType
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType, contiguous_strides
from needlec.compiler.loops.builder import (BufferOperand, KernelBuilder, Operand, all_of, binary, cast, compute_dtype,
                                            const, linear_index, select)
from needlec.compiler.loops.ir import Assign, Const, Expr, If, Local, LocalRef, Loop, Stmt, Var
from needlec.compiler.ops.common import check_dtypes, grad_place, grad_where
from needlec.compiler.ops.reduce import identity
from needlec.compiler.ops.registry import NO_GRAD, Attr, OpDef, check, register

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext

KINDS = {"max": "max", "sum": "add"}  # window_reduce kind -> loop-IR combine op


@dataclass(frozen=True)
class Window:
    """Where a sliding window reads along each spatial axis.

    Output position ``o`` with kernel offset ``k`` reads input position
    ``o * strides[i] - pads_begin[i] + k * dilations[i]`` on spatial axis ``i``.
    """

    in_dims: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    out_dims: tuple[int, ...]

    def spans(self) -> tuple[int, ...]:
        """The dilated kernel extent on each spatial axis."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations))

    def regions(self, axis: int) -> list[tuple[int, int, bool]]:
        """The output positions of spatial ``axis`` as (start, extent, guarded) ranges, in order: the interior,
        whose windows lie wholly inside the input, unguarded, and the borders before and after it guarded."""
        stride, begin, n, out = self.strides[axis], self.pads_begin[axis], self.in_dims[axis], self.out_dims[axis]
        low = min(-(-begin // stride), out)  # first o with o * stride - begin >= 0
        high = min(max((n - self.spans()[axis] + begin) // stride + 1, low), out)  # past the last inside
        ranges = [(0, low, True), (low, high - low, False), (high, out - high, True)]
        return [r for r in ranges if r[1] > 0]


def _per_axis(op: str, name: str, values: Sequence[int], count: int, default: int, least: int) -> tuple[int, ...]:
    """``values`` (``count`` of them, or ``()`` for the default), each at least ``least``."""
    result = tuple(values) if values else (default,) * count
    check(len(result) == count, f"{op}: {name} {tuple(values)} needs {count} value(s)")
    check(all(v >= least for v in result), f"{op}: {name} {tuple(values)} must be >= {least}")
    return result


def window_geometry(op: str, in_dims: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                    pads: Sequence[int], dilations: Sequence[int], ceil_mode: bool) -> Window:
    """The validated window over spatial extents ``in_dims``; ShapeError naming ``op`` on bad attributes."""
    rank = len(kernel)
    kernel = _per_axis(op, "kernel", kernel, rank, 1, 1)
    strides = _per_axis(op, "strides", strides, rank, 1, 1)
    dilations = _per_axis(op, "dilations", dilations, rank, 1, 1)
    pads = _per_axis(op, "pads", pads, 2 * rank, 0, 0)
    spans = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    out_dims = []
    for axis, (n, span, s, begin, end) in enumerate(zip(in_dims, spans, strides, pads[:rank], pads[rank:])):
        padded = n + begin + end
        check(padded >= span, f"{op}: window span {span} exceeds the padded extent {padded} "
                              f"of spatial axis {axis} (size {n})")
        if ceil_mode:
            out = -(-(padded - span) // s) + 1
            if (out - 1) * s >= n + begin:  # the last window would start in the end padding
                out -= 1
        else:
            out = (padded - span) // s + 1
        out_dims.append(out)
    return Window(tuple(in_dims), kernel, strides, dilations, pads[:rank], pads[rank:], tuple(out_dims))


def window_loops(kb: KernelBuilder, window: Window, out_idx: Sequence[Expr],
                 body: Callable[[list[Expr], list[Var]], list[Stmt]],
                 guarded: Sequence[bool] | None = None) -> list[Stmt]:
    """Loops over the kernel offsets of the window at ``out_idx``.

    ``body(input positions, kernel offsets)`` runs only where every position
    lies inside the input: each axis whose positions can leave the input gets
    an ``If`` around the loops inside it, so nothing reads out of bounds,
    unless ``guarded`` says the axis's positions are all inside (``Window.regions``).
    """
    rank = len(window.kernel)
    positions: list[Expr] = []
    offsets: list[Var] = []

    def level(axis: int) -> list[Stmt]:
        if axis == rank:
            return body(list(positions), list(offsets))
        k = kb.var("k")
        stride, dilation, begin = window.strides[axis], window.dilations[axis], window.pads_begin[axis]
        n, out = window.in_dims[axis], window.out_dims[axis]
        position = linear_index([(out_idx[axis], stride), (k, dilation)], -begin)
        positions.append(position)
        offsets.append(k)
        inner = level(axis + 1)
        bounds = []
        check_axis = guarded is None or guarded[axis]
        if check_axis and begin > 0:
            bounds.append(binary("ge", position, Const(0)))
        if check_axis and (out - 1) * stride - begin + (window.kernel[axis] - 1) * dilation >= n:
            bounds.append(binary("lt", position, Const(n)))
        if bounds:
            inner = [If(all_of(bounds), tuple(inner))]
        return [Loop(k.name, window.kernel[axis], tuple(inner))]

    return level(0)


def _geometry(op: str, shape: Sequence[int], attrs: Mapping[str, Any]) -> Window:
    kernel = attrs["kernel"]
    check(1 <= len(kernel) <= len(shape), f"{op}: kernel {kernel} needs 1..{len(shape)} "
                                          f"axes for an input of shape {tuple(shape)}")
    return window_geometry(op, shape[len(shape) - len(kernel):], kernel, attrs["strides"],
                           attrs["pads"], attrs["dilations"], attrs["ceil_mode"])


def _window_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    check(attrs["kind"] in KINDS, f"window_reduce: kind {attrs['kind']!r} is not one of {sorted(KINDS)}")
    dtype = check_dtypes("window_reduce", types, NUMERIC_DTYPES)
    window = _geometry("window_reduce", x.shape, attrs)
    return [TensorType(x.shape[:x.rank - len(window.kernel)] + window.out_dims, dtype)]


def _window_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    (x,) = args
    window = _geometry("window_reduce", x.shape, attrs)
    lead = x.ndim - len(window.kernel)
    work = compute_dtype(DType.from_numpy(x.dtype))
    fill = identity(KINDS[attrs["kind"]], work)
    # pad with the identity, far enough at the end for every (ceil-mode) window to fit
    ends = [max(e, (o - 1) * s + span - b - n) for e, o, s, span, b, n in
            zip(window.pads_end, window.out_dims, window.strides, window.spans(), window.pads_begin, window.in_dims)]
    padded = np.pad(x.astype(work.np), [(0, 0)] * lead + list(zip(window.pads_begin, ends)), constant_values=fill)
    result = np.full(x.shape[:lead] + window.out_dims, fill, work.np)
    for offsets in itertools.product(*(range(k) for k in window.kernel)):
        index = tuple(slice(k * d, k * d + o * s, s) for k, d, o, s in
                      zip(offsets, window.dilations, window.out_dims, window.strides))
        part = padded[(slice(None),) * lead + index]
        result = np.maximum(result, part) if attrs["kind"] == "max" else result + part
    return [result.astype(x.dtype)]


def _window_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                  attrs: Mapping[str, Any]) -> list[Stmt]:
    (x,), (out,) = ins, outs
    window = _geometry("window_reduce", x.shape, attrs)
    lead = x.type.rank - len(window.kernel)
    op = KINDS[attrs["kind"]]
    work = compute_dtype(x.dtype)

    def body(idx: list[Var]) -> list[Stmt]:
        acc = kb.name("acc")

        def accumulate(positions: list[Expr], offsets: list[Var]) -> list[Stmt]:
            value = cast(x.load(idx[:lead] + positions), work)
            return [Assign(acc, binary(op, LocalRef(acc, work), value))]

        return [Local(acc, const(identity(op, work), work)),
                *window_loops(kb, window, idx[lead:], accumulate),
                out.store(idx, LocalRef(acc, work))]

    return kb.loop_nest(out.shape, body)


def spread_to_input(ctx: GradContext, g: Value, window: Window) -> Value:
    """Window-shaped ``g`` (..., *out_dims) spread by the strides and padded (one ``pad``), so that a
    stride-1 window of the kernel over the result gives, at each input position, the sum of g over the
    windows reading it: the transpose of a sliding window (``in + span - 1`` positions per axis)."""
    lead = g.type.rank - len(window.kernel)
    return grad_place(ctx, g, {lead + i: (span - 1 - begin, n + span - 1, stride) for i, (n, stride, begin, span)
                               in enumerate(zip(window.in_dims, window.strides, window.pads_begin, window.spans()))})


def _has_padding_only_windows(window: Window) -> bool:
    """True when some window reads no input position at all (it lies wholly in the padding)."""
    for n, out, stride, dilation, begin, k in zip(window.in_dims, window.out_dims, window.strides,
                                                   window.dilations, window.pads_begin, window.kernel):
        if any(all(not 0 <= o * stride + j * dilation - begin < n for j in range(k)) for o in range(out)):
            return True
    return False


def _window_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """sum: the transposed window sum. max: g scatter-added onto the position window_argmax picks
    (the first maximum of each window, as PyTorch's max_pool)."""
    (x,), (g,) = node.inputs, out_grads
    if x.type.size == 0:
        return [ctx.zeros(x)]
    window = _geometry("window_reduce", x.shape, node.attrs)
    if node.attrs["kind"] == "sum":
        spread = spread_to_input(ctx, g, window)
        return [ctx.add("window_reduce", spread, kind="sum", kernel=window.kernel, dilations=window.dilations)]
    attrs = {key: value for key, value in node.attrs.items() if key != "kind"}
    winners = ctx.reshape(ctx.add("window_argmax", x, **attrs), (g.type.size,))
    flat = ctx.reshape(g, (g.type.size,))
    if _has_padding_only_windows(window):  # their index is -1: send nothing
        flat = grad_where(ctx, ctx.add("ge", winners, ctx.const(0, winners)), flat)
    zeros = ctx.add("fill", shape=[x.type.size], value=0.0, dtype=x.dtype)
    return [ctx.reshape(ctx.add("scatter", zeros, winners, flat, axis=0, reduction="add"), x.shape)]


WINDOW_ATTRS = {"kernel": Attr("ints"), "strides": Attr("ints", ()), "pads": Attr("ints", ()),
                "dilations": Attr("ints", ()), "ceil_mode": Attr("bool", False)}

register(OpDef(
    "window_reduce", 1, _window_infer, _window_reference, _window_lower, grad=_window_grad,
    attrs={"kind": Attr("str"), **WINDOW_ATTRS},
    doc="max or sum over sliding windows of the trailing len(kernel) axes (pooling; ONNX pads and ceil_mode)"))


# -- window_argmax -------------------------------------------------------------------------------------

def _argmax_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    check_dtypes("window_argmax", types, NUMERIC_DTYPES)
    window = _geometry("window_argmax", x.shape, attrs)
    return [TensorType(x.shape[:x.rank - len(window.kernel)] + window.out_dims, DType.I64)]


def _argmax_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    (x,) = args
    window = _geometry("window_argmax", x.shape, attrs)
    rank = len(window.kernel)
    out_shape = x.shape[:x.ndim - rank] + window.out_dims
    work = compute_dtype(DType.from_numpy(x.dtype))
    flat = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    best = np.zeros(out_shape, work.np)
    index = np.full(out_shape, -1, np.int64)
    for offsets in itertools.product(*(range(k) for k in window.kernel)):
        positions = [np.arange(o) * s + k * d - b for o, s, k, d, b in
                     zip(window.out_dims, window.strides, offsets, window.dilations, window.pads_begin)]
        valid = np.ones(window.out_dims, np.bool_)
        for axis, (p, n) in enumerate(zip(positions, window.in_dims)):
            valid = valid & ((p >= 0) & (p < n)).reshape([-1 if a == axis else 1 for a in range(rank)])
        where: tuple[Any, ...] = (..., *np.ix_(*(np.clip(p, 0, n - 1) for p, n in zip(positions, window.in_dims))))
        value = x[where].astype(work.np)
        wins = valid & ((index < 0) | (value > best))
        if work.is_float:  # NaN beats every number; the first NaN stays
            wins |= valid & np.isnan(value) & ~np.isnan(best)
        best = np.where(wins, value, best)
        index = np.where(wins, flat[where], index)
    return [index]


def _argmax_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                  attrs: Mapping[str, Any]) -> list[Stmt]:
    """A running best value and its flat index per window, updated branch-free (as argmax)."""
    (x,), (out,) = ins, outs
    window = _geometry("window_argmax", x.shape, attrs)
    lead = x.type.rank - len(window.kernel)
    work = compute_dtype(x.dtype)
    strides = contiguous_strides(x.shape)

    def body(idx: list[Var]) -> list[Stmt]:
        best, best_index = kb.name("best"), kb.name("best_index")
        b, i = LocalRef(best, work), LocalRef(best_index, DType.I64)

        def consider(positions: list[Expr], offsets: list[Var]) -> list[Stmt]:
            value, won = kb.name("v"), kb.name("wins")
            v = LocalRef(value, work)
            wins = binary("or", binary("lt", i, Const(0)), binary("gt", v, b))
            if work.is_float:
                wins = binary("or", wins, binary("and", binary("ne", v, v), binary("eq", b, b)))
            where = list(idx[:lead]) + positions
            return [Local(value, cast(x.load(where), work)), Local(won, wins),
                    Assign(best_index, select(LocalRef(won, DType.BOOL), linear_index(list(zip(where, strides))), i)),
                    Assign(best, select(LocalRef(won, DType.BOOL), v, b))]

        return [Local(best, const(0, work)), Local(best_index, Const(-1)),
                *window_loops(kb, window, idx[lead:], consider), out.store(idx, i)]

    return kb.loop_nest(out.shape, body)


register(OpDef(
    "window_argmax", 1, _argmax_infer, _argmax_reference, _argmax_lower, attrs=WINDOW_ATTRS, grad=NO_GRAD,
    doc="i64 row-major flat index into x of each window's maximum (as window_reduce max; ONNX MaxPool "
        "Indices): the first maximum in kernel order, NaN above every number; -1 for a window of padding only"))
