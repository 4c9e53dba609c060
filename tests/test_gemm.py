"""The packed, register-blocked GEMM schedule (``loops/gemm.py``): which kernels it takes, its block sizes per
target, the code it makes (FMA vector instructions verified in the assembly) and its numerics at tile tails."""
from __future__ import annotations

import re

import llvmlite.binding as llvm
import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.compiler.codegen.llvm_target import target_machine
from needlec.compiler.interpreter import interpret
from needlec.compiler.loops.gemm import MAX_KC, MIN_BLOCKS, plan, recognize
from needlec.compiler.loops.ir import Kernel, Loop, LoopKind, StorageKind, Store
from needlec.compiler.loops.transforms import walk
from needlec.compiler.passes.lower_to_loops import lower_to_loops
from needlec.compiler.passes.materialize_outputs import materialize_outputs
from needlec.compiler.target import Target
from needlec.driver import optimized_llvm_ir

RNG = np.random.default_rng(0)


def _matmul_graph(a: tuple[int, ...], b: tuple[int, ...], dtype: DType = DType.F32) -> Graph:
    g = Graph("mm")
    x, y = g.add_input("a", TensorType(a, dtype)), g.add_input("b", TensorType(b, dtype))
    g.set_outputs(g.add_node("matmul", [x, y]).outputs)
    return g


def _conv_graph(x: tuple[int, ...], w: tuple[int, ...], **attrs: object) -> Graph:
    g = Graph("conv")
    xs, ws = g.add_input("x", TensorType(x, DType.F32)), g.add_input("w", TensorType(w, DType.F32))
    g.set_outputs(g.add_node("conv2d", [xs, ws], dict(attrs)).outputs)
    return g


def _lowered_kernel(graph: Graph) -> Kernel:
    (kernel,) = lower_to_loops(materialize_outputs(graph.copy())).kernels
    return kernel


def test_matmul_reads_as_rows_columns_and_reduction() -> None:
    c = recognize(_lowered_kernel(_matmul_graph((3, 17, 33), (3, 33, 19))))
    assert c is not None
    assert (c.m, c.n, c.k) == (17, 19, 33) and len(c.batch) == 1 and not c.guards


def test_broadcast_batch_rows_flatten_into_one_row_index() -> None:
    c = recognize(_lowered_kernel(_matmul_graph((2, 31, 40), (40, 17))))
    assert c is not None and (c.m, c.n, c.k, len(c.batch)) == (62, 17, 40, 0)


def test_convolution_is_an_implicit_gemm_with_padding_guards() -> None:
    c = recognize(_lowered_kernel(_conv_graph((2, 5, 11, 9), (7, 5, 3, 3), pads=[1, 1, 1, 1])))
    assert c is not None
    # output channels are rows; images and output positions the columns; channels x taps the depth
    assert (c.m, c.n, c.k, len(c.batch)) == (7, 2 * 99, 45, 0) and c.guards


@pytest.mark.parametrize("graph", [
    _matmul_graph((4, 30), (30, 2)),   # too few columns: row streaming
    _matmul_graph((1, 300), (300, 64)),  # a matrix-vector product
    _matmul_graph((9, 20), (20, 33), DType.I32),  # integers keep the plain nests
    _conv_graph((1, 8, 9, 9), (8, 1, 3, 3), groups=8, pads=[1, 1, 1, 1]),  # depthwise: one row per group
], ids=["narrow", "matvec", "int32", "depthwise"])
def test_small_and_integer_products_keep_the_default_schedule(graph: Graph) -> None:
    compiled = needlec.compile(graph, progress=False)
    assert not any(b.name.endswith("_packed_a") for k in compiled.program.kernels for b in k.buffers)


def test_plan_sizes_follow_the_vector_width() -> None:
    c = recognize(_lowered_kernel(_matmul_graph((130, 300), (300, 267))))
    assert c is not None
    for cpu, nr, mr in (("x86-64-v2", 8, 6), ("x86-64-v3", 16, 6), ("x86-64-v4", 32, 12)):
        p = plan(c, Target.named("cpu", cpu))
        assert (p.nr, p.mr) == (nr, mr), cpu
        assert p.kc <= MAX_KC and 300 % p.chunk == 0 and p.chunks == 300 // p.chunk  # chunks divide the depth
        assert p.blocks * p.mc >= 130 and p.mc % p.mr == 0
    assert plan(c, Target.named("cpu", "x86-64-v3")).blocks % MIN_BLOCKS == 0  # large: blocks for the threads


def test_wide_products_split_columns_and_tall_ones_rows() -> None:
    wide = recognize(_lowered_kernel(_conv_graph((1, 64, 56, 56), (64, 64, 3, 3), pads=[1, 1, 1, 1])))
    tall = recognize(_lowered_kernel(_conv_graph((1, 512, 7, 7), (512, 512, 3, 3), pads=[1, 1, 1, 1])))
    assert wide is not None and tall is not None
    target = Target.named("cpu", "x86-64-v3")
    w, t = plan(wide, target), plan(tall, target)
    assert w.split_columns and w.mc >= 64 and w.blocks * w.nc * w.nr >= 56 * 56 and w.blocks % MIN_BLOCKS == 0
    assert not t.split_columns and t.blocks * t.mc >= 512 and t.blocks % MIN_BLOCKS == 0
    assert t.chunks > 1  # many chunks, yet the blocks run on the team: they are outside the chunk loop


def test_constant_weights_are_packed_at_compile_time() -> None:
    weight = RNG.standard_normal((300, 40)).astype(np.float32)
    x = RNG.standard_normal((37, 300)).astype(np.float32)
    compiled = needlec.compile(lambda a: a @ weight, [x], progress=False)
    program = compiled.program
    (kernel,) = program.kernels
    (packed,) = [b for b in kernel.buffers if b.name.endswith("_packed_b")]
    assert program.storage[packed.name].kind is StorageKind.CONSTANT
    # the weight is embedded once: in the packed layout, with no packing of it left in the kernel
    assert [n for n, s in program.storage.items() if s.kind is StorageKind.CONSTANT] == [packed.name]
    assert not any(isinstance(n, Store) and n.buffer == packed for n in walk(kernel))
    np.testing.assert_allclose(compiled(x), x.astype(np.float64) @ weight, rtol=1e-4, atol=1e-3)


def test_a_reduction_too_deep_for_one_chunk_is_cut_inside() -> None:
    c = recognize(_lowered_kernel(_conv_graph((2, 2, 20, 20), (9, 2, 17, 17), pads=[8, 8, 8, 8])))
    assert c is not None and [loop.extent for loop in c.reduction] == [2, 17, 17]
    p = plan(c, Target.named("cpu", "x86-64-v3"))
    # 17 x 17 taps exceed MAX_KC: chunks are runs of kernel rows, the channel loop one iteration per chunk
    assert (p.split, p.kc, p.chunks) == (1, p.chunk * 17, 2 * 17 // p.chunk) and p.kc <= MAX_KC


def test_pointwise_convolutions_pack_their_columns_as_one_index() -> None:
    from needlec.compiler.loops.ir import Binary

    def mods(graph: Graph) -> int:
        compiled = needlec.compile(graph, progress=False)
        return sum(1 for k in compiled.program.kernels for n in walk(k) if isinstance(n, Binary) and n.op == "mod")

    # a 1 x 1 convolution at stride 1 reads input position oh * W + ow for output oh * W + ow: a contiguous pack
    assert mods(_conv_graph((1, 30, 7, 7), (9, 30, 1, 1))) == 0
    assert mods(_conv_graph((1, 30, 7, 7), (9, 30, 1, 1), strides=[2, 2])) > 0  # strided: per-column positions


def test_f16_products_take_one_chunk_so_partial_sums_stay_f32() -> None:
    c = recognize(_lowered_kernel(_matmul_graph((9, 600), (600, 33), DType.F16)))
    assert c is not None and c.work is DType.F32
    assert plan(c, Target.named("cpu", "x86-64-v3")).chunks == 1


def test_packing_scratch_is_in_the_arena_and_row_blocks_run_in_parallel() -> None:
    compiled = needlec.compile(_matmul_graph((130, 300), (300, 267)), progress=False)
    program = compiled.program
    (kernel,) = program.kernels
    scratch = [b for b in kernel.buffers if b.name.endswith(("_packed_a", "_packed_b", "_tile"))]
    assert len(scratch) == 3
    assert all(program.storage[b.name].kind is StorageKind.ARENA for b in scratch)
    assert program.arena_size >= sum(b.size * 4 for b in scratch)
    if LoopKind.PARALLEL in Target.named().loop_kinds:
        assert any(isinstance(n, Loop) and n.kind is LoopKind.PARALLEL for n in walk(kernel))


def _assembly(cpu: str, n: int = 64) -> str:
    from needlec.driver import run_pipeline
    from needlec.progress import Progress

    target = Target.named("cpu", cpu)
    program = run_pipeline(_matmul_graph((64, 64), (64, n)), target, Progress(False)).program
    ir_text = optimized_llvm_ir(program, target)
    return str(target_machine(target.cpu).emit_assembly(llvm.parse_assembly(ir_text)))


@pytest.mark.parametrize("n", [64, 196], ids=["whole-panels", "tail-of-4"])
def test_the_micro_kernel_is_fma_vector_code_on_avx2(n: int) -> None:
    asm = _assembly("x86-64-v3", n)
    # a 6 x 16 tile: 12 ymm accumulators updated by fused multiply-adds in the reduction loop, none spilled
    blocks = re.split(r"\n\.LBB\w+:", asm)
    loops = [b for b in blocks if len(re.findall(r"vfmadd\d+ps\s+[^\n]*%ymm", b)) >= 12]
    spill = r"vmov[au]ps\s+(%ymm\d+, -?\d*\(%rsp\)|-?\d*\(%rsp\), %ymm\d+)"
    assert loops and not any(re.search(spill, b) for b in loops)


def test_without_fma_the_micro_kernel_multiplies_and_adds_sse_vectors() -> None:
    asm = _assembly("x86-64-v2")
    assert "vfmadd" not in asm and len(re.findall(r"\bmulps\s", asm)) >= 12


SIZES = [(1, 1, 1), (4, 8, 8), (5, 8, 9), (6, 16, 16), (7, 17, 15), (13, 31, 257), (37, 29, 300), (61, 1, 64),
         (97, 128, 53)]


@pytest.mark.parametrize("m,k,n", SIZES, ids=[f"{m}x{k}x{n}" for m, k, n in SIZES])
def test_products_at_tile_tails_match_float64(m: int, k: int, n: int) -> None:
    a = RNG.standard_normal((m, k)).astype(np.float32)
    b = RNG.standard_normal((k, n)).astype(np.float32)
    got = needlec.compile(lambda x, y: x @ y, [a, b], progress=False)(a, b)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-4 * np.sqrt(k))


CONVS = [((1, 3, 17, 13), (8, 3, 5, 5), {"pads": [2, 1, 0, 2], "strides": [2, 1]}),
         ((2, 2, 20, 20), (9, 2, 17, 17), {"pads": [8, 8, 8, 8]}),  # taps of a channel exceed a chunk: split rows
         ((2, 16, 10, 10), (20, 4, 3, 3), {"groups": 4, "pads": [1, 1, 1, 1]}),
         ((1, 30, 7, 7), (9, 30, 1, 1), {}),
         ((1, 64, 9, 9), (5, 64, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]})]


@pytest.mark.parametrize("x,w,attrs", CONVS, ids=[str(i) for i in range(len(CONVS))])
def test_convolutions_match_the_reference_interpreter(x: tuple[int, ...], w: tuple[int, ...],
                                                      attrs: dict[str, object]) -> None:
    graph = _conv_graph(x, w, **attrs)
    arrays = [RNG.standard_normal(x).astype(np.float32), RNG.standard_normal(w).astype(np.float32)]
    compiled = needlec.compile(graph, progress=False)
    assert any(b.name.endswith("_packed_b") for k in compiled.program.kernels for b in k.buffers)
    (want,) = interpret(graph, arrays)
    np.testing.assert_allclose(compiled(*arrays), want, rtol=1e-4, atol=1e-4)


# -- convolutions the GEMM schedule leaves (depthwise, thin groups): border / interior / border ranges ------------
def test_window_regions_split_borders_from_the_interior() -> None:
    from needlec.compiler.ops.window import window_geometry
    window = window_geometry("conv2d", (9, 10), (3, 3), (1, 2), (1, 1, 1, 1), (1, 1), False)
    assert window.out_dims == (9, 5)
    assert window.regions(0) == [(0, 1, True), (1, 7, False), (8, 1, True)]
    assert window.regions(1) == [(0, 1, True), (1, 4, False)]  # stride 2: the last window ends inside
    unpadded = window_geometry("conv2d", (5, 5), (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), False)
    assert unpadded.regions(0) == [(0, 3, False)]


def test_depthwise_interior_runs_without_padding_checks() -> None:
    from needlec.compiler.loops.ir import If
    kernel = _lowered_kernel(_conv_graph((1, 8, 9, 9), (8, 1, 3, 3), groups=8, pads=[1, 1, 1, 1]))
    loops = [n for n in walk(kernel) if isinstance(n, Loop) and (n.start, n.extent) == (1, 7)]
    columns = [loop for loop in loops if not any(isinstance(n, Loop) and n.extent == 7 for n in walk(loop.body))]
    # the interior column range of an interior row has no check; the same range of a border row checks the row
    assert sorted(any(isinstance(n, If) for n in walk(loop.body)) for loop in columns) == [False, True, True]


def test_kernels_with_the_same_code_share_one_function() -> None:
    from needlec.compiler.codegen.cpu import code_key, emit_module

    def model(x, w1, w2, w3):  # type: ignore[no-untyped-def]
        return ((x @ w1) @ w2) @ w3  # three products of one shape: one function, three calls

    arrays = [RNG.standard_normal((16, 16)).astype(np.float32) for _ in range(4)]
    compiled = needlec.compile(model, arrays, progress=False)
    program = compiled.program
    products = [k for k in program.kernels if "matmul" in k.ops]
    assert len(products) == 3 and len({code_key(k) for k in products}) == 1
    text = str(emit_module(program, compiled.target))
    assert sum(1 for line in text.splitlines() if line.startswith("define") and "matmul" in line) == 1
    want = ((arrays[0] @ arrays[1]) @ arrays[2]) @ arrays[3]
    np.testing.assert_allclose(compiled(*arrays), want, rtol=1e-4, atol=1e-3)
