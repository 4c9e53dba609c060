"""Shape rules and gradient helpers shared by several ops (broadcasting, dtypes, axes)."""
from __future__ import annotations

from typing import TYPE_CHECKING
from collections.abc import Mapping, Sequence

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.ops.registry import check

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext


def broadcast_shapes(op: str, *shapes: Sequence[int]) -> tuple[int, ...]:
    """NumPy broadcasting of ``shapes``; ShapeError naming ``op`` if incompatible."""
    rank = max((len(s) for s in shapes), default=0)
    result: list[int] = []
    for axis in range(rank):
        dims = {s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0}
        dims.discard(1)
        check(len(dims) <= 1, f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} "
                              f"do not broadcast (axis {axis - rank})")
        result.append(dims.pop() if dims else 1)
    return tuple(result)


def check_dtypes(op: str, types: Sequence[TensorType], allowed: frozenset[DType], same: bool = True) -> DType:
    """Check every input's dtype is in ``allowed`` (and equal, if ``same``); return the first."""
    for i, t in enumerate(types):
        check(t.dtype in allowed, f"{op}: input {i} has dtype {t.dtype.value}, expected one of "
                                  f"{', '.join(sorted(d.value for d in allowed))}")
    if same and types:
        found = {t.dtype for t in types}
        check(len(found) == 1, f"{op}: inputs must share one dtype, found "
                               f"{', '.join(t.dtype.value for t in types)}")
    return types[0].dtype


def normalize_axis(op: str, axis: int, rank: int) -> int:
    """``axis`` in ``[-rank, rank)`` mapped to ``[0, rank)``."""
    check(-rank <= axis < rank, f"{op}: axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


# -- helpers shared by gradient rules -------------------------------------------------------------
# Each takes the rule's ``GradContext`` and builds registered primitives only, so gradients of
# gradients work.

def grad_where(ctx: GradContext, cond: Value, value: Value) -> Value:
    """``cond ? value : 0`` (broadcasting): route a gradient by a mask."""
    return ctx.add("where", cond, value, ctx.const(0.0, value))


def grad_flip(ctx: GradContext, x: Value, axes: Sequence[int]) -> Value:
    """``x`` reversed along ``axes`` (a negative-step slice view)."""
    if not axes:
        return x
    return ctx.add("slice", x, starts=[x.shape[a] - 1 for a in axes], stops=[-x.shape[a] - 1 for a in axes],
                   steps=[-1] * len(axes), axes=list(axes))


def grad_place(ctx: GradContext, x: Value, placements: Mapping[int, tuple[int, int, int]]) -> Value:
    """Zeros with ``x`` written in, as one ``pad`` node.

    ``placements`` maps an axis to ``(begin, total, step)``: along it the
    result has ``total`` elements and element ``i`` of ``x`` lands at
    ``begin + i * step``; what lands outside ``[0, total)`` is dropped.
    """
    rank = x.type.rank
    pads, interior = [0] * (2 * rank), [0] * rank
    for axis, (begin, total, step) in placements.items():
        n = x.shape[axis]
        spread = (n - 1) * step + 1 if n else 0
        end = total - begin - spread
        if begin >= total or begin + spread <= 0:  # nothing lands inside: crop it all, pad to total
            begin, end = -spread, total
        pads[axis], pads[rank + axis] = begin, end
        interior[axis] = step - 1 if n > 1 else 0
    if not any(pads) and not any(interior):
        return x
    return ctx.add("pad", x, pads=pads, interior=interior if any(interior) else [])
