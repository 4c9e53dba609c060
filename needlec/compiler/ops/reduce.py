"""Reductions: ``reduce_{sum,max,min,prod}`` over a set of axes, ``argmax``/``argmin`` along one axis.

Each reduction is one row of a table: (name, allowed dtypes, loop-IR combine
op, NumPy reference, doc). All four keep the input dtype: integer sums and
products wrap, f16 accumulates in f32 and is rounded once at the end. An
empty reduced extent gives the reduction's identity (0, 1, -inf/+inf for
floats, the dtype's min/max for integers, False/True for bool), and
``axes=()`` reduces nothing (an identity copy). ``max``/``min`` propagate NaN
as ``np.max`` does.

``argmax``/``argmin`` return i64 indices. NaN follows NumPy: NaN compares
above every number for argmax and below every number for argmin, so the
first NaN wins (the last one with ``select_last_index``). Ties go to the first
index, or to the last with ``select_last_index``. Reducing an empty axis is a
ShapeError.

Gradients: a sum broadcasts g back; a product multiplies g by the product of
the other elements (exact at zeros); max/min send g to the elements equal to
the result, split evenly between ties (as ``torch.amax``/``amin``);
argmax/argmin have none.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import ALL_DTYPES, NUMERIC_DTYPES, DType
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import (BufferOperand, KernelBuilder, Operand, binary, cast, compute_dtype,
                                            const, select)
from needlec.compiler.loops.ir import Assign, Const, Expr, Local, LocalRef, Loop, Stmt, Var
from needlec.compiler.ops.common import check_dtypes, grad_where, normalize_axis
from needlec.compiler.ops.registry import NO_GRAD, Attr, OpDef, check, register

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext

# name -> (dtypes, loop-IR combine op, NumPy reducer, doc)
REDUCTIONS: dict[str, tuple[frozenset[DType], str, Callable[..., np.ndarray], str]] = {
    "reduce_sum": (NUMERIC_DTYPES, "add", np.sum, "sum over axes (integers wrap; f16 accumulates in f32)"),
    "reduce_prod": (NUMERIC_DTYPES, "mul", np.prod, "product over axes (integers wrap; f16 accumulates in f32)"),
    "reduce_max": (ALL_DTYPES, "max", np.max, "maximum over axes (NaN propagates; empty gives -inf / dtype min)"),
    "reduce_min": (ALL_DTYPES, "min", np.min, "minimum over axes (NaN propagates; empty gives +inf / dtype max)"),
}

REDUCE_ATTRS = {"axes": Attr("ints"), "keepdims": Attr("bool", False)}
ARG_ATTRS = {"axis": Attr("int"), "keepdims": Attr("bool", False), "select_last_index": Attr("bool", False)}


def identity(op: str, dtype: DType) -> float | int | bool:
    """The value ``op`` (a loop-IR combine op) returns for an empty set, in ``dtype``'s kind."""
    if op == "add":
        return 0
    if op == "mul":
        return 1
    if dtype.is_bool:
        return op == "min"
    if dtype.is_float:
        return -np.inf if op == "max" else np.inf
    info = np.iinfo(dtype.np)
    return int(info.min if op == "max" else info.max)


def reduced_axes(op: str, axes: Sequence[int], rank: int) -> tuple[int, ...]:
    """``axes`` normalised to ``[0, rank)`` and sorted; ShapeError on out-of-range or repeated axes."""
    result = sorted(normalize_axis(op, a, rank) for a in axes)
    check(len(set(result)) == len(result), f"{op}: axes {tuple(axes)} name an axis twice")
    return tuple(result)


def reduced_shape(shape: Sequence[int], axes: Sequence[int], keepdims: bool) -> tuple[int, ...]:
    """``shape`` with ``axes`` removed (or set to 1 with ``keepdims``)."""
    if keepdims:
        return tuple(1 if a in axes else d for a, d in enumerate(shape))
    return tuple(d for a, d in enumerate(shape) if a not in axes)


def _reduce_infer(name: str, dtypes: frozenset[DType]) -> Callable:
    def infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        (x,) = types
        dtype = check_dtypes(name, types, dtypes)
        axes = reduced_axes(name, attrs["axes"], x.rank)
        return [TensorType(reduced_shape(x.shape, axes, attrs["keepdims"]), dtype)]

    return infer


def _reduce_reference(name: str, op: str, reducer: Callable[..., np.ndarray]) -> Callable:
    def reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        (x,) = args
        axes = reduced_axes(name, attrs["axes"], x.ndim)
        work = compute_dtype(DType.from_numpy(x.dtype))
        keyword = {"dtype": work.np} if op in ("add", "mul") else {"initial": identity(op, work)}
        result = reducer(x.astype(work.np), axis=axes, keepdims=attrs["keepdims"], **keyword)
        return [np.asarray(result).astype(x.dtype)]

    return reference


def _reduce_lower(name: str, op: str) -> Callable:
    def lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
              attrs: Mapping[str, Any]) -> list[Stmt]:
        (x,), (out,) = ins, outs
        axes = reduced_axes(name, attrs["axes"], x.type.rank)
        work = compute_dtype(x.dtype)
        kept = [a for a in range(x.type.rank) if a not in axes]

        def body(out_idx: list[Var]) -> list[Stmt]:
            acc = kb.name("acc")
            kept_idx = [out_idx[a] for a in kept] if attrs["keepdims"] else list(out_idx)

            def accumulate(red_idx: list[Var]) -> list[Stmt]:
                position = dict(zip(kept, kept_idx)) | dict(zip(axes, red_idx))
                value = cast(x.load([position[a] for a in range(x.type.rank)]), work)
                return [Assign(acc, binary(op, LocalRef(acc, work), value))]

            return [Local(acc, const(identity(op, work), work)),
                    *kb.loop_nest([x.shape[a] for a in axes], accumulate, hint="r"),
                    out.store(out_idx, LocalRef(acc, work))]

        return kb.loop_nest(out.shape, body)

    return lower


def _kept(ctx: GradContext, node: Node, v: Value) -> Value:
    """``v`` (shaped like the node's output) reshaped to the keepdims shape, ready to broadcast against x."""
    x = node.inputs[0]
    axes = reduced_axes(node.op, node.attrs["axes"], x.type.rank)
    return ctx.reshape(v, reduced_shape(x.shape, axes, True))


def _sum_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    return [ctx.broadcast(_kept(ctx, node, out_grads[0]), node.inputs[0].shape)]


def _prod_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """g times the product of the other elements: y / x, or, at a zero of x, the product of the
    nonzero others when it is the only zero (0 otherwise). No division by zero, so no NaN downstream."""
    (x,), (y,) = node.inputs, node.outputs
    axes = reduced_axes(node.op, node.attrs["axes"], x.type.rank)
    zero = ctx.add("eq", x, ctx.const(0.0, x))
    nonzero = ctx.add("where", zero, ctx.const(1.0, x), x)
    zeros_in_group = ctx.add("reduce_sum", ctx.add("cast", zero, dtype=x.dtype), axes=axes, keepdims=True)
    others_of_zero = grad_where(ctx, ctx.add("eq", zeros_in_group, ctx.const(1.0, x)),
                                ctx.add("reduce_prod", nonzero, axes=axes, keepdims=True))
    others = ctx.add("where", zero, others_of_zero, ctx.add("div", _kept(ctx, node, y), nonzero))
    return [ctx.add("mul", _kept(ctx, node, out_grads[0]), others)]


def _extremum_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """g goes to the elements equal to the result, split evenly between ties (torch.amax / amin)."""
    (x,), (y,) = node.inputs, node.outputs
    axes = reduced_axes(node.op, node.attrs["axes"], x.type.rank)
    hit = ctx.add("eq", x, _kept(ctx, node, y))
    ties = ctx.add("reduce_sum", ctx.add("cast", hit, dtype=x.dtype), axes=axes, keepdims=True)
    return [grad_where(ctx, hit, ctx.add("div", _kept(ctx, node, out_grads[0]), ties))]


REDUCE_GRADS = {"reduce_sum": _sum_grad, "reduce_prod": _prod_grad,
                "reduce_max": _extremum_grad, "reduce_min": _extremum_grad}

for _name, (_dtypes, _op, _reducer, _doc) in REDUCTIONS.items():
    register(OpDef(_name, 1, _reduce_infer(_name, _dtypes), _reduce_reference(_name, _op, _reducer),
                   _reduce_lower(_name, _op), attrs=REDUCE_ATTRS, grad=REDUCE_GRADS[_name], doc=_doc))


def _arg_infer(name: str) -> Callable:
    def infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        (x,) = types
        check_dtypes(name, types, ALL_DTYPES)
        axis = normalize_axis(name, attrs["axis"], x.rank)
        check(x.shape[axis] > 0, f"{name}: cannot reduce axis {attrs['axis']} of shape {x.shape}: it is empty")
        return [TensorType(reduced_shape(x.shape, (axis,), attrs["keepdims"]), DType.I64)]

    return infer


def _arg_reference(name: str, finder: Callable[..., np.ndarray]) -> Callable:
    def reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        (x,) = args
        axis = normalize_axis(name, attrs["axis"], x.ndim)
        if attrs["select_last_index"]:
            index = x.shape[axis] - 1 - finder(np.flip(x, axis), axis=axis)
        else:
            index = finder(x, axis=axis)
        if attrs["keepdims"]:
            index = np.expand_dims(index, axis)
        return [np.asarray(index).astype(np.int64)]

    return reference


def _arg_lower(name: str) -> Callable:
    """Lowering of argmax/argmin: a running best value and its index, updated branch-free."""
    strict, loose = {"argmax": ("gt", "ge"), "argmin": ("lt", "le")}[name]

    def lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
              attrs: Mapping[str, Any]) -> list[Stmt]:
        (x,), (out,) = ins, outs
        axis = normalize_axis(name, attrs["axis"], x.type.rank)
        work = compute_dtype(x.dtype)
        last = attrs["select_last_index"]

        def body(out_idx: list[Var]) -> list[Stmt]:
            outer: list[Expr] = list(out_idx)
            if attrs["keepdims"]:
                del outer[axis]

            def load(i: Expr) -> Expr:
                return cast(x.load(outer[:axis] + [i] + outer[axis:]), work)

            best, best_index, value, won = kb.name("best"), kb.name("best_index"), kb.name("v"), kb.name("wins")
            r = kb.var("r")
            v, b = LocalRef(value, work), LocalRef(best, work)
            wins = binary(loose if last else strict, v, b)
            if work.is_float:  # NaN beats every number; a later NaN beats an earlier one only if ``last``
                v_nan = binary("ne", v, v)
                wins = binary("or", wins, v_nan if last else binary("and", v_nan, binary("eq", b, b)))
            update = [Local(value, load(r)), Local(won, wins),
                      Assign(best_index, select(LocalRef(won, DType.BOOL), r, LocalRef(best_index, DType.I64))),
                      Assign(best, select(LocalRef(won, DType.BOOL), v, b))]
            return [Local(best, load(Const(0))), Local(best_index, Const(0)),
                    Loop(r.name, x.shape[axis] - 1, tuple(update), start=1),
                    out.store(out_idx, LocalRef(best_index, DType.I64))]

        return kb.loop_nest(out.shape, body)

    return lower


for _name, _finder, _doc in (("argmax", np.argmax, "index of the maximum along axis (i64; first NaN wins)"),
                             ("argmin", np.argmin, "index of the minimum along axis (i64; first NaN wins)")):
    register(OpDef(_name, 1, _arg_infer(_name), _arg_reference(_name, _finder), _arg_lower(_name),
                   attrs=ARG_ATTRS, grad=NO_GRAD, doc=_doc))
