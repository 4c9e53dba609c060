"""Converters for ONNX linear algebra, reductions, softmax-like ops, CumSum/CumProd, TopK and the two losses.

Everything decomposes into needlec primitives: Gemm and Einsum into permutes,
reshapes and ``matmul``; the Reduce* family into ``reduce_*`` with
elementwise pre/post steps; Softmax, LogSoftmax and Hardmax along one axis
(opsets before 13 first flatten the input to 2-D at ``axis``); Det into one
``gather`` of every permutation's diagonal (Leibniz's formula, for small
static matrices); the losses into ``gather_elements`` / ``gather`` and masks.
Axes given as inputs must be compile-time constants.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ops import composites as C
from needlec.frontend.onnx.context import NodeContext, converter
from needlec.frontend.onnx.converters.elementwise import LOW_PRECISION, widened
from needlec.frontend.onnx.converters.tensor import cast, const_ints, normalize_axes, permute, reshape

# -- matrix products ------------------------------------------------------------------


@converter("MatMul")
def matmul(ctx: NodeContext) -> list[Value]:
    """MatMul: np.matmul semantics (1-D operands promoted, batch dimensions broadcast)."""
    return [ctx.add("matmul", ctx.input(0), ctx.input(1))]


@converter("Gemm")
def gemm(ctx: NodeContext) -> list[Value]:
    """Gemm: alpha * A' @ B' + beta * C, A' and B' optionally transposed, C optional and broadcast."""
    a, b, c = ctx.input(0), ctx.input(1), ctx.optional_input(2)
    for name, value in (("A", a), ("B", b)):
        if value.type.rank != 2:
            raise ctx.error(f"input {name} has rank {value.type.rank}, expected 2")
    if ctx.attr("transA", 0):
        a = permute(ctx, a, [1, 0])
    if ctx.attr("transB", 0):
        b = permute(ctx, b, [1, 0])
    y = ctx.add("matmul", a, b)
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if alpha != 1.0:
        y = ctx.add("mul", y, ctx.scalar(alpha, y))
    if c is not None and beta != 0.0:
        y = ctx.add("add", y, c if beta == 1.0 else ctx.add("mul", c, ctx.scalar(beta, c)))
    return [y]


@converter("Det")
def det(ctx: NodeContext) -> list[Value]:
    """Det of (..., n, n) by Leibniz's formula: one gather of every permutation's entries (n <= 6)."""
    x = ctx.input(0)
    if x.type.rank < 2 or x.shape[-1] != x.shape[-2]:
        raise ctx.error(f"input has shape {x.shape}, expected (..., n, n)")
    n = x.shape[-1]
    if not 1 <= n <= 6:
        raise ctx.error(f"Det is supported for 1 <= n <= 6 (n! terms), found n = {n}")
    perms = list(itertools.permutations(range(n)))
    flat_index = np.asarray([[row * n + col for row, col in enumerate(p)] for p in perms], np.int64)
    signs = np.asarray([_permutation_sign(p) for p in perms])
    flat = reshape(ctx, x, [*x.shape[:-2], n * n])
    terms = ctx.add("reduce_prod", ctx.add("gather", flat, ctx.constant(flat_index), axis=-1), axes=[-1])
    return [ctx.add("reduce_sum", ctx.add("mul", terms, ctx.constant(signs, x.dtype)), axes=[-1])]


def _permutation_sign(perm: Sequence[int]) -> int:
    """+1 for an even permutation, -1 for an odd one (by counting inversions)."""
    inversions = sum(1 for i, j in itertools.combinations(range(len(perm)), 2) if perm[i] > perm[j])
    return -1 if inversions % 2 else 1


# -- Einsum ---------------------------------------------------------------------------

class _Term:
    """One einsum operand: a value whose axes carry one label each (distinct after taking diagonals)."""

    def __init__(self, value: Value, labels: str) -> None:
        self.value, self.labels = value, labels

    def size(self, label: str) -> int:
        return self.value.shape[self.labels.index(label)]


def _parse_einsum(ctx: NodeContext, equation: str, ranks: Sequence[int]) -> tuple[list[str], str]:
    """Input label strings and the output's, with ``...`` replaced by fresh labels (Greek letters, which
    ONNX equations cannot contain), right-aligned as broadcasting aligns axes."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ctx.error(f"equation {equation!r} names {len(terms)} operands, given {len(ranks)}")
    for term in terms + [rhs]:
        if not all(c.isascii() and c.isalpha() for c in term.replace("...", "", 1)):
            raise ctx.error(f"equation term {term!r} must be letters with at most one '...'")
    ellipsis_rank = max([r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t], default=0)
    fresh = "".join(chr(0x3B1 + i) for i in range(ellipsis_rank))
    expanded = []
    for term, rank in zip(terms, ranks):
        named = len(term.replace("...", ""))
        if "..." in term:
            term = term.replace("...", fresh[ellipsis_rank - (rank - named):])
        elif named != rank:
            raise ctx.error(f"equation term {term!r} names {named} axes, the operand has rank {rank}")
        expanded.append(term)
    if arrow:
        output = rhs.replace("...", fresh)
    else:
        counts = {c: "".join(expanded).count(c) for c in set("".join(expanded))}
        output = fresh + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in fresh))
    return expanded, output


def _take_diagonals(ctx: NodeContext, term: _Term) -> _Term:
    """A term with each repeated label reduced to its diagonal (strided slice of the merged axes)."""
    value, labels = term.value, term.labels
    while len(set(labels)) != len(labels):
        label = next(c for c in labels if labels.count(c) > 1)
        first, second = labels.index(label), labels.index(label, labels.index(label) + 1)
        rest = [a for a in range(len(labels)) if a not in (first, second)]
        value = permute(ctx, value, rest + [first, second])
        n = value.shape[-1]
        merged = reshape(ctx, value, [*value.shape[:-2], n * n])
        value = ctx.add("slice", merged, starts=[0], stops=[n * n], steps=[n + 1], axes=[-1])
        labels = "".join(labels[a] for a in rest) + label
    return _Term(value, labels)


def _sum_out(ctx: NodeContext, term: _Term, keep: set[str]) -> _Term:
    """Sum away the labels of ``term`` not in ``keep``."""
    axes = [a for a, c in enumerate(term.labels) if c not in keep]
    if not axes:
        return term
    value = ctx.add("reduce_sum", term.value, axes=axes)
    return _Term(value, "".join(c for c in term.labels if c in keep))


def _contract(ctx: NodeContext, left: _Term, right: _Term, keep: set[str]) -> _Term:
    """Multiply two terms, summing shared labels not in ``keep``: one batched matmul."""
    shared = [c for c in left.labels if c in right.labels]
    batch = [c for c in shared if c in keep]
    summed = [c for c in shared if c not in keep]
    left_only = [c for c in left.labels if c not in shared]
    right_only = [c for c in right.labels if c not in shared]
    for label in summed:  # a summed label of size 1 on one side broadcasts to the other's size
        size = max(left.size(label), right.size(label))
        left, right = _broadcast_label(ctx, left, label, size), _broadcast_label(ctx, right, label, size)

    def arrange(term: _Term, order: list[str], rows: list[str], cols: list[str]) -> Value:
        value = permute(ctx, term.value, [term.labels.index(c) for c in order])
        batch_dims = [term.size(c) for c in batch]
        return reshape(ctx, value, [*batch_dims, math.prod(term.size(c) for c in rows),
                                    math.prod(term.size(c) for c in cols)])

    a = arrange(left, batch + left_only + summed, left_only, summed)
    b = arrange(right, batch + summed + right_only, summed, right_only)
    product = ctx.add("matmul", a, b)
    dims = [*product.shape[:len(batch)], *(left.size(c) for c in left_only), *(right.size(c) for c in right_only)]
    return _Term(reshape(ctx, product, dims), "".join(batch + left_only + right_only))


def _broadcast_label(ctx: NodeContext, term: _Term, label: str, size: int) -> _Term:
    if term.size(label) == size:
        return term
    shape = [size if c == label else term.size(c) for c in term.labels]
    return _Term(ctx.add("broadcast_to", term.value, shape=shape), term.labels)


@converter("Einsum")
def einsum(ctx: NodeContext) -> list[Value]:
    """Einsum: diagonals, then sums of private labels, then pairwise batched matmuls, then a permute."""
    inputs = ctx.inputs()
    labels, output = _parse_einsum(ctx, ctx.attr("equation"), [v.type.rank for v in inputs])
    terms = [_take_diagonals(ctx, _Term(v, t)) for v, t in zip(inputs, labels)]
    for i, term in enumerate(terms):
        others = set(output).union(*(t.labels for j, t in enumerate(terms) if j != i))
        terms[i] = _sum_out(ctx, term, others)
    result = terms[0]
    for k, term in enumerate(terms[1:], start=1):
        keep = set(output).union(*(t.labels for t in terms[k + 1:]))
        result = _contract(ctx, result, term, keep)
    result = _sum_out(ctx, result, set(output))
    missing = set(output) - set(result.labels)
    if missing:
        raise ctx.error(f"output labels {''.join(sorted(missing))} appear in no input")
    return [permute(ctx, result.value, [result.labels.index(c) for c in output])]


# -- reductions -----------------------------------------------------------------------

# Reduce* op -> the opset from which its axes are an input instead of an attribute
AXES_INPUT_SINCE = {"ReduceSum": 13}
REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


def _reduce_axes(ctx: NodeContext, rank: int) -> list[int]:
    """The axes a Reduce* node reduces: all when none are given, none with ``noop_with_empty_axes``."""
    if ctx.opset < AXES_INPUT_SINCE.get(ctx.node.op_type, 18):
        axes = [int(a) for a in ctx.attr("axes", [])]
    else:
        axes = const_ints(ctx, 1, "axes") if ctx.has_input(1) else []
    if not axes:
        return [] if ctx.attr("noop_with_empty_axes", 0) else list(range(rank))
    axes = normalize_axes(ctx, axes, rank)
    if len(set(axes)) != len(axes):
        raise ctx.error(f"axes {axes} name an axis twice")
    return axes


def _float_work(ctx: NodeContext, x: Value) -> Value:
    """``x`` in the dtype reductions needing exp, log or sqrt compute in: f64 for integers, f32 for f16/bf16."""
    if x.dtype in LOW_PRECISION:
        return cast(ctx, x, DType.F32)
    return x if x.dtype.is_float else cast(ctx, x, DType.F64)


@converter(*REDUCE_OPS)
def reduce(ctx: NodeContext) -> list[Value]:
    """The Reduce* family over constant axes (keepdims defaults to 1)."""
    x = ctx.input(0)
    axes = _reduce_axes(ctx, x.type.rank)
    keep = bool(ctx.attr("keepdims", 1))
    op = ctx.node.op_type

    def total(value: Value, kind: str = "sum", keepdims: bool = keep) -> Value:
        return ctx.add(f"reduce_{kind}", value, axes=axes, keepdims=keepdims)

    if op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"):
        return [total(x, op[len("Reduce"):].lower())]
    if op == "ReduceMean":
        count = math.prod(x.shape[a] for a in axes)
        # the mean of an empty extent is 0 (its sum over 1), as ONNX Runtime; NumPy gives NaN
        return [ctx.add("div", total(x), ctx.scalar(max(count, 1), x))]
    if op == "ReduceL1":
        return [total(ctx.add("abs", x))]
    if op == "ReduceSumSquare":
        return [total(ctx.add("mul", x, x))]
    work = _float_work(ctx, x)
    if op == "ReduceL2":
        result = ctx.add("sqrt", total(ctx.add("mul", work, work)))
    elif op == "ReduceLogSum":
        result = ctx.add("log", total(work))
    else:  # ReduceLogSumExp, shifted by the finite maximum so exp cannot overflow
        peak = total(work, "max", keepdims=True)
        infinite = ctx.add("isinf", peak)
        peak = ctx.add("where", infinite, ctx.scalar(0, peak), peak)
        shifted = ctx.add("log", total(ctx.add("exp", ctx.add("sub", work, peak))))
        result = ctx.add("add", shifted, peak if keep else reshape(ctx, peak, shifted.shape))
    return [cast(ctx, result, x.dtype)]


@converter("ArgMax", "ArgMin")
def arg_extremum(ctx: NodeContext) -> list[Value]:
    """ArgMax/ArgMin along ``axis`` (keepdims defaults to 1; ``select_last_index`` picks the last tie)."""
    op = "argmax" if ctx.node.op_type == "ArgMax" else "argmin"
    return [ctx.add(op, ctx.input(0), axis=ctx.attr("axis", 0), keepdims=bool(ctx.attr("keepdims", 1)),
                    select_last_index=bool(ctx.attr("select_last_index", 0)))]


# -- scans and selection --------------------------------------------------------------

@converter("CumSum", "CumProd")
def cumulative(ctx: NodeContext) -> list[Value]:
    """CumSum / CumProd along a constant ``axis`` input, with ``exclusive`` and ``reverse``."""
    x = ctx.input(0)
    axis_data = const_ints(ctx, 1, "axis")
    if len(axis_data) != 1:
        raise ctx.error(f"axis must hold one value, found {len(axis_data)}")
    axis = normalize_axes(ctx, axis_data, x.type.rank, "axis")[0]
    kind = "sum" if ctx.node.op_type == "CumSum" else "prod"
    return [ctx.add("cumulative", x, kind=kind, axis=axis, exclusive=bool(ctx.attr("exclusive", 0)),
                    reverse=bool(ctx.attr("reverse", 0)))]


@converter("TopK")
def top_k(ctx: NodeContext) -> list[Value]:
    """TopK: k is an attribute before opset 10 and a constant input from it on; values and i64 indices."""
    x = ctx.input(0)
    if ctx.opset < 10:
        k = int(ctx.attr("k"))
    else:
        if not ctx.has_input(1):
            raise ctx.error("input 1 (K) is required but missing")
        k_data = const_ints(ctx, 1, "K")
        if len(k_data) != 1:
            raise ctx.error(f"K must hold one value, found {len(k_data)}")
        k = k_data[0]
    axis = normalize_axes(ctx, [ctx.attr("axis", -1)], x.type.rank, "axis")[0]
    if not 0 <= k <= x.shape[axis]:
        raise ctx.error(f"K = {k} is outside [0, {x.shape[axis]}] for axis {axis} of shape {x.shape}")
    values, indices = ctx.add_node("topk", x, k=k, axis=axis, largest=bool(ctx.attr("largest", 1)),
                                   sorted=bool(ctx.attr("sorted", 1)))
    return [values, indices]


# -- softmax family -------------------------------------------------------------------

def _along_axis(ctx: NodeContext, fn: Callable[[Value, int], Value]) -> Value:
    """Apply ``fn(x, axis)``; before opset 13 ONNX flattens x to 2-D at ``axis`` (default 1) first."""
    x = ctx.input(0)
    rank = x.type.rank
    if ctx.opset >= 13:
        return fn(x, normalize_axes(ctx, [ctx.attr("axis", -1)], rank, "axis")[0])
    axis = normalize_axes(ctx, [ctx.attr("axis", 1)], rank, "axis")[0]
    matrix = reshape(ctx, x, [math.prod(x.shape[:axis]), math.prod(x.shape[axis:])])
    return reshape(ctx, fn(matrix, 1), x.shape)


def _hardmax(ctx: NodeContext, x: Value, axis: int) -> Value:
    """1 at the first maximum along ``axis``, 0 elsewhere."""
    best = ctx.add("argmax", x, axis=axis, keepdims=True)
    positions = ctx.add("iota", shape=list(x.shape), axis=axis, dtype=DType.I64)
    return cast(ctx, ctx.add("eq", positions, best), x.dtype)


@converter("Softmax")
def softmax(ctx: NodeContext) -> list[Value]:
    """Softmax along ``axis`` (``composites.softmax``: a row of only -inf gives NaN, as ONNX Runtime)."""
    return [_along_axis(ctx, lambda x, axis: widened(ctx, lambda v: C.softmax(ctx, v, axis), x))]


@converter("LogSoftmax")
def log_softmax(ctx: NodeContext) -> list[Value]:
    """LogSoftmax along ``axis``."""
    return [_along_axis(ctx, lambda x, axis: widened(ctx, lambda v: C.log_softmax(ctx, v, axis), x))]


@converter("Hardmax")
def hardmax(ctx: NodeContext) -> list[Value]:
    """Hardmax along ``axis``."""
    return [_along_axis(ctx, lambda x, axis: _hardmax(ctx, x, axis))]


# -- losses ---------------------------------------------------------------------------

def _nll(ctx: NodeContext, log_prob: Value, target: Value, weight: Value | None) -> Value:
    """NegativeLogLikelihoodLoss of log-probabilities (N, C, d...) at integer targets (N, d...)."""
    if log_prob.type.rank < 2 or target.shape != (log_prob.shape[0], *log_prob.shape[2:]):
        raise ctx.error(f"input shape {log_prob.shape} and target shape {target.shape} do not match "
                        "(expected (N, C, d1, ...) and (N, d1, ...))")
    reduction = ctx.attr("reduction", "mean")
    if reduction not in ("none", "sum", "mean"):
        raise ctx.error(f"reduction must be none, sum or mean, found {reduction!r}")
    ignore_index = ctx.attr("ignore_index", None)
    index = reshape(ctx, target, [target.shape[0], 1, *target.shape[1:]])
    picked = ctx.add("gather_elements", log_prob, index, axis=1)
    loss = ctx.add("neg", reshape(ctx, picked, target.shape))
    weights = None if weight is None else ctx.add("gather", weight, target, axis=0)
    if weights is not None:
        loss = ctx.add("mul", loss, weights)
    if ignore_index is not None:  # a select, not a product: an ignored -inf log-probability must give 0
        kept = ctx.add("ne", target, ctx.scalar(ignore_index, target))
        zero = ctx.scalar(0, loss)
        loss = ctx.add("where", kept, loss, zero)
        weights = ctx.add("where", kept, weights if weights is not None else ctx.scalar(1, loss), zero)
    if reduction == "none":
        return loss
    every_axis = list(range(loss.type.rank))
    total = ctx.add("reduce_sum", loss, axes=every_axis)
    if reduction == "sum":
        return total
    if weights is None:
        return ctx.add("div", total, ctx.scalar(loss.type.size, total))
    return ctx.add("div", total, ctx.add("reduce_sum", weights, axes=every_axis))


@converter("NegativeLogLikelihoodLoss")
def negative_log_likelihood_loss(ctx: NodeContext) -> list[Value]:
    """NegativeLogLikelihoodLoss(input, target, weight?) with ``reduction`` and ``ignore_index``."""
    return [_nll(ctx, ctx.input(0), ctx.input(1), ctx.optional_input(2))]


@converter("SoftmaxCrossEntropyLoss")
def softmax_cross_entropy_loss(ctx: NodeContext) -> list[Value | None]:
    """SoftmaxCrossEntropyLoss: LogSoftmax over axis 1, then NegativeLogLikelihoodLoss; log_prob optional."""
    scores, weight = ctx.input(0), ctx.optional_input(2)
    if scores.type.rank < 2:
        raise ctx.error(f"scores have shape {scores.shape}, expected (N, C, d1, ...)")
    work = DType.F32 if scores.dtype in LOW_PRECISION else scores.dtype  # f16/bf16 compute in f32
    log_prob = C.log_softmax(ctx, cast(ctx, scores, work), 1)
    loss = _nll(ctx, log_prob, ctx.input(1), None if weight is None else cast(ctx, weight, work))
    return [cast(ctx, loss, scores.dtype), cast(ctx, log_prob, scores.dtype) if ctx.has_output(1) else None]
