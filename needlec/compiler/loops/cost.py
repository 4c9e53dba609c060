"""Static work estimates of a kernel: floating-point operations and bytes moved, for the profiler's rates.

Both are counted once from the loop IR, at compile time, without running
anything:

* ``flops``: every ``Unary`` and ``Binary`` on floating-point operands
  (arithmetic, math functions and comparisons alike) counts one operation
  each time its statement runs, that is times the trip counts of the loops
  around it. A matmul's ``acc + a * b`` in an M x N x K nest gives 2*M*N*K.
  Index arithmetic (i64), casts, selects, loads and stores count nothing. Of
  an ``if``, the costlier branch counts (an upper bound).
* ``bytes``: per buffer the kernel touches, its elements read or written at
  most once each: ``min(buffer size, executed loads and stores of it)``
  elements times the element size. A kernel that reads a slice of a larger
  buffer counts the elements it reads, a kernel that reads a buffer many
  times (a matmul operand) counts the buffer once. Caches, padding and
  repeated reads that miss are not modelled.

They are estimates: rates computed from them (GFLOP/s, GB/s) compare kernels
and runs, not hardware counters.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from needlec.compiler.loops.ir import Assign, Binary, Cast, Expr, If, Kernel, Load, Local, Loop, Select, Stmt, Store, \
    Unary


@dataclass(frozen=True)
class KernelCost:
    """The static estimate of one kernel call: floating-point operations and bytes read or written."""

    flops: int
    bytes: int


def kernel_cost(kernel: Kernel) -> KernelCost:
    """``kernel``'s ``KernelCost`` (see the module docstring for what is counted)."""
    accesses: Counter[str] = Counter()
    flops = _stmts(kernel.body, 1, accesses)
    sizes = {b.name: (b.size, b.dtype.itemsize) for b in kernel.buffers}
    moved = sum(min(size, accesses[name]) * itemsize for name, (size, itemsize) in sizes.items())
    return KernelCost(flops, moved)


def _stmts(stmts: Sequence[Stmt], trips: int, accesses: Counter[str]) -> int:
    """The flops of ``stmts`` run ``trips`` times; their loads and stores are added to ``accesses``."""
    total = 0
    for stmt in stmts:
        if isinstance(stmt, Loop):
            total += _stmts(stmt.body, trips * stmt.extent, accesses)
        elif isinstance(stmt, Store):
            accesses[stmt.buffer.name] += trips
            total += trips * (_expr(stmt.index, trips, accesses) + _expr(stmt.value, trips, accesses))
        elif isinstance(stmt, Local):
            total += trips * _expr(stmt.init, trips, accesses)
        elif isinstance(stmt, Assign):
            total += trips * _expr(stmt.value, trips, accesses)
        elif isinstance(stmt, If):
            total += trips * _expr(stmt.cond, trips, accesses)
            total += max(_stmts(stmt.then, trips, accesses), _stmts(stmt.orelse, trips, accesses))
        else:
            raise TypeError(f"unknown loop-IR statement {stmt!r}")
    return total


def _expr(expr: Expr, trips: int, accesses: Counter[str]) -> int:
    """The flops of one evaluation of ``expr``; its loads, run ``trips`` times, are added to ``accesses``."""
    if isinstance(expr, Load):
        accesses[expr.buffer.name] += trips
        return _expr(expr.index, trips, accesses)
    if isinstance(expr, Unary):
        return int(expr.x.dtype.is_float) + _expr(expr.x, trips, accesses)
    if isinstance(expr, Binary):
        return int(expr.a.dtype.is_float) + _expr(expr.a, trips, accesses) + _expr(expr.b, trips, accesses)
    if isinstance(expr, Select):
        return sum(_expr(x, trips, accesses) for x in (expr.cond, expr.a, expr.b))
    if isinstance(expr, Cast):
        return _expr(expr.x, trips, accesses)
    return 0  # Const, Var, LocalRef
