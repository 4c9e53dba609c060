"""Pass ``plan_memory``: place arena buffers in one static arena, reusing dead space.

Liveness is measured in kernel order: a buffer is live from the kernel that
first touches it to the last kernel that reads it. Buffers a kernel touches
for the first time are placed (first fit, 64-byte aligned) before buffers
dying at that kernel are released, so a kernel never writes over its own
inputs.
"""
from __future__ import annotations

from dataclasses import replace

from needlec.compiler.loops.ir import Program

ALIGN = 64


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(program: Program) -> Program:
    """Assign arena offsets to every arena buffer and set ``arena_size``."""
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
            nbytes = _align(max(buf.size * buf.dtype.itemsize, 1))
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
