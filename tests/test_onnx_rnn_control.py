"""ONNX converters for recurrent nets, attention, control flow, sequences, signal processing and training ops.

Each case builds a small model with ``onnx.helper``, imports it with ``from_onnx`` and runs it with the
reference interpreter (fast; the converters are what is under test) or, for one case per family, compiled
to native code. References: ``onnx.reference.ReferenceEvaluator``; ONNX Runtime where the reference
ignores a semantics (recurrent activations, clip, input_forget, sequence_lens); NumPy's FFT for DFT.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import needlec
from needlec.compiler.interpreter import interpret
from needlec.frontend.onnx import OnnxImportError, from_onnx
from needlec.frontend.onnx.context import DynamicValueError
from needlec.frontend.onnx.importer import Importer
from tests.onnx_helpers import assert_same

RNG = np.random.default_rng(0)
F32 = TensorProto.FLOAT


def rand(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def tensor_info(name: str, array: np.ndarray) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)


def model_of(nodes: Sequence[onnx.NodeProto], feeds: dict[str, np.ndarray], outputs: Sequence[str],
             consts: dict[str, np.ndarray] | None = None, opset: int = 22,
             domains: Sequence[tuple[str, int]] = ()) -> onnx.ModelProto:
    """A model of ``nodes``: ``feeds`` are graph inputs, ``consts`` initializers."""
    graph = helper.make_graph(list(nodes), "g", [tensor_info(n, a) for n, a in feeds.items()],
                              [helper.make_empty_tensor_value_info(o) for o in outputs],
                              [onnx.numpy_helper.from_array(a, n) for n, a in (consts or {}).items()])
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in domains]
    return helper.make_model(graph, opset_imports=opsets)


def one_node(op_type: str, inputs: Sequence[str], feeds: dict[str, np.ndarray], num_outputs: int = 1,
             consts: dict[str, np.ndarray] | None = None, opset: int = 22, domain: str = "",
             outputs: Sequence[str] | None = None, **attrs: Any) -> onnx.ModelProto:
    names = list(outputs) if outputs is not None else [f"y{i}" for i in range(num_outputs)]
    node = helper.make_node(op_type, list(inputs), names, name="node0", domain=domain, **attrs)
    domains = [(domain, 1)] if domain else []
    return model_of([node], feeds, [n for n in names if n], consts, opset, domains)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], compiled: bool = False) -> list[np.ndarray]:
    """needlec's outputs of ``model`` on ``feeds`` (interpreted, or compiled to native code)."""
    graph = from_onnx(model)
    if compiled:
        got = needlec.compile(graph)(*feeds.values())
        return list(got) if isinstance(got, tuple) else [got]
    return interpret(graph, list(feeds.values()))


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(o) for o in ReferenceEvaluator(model).run(None, feeds)]


def onnxruntime_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_close(got: Sequence[np.ndarray], expected: Sequence[np.ndarray], rtol: float = 1e-5,
                 atol: float = 1e-6) -> None:
    assert_same(got, expected, rtol, atol)


# -- recurrent ops ----------------------------------------------------------------------
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrent_case(op: str, direction: str = "forward", layout: int = 0, steps: int = 4, batch: int = 3,
                   hidden: int = 5, size: int = 2, with_states: bool = True, lengths: np.ndarray | None = None,
                   lengths_as_input: bool = False, **attrs: Any) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A recurrent node with random weights (initializers) and X (plus optional lengths) as graph inputs."""
    dirs = 2 if direction == "bidirectional" else 1
    gates = GATES[op]
    x = rand(batch, steps, size) if layout else rand(steps, batch, size)
    consts = {"W": rand(dirs, gates * hidden, size), "R": rand(dirs, gates * hidden, hidden),
              "B": rand(dirs, 2 * gates * hidden)}
    feeds = {"X": x}
    inputs = ["X", "W", "R", "B", "", "", "", ""]
    if lengths is not None:
        (feeds if lengths_as_input else consts)["L"] = lengths.astype(np.int32)
        inputs[4] = "L"
    if with_states:
        state_shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
        consts["H0"] = rand(*state_shape)
        inputs[5] = "H0"
        if op == "LSTM":
            consts["C0"], consts["P"] = rand(*state_shape), rand(dirs, 3 * hidden)
            inputs[6], inputs[7] = "C0", "P"
    inputs = inputs[:8 if op == "LSTM" else 6]
    while not inputs[-1]:
        inputs.pop()
    outputs = 3 if op == "LSTM" else 2
    model = one_node(op, inputs, feeds, outputs, consts, opset=14, hidden_size=hidden, direction=direction,
                     layout=layout, **attrs)
    return model, feeds


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_recurrent_directions_and_layouts_match_reference(op: str, direction: str, layout: int) -> None:
    model, feeds = recurrent_case(op, direction, layout)
    assert_close(run(model, feeds), reference(model, feeds), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op, attrs", [
    ("RNN", {"activations": ["Relu"], "clip": 1.5}),
    ("RNN", {"activations": ["Affine"], "activation_alpha": [0.5], "activation_beta": [0.25]}),
    ("GRU", {"linear_before_reset": 1}),
    ("GRU", {"activations": ["HardSigmoid", "Softsign"], "activation_alpha": [0.3], "activation_beta": [0.4]}),
    ("LSTM", {"input_forget": 1}),
    ("LSTM", {"activations": ["Sigmoid", "LeakyRelu", "ScaledTanh"], "activation_alpha": [0.2, 0.7],
              "activation_beta": [1.5], "clip": 2.0}),
    ("LSTM", {"activations": ["Sigmoid", "Elu", "Softplus", "HardSigmoid", "ThresholdedRelu", "Tanh"],
              "activation_alpha": [0.8, 0.3, 0.6], "activation_beta": [0.4], "direction": "bidirectional"}),
    ("LSTM", {"activations": ["Sigmoid", "Elu", "Softplus", "HardSigmoid", "Relu", "Tanh"],
              "direction": "bidirectional"}),
])
def test_recurrent_cell_options_match_onnxruntime(op: str, attrs: dict[str, Any]) -> None:
    attrs = dict(attrs)  # the parameter dict is shared between runs: do not mutate it
    direction = attrs.pop("direction", "forward")
    model, feeds = recurrent_case(op, direction, **attrs)
    assert_close(run(model, feeds), onnxruntime_outputs(model, feeds), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("lengths_as_input", [False, True])
def test_recurrent_sequence_lens_hold_state_and_zero_y(op: str, lengths_as_input: bool) -> None:
    lengths = np.array([4, 2, 1])
    model, feeds = recurrent_case(op, "bidirectional", lengths=lengths, lengths_as_input=lengths_as_input)
    got, expected = run(model, feeds), onnxruntime_outputs(model, feeds)
    assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert np.all(got[0][2:, :, 1] == 0)  # batch entry 1 has 2 steps: Y is zero after them


def test_lstm_compiles_and_matches_reference() -> None:
    model, feeds = recurrent_case("LSTM", "bidirectional", layout=1)
    assert_close(run(model, feeds, compiled=True), reference(model, feeds), rtol=1e-4, atol=1e-5)


def test_recurrent_errors_name_the_node() -> None:
    model, _ = recurrent_case("GRU", "bidirectional")
    attributes = model.graph.node[0].attribute
    kept = [a for a in attributes if a.name != "direction"]
    del attributes[:]
    attributes.extend(kept)
    with pytest.raises(OnnxImportError, match=r"node 'node0' \(GRU, opset 14\): W has 2 directions"):
        from_onnx(model)
    model, _ = recurrent_case("RNN", activations=["Swish"])
    with pytest.raises(OnnxImportError, match="unknown activation 'Swish'"):
        from_onnx(model)


# -- attention ---------------------------------------------------------------------------
def attention_case(q_shape: tuple[int, ...], kv_shape: tuple[int, ...], mask: np.ndarray | None = None,
                   past: tuple[int, ...] | None = None, nonpad: np.ndarray | None = None, opset: int = 23,
                   **attrs: Any) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    feeds = {"Q": rand(*q_shape), "K": rand(*kv_shape), "V": rand(*kv_shape)}
    inputs = ["Q", "K", "V", "", "", "", ""]
    if mask is not None:
        feeds["mask"], inputs[3] = mask, "mask"
    if past is not None:
        feeds["past_k"], feeds["past_v"], inputs[4], inputs[5] = rand(*past), rand(*past), "past_k", "past_v"
    if nonpad is not None:
        feeds["nonpad"], inputs[6] = nonpad, "nonpad"
    while not inputs[-1]:
        inputs.pop()
    return one_node("Attention", inputs, feeds, 4 if past is not None else 1, opset=opset, **attrs), feeds


ATTENTION_CASES = {
    "4d": ((2, 3, 4, 8), (2, 3, 6, 8), {}),
    "3d_gqa_causal": ((2, 4, 48), (2, 6, 16), {"q_num_heads": 6, "kv_num_heads": 2, "is_causal": 1}),
    "float_mask_padded_softcap": ((1, 2, 3, 4), (1, 2, 5, 4), {"mask": rand(3, 3), "softcap": 2.0}),
    "bool_mask_fully_masked_row": ((1, 2, 3, 4), (1, 2, 5, 4),
                                   {"mask": np.array([[True] * 5, [False] * 5, [True, False] * 2 + [True]])}),
    "past_causal_scaled": ((2, 2, 3, 4), (2, 2, 3, 4), {"past": (2, 2, 5, 4), "is_causal": 1, "scale": 0.3}),
    "past_mode_bias": ((2, 2, 3, 4), (2, 2, 3, 4), {"past": (2, 2, 2, 4), "mask": rand(2, 1, 3, 5),
                                                    "qk_matmul_output_mode": 2}),
    "past_mode_softmax_f64": ((1, 2, 3, 4), (1, 2, 3, 4), {"past": (1, 2, 2, 4), "qk_matmul_output_mode": 3,
                                                           "softmax_precision": TensorProto.DOUBLE}),
    "nonpad_causal": ((2, 2, 2, 4), (2, 2, 6, 4), {"nonpad": np.array([3, 6], np.int64), "is_causal": 1,
                                                   "opset": 24}),
    "window": ((1, 2, 5, 4), (1, 2, 5, 4), {"left_window_size": 1, "right_window_size": 2, "opset": 25}),
}


@pytest.mark.parametrize("name", sorted(ATTENTION_CASES))
def test_attention_matches_reference(name: str) -> None:
    q_shape, kv_shape, attrs = ATTENTION_CASES[name]
    model, feeds = attention_case(q_shape, kv_shape, **dict(attrs))
    got = run(model, feeds)
    assert_close(got, reference(model, feeds), rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(got[0]))


def test_attention_compiles_and_matches_reference() -> None:
    model, feeds = attention_case((2, 4, 48), (2, 6, 16), mask=rand(4, 6), past=(2, 2, 3, 8), q_num_heads=6,
                                  kv_num_heads=2, qk_matmul_output_mode=1, softcap=3.0)
    assert_close(run(model, feeds, compiled=True), reference(model, feeds), rtol=1e-4, atol=1e-5)


def test_attention_3d_without_head_counts_is_a_clear_error() -> None:
    model, _ = attention_case((2, 4, 48), (2, 6, 16))
    with pytest.raises(OnnxImportError, match=r"node 'node0' \(Attention, opset 23\): required attribute "
                                              r"'q_num_heads' is missing"):
        from_onnx(model)


@pytest.mark.parametrize("attrs, cache", [
    ({}, (50, 4)), ({"interleaved": 1}, (50, 4)), ({"rotary_embedding_dim": 4}, (50, 2)),
    ({"interleaved": 1, "rotary_embedding_dim": 4, "num_heads": 2, "three_d": True}, (50, 2)),
])
def test_rotary_embedding_matches_reference(attrs: dict[str, Any], cache: tuple[int, int]) -> None:
    attrs = dict(attrs)
    shape = (2, 3, 16) if attrs.pop("three_d", False) else (2, 2, 3, 8)
    feeds = {"x": rand(*shape), "cos": rand(*cache), "sin": rand(*cache),
             "pos": RNG.integers(0, 50, (2, 3)).astype(np.int64)}
    model = one_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], feeds, opset=23, **attrs)
    assert_close(run(model, feeds), reference(model, feeds))


@pytest.mark.parametrize("rule, decay_size, beta_size", [("linear", 0, 0), ("gated", 2, 0), ("delta", 0, 1),
                                                         ("gated_delta", 8, 2)])
def test_linear_attention_matches_reference(rule: str, decay_size: int, beta_size: int) -> None:
    feeds = {"q": rand(2, 3, 16) * 0.5, "k": rand(2, 3, 8) * 0.5, "v": rand(2, 3, 6),
             "past": rand(2, 2, 4, 3)}
    inputs = ["q", "k", "v", "past", "", ""]
    if decay_size:
        feeds["decay"], inputs[4] = -np.abs(rand(2, 3, decay_size)), "decay"
    if beta_size:
        feeds["beta"], inputs[5] = 1 / (1 + np.exp(-rand(2, 3, beta_size))), "beta"
    while not inputs[-1]:
        inputs.pop()
    model = one_node("LinearAttention", inputs, feeds, 2, opset=27, q_num_heads=4, kv_num_heads=2,
                     update_rule=rule)
    assert_close(run(model, feeds), reference(model, feeds), rtol=1e-4, atol=1e-5)


def test_flex_attention_applies_score_and_prob_graphs() -> None:
    bias = onnx.numpy_helper.from_array(rand(3, 5), "bias")
    half = onnx.numpy_helper.from_array(np.float32(0.5), "half")
    score_mod = helper.make_graph([helper.make_node("Add", ["s", "bias"], ["s_out"])], "score_mod",
                                  [helper.make_tensor_value_info("s", F32, None)],
                                  [helper.make_tensor_value_info("s_out", F32, None)], [bias])
    prob_mod = helper.make_graph([helper.make_node("Mul", ["p", "half"], ["p_out"])], "prob_mod",
                                 [helper.make_tensor_value_info("p", F32, None)],
                                 [helper.make_tensor_value_info("p_out", F32, None)], [half])
    feeds = {"q": rand(1, 4, 3, 8), "k": rand(1, 2, 5, 8), "v": rand(1, 2, 5, 6)}
    model = one_node("FlexAttention", ["q", "k", "v"], feeds, opset=26, domain="ai.onnx.preview",
                     score_mod=score_mod, prob_mod=prob_mod, scale=0.2)
    assert_close(run(model, feeds), reference(model, feeds), rtol=1e-4, atol=1e-5)


# -- control flow ------------------------------------------------------------------------
def body(nodes: Sequence[onnx.NodeProto], inputs: Sequence[tuple[str, int, Any]],
         outputs: Sequence[tuple[str, int, Any]], name: str = "body",
         consts: dict[str, np.ndarray] | None = None) -> onnx.GraphProto:
    return helper.make_graph(list(nodes), name, [helper.make_tensor_value_info(*i) for i in inputs],
                             [helper.make_tensor_value_info(*o) for o in outputs],
                             [onnx.numpy_helper.from_array(a, n) for n, a in (consts or {}).items()])


def if_model(cond_feed: bool, else_shape: tuple[int, ...] = (3,)) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """y = If(cond): then x + 1, else x * outer (an outer-scope initializer) reshaped by the else branch."""
    then_branch = body([helper.make_node("Add", ["x", "one"], ["t"])], [], [("t", F32, None)], "then",
                       {"one": np.ones(3, np.float32)})
    else_branch = body([helper.make_node("Mul", ["x", "outer"], ["e"])], [], [("e", F32, None)], "else")
    cond = np.array(True)
    feeds = {"x": rand(3)}
    consts = {"outer": rand(*else_shape)}
    if cond_feed:
        feeds["cond"] = cond
    else:
        consts["cond"] = np.array(False)
    node = helper.make_node("If", ["cond"], ["y"], name="if0", then_branch=then_branch, else_branch=else_branch)
    return model_of([node], feeds, ["y"], consts, opset=13), feeds


def test_if_with_constant_condition_inlines_one_branch() -> None:
    model, feeds = if_model(cond_feed=False)
    graph = from_onnx(model)
    assert [n.op for n in graph.nodes] == ["mul"]
    assert_close(interpret(graph, list(feeds.values())), reference(model, feeds))


@pytest.mark.parametrize("cond", [True, False])
def test_if_with_runtime_condition_selects_with_where(cond: bool) -> None:
    model, feeds = if_model(cond_feed=True)
    feeds["cond"] = np.array(cond)
    assert_close(run(model, feeds, compiled=cond), reference(model, feeds))


def test_if_with_runtime_condition_and_different_shapes_names_the_input() -> None:
    model, _ = if_model(cond_feed=True, else_shape=(2, 3))
    with pytest.raises(DynamicValueError, match=r"node 'if0' \(If, opset 13\): output 0: .* same shape and "
                                                r"dtype, found f32\[3\] and f32\[2, 3\]") as error:
        from_onnx(model)
    assert error.value.inputs == {"cond"}


def loop_model(trip: np.ndarray | None, trip_as_input: bool = False,
               limit: float | None = None) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """s = Loop(M, cond, s0) adding ``step`` each iteration. Without ``limit``: s has 2 elements, the scan output
    is 2 * s and the condition stays the input's; with it: s has 1 element and the condition is s < limit."""
    size = 2 if limit is None else 1
    nodes = [helper.make_node("Add", ["s_in", "step"], ["s_out"])]
    outputs = [("c_out", TensorProto.BOOL, []), ("s_out", F32, [size])]
    if limit is None:
        nodes += [helper.make_node("Or", ["c_in", "c_in"], ["c_out"]),
                  helper.make_node("Mul", ["s_out", "two"], ["doubled"])]
        outputs.append(("doubled", F32, [size]))
    else:
        nodes += [helper.make_node("Less", ["s_out", "limit"], ["c_vec"]),  # shape [1]: the condition is a scalar
                  helper.make_node("Reshape", ["c_vec", "scalar"], ["c_out"])]
    loop_body = body(nodes, [("i", TensorProto.INT64, []), ("c_in", TensorProto.BOOL, []), ("s_in", F32, [size])],
                     outputs, consts={"two": np.float32(2), "scalar": np.zeros(0, np.int64)})
    feeds = {"s0": rand(size), "step": rand(size)}
    consts = {"cond": np.array(True)}
    if limit is not None:
        consts["limit"] = np.float32(limit)
    if trip is not None:
        (feeds if trip_as_input else consts)["M"] = trip
    results = ["s"] if limit is not None else ["s", "scan"]
    node = helper.make_node("Loop", ["M" if trip is not None else "", "cond", "s0"], results, name="loop0",
                            body=loop_body)
    return model_of([node], feeds, results, consts, opset=16), feeds


def test_loop_with_constant_trip_count_unrolls_with_scan_outputs() -> None:
    model, feeds = loop_model(np.int64(4))
    got = run(model, feeds, compiled=True)
    assert_close(got, reference(model, feeds))
    assert got[1].shape == (4, 2)


def test_loop_with_runtime_condition_freezes_the_carried_values() -> None:
    model, _ = loop_model(np.int64(6), limit=1.0)
    for start in (-2.0, 0.5, 3.0):  # stops after 4 steps, after 1 step, runs 1 step (cond is checked after it)
        feeds = {"s0": np.array([start], np.float32), "step": np.array([0.75], np.float32)}
        assert_close(run(model, feeds), reference(model, feeds))


def test_loop_with_runtime_trip_count_is_a_dynamic_value_error() -> None:
    model, _ = loop_model(np.int64(3), trip_as_input=True)
    with pytest.raises(DynamicValueError, match=r"node 'loop0' \(Loop, opset 16\): input 0 \(trip count M\) must "
                                                "be known at compile time") as error:
        from_onnx(model)
    assert error.value.inputs == {"M"}


def test_loop_without_trip_count_and_runtime_condition_is_a_clear_error() -> None:
    model, _ = loop_model(None, limit=1.0)
    with pytest.raises(DynamicValueError, match="no trip count and its condition is computed at run time"):
        from_onnx(model)


def scan_model(opset: int, **attrs: Any) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Running sum over the scan axis of x, with the running sum and x * sum as scan outputs."""
    scan_body = body([helper.make_node("Add", ["acc", "x_t"], ["acc_out"]),
                      helper.make_node("Mul", ["x_t", "acc_out"], ["prod"])],
                     [("acc", F32, None), ("x_t", F32, None)], [("acc_out", F32, None), ("prod", F32, None)])
    if opset == 8:
        feeds = {"init": rand(2, 3), "x": rand(2, 4, 3)}
        node = helper.make_node("Scan", ["", "init", "x"], ["final", "prods"], name="scan0", num_scan_inputs=1,
                                body=scan_body, **attrs)
    else:
        feeds = {"init": rand(3), "x": rand(3, 4)}
        node = helper.make_node("Scan", ["init", "x"], ["final", "prods"], name="scan0", num_scan_inputs=1,
                                body=scan_body, **attrs)
    return model_of([node], feeds, ["final", "prods"], opset=opset), feeds


def numpy_scan(init: np.ndarray, x: np.ndarray, axis: int, reverse_in: bool, out_axis: int,
               reverse_out: bool) -> list[np.ndarray]:
    """The scan body above in NumPy: (final sum, x_t * running sum stacked on ``out_axis``)."""
    steps = list(np.moveaxis(x, axis, 0))
    acc, products = init, []
    for x_t in steps[::-1] if reverse_in else steps:
        acc = acc + x_t
        products.append(x_t * acc)
    return [acc, np.stack(products[::-1] if reverse_out else products, out_axis)]


@pytest.mark.parametrize("opset, attrs, expected_axes", [
    (8, {}, (0, False, 0, False)), (8, {"directions": [1]}, (0, True, 0, False)),
    (11, {"scan_input_axes": [1]}, (1, False, 0, False)),
    (11, {"scan_input_axes": [-1], "scan_input_directions": [1], "scan_output_axes": [1],
          "scan_output_directions": [1]}, (1, True, 1, True)),
])
def test_scan_unrolls_over_the_scan_axis(opset: int, attrs: dict[str, Any],
                                         expected_axes: tuple[int, bool, int, bool]) -> None:
    model, feeds = scan_model(opset, **attrs)
    if opset == 8:  # axis 0 is a batch axis
        per_batch = [numpy_scan(i, x, *expected_axes) for i, x in zip(feeds["init"], feeds["x"])]
        expected = [np.stack([p[k] for p in per_batch]) for k in range(2)]
    else:
        expected = numpy_scan(feeds["init"], feeds["x"], *expected_axes)
    assert_close(run(model, feeds, compiled=opset == 11 and "scan_output_axes" in attrs), expected)


# -- sequences and optionals -------------------------------------------------------------
def test_sequence_ops_compose_at_compile_time() -> None:
    nodes = [helper.make_node("SplitToSequence", ["x", "sizes"], ["parts"], axis=1),
             helper.make_node("SequenceInsert", ["parts", "y"], ["with_y"]),             # [x0, x1, x2, y]
             helper.make_node("SequenceInsert", ["with_y", "y", "first"], ["with_two"]),  # [y, x0, x1, x2, y]
             helper.make_node("SequenceErase", ["with_two", "minus_two"], ["erased"]),    # [y, x0, x1, y]
             helper.make_node("SequenceInsert", ["erased", "x", "minus_one"], ["inserted"]),  # [y, x0, x1, x, y]
             helper.make_node("SequenceAt", ["inserted", "minus_two"], ["at_x"]),
             helper.make_node("SequenceAt", ["erased", "one"], ["at"]),
             helper.make_node("SequenceLength", ["erased"], ["length"]),
             helper.make_node("ConcatFromSequence", ["erased"], ["joined"], axis=1),
             helper.make_node("SequenceConstruct", ["at", "at"], ["pair"]),
             helper.make_node("ConcatFromSequence", ["pair"], ["stacked"], axis=-1, new_axis=1)]
    feeds = {"x": rand(2, 6), "y": rand(2, 2)}
    consts = {"sizes": np.array([2, 2, 2], np.int64), "first": np.int64(0), "minus_two": np.int64(-2),
              "minus_one": np.int64(-1), "one": np.int64(1)}
    model = model_of(nodes, feeds, ["at", "length", "joined", "stacked", "at_x"], consts, opset=18)
    got = run(model, feeds)
    assert_close(got[:1] + got[2:], [o for i, o in enumerate(reference(model, feeds)) if i != 1])
    assert got[1] == 4 and got[1].dtype == np.int64
    np.testing.assert_array_equal(got[4], feeds["x"])


def test_sequence_graph_inputs_and_outputs_are_flattened() -> None:
    add_one = body([helper.make_node("Add", ["e", "bias"], ["e_out"])], [("e", F32, None)], [("e_out", F32, None)])
    seq_type = helper.make_sequence_type_proto(helper.make_tensor_type_proto(F32, None))
    graph = helper.make_graph([helper.make_node("SequenceMap", ["s"], ["mapped"], body=add_one)], "g",
                              [helper.make_value_info("s", seq_type), helper.make_tensor_value_info("bias", F32, [])],
                              [helper.make_value_info("mapped", seq_type)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    importer = Importer(model, {"s": [(2,), (3, 1)]})
    graph = importer.run()
    assert [v.name for v in graph.inputs] == ["s_0", "s_1", "bias"]
    assert importer.output_layout == [("sequence", 2)]
    items, bias = [rand(2), rand(3, 1)], np.float32(0.5)
    got = interpret(graph, [*items, bias])
    assert_close(got, [items[0] + bias, items[1] + bias])


def test_sequence_input_without_shapes_is_a_clear_error() -> None:
    seq_type = helper.make_sequence_type_proto(helper.make_tensor_type_proto(F32, None))
    graph = helper.make_graph([helper.make_node("SequenceLength", ["s"], ["n"])], "g",
                              [helper.make_value_info("s", seq_type)], [helper.make_tensor_value_info("n", 7, [])])
    with pytest.raises(OnnxImportError, match=r"graph input 's' is a sequence; give its element shapes"):
        from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def test_optionals_hold_a_value_or_nothing() -> None:
    optional_type = helper.make_optional_type_proto(helper.make_tensor_type_proto(F32, [2]))
    nodes = [helper.make_node("OptionalHasElement", ["o"], ["has"]),
             helper.make_node("Optional", [], ["empty"], type=helper.make_tensor_type_proto(F32, [2])),
             helper.make_node("OptionalHasElement", ["empty"], ["has_empty"])]
    graph = helper.make_graph(nodes, "g", [helper.make_value_info("o", optional_type)],
                              [helper.make_tensor_value_info(n, TensorProto.BOOL, []) for n in ("has", "has_empty")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert [bool(v) for v in interpret(from_onnx(model), [rand(2)])] == [True, False]
    assert [bool(v) for v in interpret(Importer(model, {"o": None}).run(), [])] == [False, False]
    get = helper.make_graph([helper.make_node("OptionalGetElement", ["o"], ["v"], name="get0")], "g",
                            [helper.make_value_info("o", optional_type)],
                            [helper.make_tensor_value_info("v", F32, [2])])
    with pytest.raises(OnnxImportError, match=r"node 'get0' \(OptionalGetElement, opset 18\): the optional input "
                                              "is empty"):
        Importer(helper.make_model(get, opset_imports=[helper.make_opsetid("", 18)]), {"o": None}).run()


# -- signal processing --------------------------------------------------------------------
def dft_model(x: np.ndarray, opset: int, axis: int, length: int | None = None,
              **attrs: Any) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    consts = {"axis": np.int64(axis)} if opset >= 20 else {}
    inputs = ["x", "n" if length is not None else ""] + (["axis"] if opset >= 20 else [])
    if length is not None:
        consts["n"] = np.int64(length)
    if opset < 20:
        attrs["axis"] = axis
    return one_node("DFT", inputs, {"x": x}, consts=consts, opset=opset, **attrs), {"x": x}


def complex_of(x: np.ndarray) -> np.ndarray:
    return x[..., 0] + 1j * x[..., 1] if x.shape[-1] == 2 else x[..., 0]


def as_pairs(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], -1).astype(np.float32)


@pytest.mark.parametrize("opset", [17, 20])
def test_dft_forward_inverse_and_lengths_match_numpy(opset: int) -> None:
    x = rand(2, 6, 3, 2)
    for axis, length, attrs, expected in [
        (1, None, {}, np.fft.fft(complex_of(x), axis=1)),
        (2, 5, {}, np.fft.fft(complex_of(x), n=5, axis=2)),                   # zero-padded
        (1, 4, {"inverse": 1}, np.fft.ifft(complex_of(x), n=4, axis=1)),      # truncated
    ]:
        model, feeds = dft_model(x, opset, axis, length, **attrs)
        assert_close(run(model, feeds), [as_pairs(expected)], rtol=1e-4, atol=1e-5)
    real = rand(2, 7, 1)
    model, feeds = dft_model(real, opset, 1, onesided=1)
    assert_close(run(model, feeds, compiled=opset == 20), [as_pairs(np.fft.rfft(real[..., 0], axis=1))],
                 rtol=1e-4, atol=1e-5)
    spectrum = as_pairs(np.fft.rfft(rand(2, 8), axis=1))
    model, feeds = dft_model(spectrum, opset, 1, inverse=1, onesided=1)
    expected = np.fft.irfft(complex_of(spectrum), n=8, axis=1)[..., None].astype(np.float32)
    assert_close(run(model, feeds), [expected], rtol=1e-4, atol=1e-5)


def test_stft_matches_reference() -> None:
    feeds = {"signal": rand(2, 40, 1), "window": rand(8)}
    model = one_node("STFT", ["signal", "step", "window", "length"], feeds, consts={"step": np.int64(5),
                     "length": np.int64(8)}, opset=17)
    assert_close(run(model, feeds), reference(model, feeds), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows_match_reference(op: str, periodic: int) -> None:
    model = one_node(op, ["size"], {}, consts={"size": np.int32(9)}, opset=17, periodic=periodic,
                     output_datatype=TensorProto.DOUBLE)
    assert_close(run(model, {}), reference(model, {}), rtol=0, atol=1e-12)


def test_mel_weight_matrix_matches_reference() -> None:
    consts = {"bins": np.int32(8), "dft": np.int32(16), "rate": np.int32(8192), "low": np.float32(0),
              "high": np.float32(4096)}
    model = one_node("MelWeightMatrix", list(consts), {}, consts=consts, opset=17)
    assert_close(run(model, {}), reference(model, {}), rtol=0, atol=0)


def test_window_size_from_a_graph_input_is_a_dynamic_value_error_until_fixed() -> None:
    model = one_node("HannWindow", ["size"], {"size": np.int32(10)}, opset=17)
    with pytest.raises(DynamicValueError, match=r"node 'node0' \(HannWindow, opset 17\): input 0 \(size\) must be "
                                                "known at compile time") as error:
        from_onnx(model)
    assert error.value.inputs == {"size"}
    graph = Importer(model, input_values={"size": np.int32(10)}).run()
    assert graph.inputs == [] and graph.outputs[0].shape == (10,)


# -- ai.onnx.preview.training --------------------------------------------------------------
@pytest.mark.parametrize("op, states, attrs", [
    ("Adagrad", 1, {"decay_factor": 0.1, "epsilon": 1e-5, "norm_coefficient": 0.01}),
    ("Adam", 2, {"alpha": 0.9, "beta": 0.8, "epsilon": 1e-6, "norm_coefficient": 0.01, "norm_coefficient_post": 0.02}),
    ("Momentum", 1, {"alpha": 0.9, "beta": 0.5, "mode": "standard", "norm_coefficient": 0.01}),
    ("Momentum", 1, {"alpha": 0.9, "beta": 0.5, "mode": "nesterov", "norm_coefficient": 0.0}),
])
@pytest.mark.parametrize("step", [0, 3])
def test_training_optimizers_match_reference(op: str, states: int, attrs: dict[str, Any], step: int) -> None:
    shapes = [(2,), (3, 2)]
    feeds = {"R": np.float32(0.1), "T": np.int64(step)}
    for kind in ["X", "G"] + [f"S{k}" for k in range(states)]:
        for i, shape in enumerate(shapes):
            feeds[f"{kind}{i}"] = np.abs(rand(*shape)) if kind.startswith("S") else rand(*shape)
    outputs = (1 + states) * len(shapes)
    model = one_node(op, list(feeds), feeds, outputs, opset=18, domain="ai.onnx.preview.training", **attrs)
    assert_close(run(model, feeds, compiled=op == "Adam" and step == 3), reference(model, feeds),
                 rtol=1e-5, atol=1e-6)
