"""Pass ``precompute_constants``: loop nests at a kernel's head that read only constants run at compile time.

Such a nest computes the same values on every call: the GEMM schedule packs a
constant weight whole this way, into the panel layout its micro-kernel reads
(``loops/gemm.py``). The pass runs the nest once with the reference
interpreter and makes what it writes a constant of the program in that
layout, so no run-time packing (or transpose) of a weight remains; the nest
leaves the kernel. A nest qualifies when it is one of the kernel's leading
statements, loads only constant buffers and stores only to arena buffers that
no other statement of the program touches.

Constants that no kernel reads any more (a weight now read only through its
packed copy) leave the program, so artifacts embed each weight once.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from needlec.compiler.loops.interpreter import run_statements
from needlec.compiler.loops.ir import Kernel, Load, Program, Stmt, Storage, StorageKind, Store
from needlec.compiler.loops.transforms import statements, walk

if TYPE_CHECKING:
    from needlec.compiler.target import Target


def _loaded(node: Stmt | tuple[Stmt, ...]) -> set[str]:
    """The buffers ``node`` loads from."""
    return {n.buffer.name for n in walk(node) if isinstance(n, Load)}


def _stored(stmts: tuple[Stmt, ...]) -> set[str]:
    """The buffers ``stmts`` store to."""
    return {s.buffer.name for s in statements(stmts) if isinstance(s, Store)}


def _foldable_head(kernel: Kernel, program: Program, constants: set[str], owners: dict[str, int]) -> int:
    """How many of ``kernel``'s leading statements read only constants and write only arena buffers that only
    they write, in this kernel alone."""
    count = 0
    written: set[str] = set()
    for stmt in kernel.body:
        loads, stores = _loaded(stmt), _stored((stmt,))
        if not (loads and stores and loads <= constants
                and all(program.storage[b].kind is StorageKind.ARENA and owners[b] == 1 for b in stores)):
            break
        written |= stores
        count += 1
    if written & _stored(kernel.body[count:]):
        return 0
    return count


def precompute_constants(program: Program, target: Target | None = None) -> Program:
    """Run each kernel's leading constant-only nests at compile time; what they write becomes constants."""
    del target  # the values do not depend on the target (its layout choices are already in the nests)
    constants = {n for n, s in program.storage.items() if s.kind is StorageKind.CONSTANT}
    owners: dict[str, int] = {}
    for kernel in program.kernels:
        for buffer in kernel.buffers:
            owners[buffer.name] = owners.get(buffer.name, 0) + 1
    data, storage = dict(program.constants), dict(program.storage)
    kernels = []
    for kernel in program.kernels:
        head = _foldable_head(kernel, program, constants, owners)
        if not head:
            kernels.append(kernel)
            continue
        written = _stored(kernel.body[:head])
        memory = {b.name: np.array(data[b.name], b.dtype.np).reshape(-1) if b.name in constants
                  else np.full(b.size, np.nan if b.dtype.is_float else 0, b.dtype.np)
                  for b in kernel.buffers if b.name in constants or b.name in written}
        run_statements(replace(kernel, body=kernel.body[:head]), memory)
        for name in sorted(written):
            data[name], storage[name] = memory[name], Storage(StorageKind.CONSTANT)
        body = kernel.body[head:]
        used = _loaded(body) | _stored(body)
        kernels.append(replace(kernel, buffers=tuple(b for b in kernel.buffers if b.name in used), body=body))
    read = {b.name for k in kernels for b in k.buffers}
    unread = {n for n, s in storage.items() if s.kind is StorageKind.CONSTANT and n not in read}
    return replace(program, kernels=kernels,
                   buffers={n: b for n, b in program.buffers.items() if n not in unread},
                   storage={n: s for n, s in storage.items() if n not in unread},
                   constants={n: d for n, d in data.items() if n not in unread})
