"""Pass ``schedule``: each kernel's op schedule, else the default schedule.

A kernel whose op (the op of its last source: the node whose result it
stores) has an ``OpDef.schedule`` hook is scheduled by that hook, given the
op's attributes and the target. Why: tiling policies depend on the op
(matmul, conv) and on the machine.

Every other kernel gets the default: two rules, applied to serial loops
(loops a lowering already scheduled are left alone):

1. An innermost loop of at most ``UNROLL_EXTENT`` iterations is fully
   unrolled. Why: for tiny loops (a 3x3 convolution window, a short trailing
   dimension) the loop control costs as much as the work; unrolled, the
   constant offsets fold into the addressing and LLVM's SLP vectorizer sees
   straight-line code. Only loops that contain no loops are unrolled, so code
   grows at most ``UNROLL_EXTENT`` times.
2. Then an innermost loop of at least ``VECTORIZE_EXTENT`` iterations is
   marked ``vectorize``. Why: it records the SIMD intent in the IR, for dumps
   and for backends that map it explicitly. The CPU backend still emits it as
   a serial loop and lets LLVM's loop vectorizer (O3) do the SIMD work, which
   pays off only when a loop has several vectors' worth of iterations.

Tiling (split and reorder for cache blocking) is not part of this default.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from needlec.compiler.loops.ir import Kernel, Loop, Program
from needlec.compiler.loops.transforms import is_innermost, unroll, vectorize, walk
from needlec.compiler.ops.registry import all_ops

if TYPE_CHECKING:
    from needlec.compiler.target import Target

UNROLL_EXTENT = 4
VECTORIZE_EXTENT = 8


def _serial_innermost(kernel: Kernel) -> list[Loop]:
    return [n for n in walk(kernel) if isinstance(n, Loop) and n.kind == "serial" and is_innermost(n)]


def schedule_kernel(kernel: Kernel) -> Kernel:
    """``kernel`` with its tiny innermost loops unrolled and its long innermost loops marked ``vectorize``."""
    for loop in _serial_innermost(kernel):
        if loop.extent <= UNROLL_EXTENT:
            kernel = unroll(kernel, loop.var)
    for loop in _serial_innermost(kernel):
        if loop.extent >= VECTORIZE_EXTENT:
            kernel = vectorize(kernel, loop.var)
    return kernel


def _schedule_one(kernel: Kernel, target: Target | None) -> Kernel:
    """``kernel`` scheduled by its op's ``schedule`` hook, or by ``schedule_kernel`` when the op has none."""
    source = kernel.sources[-1] if kernel.sources else None
    opdef = all_ops().get(source.op) if source is not None else None  # variable updates have no OpDef
    if source is None or opdef is None or opdef.schedule is None:
        return schedule_kernel(kernel)
    return opdef.schedule(kernel, dict(source.attrs), target)


def schedule(program: Program, target: Target | None = None) -> Program:
    """Schedule every kernel for ``target``: by its op's ``schedule`` hook when it has one, else the default."""
    return replace(program, kernels=[_schedule_one(k, target) for k in program.kernels])
