"""Pass ``plan_memory``: place arena buffers in one static arena, reusing dead space.

Liveness is measured in kernel order: a buffer is live from the kernel that
first touches it to the last kernel that reads it. Buffers a kernel touches
for the first time are placed (first fit, aligned to the target's ``alignment``) before buffers
dying at that kernel are released, so a kernel never writes over its own
inputs.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from needlec.compiler.loops.ir import Program

if TYPE_CHECKING:
    from needlec.compiler.target import Target

ALIGN = 64  # bytes, without a target: a cache line, and the widest (AVX-512) vector


def plan_memory(program: Program, target: Target | None = None) -> Program:
    """Assign arena offsets to every arena buffer (aligned to the target's alignment) and set ``arena_size``."""
    align = target.alignment if target is not None else ALIGN
    arena = {name for name, where in program.storage.items() if where.kind == "arena"}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, kernel in enumerate(program.kernels):
        for buf in kernel.buffers:
            if buf.name in arena:
                first.setdefault(buf.name, i)
                last[buf.name] = i

    live: dict[str, tuple[int, int]] = {}  # name -> (offset, nbytes)
    storage = dict(program.storage)
    size = 0
    for i, kernel in enumerate(program.kernels):
        for buf in kernel.buffers:
            if first.get(buf.name) != i:
                continue
            nbytes = -(-max(buf.size * buf.dtype.itemsize, 1) // align) * align
            offset = 0
            for start, length in sorted(live.values()):
                if start - offset >= nbytes:
                    break
                offset = max(offset, start + length)
            live[buf.name] = (offset, nbytes)
            storage[buf.name] = replace(storage[buf.name], offset=offset)
            size = max(size, offset + nbytes)
        for name in [n for n in live if last[n] == i]:
            del live[name]
    for name in arena - set(first):  # never touched by a kernel: give it a slot of its own
        storage[name] = replace(storage[name], offset=size)
    program.storage = storage
    program.arena_size = size
    return program
