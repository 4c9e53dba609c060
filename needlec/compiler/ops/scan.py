"""``cumulative``: running sums or products along one axis (ONNX CumSum / CumProd).

``out[i] = x[0] op x[1] op ... op x[i]`` along ``axis``; ``exclusive`` leaves
out ``x[i]`` itself (``out[0]`` is the identity: 0 or 1) and ``reverse`` runs
from the end of the axis. Integers wrap; f16 and bf16 accumulate in f32 and
round each output once (as the reduce ops do). An empty axis gives an empty
result.

Gradients: a running sum's gradient is the running sum of g in the opposite
direction (with the same ``exclusive``). A running product's gradient avoids
dividing by x, so it is exact at zeros: for the inclusive forward scan,
``dx[j] = prod(x[:j]) * sum over i >= j of g[i] * prod(x[j+1 : i+1])``, where
the inner products for every (j, i) pair come from one running product over
an added axis of length n (O(n**2) memory per row); exclusive scans shift g
first and reverse ones flip x and g around that rule.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import NUMERIC_DTYPES, DType
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import BufferOperand, KernelBuilder, Operand, binary, cast, compute_dtype, const
from needlec.compiler.loops.ir import Assign, Const, Expr, Local, LocalRef, Loop, Stmt, Var
from needlec.compiler.ops.common import check_dtypes, grad_flip, grad_place, normalize_axis
from needlec.compiler.ops.registry import Attr, OpDef, check, register

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext

# kind -> (loop-IR combine op, identity, NumPy running reducer)
KINDS: dict[str, tuple[str, int, Callable[..., np.ndarray]]] = {"sum": ("add", 0, np.cumsum),
                                                                "prod": ("mul", 1, np.cumprod)}


def _cumulative_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    dtype = check_dtypes("cumulative", types, NUMERIC_DTYPES)
    check(attrs["kind"] in KINDS, f"cumulative: kind {attrs['kind']!r} is not one of {', '.join(KINDS)}")
    check(x.rank >= 1, "cumulative: input must have rank >= 1, found a scalar")
    normalize_axis("cumulative", attrs["axis"], x.rank)
    return [TensorType(x.shape, dtype)]


def _cumulative_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    (x,) = args
    axis = normalize_axis("cumulative", attrs["axis"], x.ndim)
    _, identity, running = KINDS[attrs["kind"]]
    work = x.astype(compute_dtype(DType.from_numpy(x.dtype)).np)
    if attrs["reverse"]:
        work = np.flip(work, axis)
    with np.errstate(all="ignore"):
        result = running(work, axis=axis, dtype=work.dtype)
    if attrs["exclusive"] and x.shape[axis]:
        first = np.full_like(np.take(result, [0], axis=axis), identity)
        result = np.concatenate([first, np.take(result, np.arange(x.shape[axis] - 1), axis=axis)], axis=axis)
    if attrs["reverse"]:
        result = np.flip(result, axis)
    return [np.ascontiguousarray(result).astype(x.dtype)]


def _cumulative_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                      attrs: Mapping[str, Any]) -> list[Stmt]:
    (x,), (out,) = ins, outs
    axis = normalize_axis("cumulative", attrs["axis"], x.type.rank)
    n = x.shape[axis]
    op, identity, _ = KINDS[attrs["kind"]]
    work = compute_dtype(x.dtype)

    def row(outer: list[Var]) -> list[Stmt]:
        acc, r = kb.name("acc"), kb.var("r")
        position: Expr = binary("sub", Const(n - 1), r) if attrs["reverse"] else r
        at = [*outer[:axis], position, *outer[axis:]]
        total = LocalRef(acc, work)
        step = Assign(acc, binary(op, total, cast(x.load(at), work)))
        body = (out.store(at, total), step) if attrs["exclusive"] else (step, out.store(at, total))
        return [Local(acc, const(identity, work)), Loop(r.name, n, body)]

    return kb.loop_nest(x.shape[:axis] + x.shape[axis + 1:], row)


def _running(ctx: GradContext, x: Value, kind: str, axis: int, exclusive: bool = False, reverse: bool = False) -> Value:
    return ctx.add("cumulative", x, kind=kind, axis=axis, exclusive=exclusive, reverse=reverse)


def _prod_grad_inclusive(ctx: GradContext, x: Value, g: Value, axis: int) -> Value:
    """d/dx of sum(g * cumprod(x)) along ``axis``, without division (see the module docstring)."""
    shape, n = x.shape, x.shape[axis]
    pairs = shape[:axis] + (n, n) + shape[axis + 1:]  # axis: j (the input), axis + 1: i (the output)
    trailing = (1,) * (len(shape) - axis - 1)
    j_idx, i_idx = np.arange(n).reshape(n, 1), np.arange(n).reshape(1, n)
    after_j = ctx.graph.add_constant((i_idx > j_idx).reshape((n, n) + trailing), "after_j")
    from_j = ctx.graph.add_constant((i_idx >= j_idx).reshape((n, n) + trailing), "from_j")
    along_i = ctx.broadcast(ctx.reshape(x, shape[:axis] + (1, n) + shape[axis + 1:]), pairs)
    between = _running(ctx, ctx.add("where", after_j, along_i, ctx.const(1.0, x)), "prod", axis + 1)
    weights = ctx.add("where", from_j, between, ctx.const(0.0, x))
    g_along_i = ctx.reshape(g, shape[:axis] + (1, n) + shape[axis + 1:])
    later = ctx.add("reduce_sum", ctx.add("mul", weights, g_along_i), axes=[axis + 1])
    return ctx.add("mul", _running(ctx, x, "prod", axis, exclusive=True), later)


def _cumulative_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    (x,), (g,) = node.inputs, out_grads
    axis = normalize_axis("cumulative", node.attrs["axis"], x.type.rank)
    exclusive, reverse = node.attrs["exclusive"], node.attrs["reverse"]
    if node.attrs["kind"] == "sum":
        return [_running(ctx, g, "sum", axis, exclusive, not reverse)]
    n = x.shape[axis]
    if x.type.size == 0:
        return [g]
    if reverse:  # a reverse scan is the forward scan of the flipped input, flipped back
        x, g = grad_flip(ctx, x, [axis]), grad_flip(ctx, g, [axis])
    if exclusive:  # out[i] is the inclusive out[i - 1]: its gradient moves down one place
        g = grad_place(ctx, ctx.add("slice", g, starts=[1], stops=[n], steps=[1], axes=[axis]), {axis: (0, n, 1)})
    dx = _prod_grad_inclusive(ctx, x, g, axis)
    return [grad_flip(ctx, dx, [axis]) if reverse else dx]


register(OpDef(
    "cumulative", 1, _cumulative_infer, _cumulative_reference, _cumulative_lower,
    attrs={"kind": Attr("str"), "axis": Attr("int"), "exclusive": Attr("bool", False),
           "reverse": Attr("bool", False)},
    grad=_cumulative_grad,
    doc="running sum or product (kind) along axis, ONNX CumSum / CumProd: exclusive leaves out the element "
        "itself, reverse runs from the end; integers wrap, f16/bf16 accumulate in f32"))
