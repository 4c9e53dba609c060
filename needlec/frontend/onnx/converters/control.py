"""Converters for control flow: If, Loop and Scan, inlined into the one static graph.

Bodies are converted with ``Importer.convert_subgraph`` (a nested scope that
sees the outer names). ``If`` with a compile-time condition inlines one
branch; with a run-time condition it inlines both and selects with ``where``,
which needs branch outputs of one shape and dtype. ``Loop`` unrolls: the trip
count must be known at compile time, or the condition must become a constant
false; a run-time condition with a known trip count keeps running the body but
freezes the carried values (``where``) once it turns false, which is exact
when there are no scan outputs (their length would depend on data). ``Scan``
unrolls over the static length of its scan axis (opset 8's batched form runs
it once per batch entry).
"""
from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np
import onnx

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import EMPTY_OPTIONAL, NodeContext, converter
from needlec.frontend.onnx.converters.sequence import const_int, reshape, stack, take, unstack

MAX_UNROLL = 10_000  # a Loop with no trip count must stop (its condition folds to false) within this many steps


def scalar_condition(ctx: NodeContext, value: Any, what: str) -> Value:
    """``value`` (a one-element bool tensor) as a scalar bool value."""
    if not isinstance(value, Value) or value.type.size != 1:
        raise ctx.error(f"{what} must be a one-element tensor")
    if value.dtype is not DType.BOOL:
        value = ctx.add("ne", value, ctx.scalar(0, value))
    return reshape(ctx, value, ())


def known_condition(ctx: NodeContext, value: Value) -> bool | None:
    """The condition's compile-time truth, or None when it is computed at run time."""
    data = ctx.importer.fold(value)
    return None if data is None else bool(np.asarray(data).reshape(()))


def select(ctx: NodeContext, cond: Value, when_true: Any, when_false: Any, index: int) -> Any:
    """``where(cond, when_true, when_false)`` for tensors, element by element for sequences."""
    if when_true is EMPTY_OPTIONAL and when_false is EMPTY_OPTIONAL:
        return EMPTY_OPTIONAL
    if isinstance(when_true, list) and isinstance(when_false, list) and len(when_true) == len(when_false):
        return [select(ctx, cond, a, b, index) for a, b in zip(when_true, when_false)]
    if isinstance(when_true, Value) and isinstance(when_false, Value) \
            and when_true.shape == when_false.shape and when_true.dtype is when_false.dtype:
        return ctx.add("where", cond, when_true, when_false)
    raise ctx.dynamic_error(f"output {index}: with a condition known only at run time both branches must give "
                            f"the same shape and dtype, found {describe(when_true)} and {describe(when_false)}", cond)


def describe(value: Any) -> str:
    if isinstance(value, Value):
        return f"{value.dtype.value}{list(value.shape)}"
    if isinstance(value, list):
        return f"a sequence of {len(value)}"
    return "an empty optional"


@converter("If")
def if_(ctx: NodeContext) -> list[Any]:
    cond = scalar_condition(ctx, ctx.input(0), "the condition")
    known = known_condition(ctx, cond)
    branches = {True: ctx.attr("then_branch"), False: ctx.attr("else_branch")}
    if known is not None:
        return ctx.importer.convert_subgraph(branches[known], [], f"{ctx.where} {branch_name(known)}")
    then_out = ctx.importer.convert_subgraph(branches[True], [], f"{ctx.where} then_branch")
    else_out = ctx.importer.convert_subgraph(branches[False], [], f"{ctx.where} else_branch")
    return [select(ctx, cond, a, b, i) for i, (a, b) in enumerate(zip(then_out, else_out))]


def branch_name(which: bool) -> str:
    return "then_branch" if which else "else_branch"


def stacked_scan_outputs(ctx: NodeContext, per_step: list[list[Any]], body: onnx.GraphProto,
                         first: int) -> list[Value]:
    """Scan outputs of a Loop: each body output ``first + k`` stacked over the iterations on a new axis 0."""
    outputs = []
    for k, info in enumerate(body.output[first:]):
        values = [step[first + k] for step in per_step]
        if not values:
            raise ctx.error(f"scan output {info.name!r} of a loop that runs no iteration has no static shape")
        if not all(isinstance(v, Value) and v.shape == values[0].shape for v in values):
            raise ctx.error(f"scan output {info.name!r} changes shape between iterations")
        outputs.append(stack(ctx, values, 0))
    return outputs


@converter("Loop")
def loop(ctx: NodeContext) -> list[Any]:
    body = ctx.attr("body")
    carried: list[Any] = [ctx.raw_input(i) if ctx.has_input(i) else EMPTY_OPTIONAL
                          for i in range(2, len(ctx.node.input))]
    carried_count = len(carried)
    trip_count = const_int(ctx, 0, "trip count M") if ctx.has_input(0) else None
    cond = scalar_condition(ctx, ctx.input(1), "the condition") if ctx.has_input(1) else ctx.constant(np.bool_(True))
    running: Value | None = None  # the run-time "still looping" flag, once the condition is dynamic
    per_step: list[list[Any]] = []
    step = 0
    while trip_count is None or step < trip_count:
        known = known_condition(ctx, cond) if running is None else None
        if known is False:
            break
        if known is None and running is None:
            if trip_count is None:
                raise ctx.dynamic_error("the loop has no trip count and its condition is computed at run time; needlec "
                                        "unrolls loops and needs a trip count or a compile-time condition", cond)
            running = cond
        if step >= MAX_UNROLL:
            raise ctx.error(f"the loop condition did not become false within {MAX_UNROLL} unrolled iterations")
        iteration = ctx.constant(np.int64(step))
        outputs = ctx.importer.convert_subgraph(body, [iteration, cond, *carried], f"{ctx.where} body step {step}")
        cond = scalar_condition(ctx, outputs[0], "the body's condition output")
        new_carried = outputs[1:1 + carried_count]
        if running is not None:
            new_carried = [select(ctx, running, n, c, i) for i, (n, c) in enumerate(zip(new_carried, carried))]
            running = ctx.add("logical_and", running, cond)
            cond = running
        carried = new_carried
        per_step.append(outputs)
        step += 1
    if running is not None and len(body.output) > 1 + carried_count:
        raise ctx.dynamic_error("scan outputs of a loop whose condition is computed at run time have a "
                                "data-dependent length; needlec needs static shapes", running)
    return carried + stacked_scan_outputs(ctx, per_step, body, 1 + carried_count)


def scan_axes(ctx: NodeContext, name: str, count: int, ranks: Sequence[int]) -> list[int]:
    """Attribute ``name`` (default all 0) as ``count`` axes normalized against ``ranks``."""
    axes = list(ctx.attr(name, [0] * count))
    if len(axes) != count:
        raise ctx.error(f"{name} lists {len(axes)} axes, expected {count}")
    for axis, rank in zip(axes, ranks):
        if not -rank <= axis < rank:
            raise ctx.error(f"{name}: axis {axis} is out of range for rank {rank}")
    return [axis % rank for axis, rank in zip(axes, ranks)]


def run_scan(ctx: NodeContext, body: onnx.GraphProto, states: list[Value], scans: list[Value],
             in_axes: list[int], in_reverse: list[bool], out_reverse: list[bool]) -> list[Value]:
    """One Scan over ``scans`` (each sliced along its axis) with the initial ``states``: the final states,
    then the scan outputs stacked along ``scan_output_axes``."""
    lengths = {x.shape[a] for x, a in zip(scans, in_axes)}
    if len(lengths) != 1:
        raise ctx.error(f"scan inputs have different lengths along their scan axes: {sorted(lengths)}")
    length = lengths.pop()
    ctx.importer.check_unroll(length, ctx.where)  # before slicing: the length may be huge
    slices = [unstack(ctx, x, a)[::-1] if rev else unstack(ctx, x, a)
              for x, a, rev in zip(scans, in_axes, in_reverse)]
    per_step: list[list[Value]] = []
    for t in range(length):
        outputs = ctx.importer.convert_subgraph(body, [*states, *(s[t] for s in slices)],
                                                f"{ctx.where} body step {t}")
        states = outputs[:len(states)]
        per_step.append(outputs[len(states):])
    scan_out_count = len(body.output) - len(states)
    if length == 0 and scan_out_count:
        raise ctx.error("scan outputs of a scan over zero steps have no static shape")
    reverse = (out_reverse + [False] * scan_out_count)[:scan_out_count]
    ranks = [per_step[0][k].type.rank + 1 for k in range(scan_out_count)] if per_step else []
    axes = scan_axes(ctx, "scan_output_axes", scan_out_count, ranks) if scan_out_count else []
    results = []
    for k in range(scan_out_count):
        values = [step[k] for step in per_step]
        results.append(stack(ctx, values[::-1] if reverse[k] else values, axes[k]))
    return states + results


@converter("Scan")
def scan(ctx: NodeContext) -> list[Value]:
    body = ctx.attr("body")
    scan_count = ctx.attr("num_scan_inputs")
    if ctx.opset < 9:
        return scan_batched(ctx, body, scan_count)
    values = [ctx.input(i) for i in range(ctx.num_inputs)]
    states, scans = values[:len(values) - scan_count], values[len(values) - scan_count:]
    in_axes = scan_axes(ctx, "scan_input_axes", scan_count, [x.type.rank for x in scans])
    in_reverse = [bool(d) for d in ctx.attr("scan_input_directions", [0] * scan_count)]
    out_count = len(body.output) - len(states)
    out_reverse = [bool(d) for d in ctx.attr("scan_output_directions", [0] * out_count)]
    return run_scan(ctx, body, states, scans, in_axes, in_reverse, out_reverse)


def scan_batched(ctx: NodeContext, body: onnx.GraphProto, scan_count: int) -> list[Value]:
    """Opset 8's Scan: axis 0 of every input and output is a batch axis, the scan axis is 1."""
    values = [ctx.input(i) for i in range(1, ctx.num_inputs)]
    states, scans = values[:len(values) - scan_count], values[len(values) - scan_count:]
    if ctx.has_input(0):
        lengths = ctx.require_const(0, "sequence_lens")
        full = scans[0].shape[1] if scans else 0
        if not np.all(lengths == full):
            raise ctx.error(f"sequence_lens {lengths.tolist()} must all equal the scan length {full} (padding is "
                            "not supported)")
    reverse = [bool(d) for d in ctx.attr("directions", [0] * scan_count)]
    batch = values[0].shape[0]
    per_batch = []
    for b in range(batch):
        per_batch.append(run_scan(ctx, body, [take(ctx, s, 0, b) for s in states],
                                  [take(ctx, x, 0, b) for x in scans], [0] * scan_count, reverse, []))
    return [stack(ctx, [outputs[k] for outputs in per_batch], 0) for k in range(len(per_batch[0]))]
