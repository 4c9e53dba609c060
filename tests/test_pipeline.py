"""The pass manager and the graph passes: rewrites, options, failure reporting, memory planning."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.compiler.interpreter import interpret
from needlec.compiler.passes import PASSES, Pass
from needlec.compiler.passes.canonicalize import canonicalize
from needlec.compiler.passes.constant_fold import constant_fold
from needlec.compiler.passes.cse import cse
from needlec.compiler.passes.dce import dce
from needlec.compiler.loops.ir import Program
from needlec.compiler.pipeline import Pipeline, PipelineOptions
from needlec.compiler.target import Target
from needlec.errors import NeedlecError, PassError

F32 = DType.F32


def _graph() -> tuple[Graph, object]:
    g = Graph("g")
    return g, g.add_input("x", TensorType((2, 3), F32))


def test_canonicalize_removes_identities_and_composes_views() -> None:
    g, x = _graph()
    zero = g.add_constant(np.zeros((3,), np.float32), "zero")
    y = g.add("add", x, zero)
    y = g.add("neg", g.add("neg", y))
    y = g.add("permute", g.add("permute", y, perm=[1, 0]), perm=[1, 0])
    y = g.add("cast", y, dtype="f32")
    g.set_outputs([y])
    canonicalize(g)
    assert [n.op for n in g.nodes] == []
    assert g.outputs == [x]


def test_canonicalize_keeps_broadcasting_add_of_zero() -> None:
    g, x = _graph()
    zero = g.add_constant(np.zeros((4, 1, 1), np.float32), "zero")
    g.set_outputs([g.add("add", x, zero)])
    canonicalize(g)
    assert [n.op for n in g.nodes] == ["add"]


def test_cse_merges_equal_nodes_and_constants() -> None:
    g, x = _graph()
    a = g.add("exp", x)
    b = g.add("exp", x)
    c1 = g.add_constant(np.ones(3, np.float32), "c1")
    c2 = g.add_constant(np.ones(3, np.float32), "c2")
    g.set_outputs([g.add("add", g.add("mul", a, c1), g.add("mul", b, c2))])
    cse(g)
    assert [n.op for n in g.nodes] == ["exp", "mul", "add"]
    assert len(g.constants) == 1


def test_dce_drops_unused_nodes_and_constants() -> None:
    g, x = _graph()
    g.add("exp", x)
    g.add_constant(np.ones(3, np.float32), "unused")
    keep = g.add("neg", x)
    g.set_outputs([keep])
    dce(g)
    assert [n.op for n in g.nodes] == ["neg"] and g.constants == []


def test_constant_fold_evaluates_weight_preprocessing() -> None:
    g, x = _graph()
    w = g.add_constant(np.arange(6, dtype=np.float32).reshape(3, 2), "w")
    wt = g.add("permute", w, perm=[1, 0])
    g.set_outputs([g.add("add", x, g.add("exp", wt))])
    before = interpret(g, [np.ones((2, 3), np.float32)])
    constant_fold(g)
    dce(g)
    assert [n.op for n in g.nodes] == ["add"]
    np.testing.assert_allclose(interpret(g, [np.ones((2, 3), np.float32)])[0], before[0])


def test_print_after_and_timing_write_to_stream() -> None:
    g, x = _graph()
    g.set_outputs([g.add("exp", x)])
    stream = io.StringIO()
    needlec.compile(g, print_after=["dce", "plan_memory"], timing=True, stream=stream)
    text = stream.getvalue()
    assert "IR after dce" in text and "IR after plan_memory" in text and "IR after cse" not in text
    assert "total" in text


def test_print_after_all_prints_every_pass(tmp_path) -> None:
    g, x = _graph()
    g.set_outputs([g.add("exp", x)])
    stream = io.StringIO()
    needlec.compile(g, print_after_all=True, stream=stream, dump_dir=str(tmp_path))
    for p in PASSES:
        assert f"IR after {p.name} -----" in stream.getvalue()
    assert len(list(tmp_path.iterdir())) == len(PASSES)


def test_unknown_pass_name_is_rejected() -> None:
    g, x = _graph()
    g.set_outputs([x])
    with pytest.raises(NeedlecError, match="unknown pass nosuchpass"):
        needlec.compile(g, print_after=["nosuchpass"])


def _break_numerics(graph: Graph) -> Graph:
    """A deliberately wrong pass: turns every exp into neg."""
    for node in graph.nodes:
        if node.op == "exp":
            node.op = "neg"
    return graph


def test_numeric_check_names_the_guilty_pass_and_its_predecessors() -> None:
    g, x = _graph()
    g.set_outputs([g.add("exp", x)])
    passes = [PASSES[0], PASSES[1], Pass("break_numerics", _break_numerics, "graph"), *PASSES[2:]]
    with pytest.raises(PassError, match=r"pass break_numerics .*after verify, canonicalize.*numerics"):
        Pipeline(PipelineOptions(check_numerics=True), passes=passes).run(g)
    Pipeline(PipelineOptions(check_numerics=False, verify_each=False), passes=passes).run(g)  # unnoticed without it


def _overlap_arena(program: Program, target: Target) -> Program:
    """A deliberately wrong loop pass: places every arena buffer at offset 0, so live buffers overlap."""
    program.storage = {name: replace(where, offset=0) if where.kind == "arena" else where
                       for name, where in program.storage.items()}
    return program


def test_numeric_check_runs_after_loop_passes_on_the_loop_interpreter() -> None:
    """check_numerics compares the program after each loop pass too: a wrong memory plan is caught."""
    g, x = _graph()
    g.set_outputs([g.add("mul", g.add("exp", x), g.add("neg", x))])  # exp(x) and -x live at once
    passes = [*PASSES, Pass("overlap_arena", _overlap_arena, "loops")]
    with pytest.raises(PassError, match=r"pass overlap_arena .*plan_memory\): changed the numerics of output 0"):
        Pipeline(PipelineOptions(check_numerics=True, verify_each=False, fuse=False), passes=passes).run(g)
    stream = io.StringIO()
    Pipeline(PipelineOptions(check_numerics=True, print_after_all=True, stream=stream)).run(g)
    assert [line for line in stream.getvalue().splitlines() if line.startswith("// ----- IR after")] == \
        [f"// ----- IR after {p.name} -----" for p in PASSES]


def _break_structure(graph: Graph) -> Graph:
    """A deliberately wrong pass: reverses the node order."""
    graph.nodes.reverse()
    return graph


def test_verify_each_catches_a_pass_that_breaks_the_graph() -> None:
    g, x = _graph()
    g.set_outputs([g.add("neg", g.add("exp", x))])
    passes = [PASSES[0], Pass("break_structure", _break_structure, "graph"), *PASSES[1:]]
    with pytest.raises(PassError, match=r"break_structure .*used before it is defined"):
        Pipeline(PipelineOptions(), passes=passes).run(g)


def test_pipeline_leaves_the_input_graph_untouched() -> None:
    g, x = _graph()
    g.set_outputs([g.add("neg", g.add("neg", x))])
    needlec.compile(g)
    assert [n.op for n in g.nodes] == ["neg", "neg"]


def test_memory_plan_reuses_dead_buffers() -> None:
    g, x = _graph()
    y = x
    for _ in range(6):
        y = g.add("exp", g.add("neg", y))
    g.set_outputs([y])
    compiled = needlec.compile(g, fuse=False)  # unfused: one arena buffer per node but the last
    arena = [n for n, s in compiled.program.storage.items() if s.kind == "arena"]
    assert len(arena) == 11
    assert compiled.program.arena_size <= 2 * 64  # two 24-byte buffers, 64-byte aligned, ping-pong
    x0 = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(compiled(x0), interpret(g, [x0])[0], rtol=1e-5)


def test_memory_plan_never_overlaps_live_buffers() -> None:
    g, x = _graph()
    a = g.add("exp", x)
    b = g.add("neg", x)
    c = g.add("sin", x)
    g.set_outputs([g.add("add", g.add("add", a, b), c)])
    program = needlec.compile(g, fuse=False).program
    spans = [(s.offset, s.offset + 64) for n, s in program.storage.items() if s.kind == "arena"]
    live_together = spans[:3]  # a, b, c are all live at the first add
    assert len({start for start, _ in live_together}) == 3
