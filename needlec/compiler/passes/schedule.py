"""Pass ``schedule``: each kernel's op schedule, else the default schedule.

A kernel whose op (that of its last source that is not elementwise, else
of its last source: elementwise nodes fuse in before and after it) has an
``OpDef.schedule`` hook is scheduled by that hook, given the op's
attributes, the target and the names of the constant buffers. Why: tiling policies depend on the op
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

3. On a target that runs parallel loops, each outermost loop of a kernel
   whose nest runs at least ``PARALLEL_MIN_ITERATIONS`` innermost
   iterations, and whose iterations touch disjoint memory
   (``transforms.iterations_disjoint``), is marked ``parallel``; outermost
   loops of one iteration (a batch of one) are first replaced by their body.
   Why: the cores share the outermost loop's iterations in contiguous
   chunks, each iteration computing exactly what the serial loop does, so
   results do not depend on the thread count; below the threshold waking the
   team costs more than the work. The IR never depends on the host's core
   count (the team's size is chosen at run time).

Tiling is per op: matmul and conv2d kernels in the dot-product form are
packed, register-blocked GEMMs (``loops/gemm.py``) through their hook.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.loops.ir import Const, Kernel, Loop, LoopKind, Program, Stmt, Storage, StorageKind
from needlec.compiler.loops.transforms import (is_innermost, iterations_disjoint, parallel, substitute, unroll,
                                               vectorize, walk)
from needlec.compiler.ops.registry import all_ops

if TYPE_CHECKING:
    from needlec.compiler.target import Target

UNROLL_EXTENT = 4
VECTORIZE_EXTENT = 8
PARALLEL_MIN_ITERATIONS = 1 << 19  # innermost iterations (~0.3 ms of work) before waking a team of threads pays


def _serial_innermost(kernel: Kernel) -> list[Loop]:
    return [n for n in walk(kernel) if isinstance(n, Loop) and n.kind == "serial" and is_innermost(n)]


def schedule_kernel(kernel: Kernel, target: Target | None = None) -> Kernel:
    """``kernel`` with its tiny innermost loops unrolled, its long innermost loops marked ``vectorize`` and, where
    ``target`` runs parallel loops, its large outermost loops marked ``parallel``."""
    for loop in _serial_innermost(kernel):
        if loop.extent <= UNROLL_EXTENT:
            kernel = unroll(kernel, loop.var)
    for loop in _serial_innermost(kernel):
        if loop.extent >= VECTORIZE_EXTENT:
            kernel = vectorize(kernel, loop.var)
    if target is not None and LoopKind.PARALLEL in target.loop_kinds:
        kernel = parallelize_outermost(kernel)
    return kernel


def _innermost_iterations(stmts: tuple[Stmt, ...]) -> int:
    """How many times the innermost statements of ``stmts`` run (loops multiply, a straight statement counts 1)."""
    return sum(s.extent * _innermost_iterations(s.body) if isinstance(s, Loop) else 1 for s in stmts)


def _peel_unit_loops(kernel: Kernel) -> Kernel:
    """``kernel`` with each outermost loop of one iteration replaced by its body, its variable fixed."""
    while any(isinstance(s, Loop) and s.extent == 1 and s.kind == LoopKind.SERIAL for s in kernel.body):
        body: list[Stmt] = []
        for s in kernel.body:
            if isinstance(s, Loop) and s.extent == 1 and s.kind == LoopKind.SERIAL:
                body.extend(substitute(s.body, {s.var: Const(s.start, DType.I64)}))
            else:
                body.append(s)
        kernel = replace(kernel, body=tuple(body))
    return kernel


def parallelize_outermost(kernel: Kernel) -> Kernel:
    """Mark each large outermost loop with disjoint iterations ``parallel`` (rule 3 of the module docstring)."""
    candidate = _peel_unit_loops(kernel)
    chosen = [s for s in candidate.body if isinstance(s, Loop) and s.kind == LoopKind.SERIAL and s.extent > 1
              and _innermost_iterations((s,)) >= PARALLEL_MIN_ITERATIONS and iterations_disjoint(s)]
    for loop in chosen:
        candidate = parallel(candidate, loop.var)
    return candidate if chosen else kernel


def _schedule_one(kernel: Kernel, target: Target | None, invariant: frozenset[str]) -> Kernel:
    """``kernel`` scheduled by its op's ``schedule`` hook, or by ``schedule_kernel`` when the op has none or the
    hook declines (returns None)."""
    ops = all_ops()
    # the kernel's op: its last source that is not elementwise (elementwise nodes fuse in around it), else its last
    anchors = [s for s in kernel.sources if s.op in ops and not ops[s.op].is_elementwise] or list(kernel.sources)
    source = anchors[-1] if anchors else None
    opdef = ops.get(source.op) if source is not None else None  # variable updates have no OpDef
    scheduled = None
    if source is not None and opdef is not None and opdef.schedule is not None:
        scheduled = opdef.schedule(kernel, dict(source.attrs), target, invariant)
    return scheduled if scheduled is not None else schedule_kernel(kernel, target)


def schedule(program: Program, target: Target | None = None) -> Program:
    """Schedule every kernel for ``target``: by its op's ``schedule`` hook when it has one, else the default.

    Buffers a hook adds to a kernel (packing scratch) become arena buffers of the program, live in that kernel
    only, so the memory plan counts them.
    """
    invariant = frozenset(name for name, s in program.storage.items() if s.kind is StorageKind.CONSTANT)
    kernels = [_schedule_one(k, target, invariant) for k in program.kernels]
    buffers, storage = dict(program.buffers), dict(program.storage)
    for kernel in kernels:
        for buffer in kernel.buffers:
            if buffer.name not in buffers:
                buffers[buffer.name] = buffer
                storage[buffer.name] = Storage(StorageKind.ARENA)
    return replace(program, kernels=kernels, buffers=buffers, storage=storage)
