"""Schedule transformations and the default ``schedule`` pass: structure, legality and exact numerics.

Graph kernels come from ``lower_to_loops``; kernels with locals and
read-modify-write accumulation (which no registered op lowers to yet) are
written by hand over input/output buffers. Every transformed program is
compiled and compared bit for bit with the unscheduled one (and with NumPy).
"""
from __future__ import annotations

from dataclasses import replace
from collections.abc import Callable

import numpy as np
import pytest

from needlec import DType, Graph, TensorType
from needlec.compiler.loops.builder import const
from needlec.compiler.loops.ir import (Assign, Binary, Buffer, Const, Expr, If, Kernel, Load, Local, LocalRef, Loop,
                                       Program, Stmt, Storage, Store, Var)
from needlec.compiler.loops.transforms import (MAX_UNROLL, affine, declared_names, find_loop, map_exprs, map_stmts,
                                             parallel, rename, reorder, split, substitute, unroll, vectorize, walk)
from needlec.compiler.passes import PASSES, Pass
from needlec.compiler.passes.lower_to_loops import lower_to_loops
from needlec.compiler.passes.materialize_outputs import materialize_outputs
from needlec.compiler.passes.plan_memory import plan_memory
from needlec.compiler.passes.schedule import schedule
from needlec.compiler.pipeline import Pipeline
from needlec.errors import CodegenError
from needlec.compiler.target import Target
from needlec.driver import jit_compile

F32 = DType.F32
RNG = np.random.default_rng(0)


# -- helpers --------------------------------------------------------------------
def lowered(graph: Graph) -> Program:
    return lower_to_loops(materialize_outputs(graph.copy()))


def run(program: Program, *arrays: np.ndarray) -> list[np.ndarray]:
    """Compile a copy of ``program`` and run it; always a list of outputs."""
    out = jit_compile(plan_memory(replace(program)), Target.named())(*arrays)
    return list(out) if isinstance(out, tuple) else [out]


def transformed(program: Program, fn: Callable[[Kernel], Kernel], index: int = 0) -> Program:
    kernels = list(program.kernels)
    kernels[index] = fn(kernels[index])
    return replace(program, kernels=kernels)


def assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def loop_vars(node: Kernel | Stmt) -> list[str]:
    return [n.var for n in walk(node) if isinstance(n, Loop)]


def add_graph(a: tuple[int, ...], b: tuple[int, ...]) -> Graph:
    g = Graph("add")
    g.set_outputs([g.add("add", g.add_input("a", TensorType(a, F32)), g.add_input("b", TensorType(b, F32)))])
    return g


def transpose_graph(shape: tuple[int, int]) -> Graph:
    g = Graph("transpose")
    g.set_outputs([g.add("permute", g.add_input("x", TensorType(shape, F32)), perm=[1, 0])])
    return g


def hand_program(kernel_body: Callable[[Buffer, Buffer], tuple[Stmt, ...]], in_shape: tuple[int, ...],
                 out_shape: tuple[int, ...]) -> Program:
    """One hand-written kernel over input ``x`` and output ``out`` (both f32)."""
    x = Buffer("x", F32, int(np.prod(in_shape)))
    out = Buffer("out", F32, int(np.prod(out_shape)))
    kernel = Kernel("k0_hand", (x, out), kernel_body(x, out))
    return Program("hand", [kernel], {"x": x, "out": out}, {"x": Storage("input", 0), "out": Storage("output", 0)},
                   {}, [("x", in_shape, F32)], [("out", out_shape, F32)])


def fadd(a: Expr, b: Expr) -> Expr:
    return Binary("add", a, b)


def idx(*terms: tuple[str, int]) -> Expr:
    result: Expr = Const(0)
    for name, stride in terms:
        result = Binary("add", result, Binary("mul", Var(name), Const(stride)))
    return result


def accumulate(x: Buffer) -> Stmt:
    """acc += x[i, j] for a (4, 6) input."""
    return Assign("acc", fadd(LocalRef("acc", F32), Load(x, idx(("i", 6), ("j", 1)))))


def row_sum(x: Buffer, out: Buffer) -> tuple[Stmt, ...]:
    """out[i] = sum_j x[i, j] over a (4, 6) input, accumulated in a local."""
    return (Loop("i", 4, (Local("acc", const(0, F32)), Loop("j", 6, (accumulate(x),)),
                          Store(out, Var("i"), LocalRef("acc", F32)))),)


def running_row_sum(x: Buffer, out: Buffer) -> tuple[Stmt, ...]:
    """out[i] = sum of rows 0..i: the local is carried across iterations of i."""
    return (Local("acc", const(0, F32)),
            Loop("i", 4, (Loop("j", 6, (accumulate(x),)), Store(out, Var("i"), LocalRef("acc", F32)))))


def column_sum(x: Buffer, out: Buffer) -> tuple[Stmt, ...]:
    """out[j] += x[i, j]: read-modify-write of the output at the loop-independent index j."""
    update = Store(out, Var("j"), fadd(Load(out, Var("j")), Load(x, idx(("i", 6), ("j", 1)))))
    return (Loop("z", 6, (Store(out, Var("z"), const(0, F32)),)),
            Loop("i", 4, (Loop("j", 6, (update,)),)))


def total_sum(x: Buffer, out: Buffer) -> tuple[Stmt, ...]:
    """out[0] += x[i, j]: every iteration updates the same element."""
    update = Store(out, Const(0), fadd(Load(out, Const(0)), Load(x, idx(("i", 6), ("j", 1)))))
    return (Store(out, Const(0), const(0, F32)),
            Loop("i", 4, (Loop("j", 6, (update,)),)))


def prefix_sum(x: Buffer, out: Buffer) -> tuple[Stmt, ...]:
    """out[i+1] = out[i] + x[i]: a flow dependence between iterations."""
    return (Store(out, Const(0), const(0, F32)),
            Loop("i", 5, (Store(out, fadd(Var("i"), Const(1)), fadd(Load(out, Var("i")), Load(x, Var("i")))),)))


def window_sum(x: Buffer, out: Buffer) -> tuple[Stmt, ...]:
    """out[i] = x[i] + x[i+1] + x[i+2]: a 3-wide window, like one row of a 3x3 convolution."""
    step = Assign("acc", fadd(LocalRef("acc", F32), Load(x, fadd(Var("i"), Var("k")))))
    return (Loop("i", 10, (Local("acc", const(0, F32)), Loop("k", 3, (step,)),
                           Store(out, Var("i"), LocalRef("acc", F32)))),)


X46 = RNG.uniform(-2, 2, (4, 6)).astype(np.float32)


# -- walkers --------------------------------------------------------------------
def test_substitute_replaces_vars_and_folds_index_constants() -> None:
    index = Binary("add", Binary("mul", Var("i"), Const(4)), Var("j"))
    assert substitute(index, {"i": Const(2)}) == Binary("add", Const(8), Var("j"))
    assert substitute(index, {"i": Const(2), "j": Const(3)}) == Const(11)
    assert substitute(index, {"k": Const(1)}) is index
    floats = Binary("add", Const(1.0, F32), Const(2.0, F32))
    assert substitute(floats, {}) is floats  # only i64 index arithmetic is folded


def test_substitute_reaches_statements_and_conditions() -> None:
    buf = Buffer("b", F32, 8)
    stmt = If(Binary("lt", Var("i"), Const(3)), (Store(buf, Var("i"), Load(buf, Binary("add", Var("i"), Const(1)))),))
    got = substitute(stmt, {"i": Var("t")})
    assert not any(isinstance(n, Var) and n.name == "i" for n in walk(got))
    assert sum(isinstance(n, Var) and n.name == "t" for n in walk(got)) == 3


def test_mappers_preserve_identity_and_rewrite() -> None:
    kernel = lowered(add_graph((3, 4), (4,))).kernels[0]
    assert map_exprs(kernel, lambda e: e) is kernel
    assert sum(isinstance(n, Load) for n in walk(kernel)) == 2
    no_stores = map_stmts(kernel, lambda s: () if isinstance(s, Store) else (s,))
    assert not any(isinstance(n, Store) for n in walk(no_stores))
    assert loop_vars(no_stores) == ["i0", "i1"]


def test_rename_renames_declarations_and_uses() -> None:
    program = hand_program(row_sum, (4, 6), (4,))
    kernel = rename(program.kernels[0], {"i": "row", "acc": "total"})
    assert declared_names(kernel) == {"row", "j", "total"}
    assert not any(isinstance(n, (Var, LocalRef)) and n.name in ("i", "acc") for n in walk(kernel))
    assert_same(run(replace(program, kernels=[kernel]), X46), run(program, X46))


def test_affine_reads_index_coefficients() -> None:
    assert affine(idx(("i", 6), ("j", 1))) == {"": 0, "i": 6, "j": 1}
    assert affine(Binary("sub", Var("i"), Binary("mul", Const(2), Var("j")))) == {"i": 1, "j": -2}
    assert affine(Binary("mul", Var("i"), Var("j"))) is None
    assert affine(Load(Buffer("b", DType.I64, 4), Var("i"))) is None


# -- split ----------------------------------------------------------------------
@pytest.mark.parametrize("var,factor,tail", [
    ("i1", 5, "guard"), ("i1", 4, "guard"), ("i1", 4, "peel"), ("i0", 3, "guard"), ("i0", 3, "peel"),
    ("i1", 1, "guard"), ("i1", 10, "peel"), ("i0", 7, "guard")])
def test_split_preserves_results(var: str, factor: int, tail: str) -> None:
    program = lowered(add_graph((7, 10), (10,)))
    a, b = RNG.uniform(-2, 2, (7, 10)).astype(np.float32), RNG.uniform(-2, 2, (10,)).astype(np.float32)
    kernel = split(program.kernels[0], var, factor, tail)
    extent = find_loop(program.kernels[0], var).extent
    outer, inner = find_loop(kernel, f"{var}_o"), find_loop(kernel, f"{var}_i")
    assert inner.extent == factor and outer.body == (inner,)
    remainder = extent % factor
    if remainder and tail == "peel":
        assert outer.extent == extent // factor and find_loop(kernel, f"{var}_t").extent == remainder
    else:
        assert outer.extent == -(-extent // factor)
    assert any(isinstance(n, If) for n in walk(kernel)) == (remainder != 0 and tail == "guard")
    assert var not in loop_vars(kernel)
    assert_same(run(transformed(program, lambda k: kernel), a, b), [a + b])


def test_split_of_loop_with_locals_keeps_them_scoped() -> None:
    program = hand_program(row_sum, (4, 6), (4,))
    want = run(program, X46)
    np.testing.assert_allclose(want[0], X46.sum(axis=1), rtol=1e-6)
    for tail in ("guard", "peel"):
        kernel = split(program.kernels[0], "i", 3, tail)
        names = [n.var if isinstance(n, Loop) else n.name for n in walk(kernel) if isinstance(n, (Loop, Local))]
        assert len(names) == len(set(names)), names
        assert_same(run(replace(program, kernels=[kernel]), X46), want)


def shifted_copy(x: Buffer, out: Buffer) -> tuple[Stmt, ...]:
    """out[i - 1] = x[i] for i in [1, 6): a loop that does not start at 0."""
    return (Loop("i", 5, (Store(out, Binary("sub", Var("i"), Const(1)), Load(x, Var("i"))),), start=1),)


@pytest.mark.parametrize("schedule_fn", [lambda k: split(k, "i", 2), lambda k: split(k, "i", 3, "peel"),
                                         lambda k: unroll(k, "i")], ids=["guard", "peel", "unroll"])
def test_transformations_respect_loop_start(schedule_fn: Callable[[Kernel], Kernel]) -> None:
    program = hand_program(shifted_copy, (6,), (5,))
    x = RNG.uniform(-2, 2, (6,)).astype(np.float32)
    assert_same(run(transformed(program, schedule_fn), x), [x[1:]])


@pytest.mark.parametrize("shape", [(7, 10), (8, 12), (5, 9)])
def test_tiling_by_split_and_reorder(shape: tuple[int, int]) -> None:
    program = lowered(add_graph(shape, shape[1:]))
    a, b = RNG.uniform(-2, 2, shape).astype(np.float32), RNG.uniform(-2, 2, shape[1:]).astype(np.float32)

    def tile(kernel: Kernel) -> Kernel:
        return reorder(split(split(kernel, "i1", 4), "i0", 3), "i0_i", "i1_o")

    kernel = tile(program.kernels[0])
    assert loop_vars(kernel) == ["i0_o", "i1_o", "i0_i", "i1_i"]
    assert_same(run(transformed(program, tile), a, b), [a + b])


def test_tiled_transpose() -> None:
    program = lowered(transpose_graph((9, 7)))
    x = RNG.uniform(-2, 2, (9, 7)).astype(np.float32)
    kernel = reorder(split(split(program.kernels[0], "i0", 4), "i1", 4, "guard"), "i0_i", "i1_o")
    assert_same(run(transformed(program, lambda k: kernel), x), [np.ascontiguousarray(x.T)])


# -- reorder --------------------------------------------------------------------
@pytest.mark.parametrize("graph,shapes", [(add_graph((5, 6), (6,)), [(5, 6), (6,)]),
                                          (add_graph((5, 6), (5, 1)), [(5, 6), (5, 1)]),
                                          (transpose_graph((4, 9)), [(4, 9)])])
def test_reorder_preserves_results(graph: Graph, shapes: list[tuple[int, ...]]) -> None:
    program = lowered(graph)
    arrays = [RNG.uniform(-2, 2, s).astype(np.float32) for s in shapes]
    kernel = reorder(program.kernels[0], "i0", "i1")
    assert loop_vars(kernel) == ["i1", "i0"]
    assert_same(run(transformed(program, lambda k: kernel), *arrays), run(program, *arrays))


def test_reorder_of_read_modify_write_reduction_is_allowed() -> None:
    program = hand_program(column_sum, (4, 6), (6,))
    want = run(program, X46)
    np.testing.assert_allclose(want[0], X46.sum(axis=0), rtol=1e-6)
    assert_same(run(transformed(program, lambda k: reorder(k, "i", "j")), X46), want)


def test_reorder_rejects_illegal_requests() -> None:
    rows = hand_program(row_sum, (4, 6), (4,)).kernels[0]
    with pytest.raises(CodegenError, match="k0_hand.*loop i.*perfectly nested"):
        reorder(rows, "i", "j")
    with pytest.raises(CodegenError, match="k0_hand.*loop i.*same element of buffer out"):
        reorder(hand_program(total_sum, (4, 6), (1,)).kernels[0], "i", "j")
    kernel = lowered(add_graph((5, 6), (6,))).kernels[0]
    with pytest.raises(CodegenError, match="loop i1.*perfectly nested"):
        reorder(kernel, "i1", "i0")
    with pytest.raises(CodegenError, match="already vectorize"):
        reorder(vectorize(kernel, "i1"), "i0", "i1")


# -- unroll ---------------------------------------------------------------------
@pytest.mark.parametrize("var", ["i0", "i1"])
def test_unroll_preserves_results(var: str) -> None:
    program = lowered(add_graph((7, 10), (10,)))
    a, b = RNG.uniform(-2, 2, (7, 10)).astype(np.float32), RNG.uniform(-2, 2, (10,)).astype(np.float32)
    kernel = unroll(program.kernels[0], var)
    assert var not in loop_vars(kernel)
    assert_same(run(transformed(program, lambda k: kernel), a, b), [a + b])


def test_unroll_renames_inner_loops_and_locals() -> None:
    program = hand_program(row_sum, (4, 6), (4,))
    kernel = unroll(program.kernels[0], "i")
    assert len(kernel.body) == 4 * 3
    loops = loop_vars(kernel)
    locals_ = [n.name for n in walk(kernel) if isinstance(n, Local)]
    assert len(loops) == 4 and len(set(loops)) == 4 and len(locals_) == 4 and len(set(locals_)) == 4
    assert not any(isinstance(n, Var) and n.name == "i" for n in walk(kernel))
    kernel = vectorize(kernel, loops[-1])
    assert_same(run(replace(program, kernels=[kernel]), X46), run(program, X46))


def test_unroll_rejects_large_or_scheduled_loops() -> None:
    big = lowered(add_graph((MAX_UNROLL + 1,), (1,))).kernels[0]
    with pytest.raises(CodegenError, match=f"k0_add.*loop i0.*extent {MAX_UNROLL + 1}"):
        unroll(big, "i0")
    with pytest.raises(CodegenError, match="loop i0.*already vectorize"):
        unroll(vectorize(big, "i0"), "i0")


# -- kinds ----------------------------------------------------------------------
def test_vectorize_and_parallel_set_kinds_and_keep_results() -> None:
    program = lowered(add_graph((7, 10), (10,)))
    a, b = RNG.uniform(-2, 2, (7, 10)).astype(np.float32), RNG.uniform(-2, 2, (10,)).astype(np.float32)
    kernel = vectorize(parallel(program.kernels[0], "i0"), "i1")
    assert find_loop(kernel, "i0").kind == "parallel" and find_loop(kernel, "i1").kind == "vectorize"
    assert vectorize(kernel, "i1") == kernel  # marking again is a no-op
    assert_same(run(transformed(program, lambda k: vectorize(k, "i1")), a, b), [a + b])


def test_a_loop_kind_the_target_cannot_emit_is_refused_not_run_serially() -> None:
    program = plan_memory(transformed(lowered(add_graph((7, 10), (10,))), lambda k: parallel(k, "i0")))
    without_threads = replace(Target.named(), loop_kinds=frozenset({"serial", "vectorize"}))  # no OpenMP runtime
    with pytest.raises(CodegenError, match="k0_add: loop i0 is scheduled parallel, which target cpu cannot emit"):
        jit_compile(program, without_threads)


def test_kind_requests_are_checked() -> None:
    kernel = lowered(add_graph((7, 10), (10,))).kernels[0]
    with pytest.raises(CodegenError, match="k0_add.*loop i0.*contains loops"):
        vectorize(kernel, "i0")
    with pytest.raises(CodegenError, match="k0_add.*loop i1.*not an outermost loop"):
        parallel(kernel, "i1")
    with pytest.raises(CodegenError, match="loop i1.*already vectorize"):
        split(vectorize(kernel, "i1"), "i1", 2)
    flat = lowered(add_graph((16,), (16,))).kernels[0]
    with pytest.raises(CodegenError, match="loop i0.*already vectorize"):
        parallel(vectorize(flat, "i0"), "i0")


def test_parallel_checks_dependences() -> None:
    assert find_loop(parallel(hand_program(row_sum, (4, 6), (4,)).kernels[0], "i"), "i").kind == "parallel"
    assert find_loop(parallel(hand_program(column_sum, (4, 6), (6,)).kernels[0], "z"), "z").kind == "parallel"
    with pytest.raises(CodegenError, match="k0_hand.*loop i.*local acc declared outside"):
        parallel(hand_program(running_row_sum, (4, 6), (4,)).kernels[0], "i")
    with pytest.raises(CodegenError, match="loop i.*same element of buffer out"):
        parallel(hand_program(column_sum, (4, 6), (6,)).kernels[0], "i")
    with pytest.raises(CodegenError, match="loop i.*buffer out is written and accessed at different indices"):
        parallel(hand_program(prefix_sum, (5,), (6,)).kernels[0], "i")


def test_unknown_loops_and_bad_factors_are_rejected() -> None:
    kernel = lowered(add_graph((7, 10), (10,))).kernels[0]
    with pytest.raises(CodegenError, match="k0_add: no loop q"):
        split(kernel, "q", 2)
    for factor in (0, 11):
        with pytest.raises(CodegenError, match=f"k0_add.*loop i1.*factor {factor} is not in"):
            split(kernel, "i1", factor)
    with pytest.raises(CodegenError, match="unknown tail"):
        split(kernel, "i1", 3, "round")


# -- the default schedule pass ---------------------------------------------------
def test_default_schedule_unrolls_tiny_loops_and_vectorizes_long_ones() -> None:
    program = schedule(lowered(add_graph((16, 3), (3,))))
    (kernel,) = program.kernels
    assert loop_vars(kernel) == ["i0"] and find_loop(kernel, "i0").kind == "vectorize"
    assert sum(isinstance(n, Store) for n in walk(kernel)) == 3

    (kernel,) = schedule(lowered(add_graph((3, 16), (16,)))).kernels
    assert [(n.var, n.kind) for n in walk(kernel) if isinstance(n, Loop)] == [("i0", "serial"), ("i1", "vectorize")]

    (kernel,) = schedule(lowered(add_graph((5,), (5,)))).kernels
    assert [(n.var, n.kind) for n in walk(kernel) if isinstance(n, Loop)] == [("i0", "serial")]


@pytest.mark.parametrize("a,b", [((16, 3), (3,)), ((3, 16), (16,)), ((2, 3, 4), (4,)), ((0, 3), (3,)), ((), ()),
                                 ((9,), (1,))])
def test_default_schedule_numerics(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    program = lowered(add_graph(a, b))
    x, y = RNG.uniform(-2, 2, a).astype(np.float32), RNG.uniform(-2, 2, b).astype(np.float32)
    assert_same(run(schedule(program), x, y), [x + y])


def test_default_schedule_unrolls_windows() -> None:
    program = hand_program(window_sum, (12,), (10,))
    x = RNG.uniform(-2, 2, (12,)).astype(np.float32)
    (kernel,) = schedule(program).kernels
    assert [(n.var, n.kind) for n in walk(kernel) if isinstance(n, Loop)] == [("i", "vectorize")]
    assert sum(isinstance(n, Assign) for n in walk(kernel)) == 3
    got = run(schedule(program), x)
    assert_same(got, run(program, x))
    np.testing.assert_allclose(got[0], x[:-2] + x[1:-1] + x[2:], rtol=1e-6)


def test_schedule_runs_in_the_pipeline() -> None:
    base = [p for p in PASSES if p.name != "schedule"]
    at = [p.name for p in base].index("lower_to_loops") + 1
    passes = [*base[:at], Pass("schedule", schedule, "loops"), *base[at:]]
    graph = add_graph((4, 32), (32,))
    result = Pipeline(passes=passes).run(graph)
    assert [n.kind for n in walk(result.program.kernels[0]) if isinstance(n, Loop)] == ["serial", "vectorize"]
    a, b = RNG.uniform(-2, 2, (4, 32)).astype(np.float32), RNG.uniform(-2, 2, (32,)).astype(np.float32)
    assert_same(run(result.program, a, b), [a + b])
