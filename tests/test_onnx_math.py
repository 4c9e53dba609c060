"""ONNX converters for elementwise ops, activations, matrix products, reductions, softmax and losses.

Each case builds a one-node ONNX model with ``onnx.helper``, imports it with
``from_onnx``, compiles it, and compares the outputs (shape, dtype, values)
with ``onnx.reference.ReferenceEvaluator`` on the same inputs (or with NumPy
where the reference does not implement a semantics: pre-13 Softmax axes).
Shape-like inputs (axes) are initializers, so they are compile-time constants.
The error cases check the one-line ``OnnxImportError`` naming node, op and opset.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from tests.onnx_helpers import assert_same, import_error
from tests.onnx_helpers import run_onnx as run

RNG = np.random.default_rng(0)


def make_model(op_type: str, inputs: Sequence[str], feeds: dict[str, np.ndarray], consts: dict[str, np.ndarray],
               opset: int, num_outputs: int, attrs: dict[str, Any]) -> onnx.ModelProto:
    """A one-node model: ``feeds`` are graph inputs, ``consts`` initializers, '' marks an absent input."""
    outputs = [f"y{i}" for i in range(num_outputs)]
    node = helper.make_node(op_type, list(inputs), outputs, name="node0", **attrs)
    graph_inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for name, a in feeds.items()]
    initializers = [onnx.numpy_helper.from_array(a, name) for name, a in consts.items()]
    graph = helper.make_graph([node], "g", graph_inputs, [helper.make_empty_tensor_value_info(o) for o in outputs],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(op_type: str, inputs: Sequence[str], feeds: dict[str, np.ndarray],
          consts: dict[str, np.ndarray] | None = None, opset: int = 18, num_outputs: int = 1, rtol: float = 1e-5,
          atol: float = 1e-6, **attrs: Any) -> None:
    """needlec's outputs equal the ONNX reference's in shape, dtype and value."""
    model = make_model(op_type, inputs, feeds, consts or {}, opset, num_outputs, attrs)
    assert_same(run(model, feeds), ReferenceEvaluator(model).run(None, feeds), rtol, atol)


def normal(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


# -- elementwise ------------------------------------------------------------------

@pytest.mark.parametrize("op_type,attrs", [
    ("Elu", {"alpha": 0.7}), ("Celu", {"alpha": 2.0}), ("Selu", {}), ("LeakyRelu", {"alpha": 0.2}),
    ("ThresholdedRelu", {"alpha": 0.3}), ("Shrink", {"bias": 0.5, "lambd": 0.8}), ("Softplus", {}),
    ("Softsign", {}), ("Mish", {}), ("Gelu", {}), ("Gelu", {"approximate": "tanh"}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}), ("Swish", {"alpha": 1.5}),
])
def test_activations(op_type: str, attrs: dict[str, Any]) -> None:
    x = normal(3, 4) * 3
    check(op_type, ["x"], {"x": x}, opset=24, **attrs)


def test_softplus_is_stable_for_large_inputs() -> None:
    x = np.asarray([-200.0, -30.0, -1e-3, 0.0, 30.0, 200.0], np.float32)
    (got,) = run(make_model("Softplus", ["x"], {"x": x}, {}, 18, 1, {}), {"x": x})
    np.testing.assert_allclose(got, np.logaddexp(0, x.astype(np.float64)), rtol=1e-6, atol=1e-37)


def test_low_precision_activation_rounds_once() -> None:
    """A bf16 Celu is computed in f32 and rounded once, matching the reference exactly."""
    x = np.asarray([-3, -0.5, 0, 0.5, 3], ml_dtypes.bfloat16)
    (got,) = run(make_model("Celu", ["x"], {"x": x}, {}, 18, 1, {"alpha": 2.0}), {"x": x})
    x32 = x.astype(np.float32)
    want = (np.maximum(0, x32) + np.minimum(0, 2.0 * (np.exp(x32 / 2.0) - 1))).astype(ml_dtypes.bfloat16)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


def test_prelu_slope_broadcasts() -> None:
    check("PRelu", ["x", "slope"], {"x": normal(2, 3, 4), "slope": normal(4)})


def test_swiglu() -> None:
    check("SwiGLU", ["a", "b"], {"a": normal(2, 4), "b": normal(2, 4)}, opset=28, alpha=0.5)


@pytest.mark.parametrize("base,exponent", [
    (np.float32, np.float32), (np.float32, np.int64), (np.int32, np.float32), (np.int64, np.int64),
])
def test_pow_result_has_the_base_type(base: Any, exponent: Any) -> None:
    x = np.asarray([[1, 2, 3], [4, 1, 2]], base)
    y = np.asarray([3, 2, 0], exponent)
    check("Pow", ["x", "y"], {"x": x, "y": y}, opset=15)


@pytest.mark.parametrize("dtype,fmod", [(np.int32, 0), (np.int32, 1), (np.float32, 1), (np.float64, 0)])
def test_mod_signs(dtype: Any, fmod: int) -> None:
    x = np.asarray([-7, -4, 5, 7, 9, -9], dtype)
    y = np.asarray([3, -3, 3, -2, 4, 2], dtype)
    check("Mod", ["x", "y"], {"x": x, "y": y}, fmod=fmod)


@pytest.mark.parametrize("positive,negative", [(1, 1), (1, 0), (0, 1), (0, 0)])
def test_isinf_directions(positive: int, negative: int) -> None:
    x = np.asarray([np.inf, -np.inf, np.nan, 0.0, 1e30, -2.0], np.float32)
    check("IsInf", ["x"], {"x": x}, opset=20, detect_positive=positive, detect_negative=negative)


def test_bitshift_and_bitwise() -> None:
    x, y = np.asarray([16, 4, 1], np.uint8), np.asarray([1, 2, 3], np.uint8)
    check("BitShift", ["x", "y"], {"x": x, "y": y}, direction="RIGHT")
    check("BitwiseXor", ["x", "y"], {"x": x, "y": y})


@pytest.mark.parametrize("op_type", ["Max", "Min", "Sum", "Mean"])
def test_variadic_broadcast(op_type: str) -> None:
    feeds = {"a": normal(3, 4), "b": normal(3, 1), "c": normal(4)}  # the reference's Mean keeps a's shape
    check(op_type, list(feeds), feeds)
    check(op_type, ["a"], {"a": feeds["a"]})


def test_clip_bounds_as_attributes_then_inputs() -> None:
    x = normal(3, 4) * 3
    check("Clip", ["x"], {"x": x}, opset=6, min=-1.0, max=0.5)
    check("Clip", ["x"], {"x": x}, opset=6, max=0.5)
    check("Clip", ["x", "", "hi"], {"x": x, "hi": np.asarray(0.25, np.float32)}, opset=13)
    check("Clip", ["x", "lo", "hi"], {"x": np.asarray([1, -5, 9], np.int8), "lo": np.asarray(-2, np.int8),
                                      "hi": np.asarray(3, np.int8)}, opset=13)


def test_cast_and_castlike() -> None:
    x = np.asarray([-2.7, -0.5, 0.0, 1.5, 3.9], np.float32)
    check("Cast", ["x"], {"x": x}, to=onnx.TensorProto.INT32)
    check("Cast", ["x"], {"x": x}, to=onnx.TensorProto.BOOL)
    check("Cast", ["x"], {"x": x}, to=onnx.TensorProto.FLOAT16)
    check("CastLike", ["x", "like"], {"x": x, "like": np.zeros(1, np.float64)})


@pytest.mark.parametrize("to", [onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E5M2])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_to_float8_saturates_only_when_asked(to: int, saturate: int) -> None:
    x = np.asarray([1e6, -1e6, np.inf, -np.inf, np.nan, 0.3, -500.0, 460.0], np.float32)
    check("Cast", ["x"], {"x": x}, opset=19, to=to, saturate=saturate)
    check("CastLike", ["x", "like"], {"x": x, "like": np.zeros(1, helper.tensor_dtype_to_np_dtype(to))}, opset=19,
          saturate=saturate)


def test_where_identity_and_comparisons() -> None:
    a, b = normal(2, 3), normal(3)
    check("Where", ["c", "a", "b"], {"c": a > 0, "a": a, "b": b})
    check("Identity", ["a"], {"a": a})
    check("GreaterOrEqual", ["a", "b"], {"a": a, "b": b})
    check("IsNaN", ["x"], {"x": np.asarray([np.nan, 1.0, -np.inf], np.float32)})


# -- matrix products --------------------------------------------------------------

@pytest.mark.parametrize("attrs,c_shape", [
    ({}, None), ({"transA": 1}, (4,)), ({"transB": 1, "alpha": 0.5, "beta": 2.0}, (3, 1)),
    ({"transA": 1, "transB": 1, "beta": 0.0}, (3, 4)),
])
def test_gemm(attrs: dict[str, Any], c_shape: tuple[int, ...] | None) -> None:
    a = normal(5, 3) if attrs.get("transA") else normal(3, 5)
    b = normal(4, 5) if attrs.get("transB") else normal(5, 4)
    feeds = {"a": a, "b": b} | ({} if c_shape is None else {"c": normal(*c_shape)})
    check("Gemm", list(feeds), feeds, opset=13, **attrs)


def test_matmul_broadcasts_batches() -> None:
    check("MatMul", ["a", "b"], {"a": normal(2, 1, 3, 4), "b": normal(5, 4, 2)})


@pytest.mark.parametrize("equation,shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij, bjk -> bik", [(2, 3, 4), (2, 4, 5)]),
    ("i,i", [(5,), (5,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("...ii->...i", [(2, 4, 4)]),
    ("ii", [(3, 3)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("abc,cd,bd->ad", [(2, 3, 4), (4, 5), (3, 5)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("->", [()]),
    ("...Ij,jK->...IK", [(2, 3, 4), (4, 2)]),
    ("bA,Ab", [(3, 2), (2, 3)]),
])
def test_einsum(equation: str, shapes: list[tuple[int, ...]]) -> None:
    feeds = {f"x{i}": normal(*s, dtype=np.float64) for i, s in enumerate(shapes)}
    check("Einsum", list(feeds), feeds, opset=12, equation=equation)


def test_det() -> None:
    check("Det", ["x"], {"x": normal(3, 2, 2)}, rtol=1e-4)
    check("Det", ["x"], {"x": normal(4, 4, dtype=np.float64)})


# -- scans and selection ------------------------------------------------------------

@pytest.mark.parametrize("op_type,opset", [("CumSum", 14), ("CumProd", 26)])
@pytest.mark.parametrize("axis,exclusive,reverse", [(0, 0, 0), (-1, 1, 0), (1, 0, 1), (1, 1, 1)])
def test_cumulative(op_type: str, opset: int, axis: int, exclusive: int, reverse: int) -> None:
    x = RNG.integers(-3, 4, size=(3, 4)).astype(np.int32)
    check(op_type, ["x", "axis"], {"x": x}, {"axis": np.asarray(axis, np.int64)}, opset=opset, exclusive=exclusive,
          reverse=reverse)


@pytest.mark.parametrize("attrs", [{}, {"axis": 0, "largest": 0}, {"axis": 1, "sorted": 1}])
def test_top_k_with_k_input(attrs: dict[str, Any]) -> None:
    x = np.asarray([[3, 1, 3, 0], [2, 2, 5, 5], [7, 1, 2, 2]], np.float32)
    check("TopK", ["x", "k"], {"x": x}, {"k": np.asarray([2], np.int64)}, opset=11, num_outputs=2, **attrs)


def test_top_k_with_k_attribute() -> None:
    check("TopK", ["x"], {"x": normal(3, 5)}, opset=9, num_outputs=2, k=3)


# -- reductions ------------------------------------------------------------------

REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


@pytest.mark.parametrize("op_type", REDUCE_OPS)
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([-1, 0], 0), (None, 1)])
def test_reduce_axes_as_input(op_type: str, axes: list[int] | None, keepdims: int) -> None:
    x = np.abs(normal(3, 4, 2)) + 0.5
    consts = {} if axes is None else {"axes": np.asarray(axes, np.int64)}
    check(op_type, ["x", "axes" if axes is not None else ""], {"x": x}, consts, opset=18, keepdims=keepdims,
          rtol=1e-5)


@pytest.mark.parametrize("op_type", REDUCE_OPS)
def test_reduce_axes_as_attribute(op_type: str) -> None:
    x = np.abs(normal(3, 4, 2)) + 0.5
    check(op_type, ["x"], {"x": x}, opset=11, axes=[0, 2], keepdims=0)


@pytest.mark.parametrize("op_type", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2",
                                     "ReduceLogSum", "ReduceLogSumExp"])
def test_reduce_empty_set_gives_identity(op_type: str) -> None:
    check(op_type, ["x", "axes"], {"x": np.zeros((2, 0, 4), np.float32)}, {"axes": np.asarray([1], np.int64)},
          opset=18)


def test_reduce_noop_with_empty_axes() -> None:
    x = normal(3, 2)
    check("ReduceSum", ["x", "axes"], {"x": x}, {"axes": np.zeros(0, np.int64)}, opset=13, noop_with_empty_axes=1)
    check("ReduceSumSquare", ["x"], {"x": x}, opset=18, noop_with_empty_axes=1)


def test_reduce_log_sum_exp_does_not_overflow() -> None:
    x = np.asarray([[1000.0, 1000.0], [-np.inf, 0.0]], np.float32)
    model = make_model("ReduceLogSumExp", ["x", "axes"], {"x": x}, {"axes": np.asarray([1], np.int64)}, 18, 1,
                       {"keepdims": 0})
    (got,) = run(model, {"x": x})
    np.testing.assert_allclose(got, [1000.0 + np.log(2.0), 0.0], rtol=1e-6)


def test_reduce_bool_max() -> None:
    check("ReduceMax", ["x", "axes"], {"x": np.asarray([[True, False], [False, False]])},
          {"axes": np.asarray([1], np.int64)}, opset=20)


@pytest.mark.parametrize("op_type", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("attrs", [{}, {"axis": -1, "keepdims": 0}, {"axis": 1, "select_last_index": 1}])
def test_arg_extremum(op_type: str, attrs: dict[str, Any]) -> None:
    x = np.asarray([[[1, 3, 3], [2, 2, 0]], [[5, 5, 5], [0, 1, 0]]], np.float32)
    check(op_type, ["x"], {"x": x}, opset=13, **attrs)


# -- softmax family ---------------------------------------------------------------

def softmax_family_2d(op_type: str, x: np.ndarray, axis: int) -> np.ndarray:
    """Opset < 13 semantics: flatten to 2-D at ``axis``, apply along axis 1, restore the shape."""
    matrix = x.reshape(int(np.prod(x.shape[:axis])), -1).astype(np.float64)
    shifted = matrix - matrix.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    result = {"Softmax": np.exp(log_softmax), "LogSoftmax": log_softmax,
              "Hardmax": np.eye(matrix.shape[1])[matrix.argmax(axis=1)]}[op_type]
    return result.reshape(x.shape).astype(x.dtype)


SOFTMAX_OPS = ["Softmax", "LogSoftmax", "Hardmax"]


@pytest.mark.parametrize("op_type", SOFTMAX_OPS)
@pytest.mark.parametrize("axis", [None, 1, -3])
def test_softmax_family_along_one_axis(op_type: str, axis: int | None) -> None:
    x = normal(2, 3, 4)
    x[0, 0, :2] = 7.0  # a tie for Hardmax: the first maximum wins
    check(op_type, ["x"], {"x": x}, opset=13, **({} if axis is None else {"axis": axis}))


@pytest.mark.parametrize("op_type", SOFTMAX_OPS)
@pytest.mark.parametrize("axis", [None, 2, -3, 0])
def test_softmax_family_before_opset_13_flattens_to_2d(op_type: str, axis: int | None) -> None:
    x = normal(2, 3, 4)
    x[0, 0, :2] = 7.0
    model = make_model(op_type, ["x"], {"x": x}, {}, 11, 1, {} if axis is None else {"axis": axis})
    want = softmax_family_2d(op_type, x, 1 if axis is None else axis % 3)
    assert_same(run(model, {"x": x}), [want], rtol=1e-5, atol=1e-6)


def test_low_precision_softmax_rounds_once() -> None:
    """An f16 Softmax computes in f32: each output is the correctly rounded f16 of the exact softmax."""
    x = (normal(4, 16) * 4).astype(np.float16)
    (got,) = run(make_model("Softmax", ["x"], {"x": x}, {}, 13, 1, {}), {"x": x})
    exact = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
    exact /= exact.sum(axis=-1, keepdims=True)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float64), exact, rtol=2 ** -11, atol=2 ** -24)


# -- losses -----------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 1, -1])
def test_negative_log_likelihood_loss(reduction: str, weighted: bool, ignore_index: int | None) -> None:
    x = normal(3, 4, 2)
    target = np.asarray([[0, 1], [3, 1], [2, 0]], np.int64)
    if ignore_index == -1:
        target[1, 0] = -1
    weight = np.abs(normal(4)) + 0.1 if weighted else np.ones(4, np.float32)
    attrs = {"reduction": reduction} | ({} if ignore_index is None else {"ignore_index": ignore_index})
    feeds = {"x": x, "t": target} | ({"w": weight} if weighted else {})
    model = make_model("NegativeLogLikelihoodLoss", list(feeds), feeds, {}, 13, 1, attrs)
    # the reference with all-one weights: its unweighted mean with ignore_index -1 also counts ignored targets
    reference = make_model("NegativeLogLikelihoodLoss", ["x", "t", "w"], {"x": x, "t": target, "w": weight}, {}, 13,
                           1, attrs)
    want = ReferenceEvaluator(reference).run(None, {"x": x, "t": target, "w": weight})
    assert_same(run(model, feeds), want, rtol=1e-5, atol=1e-6)


def test_ignored_target_with_infinite_log_probability_contributes_nothing() -> None:
    x = np.asarray([[-np.inf, -1.0], [-0.5, -2.0]], np.float32)
    target = np.asarray([0, 1], np.int64)
    model = make_model("NegativeLogLikelihoodLoss", ["x", "t"], {"x": x, "t": target}, {}, 13, 1,
                       {"reduction": "none", "ignore_index": 0})
    (got,) = run(model, {"x": x, "t": target})
    np.testing.assert_array_equal(got, [0.0, 2.0])


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_loss_with_log_prob(reduction: str, weighted: bool) -> None:
    x = normal(3, 5, 2, 2)
    target = RNG.integers(0, 5, size=(3, 2, 2)).astype(np.int32)
    target[0, 0, 0] = 4
    feeds = {"x": x, "t": target} | ({"w": np.abs(normal(5)) + 0.1} if weighted else {})
    check("SoftmaxCrossEntropyLoss", list(feeds), feeds, opset=13, num_outputs=2, reduction=reduction,
          ignore_index=4)


def test_softmax_cross_entropy_loss_2d_default_mean() -> None:
    check("SoftmaxCrossEntropyLoss", ["x", "t"], {"x": normal(4, 3), "t": np.asarray([0, 2, 1, 2], np.int64)},
          opset=13)


# -- errors ---------------------------------------------------------------------------



def test_missing_required_attribute_names_node_op_and_opset() -> None:
    message = import_error(make_model("Cast", ["x"], {"x": normal(2)}, {}, 18, 1, {}))
    assert "node0" in message and "Cast" in message and "opset 18" in message and "'to'" in message


def test_cast_to_string_is_a_clear_error() -> None:
    message = import_error(make_model("Cast", ["x"], {"x": normal(2)}, {}, 18, 1, {"to": onnx.TensorProto.STRING}))
    assert "Cast" in message and "STRING" in message and "not supported" in message


def test_reduce_axes_computed_at_run_time_are_rejected() -> None:
    model = make_model("ReduceSum", ["x", "axes"], {"x": normal(2, 3), "axes": np.asarray([1], np.int64)}, {}, 13, 1,
                       {})
    message = import_error(model)
    assert "ReduceSum" in message and "opset 13" in message and "axes" in message and "compile time" in message


@pytest.mark.parametrize("op_type,feeds,attrs,fragment", [
    ("Gelu", {"x": np.zeros(2, np.float32)}, {"approximate": "fast"}, "approximate"),
    ("Einsum", {"a": np.zeros((2, 3), np.float32)}, {"equation": "ijk->i"}, "rank 2"),
    ("Einsum", {"a": np.zeros((2, 3), np.float32)}, {"equation": "i.j->i"}, "letters"),
    ("Det", {"a": np.zeros((2, 3), np.float32)}, {}, "(..., n, n)"),
    ("SwiGLU", {"a": np.zeros((2, 3), np.float32), "b": np.zeros((3,), np.float32)}, {}, "one shape"),
    ("NegativeLogLikelihoodLoss", {"x": np.zeros((2, 3), np.float32), "t": np.zeros((2,), np.int64)},
     {"reduction": "avg"}, "reduction"),
    ("BitShift", {"a": np.zeros(2, np.uint8), "b": np.zeros(2, np.uint8)}, {"direction": "UP"}, "direction"),
    ("TopK", {"a": np.zeros((2, 3), np.float32)}, {"k": 4}, "K = 4"),
    ("TopK", {"a": np.zeros((2, 3), np.float32)}, {}, "input 1 (K) is required"),
])
def test_bad_attributes_and_shapes(op_type: str, feeds: dict[str, np.ndarray], attrs: dict[str, Any],
                                   fragment: str) -> None:
    opset = {"SwiGLU": 28, "TopK": 20 if fragment.startswith("input") else 9}.get(op_type, 20)
    message = import_error(make_model(op_type, list(feeds), feeds, {}, opset, 1, attrs))
    assert op_type in message and fragment in message
