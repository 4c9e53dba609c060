"""Converters for ONNX sequences and optionals, and the tensor <-> list helpers other converters share.

An ONNX sequence lives in the importer's environment as a Python list of
graph values, an empty optional as ``EMPTY_OPTIONAL``; both exist only at compile
time, so every position, index and length must be known then (sequence
lengths always are). ``stack``/``unstack``/``take``/``reshape`` are the
building blocks of the recurrent, attention and control-flow converters too.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np

from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import EMPTY_OPTIONAL, NodeContext, converter


# -- tensor helpers ---------------------------------------------------------------------
def reshape(ctx: NodeContext, x: Value, shape: Sequence[int]) -> Value:
    """``x`` reshaped to ``shape``, copied first when it is a non-dense view (reshape aliases only dense data)."""
    if tuple(shape) == x.shape:
        return x
    if not x.type.is_dense:
        x = ctx.add("copy", x)
    return ctx.add("reshape", x, shape=tuple(shape))


def narrow(ctx: NodeContext, x: Value, axis: int, start: int, stop: int, step: int = 1) -> Value:
    """``x[start:stop:step]`` along ``axis`` (a view)."""
    return ctx.add("slice", x, starts=(start,), stops=(stop,), steps=(step,), axes=(axis,))


def take(ctx: NodeContext, x: Value, axis: int, index: int) -> Value:
    """``x``'s slice at ``index`` along ``axis``, that axis removed."""
    axis %= x.type.rank
    part = narrow(ctx, x, axis, index, index + 1)
    return reshape(ctx, part, x.shape[:axis] + x.shape[axis + 1:])


def unsqueeze(ctx: NodeContext, x: Value, axis: int) -> Value:
    """``x`` with a new size-1 axis at ``axis`` (counted in the result's rank)."""
    axis %= x.type.rank + 1
    return reshape(ctx, x, x.shape[:axis] + (1,) + x.shape[axis:])


def unstack(ctx: NodeContext, x: Value, axis: int) -> list[Value]:
    """The slices of ``x`` along ``axis``, that axis removed."""
    return [take(ctx, x, axis, i) for i in range(x.shape[axis % x.type.rank])]


def stack(ctx: NodeContext, values: Sequence[Value], axis: int) -> Value:
    """``np.stack(values, axis)``."""
    parts = [unsqueeze(ctx, v, axis) for v in values]
    return parts[0] if len(parts) == 1 else ctx.add("concat", *parts, axis=axis % (values[0].type.rank + 1))


def concat(ctx: NodeContext, values: Sequence[Value], axis: int) -> Value:
    """``np.concatenate(values, axis)`` (a single value is returned as is)."""
    return values[0] if len(values) == 1 else ctx.add("concat", *values, axis=axis)


def const_int(ctx: NodeContext, i: int, what: str) -> int:
    """Input ``i`` as one compile-time integer."""
    data = ctx.require_const(i, what)
    if data.size != 1:
        raise ctx.error(f"input {i} ({what}) must hold one value, found shape {data.shape}")
    return int(data.reshape(()))


# -- sequences --------------------------------------------------------------------------
def sequence_input(ctx: NodeContext, i: int) -> list[Value]:
    """Input ``i`` as a sequence (a list of tensor values)."""
    value = ctx.raw_input(i)
    if not isinstance(value, list):
        raise ctx.error(f"input {i} ({ctx.node.input[i]!r}) is a tensor, expected a sequence")
    return value


def sequence_position(ctx: NodeContext, i: int, length: int, inserting: bool) -> int:
    """Input ``i`` as a position in a sequence of ``length`` (negative counts from the back)."""
    position = const_int(ctx, i, "sequence position")
    if not -length <= position < (length + 1 if inserting else length):
        raise ctx.error(f"position {position} is out of range for a sequence of length {length}")
    return position + length if position < 0 else position


@converter("SequenceEmpty")
def sequence_empty(ctx: NodeContext) -> list[Any]:
    return [[]]


@converter("SequenceConstruct")
def sequence_construct(ctx: NodeContext) -> list[Any]:
    return [ctx.inputs()]


@converter("SequenceInsert")
def sequence_insert(ctx: NodeContext) -> list[Any]:
    sequence = list(sequence_input(ctx, 0))
    position = sequence_position(ctx, 2, len(sequence), True) if ctx.has_input(2) else len(sequence)
    sequence.insert(position, ctx.input(1))
    return [sequence]


@converter("SequenceErase")
def sequence_erase(ctx: NodeContext) -> list[Any]:
    sequence = list(sequence_input(ctx, 0))
    position = sequence_position(ctx, 1, len(sequence), False) if ctx.has_input(1) else len(sequence) - 1
    if not sequence:
        raise ctx.error("cannot erase from an empty sequence")
    del sequence[position]
    return [sequence]


@converter("SequenceAt")
def sequence_at(ctx: NodeContext) -> list[Any]:
    sequence = sequence_input(ctx, 0)
    return [sequence[sequence_position(ctx, 1, len(sequence), False)]]


@converter("SequenceLength")
def sequence_length(ctx: NodeContext) -> list[Any]:
    return [ctx.constant(np.int64(len(sequence_input(ctx, 0))))]


@converter("ConcatFromSequence")
def concat_from_sequence(ctx: NodeContext) -> list[Any]:
    sequence = sequence_input(ctx, 0)
    if not sequence:
        raise ctx.error("cannot concatenate an empty sequence")
    axis = ctx.attr("axis")
    if ctx.attr("new_axis", 0):
        return [stack(ctx, sequence, axis)]
    return [concat(ctx, sequence, axis % sequence[0].type.rank)]


@converter("SplitToSequence")
def split_to_sequence(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    axis = ctx.attr("axis", 0) % x.type.rank
    dim = x.shape[axis]
    if not ctx.has_input(1):
        parts = unstack(ctx, x, axis)
        return [parts if not ctx.attr("keepdims", 1) else [unsqueeze(ctx, p, axis) for p in parts]]
    split = ctx.require_const(1, "split")
    if split.ndim == 0:
        size = int(split)
        if size <= 0:
            raise ctx.error(f"split size must be positive, found {size}")
        sizes = [size] * (dim // size) + ([dim % size] if dim % size else [])
    else:
        sizes = [int(s) for s in split]
        if sum(sizes) != dim or any(s < 0 for s in sizes):
            raise ctx.error(f"split sizes {sizes} do not add up to dimension {dim} of axis {axis}")
    starts = np.cumsum([0] + sizes)
    return [[narrow(ctx, x, axis, int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]]


@converter("SequenceMap")
def sequence_map(ctx: NodeContext) -> list[Any]:
    body = ctx.attr("body")
    sequences = [ctx.raw_input(i) for i in range(ctx.num_inputs)]
    lengths = {len(s) for s in sequences if isinstance(s, list)}
    if not isinstance(sequences[0], list) or len(lengths) != 1:
        raise ctx.error("the first input must be a sequence and all sequence inputs must have equal lengths")
    results: list[list[Value]] = [[] for _ in ctx.node.output]
    for position in range(lengths.pop()):
        args = [s[position] if isinstance(s, list) else s for s in sequences]
        for collected, value in zip(results, ctx.importer.convert_subgraph(body, args, ctx.where)):
            collected.append(value)
    return results


# -- optionals --------------------------------------------------------------------------
@converter("Optional")
def optional(ctx: NodeContext) -> list[Any]:
    return [ctx.raw_input(0) if ctx.has_input(0) else EMPTY_OPTIONAL]


@converter("OptionalHasElement")
def optional_has_element(ctx: NodeContext) -> list[Any]:
    present = ctx.has_input(0) and ctx.raw_input(0) is not EMPTY_OPTIONAL
    return [ctx.constant(np.bool_(present))]


@converter("OptionalGetElement")
def optional_get_element(ctx: NodeContext) -> list[Any]:
    value = ctx.raw_input(0) if ctx.has_input(0) else EMPTY_OPTIONAL
    if value is EMPTY_OPTIONAL:
        raise ctx.error("the optional input is empty")
    return [value]

