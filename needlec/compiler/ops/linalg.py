"""``matmul`` with ``np.matmul`` semantics.

A 1-D left operand is treated as a row (1, K) and a 1-D right operand as a
column (K, 1); the added axis is removed from the result. Leading (batch)
dimensions broadcast. Both operands share one numeric dtype; integers
accumulate in their own dtype (wrapping), f16 accumulates in f32.

The lowering picks its loop order from the sizes and the operands' layouts
(see ``_streams_rows``): dot products with an accumulator local, which the
schedule hook turns into a packed, register-blocked GEMM where it pays
(``loops/gemm.py``), else i-k-j accumulation into the output row when B's
rows are contiguous.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import NUMERIC_DTYPES, DType
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import (BufferOperand, FusedOutput, KernelBuilder, Operand, binary, cast,
                                            compute_dtype, const)
from needlec.compiler.loops.gemm import profitable, schedule_contraction
from needlec.compiler.loops.ir import Assign, Const, Expr, Local, LocalRef, Stmt, Var
from needlec.compiler.ops.common import broadcast_shapes, check_dtypes
from needlec.compiler.ops.registry import OpDef, check, register

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext


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


def _matmul_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                  attrs: Mapping[str, Any]) -> list[Stmt]:
    (a, b), (out,) = ins, outs
    if _streams_rows(a, b, out):
        return _lower_row_streaming(kb, a, b, out)
    return _lower_dot_products(kb, a, b, out)


def _streams_rows(a: Operand, b: Operand, out: BufferOperand) -> bool:
    """Use the i-k-j order when B's rows are contiguous, the output buffer can hold partial sums (also under an
    epilogue) and the product is too small for the packed GEMM schedule (``loops/gemm.py``, which starts from
    the dot-product form).

    Why: the inner j loop then walks B and C with unit stride and carries no
    reduction, so LLVM vectorizes it exactly (no reassociation); f16 outputs
    keep the dot-product order so partial sums stay in f32.
    """
    _, m, k, n = matmul_dims(a.shape, b.shape)
    packed = a.type.rank > 1 and b.type.rank > 1 and profitable(compute_dtype(out.dtype), m, n, k)
    return b.type.rank > 1 and b.shape[-1] > 1 and b.type.strides_or_default[-1] == 1 \
        and compute_dtype(out.dtype) == out.dtype == out.buffer.dtype and not packed


def _operand_index(x: Operand, batch_idx: Sequence[Var], batch: Sequence[int], row: list[Expr],
                   col: list[Expr]) -> list[Expr]:
    return _batch_index(x, batch_idx, batch) + row + col


def _lower_row_streaming(kb: KernelBuilder, a: Operand, b: Operand, out: BufferOperand) -> list[Stmt]:
    """C[i, :] = 0; for k: C[i, :] += A[i, k] * B[k, :] (then C[i, :] = epilogue(C[i, :]) under a FusedOutput)."""
    batch, _, k_extent, n = matmul_dims(a.shape, b.shape)
    outer = out.shape[:-1]
    sums = BufferOperand(out.buffer, out.type)  # the partial sums, in the output's buffer

    def row(idx: list[Var]) -> list[Stmt]:
        batch_idx = idx[:len(batch)]
        i: list[Expr] = list(idx[len(batch):])
        zero = kb.loop_nest([n], lambda j: [sums.store([*idx, *j], const(0, out.dtype))], hint="j")

        def accumulate(k: list[Var]) -> list[Stmt]:
            a_k = a.load(_operand_index(a, batch_idx, batch, i, list(k)))

            def update(j: list[Var]) -> list[Stmt]:
                product = binary("mul", a_k, b.load(_operand_index(b, batch_idx, batch, list(k), list(j))))
                return [sums.store([*idx, *j], binary("add", sums.load([*idx, *j]), product))]

            return kb.loop_nest([n], update, hint="j")

        finish = []
        if isinstance(out, FusedOutput):  # the epilogue over the finished row, while it is in L1
            finish = kb.loop_nest([n], lambda j: [out.store([*idx, *j], sums.load([*idx, *j]))], hint="j")
        return [*zero, *kb.loop_nest([k_extent], accumulate, hint="k"), *finish]

    return kb.loop_nest(outer, row)


def _lower_dot_products(kb: KernelBuilder, a: Operand, b: Operand, out: BufferOperand) -> list[Stmt]:
    """C[i, j] = sum_k A[i, k] * B[k, j] with an accumulator in the compute dtype."""
    batch, _, k_extent, _ = matmul_dims(a.shape, b.shape)
    work = compute_dtype(out.dtype)

    def body(idx: list[Var]) -> list[Stmt]:
        batch_idx = idx[:len(batch)]
        rest = idx[len(batch):]
        i: list[Expr] = [rest.pop(0)] if a.type.rank > 1 else []
        j: list[Expr] = [rest.pop(0)] if b.type.rank > 1 else []
        acc = kb.name("acc")

        def step(k: list[Var]) -> list[Stmt]:
            product = binary("mul", cast(a.load(_operand_index(a, batch_idx, batch, i, list(k))), work),
                             cast(b.load(_operand_index(b, batch_idx, batch, list(k), j)), work))
            return [Assign(acc, binary("add", LocalRef(acc, work), product))]

        return [Local(acc, const(0, work)), *kb.loop_nest([k_extent], step, hint="k"),
                out.store(idx, LocalRef(acc, work))]

    return kb.loop_nest(out.shape, body)


def _swap_last(ctx: GradContext, x: Value) -> Value:
    """The matrix transpose of every matrix in the batch (a view)."""
    rank = x.type.rank
    return ctx.add("permute", x, perm=[*range(rank - 2), rank - 1, rank - 2])


def _matmul_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """dA = g @ B^T, dB = A^T @ g on the operands promoted to matrices, summed over broadcast batch
    dims and reshaped back to 1-D where an operand was 1-D."""
    (a, b), (g,) = node.inputs, out_grads
    batch, m, k, n = matmul_dims(a.shape, b.shape)
    a2 = ctx.reshape(a, (1, k)) if a.type.rank == 1 else a
    b2 = ctx.reshape(b, (k, 1)) if b.type.rank == 1 else b
    g2 = ctx.reshape(g, batch + (m, n))
    da = ctx.sum_to(ctx.add("matmul", g2, _swap_last(ctx, b2)), a2.shape)
    db = ctx.sum_to(ctx.add("matmul", _swap_last(ctx, a2), g2), b2.shape)
    return [ctx.reshape(da, a.shape), ctx.reshape(db, b.shape)]


register(OpDef("matmul", 2, _matmul_infer, _matmul_reference, _matmul_lower, grad=_matmul_grad,
               schedule=schedule_contraction,
               doc="np.matmul: 1-D operands promoted, batch dims broadcast (ints wrap; f16 accumulates in f32)"))
