"""``window_reduce`` (max / sum pooling) and the sliding-window geometry it shares with ``conv2d``.

The kernel covers the last ``len(kernel)`` axes; every leading axis (batch,
channels) is carried through. ``pads`` use ONNX order (all begins, then all
ends). Output extents follow ONNX MaxPool: ``floor`` (or ``ceil`` with
``ceil_mode``) of ``(in + pads - span) / stride + 1``, where ``span`` is the
dilated kernel extent; in ceil mode a window that would start inside the end
padding is dropped (ONNX / PyTorch). Padded positions are skipped by max and
count as 0 in sum; a window lying wholly in padding yields the identity.
Integer sums wrap; f16 accumulates in f32.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import NUMERIC_DTYPES, DType
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import KernelBuilder, Operand, all_of, binary, cast, const, linear_index
from needlec.compiler.loops.ir import Assign, Const, Expr, If, Local, LocalRef, Loop, Stmt, Var
from needlec.compiler.ops.common import check_dtypes, compute_dtype
from needlec.compiler.ops.reduce import identity
from needlec.compiler.ops.registry import Attr, OpDef, check, register

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
                 body: Callable[[list[Expr], list[Var]], list[Stmt]]) -> list[Stmt]:
    """Loops over the kernel offsets of the window at ``out_idx``.

    ``body(input positions, kernel offsets)`` runs only where every position
    lies inside the input: each axis whose positions can leave the input gets
    an ``If`` around the loops inside it, so nothing reads out of bounds.
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
        if begin > 0:
            bounds.append(binary("ge", position, Const(0)))
        if (out - 1) * stride - begin + (window.kernel[axis] - 1) * dilation >= n:
            bounds.append(binary("lt", position, Const(n)))
        if bounds:
            inner = [If(all_of(bounds), tuple(inner))]
        return [Loop(k.name, window.kernel[axis], tuple(inner))]

    return level(0)


def _geometry(shape: Sequence[int], attrs: Mapping[str, Any]) -> Window:
    kernel = attrs["kernel"]
    check(1 <= len(kernel) <= len(shape), f"window_reduce: kernel {kernel} needs 1..{len(shape)} "
                                          f"axes for an input of shape {tuple(shape)}")
    return window_geometry("window_reduce", shape[len(shape) - len(kernel):], kernel, attrs["strides"],
                           attrs["pads"], attrs["dilations"], attrs["ceil_mode"])


def _window_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    (x,) = types
    check(attrs["kind"] in KINDS, f"window_reduce: kind {attrs['kind']!r} is not one of {sorted(KINDS)}")
    dtype = check_dtypes("window_reduce", types, NUMERIC_DTYPES)
    window = _geometry(x.shape, attrs)
    return [TensorType(x.shape[:x.rank - len(window.kernel)] + window.out_dims, dtype)]


def _window_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    (x,) = args
    window = _geometry(x.shape, attrs)
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
        part = padded[(..., *index)]
        result = np.maximum(result, part) if attrs["kind"] == "max" else result + part
    return [result.astype(x.dtype)]


def _window_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[Operand],
                  attrs: Mapping[str, Any]) -> list[Stmt]:
    (x,), (out,) = ins, outs
    window = _geometry(x.shape, attrs)
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


register(OpDef(
    "window_reduce", 1, _window_infer, _window_reference, _window_lower,
    attrs={"kind": Attr("str"), "kernel": Attr("ints"), "strides": Attr("ints", ()), "pads": Attr("ints", ()),
           "dilations": Attr("ints", ()), "ceil_mode": Attr("bool", False)},
    doc="max or sum over sliding windows of the trailing len(kernel) axes (pooling; ONNX pads and ceil_mode)"))
