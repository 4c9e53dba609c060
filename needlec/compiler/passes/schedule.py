"""Pass ``schedule``: the default schedule every kernel gets.

Two rules, applied to serial loops (loops a lowering already scheduled are
left alone):

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

from needlec.compiler.loops.ir import Kernel, Loop, Program
from needlec.compiler.loops.transforms import is_innermost, unroll, vectorize, walk

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


def schedule(program: Program) -> Program:
    """Apply the default schedule (unroll tiny innermost loops, vectorize long ones) to every kernel."""
    return replace(program, kernels=[schedule_kernel(k) for k in program.kernels])
