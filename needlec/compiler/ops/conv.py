"""``conv2d``: grouped 2-D convolution (cross-correlation, as ONNX Conv and PyTorch) without bias.

``x`` is (N, C, H, W) and ``w`` is (O, C / groups, kH, kW); output channel
``oc`` of group ``g = oc // (O / groups)`` reads input channels
``g * C / groups ...``. ``pads`` are (top, left, bottom, right). Float dtypes
only; f16 accumulates in f32. Bias is a separate ``add``.

The lowering loops over n, (group,) output channel, oh, ow with an
accumulator local and inner ic / kh / kw loops; ``If`` guards skip padded
positions, so nothing is read out of bounds. Where the GEMM schedule pays,
its hook runs this nest as an implicit GEMM (``loops/gemm.py``: output
channels are rows, output positions columns, the packing of the input
patches is im2col); otherwise (depthwise and other thin groups) oh and ow
run in border / interior / border ranges (``Window.regions``), and only the
borders check padding, so the interior's ow loop vectorizes.

Both gradients are conv2d again (plus views and pads), so double backward
needs nothing more: dx is the transposed convolution and dw correlates x with
g, the batch playing the channel role.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import FLOAT_DTYPES, DType
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import (BufferOperand, KernelBuilder, Operand, add, binary, cast, compute_dtype,
                                            const, mul)
from needlec.compiler.loops.gemm import profitable, schedule_contraction
from needlec.compiler.loops.ir import Assign, Const, Expr, Local, LocalRef, Loop, Stmt, Var
from needlec.compiler.ops.common import check_dtypes
from needlec.compiler.ops.composites import conv_transpose_kernel
from needlec.compiler.ops.registry import Attr, OpDef, check, register
from needlec.compiler.ops.window import Window, spread_to_input, window_geometry, window_loops

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext


def _geometry(x: Sequence[int], w: Sequence[int], attrs: Mapping[str, Any]) -> Window:
    """Validate shapes, channels and groups; return the sliding window over (H, W)."""
    check(len(x) == 4, f"conv2d: input x must be (N, C, H, W), found shape {tuple(x)}")
    check(len(w) == 4, f"conv2d: weight w must be (O, C/groups, kH, kW), found shape {tuple(w)}")
    groups = attrs["groups"]
    channels, out_channels = x[1], w[0]
    check(groups >= 1, f"conv2d: groups must be >= 1, found {groups}")
    check(channels % groups == 0, f"conv2d: input channels {channels} are not divisible by groups {groups}")
    check(out_channels % groups == 0,
          f"conv2d: output channels {out_channels} (w.shape[0]) are not divisible by groups {groups}")
    check(w[1] == channels // groups, f"conv2d: weight {tuple(w)} has {w[1]} input channels per group, "
                                      f"expected C/groups = {channels}/{groups} = {channels // groups}")
    check(len(attrs["strides"]) == 2 and len(attrs["dilations"]) == 2 and len(attrs["pads"]) == 4,
          f"conv2d: expected 2 strides, 2 dilations and 4 pads, found strides {attrs['strides']}, "
          f"dilations {attrs['dilations']}, pads {attrs['pads']}")
    return window_geometry("conv2d", x[2:], w[2:], attrs["strides"], attrs["pads"], attrs["dilations"], False)


def _conv_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, w = types
    dtype = check_dtypes("conv2d", types, FLOAT_DTYPES)
    window = _geometry(x.shape, w.shape, attrs)
    return [TensorType((x.shape[0], w.shape[0], *window.out_dims), dtype)]


def _conv_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x, w = args
    window = _geometry(x.shape, w.shape, attrs)
    work = compute_dtype(DType.from_numpy(x.dtype)).np
    (n, _, _, _), (o, cg, kh, kw), groups = x.shape, w.shape, attrs["groups"]
    oh, ow = window.out_dims
    (sh, sw), (dh, dw) = window.strides, window.dilations
    padded = np.pad(x.astype(work), [(0, 0), (0, 0), *zip(window.pads_begin, window.pads_end)])
    weights = w.astype(work).reshape(groups, o // groups, cg, kh, kw)
    result = np.zeros((n, groups, o // groups, oh, ow), work)
    for i in range(kh):
        for j in range(kw):
            patch = padded[:, :, i * dh:i * dh + oh * sh:sh, j * dw:j * dw + ow * sw:sw]
            result += np.einsum("ngchw,goc->ngohw", patch.reshape(n, groups, cg, oh, ow), weights[..., i, j])
    return [result.reshape(n, o, oh, ow).astype(x.dtype)]


def _conv_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                attrs: Mapping[str, Any]) -> list[Stmt]:
    (x, w), (out,) = ins, outs
    window = _geometry(x.shape, w.shape, attrs)
    groups = attrs["groups"]
    n, o, oh, ow = out.shape
    per_group_in, per_group_out = w.shape[1], o // groups
    work = compute_dtype(out.dtype)
    # with one group the channel loop is plain; otherwise split it into (group, channel in group)
    shape = [n, o, oh, ow] if groups == 1 else [n, groups, per_group_out, oh, ow]

    def body(idx: list[Var], guarded: Sequence[bool] | None = None) -> list[Stmt]:
        group: Expr = Const(0) if groups == 1 else idx[1]
        batch, oc, spatial = idx[0], add(mul(group, Const(per_group_out)), idx[-3]), idx[-2:]
        acc = kb.name("acc")

        def channel(ic: list[Var]) -> list[Stmt]:
            c = add(mul(group, Const(per_group_in)), ic[0])

            def accumulate(positions: list[Expr], offsets: list[Var]) -> list[Stmt]:
                product = binary("mul", cast(x.load([batch, c, *positions]), work),
                                 cast(w.load([oc, ic[0], *offsets]), work))
                return [Assign(acc, binary("add", LocalRef(acc, work), product))]

            return window_loops(kb, window, spatial, accumulate, guarded)

        return [Local(acc, const(0, work)), *kb.loop_nest([per_group_in], channel, hint="c"),
                out.store([batch, oc, *spatial], LocalRef(acc, work))]

    if profitable(work, per_group_out, oh * ow, per_group_in * math.prod(window.kernel)):
        return kb.loop_nest(shape, body)  # the dot-product form the GEMM schedule packs (``loops/gemm.py``)

    def split_spatial(outer: list[Var]) -> list[Stmt]:
        """The output rows and columns in border / interior / border ranges: only borders check padding."""
        stmts: list[Stmt] = []
        for row_start, rows, row_guarded in window.regions(0):
            row = kb.var("i")
            columns: list[Stmt] = []
            for col_start, cols, col_guarded in window.regions(1):
                col = kb.var("i")
                columns.append(Loop(col.name, cols, tuple(body([*outer, row, col], (row_guarded, col_guarded))),
                                    start=col_start))
            stmts.append(Loop(row.name, rows, tuple(columns), start=row_start))
        return stmts

    return kb.loop_nest(shape[:-2], split_spatial)


def _grad_input(ctx: GradContext, g: Value, w: Value, window: Window, groups: int) -> Value:
    """dx: the transposed convolution, a stride-1 conv2d of g spread by the strides and padded, with the
    transposed convolution's kernel (flipped, channel axes swapped within each group: (O, C/G) -> (C, O/G))."""
    return ctx.add("conv2d", spread_to_input(ctx, g, window), conv_transpose_kernel(ctx, w, groups), groups=groups,
                   dilations=list(window.dilations))


def _grad_weight(ctx: GradContext, g: Value, x: Value, window: Window, groups: int,
                 kernel: Sequence[int]) -> Value:
    """dw: a conv2d correlating x with g, the batch acting as channels (strides and dilations trade
    places): x as (C/G, G * N, H, W) with groups G, g as (O, N, oH, oW); the result (C/G, O, ...) is
    transposed and cut to the kernel extent."""
    n, channels, h, w = x.shape
    group_channels = channels // groups
    batched = ctx.add("permute", ctx.reshape(x, (n, groups, group_channels, h, w)), perm=[2, 1, 0, 3, 4])
    images = ctx.reshape(batched, (group_channels, groups * n, h, w))
    filters = ctx.add("permute", g, perm=[1, 0, 2, 3])
    pads = [*window.pads_begin, *window.pads_end]
    full = ctx.add("conv2d", images, filters, groups=groups, strides=list(window.dilations),
                   dilations=list(window.strides), pads=pads)
    return ctx.add("slice", ctx.add("permute", full, perm=[1, 0, 2, 3]), starts=[0, 0], stops=list(kernel),
                   steps=[1, 1], axes=[2, 3])


def _conv_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    (x, w), (g,) = node.inputs, out_grads
    if x.type.size == 0:
        return [ctx.zeros(x), ctx.zeros(w)]
    window = _geometry(x.shape, w.shape, node.attrs)
    groups = node.attrs["groups"]
    return [_grad_input(ctx, g, w, window, groups), _grad_weight(ctx, g, x, window, groups, w.shape[2:])]


register(OpDef(
    "conv2d", 2, _conv_infer, _conv_reference, _conv_lower, grad=_conv_grad, schedule=schedule_contraction,
    attrs={"strides": Attr("ints", (1, 1)), "pads": Attr("ints", (0, 0, 0, 0)),
           "dilations": Attr("ints", (1, 1)), "groups": Attr("int", 1)},
    doc="grouped 2-D convolution of x (N,C,H,W) with w (O,C/groups,kH,kW); ONNX pads (top,left,bottom,right)"))
