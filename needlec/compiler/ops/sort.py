"""``topk``: the k largest (or smallest) elements along an axis and their i64 indices (ONNX TopK).

Order: elements are ranked by value, ties by lower index first (ONNX), and
NaN ranks above every number, as in NumPy's sort order and PyTorch's topk:
``largest`` picks NaNs first, smallest picks them last (NaNs among
themselves by index). The result is always sorted best-first; ``sorted=False``
(for which ONNX leaves the order unspecified) gives the same order. With
``k`` equal to the axis length and ``largest=False`` this is a stable
ascending sort (argsort), with ``largest=True`` a stable descending one.

The lowering is a k-pass selection per row: pass j scans the row for the best
element ranked after pass j-1's pick (O(k n), no scratch memory), which is
right for the sizes models use topk on. The gradient scatter-adds the
values' gradient onto the picked positions; indices have none.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import NUMERIC_DTYPES, DType
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import BufferOperand, KernelBuilder, Operand, binary, cast, compute_dtype, select
from needlec.compiler.loops.ir import Assign, Const, Expr, Local, LocalRef, Loop, Stmt, Var
from needlec.compiler.ops.common import check_dtypes, normalize_axis
from needlec.compiler.ops.registry import Attr, OpDef, check, register

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext


def _topk_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    dtype = check_dtypes("topk", types, NUMERIC_DTYPES)
    check(x.rank >= 1, "topk: input must have rank >= 1, found a scalar")
    axis = normalize_axis("topk", attrs["axis"], x.rank)
    k = attrs["k"]
    check(0 <= k <= x.shape[axis], f"topk: k={k} is outside [0, {x.shape[axis]}] (axis {axis} of shape {x.shape})")
    shape = x.shape[:axis] + (k,) + x.shape[axis + 1:]
    return [TensorType(shape, dtype), TensorType(shape, DType.I64)]


def topk_order(x: np.ndarray, axis: int, largest: bool) -> np.ndarray:
    """Indices that order ``x`` along ``axis`` best-first (NaN above every number, ties by lower index)."""
    key = x.astype(compute_dtype(DType.from_numpy(x.dtype)).np)
    if not largest:  # a stable ascending sort already puts NaNs last and ties by index
        return np.argsort(key, axis=axis, kind="stable")
    n = x.shape[axis]
    # descending with ties by lower index: sort the reversed row ascending (stably), then reverse the result
    reversed_order = np.argsort(np.flip(key, axis), axis=axis, kind="stable")
    return np.flip(n - 1 - reversed_order, axis)


def _topk_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    (x,) = args
    axis = normalize_axis("topk", attrs["axis"], x.ndim)
    order = np.take(topk_order(x, axis, attrs["largest"]), np.arange(attrs["k"]), axis=axis)
    return [np.take_along_axis(x, order, axis=axis), order.astype(np.int64)]


def _ranks_before(a: Expr, ia: Expr, b: Expr, ib: Expr, largest: bool) -> Expr:
    """Loop IR: element (a, index ia) is ranked before (b, ib), NaN above every number, ties by index."""
    hi, lo = (a, b) if largest else (b, a)
    above = binary("gt", hi, lo)
    same = binary("eq", a, b)
    if a.dtype.is_float:
        hi_nan, lo_nan = binary("ne", hi, hi), binary("ne", lo, lo)
        above = binary("or", above, binary("and", hi_nan, binary("eq", lo, lo)))
        same = binary("or", same, binary("and", hi_nan, lo_nan))
    return binary("or", above, binary("and", same, binary("lt", ia, ib)))


def _topk_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                attrs: Mapping[str, Any]) -> list[Stmt]:
    (x,), (values, indices) = ins, outs
    axis = normalize_axis("topk", attrs["axis"], x.type.rank)
    k, n, largest = attrs["k"], x.shape[axis], attrs["largest"]
    if k == 0 or values.type.size == 0:
        return []
    work = compute_dtype(x.dtype)
    outer_shape = x.shape[:axis] + x.shape[axis + 1:]

    def row(outer: list[Var]) -> list[Stmt]:
        def at(i: Expr) -> list[Expr]:
            return [*outer[:axis], i, *outer[axis:]]

        prev, prev_index, best, best_index, value, won = (kb.name(h) for h in ("prev", "prev_index", "best",
                                                                               "best_index", "v", "wins"))
        p, pi = LocalRef(prev, work), LocalRef(prev_index, DType.I64)
        b, bi, v = LocalRef(best, work), LocalRef(best_index, DType.I64), LocalRef(value, work)
        w = LocalRef(won, DType.BOOL)
        j, r = kb.var("j"), kb.var("r")
        # r is a candidate in pass j when it ranks after pass j-1's pick; it wins when it ranks before the best
        candidate = binary("or", binary("eq", j, Const(0)), _ranks_before(p, pi, v, r, largest))
        wins = binary("and", candidate, binary("or", binary("lt", bi, Const(0)), _ranks_before(v, r, b, bi, largest)))
        scan = Loop(r.name, n, (Local(value, cast(x.load(at(r)), work)), Local(won, wins),
                                Assign(best, select(w, v, b)), Assign(best_index, select(w, r, bi))))
        select_pass = (Assign(best_index, Const(-1)), scan,
                       values.store(at(j), b), indices.store(at(j), bi),
                       Assign(prev, b), Assign(prev_index, bi))
        return [Local(prev, cast(x.load(at(Const(0))), work)), Local(prev_index, Const(-1)),
                Local(best, cast(x.load(at(Const(0))), work)), Local(best_index, Const(-1)),
                Loop(j.name, k, select_pass)]

    return kb.loop_nest(outer_shape, row)


def _topk_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """The values' gradient goes back to the positions they were picked from (scatter-add)."""
    (x,), (g, _) = node.inputs, out_grads
    return [ctx.add("scatter", ctx.zeros(x), node.outputs[1], g, axis=node.attrs["axis"], reduction="add")]


register(OpDef(
    "topk", 1, _topk_infer, _topk_reference, _topk_lower,
    attrs={"k": Attr("int"), "axis": Attr("int", -1), "largest": Attr("bool", True), "sorted": Attr("bool", True)},
    grad=_topk_grad,
    doc="ONNX TopK: the k largest (or smallest) elements along axis, best first, and their i64 indices; "
        "ties by lower index, NaN above every number; always sorted (sorted=False gives the same order)"))
