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
columns, batch and reduction variables, never rows. Rows flatten into one
index of the output (outer row loops that do not are batch loops); columns
are one index over their loops in loop order, so a convolution is one GEMM
over every image's output positions, its output channels the rows. The
output is ``C[base + rs * i + cs * j]`` where the columns flatten, else
each column loop's value is substituted.

``tile_contraction`` rewrites it the way BLIS and GotoBLAS do. The threads
share *blocks*: of ``mc`` rows (each with every column), or, for a wide
product whose rows all fit an A block, of ``nc`` column panels (each with
every row: each thread then streams only its own columns of B, a weight read
once rather than once per thread):

    [pack invariant operands whole]      (constant weights: run at compile time by ``precompute_constants``)
    for batch:                           (serial)
      pack the operand the blocks share, whole: every chunk, in panels (parallel over panels)
      for block:                         (parallel)
        for kb in K / KC:                (a chunk: of the outermost reduction loop whose inner loops fit)
          pack the block's part of the split operand for chunk kb
          for each NR column panel of the block:
            for each MR row panel of the block:
              MR x NR accumulators; for kk in KC: acc[r][c] += Ap[kk][r] * Bp[kk][c]
              the tile -> the block's strip of scratch
            the strip -> C (+ C's partial sum from earlier chunks; the epilogue at the last chunk)

Ap holds row panels of ``kc x MR``, Bp column panels of ``kc x NR`` (zero
where a guard fails: im2col on the fly). A whole pack is panel-major (each
panel's chunks in turn), so the panels' packs write disjoint ranges.

The micro-kernel's accumulators are scalar locals in a serial loop: the
emitter neither reorders nor vectorizes along ``kk`` (``codegen/llvm_emit``:
only ``vectorize`` loops reassociate), so LLVM's SLP vectorizer packs each
row's NR accumulators into NR / lanes vector registers and contracts
``acc + a * b`` to FMA: on AVX2 6 x 16 floats are 12 ymm accumulators, two B
vectors and one broadcast A. Packing makes both operands contiguous whatever
their layout (transposed weights, strided views, a convolution window),
converts them to the accumulator's dtype once, and is counted in the memory
plan as scratch buffers of the kernel (with a tile strip per block). The
packs are zero-padded to whole panels, so one micro-kernel serves every tile
(one copy of its code keeps compile time down). Tiles are stored whole to
scratch (a strip of ``mc x nr`` per block) and each strip is copied into C
after its tiles, its elements past the last row or column left out, so the
micro-kernel ends in plain vector stores that nothing forwards from; later
chunks add to the partial sums earlier ones stored (``C`` holds the
accumulator dtype whenever there are several).

Sizes come from the shapes and the target (no tuning): NR is two vectors of
the accumulator dtype, MR 6 (12 with 32 vector registers), KC at most
``MAX_KC``: a divisor chunk of the outermost reduction loop whose inner
loops fit, the loops outside it one iteration per chunk (a weight gradient
sums over images x positions: chunks of rows of one image), MC so that an
A block fits ``A_BLOCK_BYTES`` (half of a typical L2), NC so that a chunk of
a B block fits ``B_BLOCK_BYTES``, and a multiple of ``MIN_BLOCKS`` blocks
when the product is large enough for the threads.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.loops.builder import add, all_of, cast, mul
from needlec.compiler.loops.ir import (Assign, Binary, Buffer, Cast, Const, Expr, If, Kernel, Load, Local, LocalRef,
                                       Loop, LoopKind, Select, Stmt, Store, Var)
from needlec.compiler.loops.transforms import affine, iterations_disjoint, map_exprs, substitute, walk

if TYPE_CHECKING:
    from needlec.compiler.target import Target

WORK_DTYPES = (DType.F32, DType.F64)
MAX_KC = 256
A_BLOCK_BYTES = 192 * 1024
B_BLOCK_BYTES = 256 * 1024
MIN_BLOCKS = 4  # row blocks a large enough GEMM is cut into at least, for the threads to share
MIN_ROWS, MIN_COLUMNS, MIN_DEPTH = 4, 8, 8  # below these the plain nests win (a matrix-vector product)
PARALLEL_MIN_FLOPS = 1 << 22  # multiply-adds before the row blocks run on the team (~0.1 ms of work)
PARALLEL_MIN_PACK = 1 << 16  # elements of B before its panels are packed on the team


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
    # the columns: the output loops only y reads, the innermost among them (a convolution's images are columns
    # too: one GEMM over every image's positions; a loop of one iteration stays a batch loop, so the columns
    # of one image still flatten)
    cols = tuple(loop for loop in outer if loop.var in y_vars - x_vars and (loop.extent > 1 or loop is outer[-1]))
    rows = tuple(loop for loop in outer if loop.var in x_vars - y_vars)
    while rows and not _flattens(rows, form):  # outer row loops that do not flatten with the rest are batch
        rows = rows[1:]
    batch = tuple(loop for loop in outer if loop not in cols and loop not in rows)
    if not rows or outer[-1] not in cols or any(loop.var in _vars(g) for g in guards for loop in rows):
        return None
    return Contraction(batch, rows, cols, tuple(reduction), tuple(guards), x, y, init.init.dtype, store.buffer,
                       store.index, store.value, acc.name)


@dataclass(frozen=True)
class GemmPlan:
    """The block sizes of one contraction: register tile ``mr x nr``, reduction chunks of ``chunk`` iterations of
    reduction loop ``split`` (``kc`` of the flattened reduction: the loops inside ``split`` run whole in each chunk,
    those outside it one iteration per chunk), and the blocks the threads share: along the
    rows (``split_columns`` False: ``blocks`` blocks of ``mc`` rows, every column panel each) or along the columns
    (True: ``blocks`` blocks of ``nc`` column panels, every row each; ``mc`` is then all rows)."""

    mr: int
    nr: int
    split: int
    chunk: int
    kc: int
    chunks: int
    split_columns: bool
    mc: int
    nc: int
    blocks: int

    @property
    def row_panels(self) -> int:
        """Row panels of ``mr`` in one row block."""
        return self.mc // self.mr


def _blocks(panels: int, per_block: int, large: bool) -> int:
    """How many blocks ``panels`` panels go in, at most ``per_block`` each; a multiple of ``MIN_BLOCKS`` when the
    product is ``large``. Why: a multiple of 4 shares evenly among 2 or 4 threads."""
    blocks = -(-panels // max(per_block, 1))
    if large:
        blocks = min(-(-blocks // MIN_BLOCKS) * MIN_BLOCKS, panels)
    return blocks


def plan(c: Contraction, target: Target) -> GemmPlan:
    """Block sizes for ``c`` on ``target`` (module docstring)."""
    lanes = max(target.vector_bits // (8 * c.work.itemsize), 1)
    nr = 2 * lanes
    mr = 12 if target.vector_bits >= 512 else 6
    extents = [loop.extent for loop in c.reduction]
    split, chunk = 0, extents[0]  # one chunk: the whole reduction
    if c.out.dtype is c.work:  # why: partial sums live in C between chunks, so C must hold the accumulator dtype
        # the outermost loop whose inner loops fit a chunk, cut into the largest divisor chunk that fits
        split = next(i for i in range(len(extents)) if math.prod(extents[i + 1:]) <= MAX_KC)
        inner = math.prod(extents[split + 1:])
        chunk = max(d for d in range(1, extents[split] + 1) if extents[split] % d == 0 and d * inner <= MAX_KC)
        if split == 0 and chunk * inner < MAX_KC // 4:  # why: an awkward depth (a prime) takes one chunk
            chunk = extents[0]
    kc = chunk * math.prod(extents[split + 1:])
    chunks = math.prod(extents[:split]) * (extents[split] // chunk)
    large = c.m * c.n * c.k >= PARALLEL_MIN_FLOPS
    row_panels, col_panels = -(-c.m // mr), -(-c.n // nr)
    panel_bytes = kc * c.work.itemsize
    # why split the columns of a wide product whose rows fit the A block: each thread then streams only its
    # columns of B (a weight read once, not once per thread), and every B panel serves all the rows
    if c.n > c.m and row_panels * mr * panel_bytes <= A_BLOCK_BYTES:
        blocks = _blocks(col_panels, B_BLOCK_BYTES // (nr * panel_bytes), large)
        nc = -(-col_panels // blocks)
        return GemmPlan(mr, nr, split, chunk, kc, chunks, True, row_panels * mr, nc, -(-col_panels // nc))
    blocks = _blocks(row_panels, A_BLOCK_BYTES // (mr * panel_bytes), large)
    mc = -(-row_panels // blocks) * mr
    return GemmPlan(mr, nr, split, chunk, kc, chunks, False, mc, col_panels, -(-row_panels // (mc // mr)))


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


Wrap = Callable[[list[Stmt]], list[Stmt]]


def _loop(var: str, extent: int, kind: LoopKind = LoopKind.SERIAL) -> tuple[Expr, Wrap]:
    """A loop variable of ``extent`` iterations and the wrapper that puts statements in its loop; a loop of one
    iteration is no loop (its variable is 0)."""
    if extent == 1:
        return Const(0), lambda stmts: stmts
    return Var(var), lambda stmts: [Loop(var, extent, tuple(stmts), kind)]


class _Tiler:
    """Builds the tiled kernel of one contraction (``tile_contraction``).

    Each operand is packed *whole* (every chunk, in one buffer) or *per chunk* (one chunk at a time, in a scratch
    buffer the blocks share out by panel). The operand the blocks split (A for row blocks, B for column blocks) is
    packed per chunk inside its block; the other whole, per batch iteration, before the blocks. An operand that
    reads only invariant buffers and no batch variable (``whole_a`` / ``whole_b``: a constant weight) is packed
    whole by a nest at the kernel's head instead, which ``precompute_constants`` runs at compile time.
    """

    def __init__(self, kernel: Kernel, c: Contraction, p: GemmPlan, parallel: bool, invariant_a: bool,
                 invariant_b: bool) -> None:
        self.c, self.p, self.parallel = c, p, parallel
        self.invariant_a, self.invariant_b = invariant_a, invariant_b
        self.names = (f"g{i}" for i in itertools.count())
        self.col_panels = -(-c.n // p.nr)
        self.row_panels = (p.blocks if not p.split_columns else 1) * p.row_panels
        self.whole_a = invariant_a or p.split_columns
        self.whole_b = invariant_b or not p.split_columns
        self.packed_a = Buffer(f"{kernel.name}_packed_a", c.work,
                               (p.chunks if self.whole_a else 1) * self.row_panels * p.mr * p.kc)
        self.packed_b = Buffer(f"{kernel.name}_packed_b", c.work,
                               (p.chunks if self.whole_b else 1) * self.col_panels * p.nr * p.kc)
        self.tile = Buffer(f"{kernel.name}_tile", c.work, p.blocks * p.mc * p.nr)
        form = affine(c.out_index)
        assert form is not None
        self.flat_b = _reads_flat(c.b, c.cols) and not c.guards
        self.row_stride = form[c.rows[-1].var]
        self.col_stride = form[c.cols[-1].var] if _flattens(c.cols, form) else None
        self.out_base = substitute(c.out_index, {loop.var: Const(0) for loop in (*c.rows, *c.cols)})

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self.names)}"

    def chunk_loops(self, kb: Expr, leaf: Callable[[dict[str, Expr], Expr], list[Stmt]]) -> list[Stmt]:
        """The reduction loops of chunk ``kb`` around ``leaf(mapping, kk)``: loop ``split`` runs ``chunk``
        iterations, the loops inside it whole, those outside it at the chunk's position; ``kk`` is the flattened
        index within the chunk."""
        c, p = self.c, self.p
        outside, at, inside = c.reduction[:p.split], c.reduction[p.split], c.reduction[p.split + 1:]
        per_loop = at.extent // p.chunk  # chunks along loop ``split``
        mapping: dict[str, Expr] = {}
        position = Binary("div", kb, Const(per_loop)) if per_loop > 1 else kb
        for loop in reversed(outside):
            mapping[loop.var] = Binary("mod", position, Const(loop.extent)) if loop is not outside[0] else position
            position = Binary("div", position, Const(loop.extent))
        offset = Binary("mod", kb, Const(per_loop)) if outside and per_loop > 1 else kb if per_loop > 1 else Const(0)
        loops = [(self.fresh("k"), at, p.chunk), *((self.fresh("k"), loop, loop.extent) for loop in inside)]
        kk: Expr = Const(0)
        stride = p.kc
        for name, loop, extent in loops:
            stride //= extent
            mapping[loop.var] = add(mul(offset, Const(p.chunk)), Var(name)) if loop is at else Var(name)
            kk = add(kk, mul(Var(name), Const(stride)))
        stmts = leaf(mapping, kk)
        for name, _, extent in reversed(loops):
            stmts = [Loop(name, extent, tuple(stmts))]
        return stmts

    def packed_store(self, buffer: Buffer, index: Expr, value: Expr, valid: list[Expr]) -> Stmt:
        """``buffer[index] = value`` where every ``valid`` condition holds, else zero (padding adds nothing)."""
        store = Store(buffer, index, cast(value, self.c.work))
        if not valid:
            return store
        return If(all_of(valid), (store,), (Store(buffer, index, Const(0.0, self.c.work)),))

    def on_team(self, loop: Loop, work: int) -> Loop:
        """``loop`` (whose iterations write disjoint panels) as a parallel loop where ``work`` elements pay."""
        if self.parallel and loop.extent > 1 and work >= PARALLEL_MIN_PACK and iterations_disjoint(loop):
            return Loop(loop.var, loop.extent, loop.body, LoopKind.PARALLEL)
        return loop

    # -- packing --------------------------------------------------------------
    def a_panel_base(self, kb: Expr, panel: Expr) -> Expr:
        """Where row panel ``panel`` (of all rows) of chunk ``kb`` starts in Ap (panel-major when whole, so the
        panels' packs write disjoint ranges and may run at once)."""
        p = self.p
        at = add(mul(panel, Const(p.chunks)), kb) if self.whole_a else panel
        return mul(at, Const(p.mr * p.kc))

    def b_panel_base(self, kb: Expr, q: Expr) -> Expr:
        """Where column panel ``q`` of chunk ``kb`` starts in Bp (panel-major when whole)."""
        p = self.p
        at = add(mul(q, Const(p.chunks)), kb) if self.whole_b else q
        return mul(at, Const(p.nr * p.kc))

    def pack_a(self, kb: Expr, first: Expr, count: int) -> list[Stmt]:
        """Ap for chunk ``kb``, row panels ``first`` to ``first + count``: ``kc x mr`` each, zero past the last row."""
        c, p = self.c, self.p
        panel, in_panels = _loop(self.fresh("p"), count)
        r = self.fresh("r")
        at = add(first, panel)

        def leaf(mapping: dict[str, Expr], kk: Expr) -> list[Stmt]:
            row = add(mul(at, Const(p.mr)), Var(r))
            value = substitute(c.a, {**mapping, **_unflatten(c.rows, row)})
            valid: list[Expr] = [Binary("lt", row, Const(c.m))] if self.row_panels * p.mr > c.m else []
            index = add(add(self.a_panel_base(kb, at), mul(kk, Const(p.mr))), Var(r))
            return [Loop(r, p.mr, (self.packed_store(self.packed_a, index, value, valid),))]

        return in_panels(self.chunk_loops(kb, leaf))

    def pack_b(self, kb: Expr, q: Expr) -> list[Stmt]:
        """Bp for chunk ``kb``, column panel ``q``: ``kc x nr`` values, zero past the last column and where a guard
        fails (im2col on the fly)."""
        c, p = self.c, self.p
        j = self.fresh("c")
        col = add(mul(q, Const(p.nr)), Var(j))
        columns = _unflatten(c.cols, col)
        position: list[Stmt] = []
        if self.flat_b:  # why: B at column ``col`` is B at the innermost column loop's ``col``, the others at 0
            columns = {loop.var: col if loop is c.cols[-1] else Const(0) for loop in c.cols}
        elif len(c.cols) > 1:  # why: a column's output position (div / mod) is computed once, not per depth step
            names = {var: self.fresh(var) for var in columns}
            position = [Local(names[var], value) for var, value in columns.items()]
            columns = {var: LocalRef(name, DType.I64) for var, name in names.items()}

        def store(mapping: dict[str, Expr], kk: Expr) -> list[Stmt]:
            values = {**mapping, **columns}
            valid: list[Expr] = [Binary("lt", col, Const(c.n))] if c.n % p.nr else []
            valid += [substitute(g, values) for g in c.guards]
            index = add(add(self.b_panel_base(kb, q), mul(kk, Const(p.nr))), Var(j))
            return [self.packed_store(self.packed_b, index, substitute(c.b, values), valid)]

        if position:  # each column: its position, then its whole chunk of depth
            return [Loop(j, p.nr, (*position, *self.chunk_loops(kb, store)))]
        # one column index: rows of B are read along j (contiguous for a row-major B)
        return self.chunk_loops(kb, lambda m, kk: [Loop(j, p.nr, tuple(store(m, kk)))])

    def pack_whole(self, operand: str, head: bool) -> list[Stmt]:
        """The whole pack of ``operand`` ("a" or "b"): every chunk and panel; on the team unless at the ``head``."""
        panels = self.row_panels if operand == "a" else self.col_panels
        var = self.fresh("p" if operand == "a" else "q")
        kb, in_chunks = _loop(self.fresh("kb"), self.p.chunks)
        body = self.pack_a(kb, Var(var), 1) if operand == "a" else self.pack_b(kb, Var(var))
        loop = Loop(var, panels, tuple(in_chunks(body)))
        work = (self.c.m if operand == "a" else self.c.n) * self.c.k
        return [loop if head else self.on_team(loop, work)]

    # -- the micro-kernel -----------------------------------------------------
    def micro(self, kb: Expr, panel: Expr, q: Expr, strip: Expr) -> list[Stmt]:
        """One ``mr x nr`` tile: accumulators, the chunk's ``kc`` steps, the tile into row ``strip`` of its block's
        strip of scratch."""
        c, p = self.c, self.p
        accs = [[f"acc_{r}_{j}" for j in range(p.nr)] for r in range(p.mr)]
        zero = Const(0.0, c.work)
        stmts: list[Stmt] = [Local(name, zero) for row in accs for name in row]
        kk = self.fresh("kk")
        a_base = add(self.a_panel_base(kb, panel), mul(Var(kk), Const(p.mr)))
        b_base = add(self.b_panel_base(kb, q), mul(Var(kk), Const(p.nr)))
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
        base = mul(strip, Const(p.mr * p.nr))
        stmts += [Store(self.tile, add(base, Const(r * p.nr + j)), LocalRef(accs[r][j], c.work))
                  for r in range(p.mr) for j in range(p.nr)]
        return stmts

    def finish(self, row: Expr, col: Expr, value: Expr) -> Expr:
        """The contraction's stored value (its epilogue, if any) at output (``row``, ``col``) of sum ``value``."""
        c = self.c
        acc = LocalRef(c.acc, c.work)
        at = substitute(c.finish, {**_unflatten(c.rows, row), **_unflatten(c.cols, col)})
        return map_exprs(at, lambda e: value if e == acc else e)

    def out_index(self, row: Expr, col: Expr) -> Expr:
        """C's index of output (``row``, ``col``): strided when the columns flatten into one index of C, else
        each column loop's value (images and positions of a convolution) substituted."""
        if self.col_stride is not None:
            return add(add(self.out_base, mul(row, Const(self.row_stride))), mul(col, Const(self.col_stride)))
        return substitute(self.c.out_index, {**_unflatten(self.c.rows, row), **_unflatten(self.c.cols, col)})

    def copy_out(self, kb: Expr, first_row: Expr, strips: Expr, q: Expr) -> list[Stmt]:
        """The strip of column panel ``q`` (rows from ``first_row``, at strip offset ``strips``) into C: rows past
        the last left out, only the last panel's own columns (no guard per element), added to the partial sums of
        earlier chunks."""
        c, p = self.c, self.p
        full, tail = divmod(c.n, p.nr)

        def copy(width: int) -> Stmt:
            r_var, j_var = self.fresh("r"), self.fresh("j")
            row = add(first_row, Var(r_var))
            col = add(mul(q, Const(p.nr)), Var(j_var))
            index = self.out_index(row, col)
            tile_index = add(add(mul(strips, Const(p.mr * p.nr)), mul(Var(r_var), Const(p.nr))), Var(j_var))
            value: Expr = Load(self.tile, tile_index)
            if p.chunks > 1:
                partial = Binary("add", cast(Load(c.out, index), c.work), value)
                value = Select(Binary("eq", kb, Const(0)), value, partial)
            final = self.finish(row, col, value)
            if p.chunks > 1 and final != value:  # earlier chunks store the plain partial sum
                final = Select(Binary("eq", kb, Const(p.chunks - 1)), final, value)
            store: Stmt = Store(c.out, index, cast(final, c.out.dtype))
            if self.row_panels * p.mr > c.m:
                store = If(Binary("lt", row, Const(c.m)), (store,))
            return Loop(r_var, p.mc, (Loop(j_var, width, (store,)),))

        if not tail:
            return [copy(p.nr)]
        return [If(Binary("lt", q, Const(full)), (copy(p.nr),), (copy(tail),))]

    def block(self, b: Expr, kb: Expr) -> list[Stmt]:
        """Block ``b``'s work in chunk ``kb``: its share of the split operand's pack, then its tiles."""
        p = self.p
        q_var, panel = self.fresh("q"), self.fresh("p")
        strip = mul(b, Const(p.row_panels))  # the block's strip of tile scratch, in tiles
        if p.split_columns:
            first_row: Expr = Const(0)
            q = add(mul(b, Const(p.nc)), Var(q_var))
            pack = [] if self.whole_b else self.pack_b(kb, q)
        else:
            first_row = mul(b, Const(p.mc))
            q = Var(q_var)
            pack = []
        first_panel = mul(b, Const(p.row_panels)) if not p.split_columns else Const(0)
        tiles: list[Stmt] = [
            *pack,
            Loop(panel, p.row_panels, tuple(self.micro(kb, add(first_panel, Var(panel)), q, add(strip, Var(panel))))),
            *self.copy_out(kb, first_row, strip, q)]
        if p.split_columns:
            columns = [If(Binary("lt", q, Const(self.col_panels)), tuple(tiles))] if p.blocks * p.nc > self.col_panels \
                else tiles
            return [Loop(q_var, p.nc, tuple(columns))]
        pack_a = [] if self.whole_a else self.pack_a(kb, first_panel, p.row_panels)
        return [*pack_a, Loop(q_var, p.nc, tuple(tiles))]

    def body(self) -> list[Stmt]:
        """Invariant packs at the head; then per batch iteration: the other whole pack, and the blocks (parallel),
        each running its chunks in turn."""
        c, p = self.c, self.p
        block_var, kb_var = self.fresh("blk"), self.fresh("kb")
        b, _ = _loop(block_var, p.blocks)
        kb, in_chunks = _loop(kb_var, p.chunks)
        stmts = in_chunks(self.block(b, kb))
        if p.blocks > 1:
            # why parallel is safe: a block writes only its own rows or columns of C, of the scratch of the operand
            # it packs and of the tile (iterations_disjoint cannot tell, as it ignores the last column panel's If)
            parallel = self.parallel and c.m * c.n * c.k >= PARALLEL_MIN_FLOPS
            stmts = [Loop(block_var, p.blocks, tuple(stmts), LoopKind.PARALLEL if parallel else LoopKind.SERIAL)]
        other = "a" if p.split_columns else "b"  # the operand the blocks share, packed whole before them
        if not (self.invariant_a if other == "a" else self.invariant_b):
            stmts = [*self.pack_whole(other, head=False), *stmts]
        for loop in reversed(c.batch):
            stmts = [Loop(loop.var, loop.extent, tuple(stmts))]
        head = [*(self.pack_whole("a", head=True) if self.invariant_a else []),
                *(self.pack_whole("b", head=True) if self.invariant_b else [])]
        return [*head, *stmts]


def _reads_flat(e: Expr, cols: tuple[Loop, ...]) -> bool:
    """Whether ``e`` (an operand: a load, maybe cast) reads its columns as one row-major index: a 1 x 1 convolution
    at stride 1 reads input position oh * W + ow for output position oh * W + ow."""
    load = e.x if isinstance(e, Cast) else e
    if not isinstance(load, Load) or (_vars(e) - _vars(load.index)):
        return False
    form = affine(load.index)
    return form is not None and _flattens(cols, form)


def _reads_only(e: Expr, invariant: frozenset[str], batch: tuple[Loop, ...]) -> bool:
    """Whether ``e`` loads only ``invariant`` buffers and reads no batch variable: the same on every call and in every
    batch iteration."""
    nodes = list(walk(e))
    loads = [n.buffer.name for n in nodes if isinstance(n, Load)]
    return bool(loads) and set(loads) <= invariant and not _vars(e) & {loop.var for loop in batch}


def tile_contraction(kernel: Kernel, c: Contraction, target: Target,
                     invariant: frozenset[str] = frozenset()) -> Kernel:
    """``kernel`` (recognized as ``c``) as a packed, register-blocked GEMM for ``target`` (module docstring).

    An operand that reads only ``invariant`` buffers (constant weights) is packed whole at the kernel's head, where
    ``precompute_constants`` folds it into a constant in the packed layout. The packing and tile buffers are new:
    the ``schedule`` pass gives them arena storage.
    """
    p = plan(c, target)
    invariant_a = _reads_only(c.a, invariant, c.batch)
    invariant_b = (_reads_only(c.b, invariant, c.batch)
                   and not any(_vars(g) & {loop.var for loop in c.batch} for g in c.guards))
    tiler = _Tiler(kernel, c, p, LoopKind.PARALLEL in target.loop_kinds, invariant_a, invariant_b)
    body = tiler.body()
    return Kernel(kernel.name, (*kernel.buffers, tiler.packed_a, tiler.packed_b, tiler.tile), tuple(body),
                  kernel.sources)


def schedule_contraction(kernel: Kernel, attrs: object, target: Target | None,
                         invariant: frozenset[str] = frozenset()) -> Kernel | None:
    """The ``OpDef.schedule`` hook of matmul and conv2d: the tiled GEMM where the kernel is a contraction worth
    packing, else None (the default schedule). ``invariant``: the buffers whose contents never change (constants)."""
    c = recognize(kernel)
    if target is None or c is None or not profitable(c.work, c.m, c.n, c.k):
        return None
    return tile_contraction(kernel, c, target, invariant)
