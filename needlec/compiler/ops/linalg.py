"""``matmul`` with ``np.matmul`` semantics.

A 1-D left operand is treated as a row (1, K) and a 1-D right operand as a
column (K, 1); the added axis is removed from the result. Leading (batch)
dimensions broadcast. Both operands share one numeric dtype; integers
accumulate in their own dtype (wrapping), f16 accumulates in f32.

The lowering is the plain schedule later tiling passes start from: loops over
batch, i and j (j innermost, so stores walk the contiguous output), an
accumulator local, and an inner k loop.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import NUMERIC_DTYPES, DType
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import KernelBuilder, Operand, binary, cast, const
from needlec.compiler.loops.ir import Assign, Const, Expr, Local, LocalRef, Stmt, Var
from needlec.compiler.ops.common import broadcast_shapes, check_dtypes, compute_dtype
from needlec.compiler.ops.registry import OpDef, check, register


def matmul_dims(a: Sequence[int], b: Sequence[int]) -> tuple[tuple[int, ...], int, int, int]:
    """(batch shape, M, K, N) of ``a @ b``; ShapeError on rank 0 or mismatched contraction."""
    check(len(a) >= 1 and len(b) >= 1,
          f"matmul: operands need rank >= 1, found shapes {tuple(a)} and {tuple(b)}")
    a2 = (1, *a) if len(a) == 1 else tuple(a)
    b2 = (*b, 1) if len(b) == 1 else tuple(b)
    check(a2[-1] == b2[-2], f"matmul: contraction dimensions differ: {tuple(a)} @ {tuple(b)} "
                            f"(K={a2[-1]} vs K={b2[-2]})")
    return broadcast_shapes("matmul batch dims", a2[:-2], b2[:-2]), a2[-2], a2[-1], b2[-1]


def _matmul_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    a, b = types
    dtype = check_dtypes("matmul", types, NUMERIC_DTYPES)
    batch, m, _, n = matmul_dims(a.shape, b.shape)
    shape = batch + ((m,) if a.rank > 1 else ()) + ((n,) if b.rank > 1 else ())
    return [TensorType(shape, dtype)]


def _matmul_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    a, b = args
    work = compute_dtype(DType.from_numpy(a.dtype)).np
    return [np.asarray(np.matmul(a.astype(work), b.astype(work))).astype(a.dtype)]


def _batch_index(x: Operand, batch_idx: Sequence[Var], batch: Sequence[int]) -> list[Expr]:
    """The operand's own batch indices for an output batch index (size-1 dims broadcast)."""
    own = x.shape[:-2]
    lead = len(batch) - len(own)
    return [Const(0) if d == 1 else batch_idx[lead + i] for i, d in enumerate(own)]


def _matmul_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[Operand],
                  attrs: Mapping[str, Any]) -> list[Stmt]:
    (a, b), (out,) = ins, outs
    batch, _, k_extent, _ = matmul_dims(a.shape, b.shape)
    work = compute_dtype(out.dtype)

    def body(idx: list[Var]) -> list[Stmt]:
        batch_idx = idx[:len(batch)]
        rest = idx[len(batch):]
        i: Expr = rest.pop(0) if a.type.rank > 1 else Const(0)
        j: Expr = rest.pop(0) if b.type.rank > 1 else Const(0)
        acc = kb.name("acc")

        def step(k: list[Var]) -> list[Stmt]:
            a_idx = _batch_index(a, batch_idx, batch) + ([i] if a.type.rank > 1 else []) + k
            b_idx = _batch_index(b, batch_idx, batch) + k + ([j] if b.type.rank > 1 else [])
            product = binary("mul", cast(a.load(a_idx), work), cast(b.load(b_idx), work))
            return [Assign(acc, binary("add", LocalRef(acc, work), product))]

        return [Local(acc, const(0, work)), *kb.loop_nest([k_extent], step, hint="k"),
                out.store(idx, LocalRef(acc, work))]

    return kb.loop_nest(out.shape, body)


register(OpDef("matmul", 2, _matmul_infer, _matmul_reference, _matmul_lower,
               doc="np.matmul: 1-D operands promoted, batch dims broadcast (ints wrap; f16 accumulates in f32)"))
