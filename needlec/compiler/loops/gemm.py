"""The packed, register-blocked GEMM schedule of contractions: matmul, and conv2d as implicit GEMM.

A kernel is a *contraction* when it has the dot-product form the matmul and
conv2d lowerings produce: a perfect nest of serial loops over the output
holding

    acc = 0
    <reduction loops and If guards, one statement each> acc = acc + x * y
    out[index] = acc            (cast to out's dtype, or an epilogue of acc: bias, residual, activation)

``recognize`` reads it as ``C[i, j] = sum_k A[i, k] * B[k, j]``: the output
loops only ``y`` reads are the columns (the innermost output loop must be
one of them), those only ``x`` reads the rows, the rest batch loops; ``k``
runs over the reduction loops. Guards (a convolution's padding) may read
columns, batch and reduction variables, never rows. Rows and columns each
flatten into one index of the output (a convolution's (oh, ow) is one
column index), so the output is ``C[base + rs * i + cs * j]``; output loops
that do not (a convolution's images, outer loops only ``y`` reads) are
batch loops too.

``tile_contraction`` rewrites it the way BLIS and GotoBLAS do:

    for batch:                           (serial)
      for kb in K / KC:                  (a chunk of the outermost reduction loop)
        pack B[kb chunk, :]  -> Bp       (NR-wide column panels, KC x NR each,
                                          zero where a guard fails: im2col on the fly)
        for ic in blocks of MC rows:     (parallel: each block packs its own A)
          pack A[ic block, kb chunk] -> Ap   (MR-high row panels, KC x MR each)
          for each NR column panel:
            for each MR row panel:
              MR x NR accumulators; for kk in KC: acc[r][c] += Ap[kk][r] * Bp[kk][c]
              C tile = acc (+ C's partial sum from earlier chunks), inside C only

The micro-kernel's accumulators are scalar locals in a serial loop: the
emitter neither reorders nor vectorizes along ``kk`` (``codegen/llvm_emit``:
only ``vectorize`` loops reassociate), so LLVM's SLP vectorizer packs each
row's NR accumulators into NR / lanes vector registers and contracts
``acc + a * b`` to FMA: on AVX2 6 x 16 floats are 12 ymm accumulators, two B
vectors and one broadcast A. Packing makes both operands contiguous whatever
their layout (transposed weights, strided views, a convolution window),
converts them to the accumulator's dtype once, and is counted in the memory
plan as scratch buffers of the kernel (with a tile per row block). The packs are zero-padded to whole
panels and blocks, so one micro-kernel serves every tile (one copy of its
code keeps compile time down). Tiles are stored whole to scratch (a strip of
``mc x nr`` per block) and each strip is copied into C after its tiles, its
elements past the last row or column left out, so the micro-kernel ends in
plain vector stores that nothing forwards from; later chunks add to the partial sums earlier ones
stored (``C`` holds the accumulator dtype whenever there are several).

Sizes come from the shapes and the target (no tuning): NR is two vectors of
the accumulator dtype, MR 6 (12 with 32 vector registers), KC at most
``MAX_KC`` and a divisor chunk of the outermost reduction loop, MC so that an
A block fits ``A_BLOCK_BYTES`` (half of a typical L2) and there are a few
blocks to share among threads.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.loops.builder import add, all_of, cast, mul
from needlec.compiler.loops.ir import (Assign, Binary, Buffer, Const, Expr, If, Kernel, Load, Local, LocalRef,
                                       Loop, LoopKind, Select, Stmt, Store, Var)
from needlec.compiler.loops.transforms import affine, iterations_disjoint, map_exprs, substitute, walk

if TYPE_CHECKING:
    from needlec.compiler.target import Target

WORK_DTYPES = (DType.F32, DType.F64)
MAX_KC = 256
A_BLOCK_BYTES = 192 * 1024
MIN_BLOCKS = 4  # row blocks a large enough GEMM is cut into at least, for the threads to share
MIN_ROWS, MIN_COLUMNS, MIN_DEPTH = 4, 8, 8  # below these the plain nests win (a matrix-vector product)
PARALLEL_MIN_FLOPS = 1 << 22  # multiply-adds per chunk before the row blocks run on the team (waking it costs ~0.1 ms)


@dataclass(frozen=True)
class Contraction:
    """A kernel read as ``C[base + rs * i + cs * j] = sum_k A[i, k] * B[k, j]`` (see the module docstring)."""

    batch: tuple[Loop, ...]
    rows: tuple[Loop, ...]
    cols: tuple[Loop, ...]
    reduction: tuple[Loop, ...]
    guards: tuple[Expr, ...]
    a: Expr
    b: Expr
    work: DType
    out: Buffer
    out_index: Expr
    finish: Expr  # the stored value: of the sum (the local ``acc``), and of other inputs in an epilogue
    acc: str

    @property
    def m(self) -> int:
        return math.prod(loop.extent for loop in self.rows)

    @property
    def n(self) -> int:
        return math.prod(loop.extent for loop in self.cols)

    @property
    def k(self) -> int:
        return math.prod(loop.extent for loop in self.reduction)


def profitable(work: DType, m: int, n: int, k: int) -> bool:
    """Whether a contraction accumulating in ``work`` with these sizes is worth packing (the matmul and conv2d
    lowerings choose their dot-product form by it, the schedule hook its tiling)."""
    return work in WORK_DTYPES and m >= MIN_ROWS and n >= MIN_COLUMNS and k >= MIN_DEPTH


def _vars(e: Expr) -> set[str]:
    return {n.name for n in walk(e) if isinstance(n, Var)}


def _flattens(loops: tuple[Loop, ...], form: dict[str, int]) -> bool:
    """Whether the output index is affine in ``loops``' variables as one row-major index over them."""
    stride = form.get(loops[-1].var, 0)
    if stride <= 0:
        return False
    for loop in reversed(loops):
        if form.get(loop.var, 0) != stride:
            return False
        stride *= loop.extent
    return True


def recognize(kernel: Kernel) -> Contraction | None:
    """``kernel`` as a ``Contraction``, or None when it is not one (module docstring)."""
    outer: list[Loop] = []
    body = kernel.body
    while len(body) == 1 and isinstance(body[0], Loop) and body[0].kind is LoopKind.SERIAL and body[0].start == 0:
        outer.append(body[0])
        body = body[0].body
    if not outer or len(body) != 3:
        return None
    init, reduce, store = body
    if not (isinstance(init, Local) and isinstance(init.init, Const) and init.init.dtype in WORK_DTYPES
            and init.init.value == 0 and isinstance(store, Store)):
        return None
    acc = LocalRef(init.name, init.init.dtype)
    if {n for n in walk(store.value) if isinstance(n, LocalRef)} != {acc}:
        return None  # the stored value is the sum, maybe through an epilogue (``builder.FusedOutput``)
    reduction: list[Loop] = []
    guards: list[Expr] = []
    stmt = reduce
    while True:
        if isinstance(stmt, Loop) and stmt.kind is LoopKind.SERIAL and stmt.start == 0 and len(stmt.body) == 1:
            reduction.append(stmt)
            stmt = stmt.body[0]
        elif isinstance(stmt, If) and not stmt.orelse and len(stmt.then) == 1:
            guards.append(stmt.cond)
            stmt = stmt.then[0]
        else:
            break
    if not (reduction and isinstance(stmt, Assign) and stmt.name == acc.name and isinstance(stmt.value, Binary)
            and stmt.value.op == "add" and acc in (stmt.value.a, stmt.value.b)):
        return None
    product = stmt.value.b if stmt.value.a == acc else stmt.value.a
    if not (isinstance(product, Binary) and product.op == "mul"):
        return None
    x, y = product.a, product.b
    if any(isinstance(n, LocalRef) for e in (x, y, *guards) for n in walk(e)):
        return None
    if outer[-1].var in _vars(x):
        x, y = y, x
    x_vars, y_vars = _vars(x), _vars(y)
    form = affine(store.index)
    if form is None:
        return None
    count = 0  # the columns: the innermost output loops only y reads (a convolution's batch is not one)
    while count < len(outer) and outer[-1 - count].var in y_vars - x_vars:
        count += 1
    cols = tuple(outer[len(outer) - count:])
    rows = tuple(loop for loop in outer if loop.var in x_vars - y_vars)
    while rows and not _flattens(rows, form):  # outer row loops that do not flatten with the rest are batch
        rows = rows[1:]
    batch = tuple(loop for loop in outer if loop not in cols and loop not in rows)
    if (not rows or not cols or any(loop.var in _vars(g) for g in guards for loop in rows)
            or not _flattens(cols, form)):
        return None
    return Contraction(batch, rows, cols, tuple(reduction), tuple(guards), x, y, init.init.dtype, store.buffer,
                       store.index, store.value, acc.name)


@dataclass(frozen=True)
class GemmPlan:
    """The block sizes of one contraction: register tile ``mr x nr``, reduction chunks of ``chunk`` iterations
    of the outermost reduction loop (``kc`` of the flattened reduction), row blocks of ``mc`` rows."""

    mr: int
    nr: int
    chunk: int
    kc: int
    chunks: int
    mc: int
    blocks: int


def plan(c: Contraction, target: Target) -> GemmPlan:
    """Block sizes for ``c`` on ``target`` (module docstring)."""
    lanes = max(target.vector_bits // (8 * c.work.itemsize), 1)
    nr = 2 * lanes
    mr = 12 if target.vector_bits >= 512 else 6
    outer, inner = c.reduction[0].extent, math.prod(loop.extent for loop in c.reduction[1:])
    chunk = outer
    if c.out.dtype is c.work:  # why: partial sums live in C between chunks, so C must hold the accumulator dtype
        fits = [d for d in range(1, outer + 1) if outer % d == 0 and d * inner <= MAX_KC]
        if fits and max(fits) * inner >= MAX_KC // 4:
            chunk = max(fits)
    kc = chunk * inner
    panels = -(-c.m // mr)
    per_block = max(A_BLOCK_BYTES // (kc * mr * c.work.itemsize), 1)
    blocks = -(-panels // per_block)
    if c.m * c.n * kc >= PARALLEL_MIN_FLOPS:  # why: a multiple of MIN_BLOCKS shares evenly among 2 or 4 threads
        blocks = min(-(-blocks // MIN_BLOCKS) * MIN_BLOCKS, panels)
    mc = -(-panels // blocks) * mr
    return GemmPlan(mr, nr, chunk, kc, outer // chunk, mc, -(-panels // (mc // mr)))


def _unflatten(loops: tuple[Loop, ...], flat: Expr) -> dict[str, Expr]:
    """Each loop variable's value at row-major index ``flat`` over ``loops``."""
    values: dict[str, Expr] = {}
    inner = 1
    for position in range(len(loops) - 1, -1, -1):
        loop = loops[position]
        value = flat if inner == 1 else Binary("div", flat, Const(inner))
        if position > 0:
            value = Binary("mod", value, Const(loop.extent))
        values[loop.var] = value
        inner *= loop.extent
    return values


class _Tiler:
    """Builds the tiled kernel of one contraction (``tile_contraction``)."""

    def __init__(self, kernel: Kernel, c: Contraction, p: GemmPlan, parallel: bool) -> None:
        self.c, self.p, self.parallel = c, p, parallel
        self.names = (f"g{i}" for i in itertools.count())
        self.col_panels = -(-c.n // p.nr)
        self.packed_a = Buffer(f"{kernel.name}_packed_a", c.work, p.blocks * p.mc * p.kc)
        self.packed_b = Buffer(f"{kernel.name}_packed_b", c.work, self.col_panels * p.nr * p.kc)
        self.tile = Buffer(f"{kernel.name}_tile", c.work, p.blocks * p.mc * p.nr)
        form = affine(c.out_index)
        assert form is not None
        self.row_stride, self.col_stride = form[c.rows[-1].var], form[c.cols[-1].var]
        self.out_base = substitute(c.out_index, {loop.var: Const(0) for loop in (*c.rows, *c.cols)})
        self.kb: Expr = Const(0)
        self.ic: Expr = Const(0)

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self.names)}"

    def chunk_loops(self, leaf: Callable[[dict[str, Expr], Expr], list[Stmt]]) -> list[Stmt]:
        """The reduction loops of one chunk around ``leaf(mapping, kk)``: the outermost loop runs ``chunk``
        iterations from ``kb * chunk``; ``kk`` is the flattened index within the chunk."""
        c, p = self.c, self.p
        loops = [(self.fresh("k"), loop) for loop in c.reduction]
        mapping: dict[str, Expr] = {}
        kk: Expr = Const(0)
        stride = p.kc
        for position, (name, loop) in enumerate(loops):
            extent = p.chunk if position == 0 else loop.extent
            stride //= extent
            mapping[loop.var] = add(mul(self.kb, Const(p.chunk)), Var(name)) if position == 0 else Var(name)
            kk = add(kk, mul(Var(name), Const(stride)))
        stmts = leaf(mapping, kk)
        for position, (name, loop) in reversed(list(enumerate(loops))):
            stmts = [Loop(name, p.chunk if position == 0 else loop.extent, tuple(stmts))]
        return stmts

    def packed_store(self, buffer: Buffer, index: Expr, value: Expr, valid: list[Expr]) -> Stmt:
        """``buffer[index] = value`` where every ``valid`` condition holds, else zero (padding adds nothing)."""
        store = Store(buffer, index, cast(value, self.c.work))
        if not valid:
            return store
        return If(all_of(valid), (store,), (Store(buffer, index, Const(0.0, self.c.work)),))

    # -- packing --------------------------------------------------------------
    def pack_b(self) -> list[Stmt]:
        """Bp: the chunk's B in column panels of ``nr``, zero past the last column and where a guard fails."""
        c, p = self.c, self.p
        q, j = self.fresh("q"), self.fresh("c")

        col = add(mul(Var(q), Const(p.nr)), Var(j))
        columns = _unflatten(c.cols, col)
        if len(c.cols) > 1:  # why: a column's output position (div / mod) is computed once, not once per depth step
            names = {var: self.fresh(var) for var in columns}
            position: list[Stmt] = [Local(names[var], value) for var, value in columns.items()]
            columns = {var: LocalRef(name, DType.I64) for var, name in names.items()}

        def store(mapping: dict[str, Expr], kk: Expr) -> Stmt:
            values = {**mapping, **columns}
            valid: list[Expr] = [Binary("lt", col, Const(c.n))] if c.n % p.nr else []
            valid += [substitute(g, values) for g in c.guards]
            index = add(add(mul(Var(q), Const(p.nr * p.kc)), mul(kk, Const(p.nr))), Var(j))
            return self.packed_store(self.packed_b, index, substitute(c.b, values), valid)

        if len(c.cols) > 1:  # each column: its position, then its whole chunk of depth
            body: list[Stmt] = [Loop(j, p.nr, (*position, *self.chunk_loops(lambda m, kk: [store(m, kk)])))]
        else:  # one column index: rows of B are read along j (contiguous for a row-major B)
            body = self.chunk_loops(lambda m, kk: [Loop(j, p.nr, (store(m, kk),))])
        loop = Loop(q, self.col_panels, tuple(body))
        if self.parallel and self.col_panels > 1 and c.n * p.kc >= PARALLEL_MIN_FLOPS and iterations_disjoint(loop):
            loop = Loop(q, self.col_panels, loop.body, LoopKind.PARALLEL)
        return [loop]

    def pack_a(self) -> list[Stmt]:
        """Ap for the row block at ``ic``: row panels of ``mr``, zero past the last row."""
        c, p = self.c, self.p
        panel, r = self.fresh("p"), self.fresh("r")

        def leaf(mapping: dict[str, Expr], kk: Expr) -> list[Stmt]:
            row = add(add(mul(self.ic, Const(p.mc)), mul(Var(panel), Const(p.mr))), Var(r))
            value = substitute(c.a, {**mapping, **_unflatten(c.rows, row)})
            valid: list[Expr] = [Binary("lt", row, Const(c.m))] if p.blocks * p.mc > c.m else []
            index = add(add(self.a_panel_base(Var(panel)), mul(kk, Const(p.mr))), Var(r))
            return [Loop(r, p.mr, (self.packed_store(self.packed_a, index, value, valid),))]

        return [Loop(panel, p.mc // p.mr, tuple(self.chunk_loops(leaf)))]

    def a_panel_base(self, panel: Expr) -> Expr:
        p = self.p
        return add(mul(self.ic, Const(p.mc * p.kc)), mul(panel, Const(p.mr * p.kc)))

    # -- the micro-kernel -----------------------------------------------------
    def micro(self, panel: Expr, q: Expr) -> list[Stmt]:
        """One ``mr x nr`` tile: accumulators, the chunk's ``kc`` steps, the tile into its strip's scratch."""
        c, p = self.c, self.p
        accs = [[f"acc_{r}_{j}" for j in range(p.nr)] for r in range(p.mr)]
        zero = Const(0.0, c.work)
        stmts: list[Stmt] = [Local(name, zero) for row in accs for name in row]
        kk = self.fresh("kk")
        a_base = add(self.a_panel_base(panel), mul(Var(kk), Const(p.mr)))
        b_base = add(mul(q, Const(p.nr * p.kc)), mul(Var(kk), Const(p.nr)))
        # B's row first, then one A element at a time with its row of updates: live at once are the
        # accumulators, B's vectors and one broadcast A (15 of AVX2's 16 registers)
        step: list[Stmt] = [Local(f"b_{j}", Load(self.packed_b, add(b_base, Const(j)))) for j in range(p.nr)]
        for r in range(p.mr):
            step.append(Local(f"a_{r}", Load(self.packed_a, add(a_base, Const(r)))))
            step += [Assign(accs[r][j], Binary("add", LocalRef(accs[r][j], c.work),
                                               Binary("mul", LocalRef(f"a_{r}", c.work), LocalRef(f"b_{j}", c.work))))
                     for j in range(p.nr)]
        stmts.append(Loop(kk, p.kc, tuple(step)))
        # the tile goes to the strip's scratch whole (vector stores); the strip is copied into C after all its tiles
        # (``copy_out``), so no store-to-load forwarding reaches back into the micro-kernel's vector code
        base = add(mul(self.ic, Const(p.mc * p.nr)), mul(panel, Const(p.mr * p.nr)))
        stmts += [Store(self.tile, add(base, Const(r * p.nr + j)), LocalRef(accs[r][j], c.work))
                  for r in range(p.mr) for j in range(p.nr)]
        return stmts

    def finish(self, row: Expr, col: Expr, value: Expr) -> Expr:
        """The contraction's stored value (its epilogue, if any) at output (``row``, ``col``) of sum ``value``."""
        c = self.c
        acc = LocalRef(c.acc, c.work)
        at = substitute(c.finish, {**_unflatten(c.rows, row), **_unflatten(c.cols, col)})
        return map_exprs(at, lambda e: value if e == acc else e)

    def copy_out(self, q: Expr) -> list[Stmt]:
        """The strip of column panel ``q`` of the block at ``ic`` into C from scratch: rows past the last left out,
        only the last panel's own columns (no guard per element), added to the partial sums of earlier chunks."""
        c, p = self.c, self.p
        full, tail = divmod(c.n, p.nr)

        def copy(width: int) -> Stmt:
            r_var, j_var = self.fresh("r"), self.fresh("j")
            row = add(mul(self.ic, Const(p.mc)), Var(r_var))
            col = add(mul(q, Const(p.nr)), Var(j_var))
            index = add(add(self.out_base, mul(row, Const(self.row_stride))), mul(col, Const(self.col_stride)))
            tile_index = add(add(mul(self.ic, Const(p.mc * p.nr)), mul(Var(r_var), Const(p.nr))), Var(j_var))
            value: Expr = Load(self.tile, tile_index)
            if p.chunks > 1:
                value = Select(Binary("eq", self.kb, Const(0)), value,
                               Binary("add", cast(Load(c.out, index), c.work), value))
            final = self.finish(row, col, value)
            if p.chunks > 1 and final != value:  # earlier chunks store the plain partial sum
                final = Select(Binary("eq", self.kb, Const(p.chunks - 1)), final, value)
            store: Stmt = Store(c.out, index, cast(final, c.out.dtype))
            if p.blocks * p.mc > c.m:
                store = If(Binary("lt", row, Const(c.m)), (store,))
            return Loop(r_var, p.mc, (Loop(j_var, width, (store,)),))

        if not tail:
            return [copy(p.nr)]
        return [If(Binary("lt", q, Const(full)), (copy(p.nr),), (copy(tail),))]

    def body(self) -> list[Stmt]:
        c, p = self.c, self.p
        ic, kb, q, panel = self.fresh("ic"), self.fresh("kb"), self.fresh("q"), self.fresh("p")
        self.ic = Var(ic) if p.blocks > 1 else Const(0)
        self.kb = Var(kb) if p.chunks > 1 else Const(0)
        tiles = Loop(q, self.col_panels, (Loop(panel, p.mc // p.mr, tuple(self.micro(Var(panel), Var(q)))),
                                          *self.copy_out(Var(q))))
        blocks: list[Stmt] = [*self.pack_a(), tiles]
        if p.blocks > 1:
            # why parallel is safe: block ic writes only C's rows [ic * mc, (ic + 1) * mc), its own part of Ap and
            # its own tile (iterations_disjoint cannot tell, as it ignores the last column panel's If)
            parallel = self.parallel and c.m * c.n * p.kc >= PARALLEL_MIN_FLOPS
            blocks = [Loop(ic, p.blocks, tuple(blocks), LoopKind.PARALLEL if parallel else LoopKind.SERIAL)]
        stmts = [*self.pack_b(), *blocks]
        if p.chunks > 1:
            stmts = [Loop(kb, p.chunks, tuple(stmts))]
        for loop in reversed(c.batch):
            stmts = [Loop(loop.var, loop.extent, tuple(stmts))]
        return stmts


def tile_contraction(kernel: Kernel, c: Contraction, target: Target) -> Kernel:
    """``kernel`` (recognized as ``c``) as a packed, register-blocked GEMM for ``target`` (module docstring).

    Its packing and tile buffers are new: the ``schedule`` pass gives them arena storage.
    """
    p = plan(c, target)
    tiler = _Tiler(kernel, c, p, LoopKind.PARALLEL in target.loop_kinds)
    body = tiler.body()
    return Kernel(kernel.name, (*kernel.buffers, tiler.packed_a, tiler.packed_b, tiler.tile), tuple(body),
                  kernel.sources)


def schedule_contraction(kernel: Kernel, attrs: object, target: Target | None) -> Kernel | None:
    """The ``OpDef.schedule`` hook of matmul and conv2d: the tiled GEMM where the kernel is a contraction worth
    packing, else None (the default schedule)."""
    c = recognize(kernel)
    if target is None or c is None or not profitable(c.work, c.m, c.n, c.k):
        return None
    return tile_contraction(kernel, c, target)
