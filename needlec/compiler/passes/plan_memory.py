"""Pass ``plan_memory``: place arena buffers in one static arena, reusing dead space.

Liveness is measured in kernel order: a buffer is live from the kernel that
first touches it to the last kernel that reads it. Buffers a kernel touches
for the first time are placed (first fit, aligned to the target's ``alignment``) before buffers
dying at that kernel are released, so a kernel never writes over its own
inputs, with one exception: *in place*. A kernel's output takes the place of
an input of the same size that dies there when every element of the input is
read only to compute the output element at the same position (an
elementwise kernel: each store ``y[e] = f(..., x[e], ...)`` reads ``x`` at
exactly its own index, and nothing else reads ``x`` or ``y``). Why: the
element is read before it is overwritten, in each iteration and in the
interpreter's statement-at-once order alike, and the result stays in the
cache lines the input just brought in; chains of elementwise kernels (and
backward passes) then need one buffer where they needed two. First fit in
another order can fragment the arena more, so the pass plans both ways and
keeps the in-place plan unless its arena is larger.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from needlec.compiler.loops.ir import If, Kernel, Load, Loop, Program, Stmt, Store
from needlec.compiler.loops.transforms import statements, walk

if TYPE_CHECKING:
    from needlec.compiler.target import Target

ALIGN = 64  # bytes, without a target: a cache line, and the widest (AVX-512) vector


def _stores(stmts: tuple[Stmt, ...]) -> list[Store] | None:
    """The stores of a body of loops, ifs (on loop variables) and stores; None when it has other statements."""
    found = list(statements(stmts))
    loaded_conditions = (s for s in found if isinstance(s, If) and any(isinstance(n, Load) for n in walk(s.cond)))
    if any(not isinstance(s, (Loop, If, Store)) for s in found) or any(loaded_conditions):
        return None
    return [s for s in found if isinstance(s, Store)]


def _in_place(kernel: Kernel, source: str, result: str) -> bool:
    """Whether ``kernel`` may write ``result`` over ``source``: every store writes ``result``, and each reads
    ``source`` only at its own index (module docstring)."""
    stores = _stores(kernel.body)
    if not stores or any(s.buffer.name != result for s in stores):
        return False
    for store in stores:
        loads = [n for n in walk(store) if isinstance(n, Load)]
        if any(n.buffer.name == result or (n.buffer.name == source and n.index != store.index) for n in loads):
            return False
    return any(n.buffer.name == source for s in stores for n in walk(s.value) if isinstance(n, Load))


def _place(program: Program, align: int, first: dict[str, int], last: dict[str, int],
           in_place: bool) -> tuple[dict[str, int], int]:
    """Each touched arena buffer's offset, first fit in kernel order (``in_place``: outputs over dying inputs where
    ``_in_place`` allows), and the arena's size."""
    live: dict[str, tuple[int, int]] = {}  # name -> (offset, nbytes)
    offsets: dict[str, int] = {}
    size = 0
    taken: set[str] = set()  # buffers an output was placed over (at most one output each)
    for i, kernel in enumerate(program.kernels):
        for buf in kernel.buffers:
            if first.get(buf.name) != i:
                continue
            nbytes = -(-max(buf.size * buf.dtype.itemsize, 1) // align) * align
            dying = [b for b in kernel.buffers if in_place and b.name in live and last[b.name] == i
                     and b.name not in taken and b.size == buf.size and b.dtype.itemsize == buf.dtype.itemsize]
            source = next((b.name for b in dying if _in_place(kernel, b.name, buf.name)), None)
            if source is not None:
                offset = live[source][0]
                taken.add(source)
            else:
                offset = 0
                for start, length in sorted(live.values()):
                    if start - offset >= nbytes:
                        break
                    offset = max(offset, start + length)
            live[buf.name] = (offset, nbytes)
            offsets[buf.name] = offset
            size = max(size, offset + nbytes)
        for name in [n for n in live if last[n] == i]:
            del live[name]
    return offsets, size


def plan_memory(program: Program, target: Target | None = None) -> Program:
    """Assign arena offsets to every arena buffer (aligned to the target's alignment) and set ``arena_size``.

    The plan with in-place outputs is kept unless it needs a larger arena than the plan without (first fit
    in another order can fragment the arena more).
    """
    align = target.alignment if target is not None else ALIGN
    arena = {name for name, where in program.storage.items() if where.kind == "arena"}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, kernel in enumerate(program.kernels):
        for buf in kernel.buffers:
            if buf.name in arena:
                first.setdefault(buf.name, i)
                last[buf.name] = i
    offsets, size = min((_place(program, align, first, last, in_place) for in_place in (True, False)),
                        key=lambda plan: plan[1])
    storage = dict(program.storage)
    for name, offset in offsets.items():
        storage[name] = replace(storage[name], offset=offset)
    for name in arena - set(first):  # never touched by a kernel: give it a slot of its own
        storage[name] = replace(storage[name], offset=size)
    program.storage = storage
    program.arena_size = size
    return program
