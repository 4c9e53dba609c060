"""The elementwise fusion pass ``fuse_elementwise`` and the lowering of inline nodes.

Which nodes the policy inlines (one rule per test), what the verifier
refuses, the graph text round trip of ``inline`` marks, and numerics: the
reference interpreter, the compiled JIT at odd sizes, the same bits fused and
unfused for elementwise chains (f16/bf16 round at every step), training steps
and the example models under ``check_numerics``.
"""
from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType, nn, ops, optim
from needlec.compiler.interpreter import interpret
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.parser import parse_graph
from needlec.compiler.ir.printer import print_graph
from needlec.compiler.ir.verifier import verify_graph
from needlec.compiler.passes.fuse import MAX_DEPTH, fuse_elementwise
from needlec.compiler.passes.lower_to_loops import lower_to_loops
from needlec.compiler.pipeline import Pipeline, PipelineOptions, PipelineResult
from needlec.driver import load_model_file
from needlec.errors import CodegenError, VerificationError
from needlec.frontend.nn import functional as F

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _graph(shape: tuple[int, ...] = (4, 3)) -> tuple[Graph, Value]:
    g = Graph("g")
    return g, g.add_input("x", TensorType(shape, DType.F32))


def _node(value: Value) -> Node:
    assert value.producer is not None
    return value.producer


def _fused(g: Graph) -> Graph:
    verify_graph(fuse_elementwise(g))
    return g


def _compile(fn: Callable[..., Any], *examples: np.ndarray, **options: Any) -> PipelineResult:
    return Pipeline(PipelineOptions(**options)).run(needlec.trace(fn, *examples))


def tanh_gelu(x: Any) -> Any:
    return 0.5 * x * (1 + ops.tanh(0.79788456 * (x + 0.044715 * x * x * x)))


# -- the policy ---------------------------------------------------------------------------------

def test_a_tanh_gelu_chain_is_one_kernel() -> None:
    result = _compile(tanh_gelu, np.zeros((7, 13), np.float32))
    (kernel,) = result.program.kernels
    assert all(n.inline for n in result.graph.nodes[:-1]) and not result.graph.nodes[-1].inline
    assert [s.node for s in kernel.sources] == [n.name for n in result.graph.nodes]


def test_softmax_computes_its_exp_once() -> None:
    """exp has two readers (the sum and the division): computed once into a buffer, the shift folded into it."""
    result = _compile(lambda x: ops.softmax(x, -1), np.zeros((7, 13), np.float32))
    assert [k.ops for k in result.program.kernels] == [("reduce_max",), ("sub", "exp"), ("reduce_sum",), ("div",)]


def test_a_value_read_by_matmul_or_conv_stays_in_a_buffer() -> None:
    g, x = _graph()
    w = g.add_input("w", TensorType((3, 2), DType.F32))
    a, b = g.add("neg", x), g.add("neg", w)
    image = g.add_input("image", TensorType((1, 1, 4, 4), DType.F32))
    kernel = g.add_input("kernel", TensorType((1, 1, 3, 3), DType.F32))
    c = g.add("abs", image)
    g.set_outputs([g.add("matmul", a, b), g.add("conv2d", c, g.add("abs", kernel))])
    _fused(g)
    assert not any(n.inline for n in g.nodes)


@pytest.mark.parametrize("readers, inline", [(1, True), (2, False)])
def test_a_math_call_is_computed_once_only(readers: int, inline: bool) -> None:
    g, x = _graph()
    e = g.add("exp", x)
    g.set_outputs([g.add("mul", e, g.add_constant(np.float32(k), "k")) for k in range(readers)])
    assert _node(_fused(g).outputs[0]).op == "mul"
    assert _node(e).inline is inline


@pytest.mark.parametrize("readers, inline", [(4, True), (5, False)])
def test_plain_arithmetic_is_computed_in_at_most_four_readers(readers: int, inline: bool) -> None:
    g, x = _graph()
    s = g.add("sub", x, g.add_constant(np.float32(1), "one"))
    g.set_outputs([g.add("mul", s, g.add_constant(np.float32(k), "k")) for k in range(readers)])
    assert _node(_fused(g).outputs[0]).op == "mul"
    assert _node(s).inline is inline


def test_a_graph_output_stays_in_a_buffer() -> None:
    g, x = _graph()
    t = g.add("tanh", x)
    g.set_outputs([t, g.add("neg", t)])
    assert not any(n.inline for n in _fused(g).nodes)


def test_values_read_by_a_view_or_a_bitcast_stay_in_buffers() -> None:
    g, x = _graph()
    n = g.add("neg", x)
    m = g.add("abs", x)
    g.set_outputs([g.add("copy", g.add("permute", n, perm=[1, 0])), g.add("bitcast", m, dtype=DType.I32)])
    _fused(g)
    assert not _node(n).inline and not _node(m).inline


@pytest.mark.parametrize("rows, op, inline", [(4, "neg", True), (5, "neg", False), (1, "exp", True),
                                              (2, "exp", False)])
def test_broadcast_reads_count_as_evaluations(rows: int, op: str, inline: bool) -> None:
    """A [3] value added to a [rows, 3] input is computed rows times per element when inline."""
    g, x = _graph((rows, 3))
    b = g.add(op, g.add_input("b", TensorType((3,), DType.F32)))
    g.set_outputs([g.add("add", x, b)])
    assert _node(_fused(g).outputs[0]).op == "add"
    assert _node(b).inline is inline


def test_reductions_and_data_movement_take_inline_inputs() -> None:
    g, x = _graph()
    idx = g.add_input("idx", TensorType((2,), DType.I64))
    reads = [g.add("reduce_max", g.add("exp", x), axes=[1]), g.add("argmax", g.add("exp", x), axis=0),
             g.add("cumulative", g.add("exp", x), kind="sum", axis=1),
             g.add("concat", g.add("exp", x), g.add("neg", x), axis=0),
             g.add("pad", g.add("exp", x), pads=[0, 0, 0, -1]), g.add("gather", g.add("exp", x), idx, axis=0)]
    g.set_outputs(reads)
    _fused(g)
    assert all(n.inline for n in g.nodes if n.op in ("exp", "neg"))


def test_a_growing_pad_takes_plain_arithmetic_but_no_math_call() -> None:
    g, x = _graph((1, 1))
    e, n4, n5 = g.add("exp", x), g.add("neg", x), g.add("neg", x)
    g.set_outputs([g.add("pad", e, pads=[0, 0, 0, 1]), g.add("pad", n4, pads=[0, 1, 0, 2]),
                   g.add("pad", n5, pads=[0, 2, 0, 2])])
    _fused(g)
    assert [_node(v).inline for v in (e, n4, n5)] == [False, True, False]  # 2 evaluations of exp; 4 and 5 of neg


def test_doubling_reads_are_cut_where_evaluations_exceed_the_bound() -> None:
    """Each level reads the one below twice, so evaluations double: a buffer every third level."""
    g, x = _graph()
    levels = [g.add("add", x, x)]
    for _ in range(8):
        levels.append(g.add("mul", levels[-1], levels[-1]))
    g.set_outputs([levels[-1]])
    _fused(g)
    assert [_node(v).inline for v in levels] == [True, True, False] * 3


def test_long_chains_are_cut_at_the_depth_bound() -> None:
    g, x = _graph()
    y = x
    for k in range(2 * MAX_DEPTH + 5):
        y = g.add("add", y, g.add_constant(np.float32(k), "k"))
    g.set_outputs([y])
    flags = [n.inline for n in _fused(g).nodes]
    assert flags.count(False) == 3 and not flags[-1]
    assert flags == ([True] * 4 + [False] + [True] * MAX_DEPTH + [False] + [True] * MAX_DEPTH + [False])[-len(flags):]


def test_a_value_nobody_reads_stays_in_a_buffer() -> None:
    g, x = _graph()
    dead = g.add("neg", x)
    g.set_outputs([g.add("abs", x)])
    assert not _node(dead).inline and not _fused(g).nodes[0].inline


def test_update_values_read_no_variable_in_place() -> None:
    """The copy of an update may compute its value in place, but not from a variable (copies run one after
    another, so an earlier one may have overwritten it)."""
    g, x = _graph((3,))
    v = g.add_variable(np.ones(3, np.float32), "v")
    m = g.add("mul", v, g.add_constant(np.float32(0.5), "half"))
    u = g.add("add", m, g.add("exp", x))
    g.set_update(v, u)
    g.set_outputs([g.add("neg", x)])
    _fused(g)
    assert _node(u).inline and not _node(m).inline
    program = lower_to_loops(g)
    update = program.kernels[-1]
    assert update.ops == ("exp", "add", "update")


# -- verifier, text, lowering -------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("%r: f32[4] = inline reduce_sum(%x) {axes=[1]}\n  return %r", "only single-output elementwise"),
    ("%n: f32[4, 3] = inline neg(%x)\n  return %n", "graph output"),
    ("%n: f32[4, 3] = inline neg(%x)\n  %p: f32[3, 4]{strides=[1, 3]} = permute(%n) {perm=[1, 0]}\n"
     "  %c: f32[3, 4] = copy(%p)\n  return %c", "a permute needs its buffer"),
    ("%n: f32[4, 3] = inline neg(%x)\n  %b: i32[4, 3] = bitcast(%n) {dtype=i32}\n  return %b",
     "a bitcast needs its buffer"),
    ("%n: f32[4, 3] = inline neg(%v)\n  update %v <- %n\n  return %x", "reads a variable"),
])
def test_the_verifier_refuses_inline_nodes_lowering_cannot_compute(text: str, message: str) -> None:
    graph = parse_graph("graph @g(%x: f32[4, 3]) {\n  %v: f32[4, 3] = variable dense<\"" + "A" * 64 + "\">\n  "
                        + text + "\n}\n")
    with pytest.raises(VerificationError, match=message):
        verify_graph(graph)


def test_inline_marks_round_trip_through_text_and_copies() -> None:
    result = _compile(lambda x: ops.softmax(tanh_gelu(x), -1), np.zeros((2, 5), np.float32))
    text = print_graph(result.graph)
    assert " = inline sub(" in text and " = exp(" in text  # exp feeds the sum and the division
    parsed = parse_graph(text)
    assert print_graph(parsed) == text
    assert [n.inline for n in parsed.nodes] == [n.inline for n in result.graph.nodes]
    assert [n.inline for n in parsed.copy().nodes] == [n.inline for n in parsed.nodes]


def test_lowering_refuses_a_view_of_an_inline_value() -> None:
    g, x = _graph()
    n = g.add("neg", x)
    g.set_outputs([g.add("copy", g.add("permute", n, perm=[1, 0]))])
    _node(n).inline = True
    with pytest.raises(CodegenError, match=r"%.* \(permute\): its input %.* is inline"):
        lower_to_loops(g)


def test_fusion_can_be_turned_off() -> None:
    result = _compile(tanh_gelu, np.zeros((7, 13), np.float32), fuse=False)
    assert not any(n.inline for n in result.graph.nodes)
    assert len(result.program.kernels) == len(result.graph.nodes)


# -- numerics ------------------------------------------------------------------------------------

MODELS: dict[str, Callable[[Any], Any]] = {
    "tanh_gelu": tanh_gelu,
    "erf_gelu": lambda x: F.gelu(x),
    "softmax": lambda x: ops.softmax(x, -1),
    "log_softmax": lambda x: ops.log_softmax(x, 0),
    "layer_norm": lambda x: F.layer_norm(x, x.shape[-1:]),
    "elu_softplus": lambda x: F.elu(x) + F.softplus(x),
    "sigmoid_broadcast": lambda x: ops.sigmoid(x) * ops.sum(ops.exp(x), axis=-1, keepdims=True),
}
SHAPES = [(1,), (1, 1), (7, 13), (3, 1, 5)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fused_models_match_the_interpreter_and_the_unfused_build(name: str, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).uniform(-3, 3, shape).astype(np.float32)
    fn = MODELS[name]
    fused = needlec.compile(fn, (x,), check_numerics=True)
    assert any(n.inline for n in fused.graph.nodes) or len(fused.graph.nodes) == 1
    graph = needlec.trace(fn, x)
    got = fused(x)
    np.testing.assert_allclose(got, interpret(graph, [x])[0], rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(got, needlec.compile(fn, (x,), fuse=False)(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16", np.float32])
def test_elementwise_chains_give_the_same_bits_fused_and_unfused(dtype: Any) -> None:
    import ml_dtypes

    np_dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = np.linspace(-6, 6, 7 * 13).reshape(7, 13).astype(np_dtype)

    def chain(x: Any) -> Any:
        return tanh_gelu(x) * ops.exp(-x) + ops.sqrt(ops.abs(x)) / (1 + ops.sigmoid(x))

    fused, unfused = needlec.compile(chain, (x,)), needlec.compile(chain, (x,), fuse=False)
    assert len(fused.program.kernels) == 1 < len(unfused.program.kernels)
    a, b = fused(x), unfused(x)
    nan = np.isnan(a.astype(np.float32))
    assert np.array_equal(nan, np.isnan(b.astype(np.float32)))
    assert a[~nan].tobytes() == b[~nan].tobytes()


def test_training_steps_are_the_same_fused_and_unfused() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 5)).astype(np.float32), rng.integers(0, 3, 8)

    def losses(**options: Any) -> list[float]:
        model = nn.Sequential(nn.Linear(5, 7, rng=np.random.default_rng(1)), nn.GELU(), nn.LayerNorm(7),
                              nn.Linear(7, 3, rng=np.random.default_rng(2)))
        step = needlec.compile_training_step(model, nn.CrossEntropyLoss(),
                                             optim.Adam(model.parameters(), lr=0.01), (x, y), **options)
        return [float(step.step(x, y)) for _ in range(3)]

    fused = losses(check_numerics=True)
    np.testing.assert_allclose(fused, losses(fuse=False), rtol=1e-5)


@pytest.mark.parametrize("example", ["mlp.py", "cnn.py"])
def test_example_models_pass_check_numerics(example: str) -> None:
    graph = load_model_file(str(ROOT / "examples" / example))
    result = Pipeline(PipelineOptions(check_numerics=True)).run(graph)
    assert len(result.program.kernels) < len(Pipeline(PipelineOptions(fuse=False)).run(graph).program.kernels)
