"""ONNX attribute validation (``frontend/onnx/attributes.py``), converter input checks, and the op semantics
chosen where needlec and ONNX Runtime differ (docs/ARCHITECTURE.md, "Op semantics worth knowing")."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper

import needlec
from needlec.frontend.onnx import OnnxImportError
from needlec.frontend.onnx.attributes import check_attributes
from needlec.frontend.onnx.importer import Importer

F32 = onnx.TensorProto.FLOAT


def node(op_type: str, n_inputs: int = 1, **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op_type, [f"i{k}" for k in range(n_inputs)], ["y"], name="n", **attrs)


def raw_attribute(name: str, kind: int, **fields: Any) -> onnx.AttributeProto:
    """An attribute whose declared type is ``kind`` with whatever ``fields`` hold (to build mistyped ones)."""
    attribute = onnx.AttributeProto(name=name, type=kind)
    for field, value in fields.items():
        if isinstance(value, list):
            getattr(attribute, field).extend(value)
        elif isinstance(value, onnx.TensorProto):
            attribute.t.CopyFrom(value)
        else:
            setattr(attribute, field, value)
    return attribute


def with_attribute(base: onnx.NodeProto, attribute: onnx.AttributeProto) -> onnx.NodeProto:
    base.attribute.append(attribute)
    return base


A = onnx.AttributeProto
BROKEN_TENSOR = onnx.TensorProto(name="t", data_type=F32, dims=[5], raw_data=b"\0" * 19)

# (node, opset, rank of input 0, fragment of the one problem expected)
CASES: list[tuple[onnx.NodeProto, int, int | None, str]] = [
    # schema: names, requiredness, types, readable tensors, op existence
    (node("Relu", bogus=1), 14, 2, "attribute 'bogus' is unknown"),
    (node("DepthToSpace"), 13, 4, "required attribute 'blocksize' is missing (expected INT)"),
    (with_attribute(node("Concat", 2), raw_attribute("axis", A.FLOAT, f=1.0)), 13, 2,
     "attribute 'axis' must be INT, found FLOAT"),
    (with_attribute(node("Conv", 2), raw_attribute("pads", A.FLOAT, f=1.0)), 22, 4,
     "attribute 'pads' must be INTS, found FLOAT"),
    (with_attribute(node("Einsum", 1), raw_attribute("equation", A.INT, i=3)), 12, 2,
     "attribute 'equation' must be STRING, found INT"),
    (with_attribute(node("Loop", 2), raw_attribute("body", A.INT, i=3)), 11, 0,
     "attribute 'body' must be GRAPH, found INT"),
    (with_attribute(node("DepthToSpace"), raw_attribute("blocksize", A.UNDEFINED, i=2)), 13, 4,
     "attribute 'blocksize' must be INT, found UNDEFINED"),
    (with_attribute(node("Constant", 0), raw_attribute("value", A.TENSOR, t=BROKEN_TENSOR)), 13, None,
     "attribute 'value' (TENSOR) cannot be read"),
    (with_attribute(node("Constant", 0), raw_attribute("value", A.TENSOR, t=onnx.TensorProto(data_type=99))), 13,
     None, "attribute 'value' (TENSOR) cannot be read: element type 99 is not an ONNX type"),
    (with_attribute(node("Pad", 2), raw_attribute("mode", A.STRING, s=b"\xff")), 13, 2,
     "attribute 'mode' (STRING) cannot be read"),
    (with_attribute(node("LeakyRelu", alpha=1.0), raw_attribute("alpha", A.FLOAT, f=2.0)), 6, 2,
     "attribute 'alpha' is given twice"),
    (node("Scan", 1), 7, None, "op Scan is not defined in ONNX opset 7; it first exists in opset 8"),
    # value rules: flags
    (node("ReduceSum", 1, keepdims=5), 11, 3, "attribute 'keepdims' is 5, expected 0 or 1"),
    (node("Gemm", 2, transA=2), 13, 2, "attribute 'transA' is 2, expected 0 or 1"),
    (node("Trilu", 1, upper=-1), 14, 2, "attribute 'upper' is -1, expected 0 or 1"),
    # positive sizes and non-negative paddings
    (node("SpaceToDepth", 1, blocksize=0), 13, 4, "attribute 'blocksize' is 0, expected positive value(s)"),
    (node("ConvTranspose", 2, group=0), 22, 4, "attribute 'group' is 0, expected positive value(s)"),
    (node("RNN", 3, hidden_size=-1), 22, 3, "attribute 'hidden_size' is -1, expected positive value(s)"),
    (node("MaxPool", 1, kernel_shape=[2, 0]), 22, 4, "attribute 'kernel_shape' is [2, 0], expected positive"),
    (node("Conv", 2, pads=[0, -1, 0, 0]), 22, 4, "attribute 'pads' is [0, -1, 0, 0], expected non-negative"),
    (node("GatherND", 2, batch_dims=-1), 13, 3, "attribute 'batch_dims' is -1, expected non-negative"),
    # axes within the rank of input 0
    (node("Concat", 2, axis=3), 13, 3, "attribute 'axis' is 3, expected axis value(s) in [-3, 2]"),
    (node("Flatten", 1, axis=4), 13, 3, "attribute 'axis' is 4, expected axis value(s) in [-3, 3]"),
    (node("OneHot", 3, axis=-4), 11, 2, "attribute 'axis' is -4, expected axis value(s) in [-3, 2]"),
    (node("ReduceMax", 1, axes=[0, 5]), 13, 2, "attribute 'axes' is [0, 5], expected axis value(s) in [-2, 1]"),
    (node("ReverseSequence", 2, batch_axis=2), 10, 3, "attribute 'batch_axis' is 2, expected one of 0, 1"),
    (node("Transpose", 1, perm=[0, 0, 1]), 13, 3, "attribute 'perm' is [0, 0, 1], expected a permutation of 0..2"),
    # element types and mode strings
    (node("Cast", 1, to=99), 13, 2, "attribute 'to' is 99, expected a TensorProto data type code"),
    (node("Pad", 2, mode="mirror"), 13, 2, "attribute 'mode' is mirror, expected one of constant, reflect"),
    (node("DepthToSpace", 1, blocksize=2, mode="XYZ"), 13, 4, "attribute 'mode' is XYZ, expected one of DCR, CRD"),
    (node("Conv", 2, auto_pad="SAME"), 22, 4, "attribute 'auto_pad' is SAME, expected one of NOTSET"),
    (node("GridSample", 2, padding_mode="wrap"), 22, 4, "attribute 'padding_mode' is wrap, expected one of zeros"),
    (node("LSTM", 3, direction="both"), 22, 3, "attribute 'direction' is both, expected one of forward"),
    (node("ScatterND", 3, reduction="avg"), 18, 2, "attribute 'reduction' is avg, expected one of none, add"),
    (node("Cast", 1, to=1, round_mode="NOTSET"), 25, 2, "attribute 'round_mode' is NOTSET, expected one of up, down"),
    (node("Resize", 2, exclude_outside=-1), 19, 4, "attribute 'exclude_outside' is -1"),
]


@pytest.mark.parametrize("proto, opset, rank, fragment", CASES,
                         ids=[f"{c[0].op_type}-{i}" for i, c in enumerate(CASES)])
def test_attribute_rule(proto: onnx.NodeProto, opset: int, rank: int | None, fragment: str) -> None:
    problems = check_attributes(proto, opset, rank)
    assert len(problems) == 1 and fragment in problems[0], problems


@pytest.mark.parametrize("proto, opset, rank", [
    (node("Concat", 2, axis=-3), 13, 3),
    (node("Flatten", 1, axis=3), 13, 3),            # Flatten's axis may equal the rank
    (node("OneHot", 3, axis=2), 11, 2),              # OneHot's counts the new axis
    (node("ReduceSum", 1, keepdims=0), 11, 3),
    (node("Pad", 2, mode="wrap"), 19, 2),
    (node("GridSample", 2, mode="bilinear"), 16, 4),  # the names before opset 20
    (node("com.example.Custom", 1, anything=[1.5]), 13, 2),
    (helper.make_node("FusedConv", ["x"], ["y"], domain="com.microsoft", whatever="x"), 1, 4),  # no ONNX schema
    (node("Conv", 2, kernel_shape=[3, 3], pads=[1, 1, 1, 1]), 22, None),  # rank unknown: axis rules skip
    (node("Cast", 1, to="FLOAT"), 1, 2),             # Cast-1 names the type
])
def test_valid_attributes_pass(proto: onnx.NodeProto, opset: int, rank: int | None) -> None:
    if proto.op_type == "com.example.Custom":
        proto.domain = "com.example"
    assert check_attributes(proto, opset, rank) == []


def test_all_problems_are_counted_in_one_line() -> None:
    proto = node("Gemm", 2, transA=2, transB=3)
    assert len(check_attributes(proto, 13, 2)) == 2


# -- through the importer: the check runs before the converter, errors name the node ----------------------------

def tensor_model(nodes: Sequence[onnx.NodeProto], inputs: dict[str, np.ndarray], outputs: dict[str, Sequence[int]],
                 consts: dict[str, np.ndarray] | None = None, opset: int = 18,
                 out_type: int = F32) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes), "g",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, out_type, shape) for k, shape in outputs.items()],
        [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in (consts or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def converter_error(model: onnx.ModelProto) -> str:
    """The one-line OnnxImportError of converting ``model`` (the importer alone, after model validation)."""
    with pytest.raises(OnnxImportError) as info:
        Importer(model).run()
    message = str(info.value)
    assert "\n" not in message and "Error:" not in message, message
    return message


def test_keepdims_other_than_0_or_1_is_refused_by_the_importer() -> None:
    # ONNX Runtime treats only 1 as true, the ONNX reference any nonzero value: needlec refuses the ambiguity
    x = np.ones((3, 2, 2), np.float32)
    model = tensor_model([helper.make_node("ArgMax", ["x"], ["y"], name="am", axis=1, keepdims=5)], {"x": x},
                         {"y": [3, 2]}, opset=13, out_type=onnx.TensorProto.INT64)
    with pytest.raises(OnnxImportError, match=r"node 'am' \(ArgMax, opset 13\): attribute 'keepdims' is 5, "
                                              r"expected 0 or 1"):
        needlec.compile(model)


X3 = np.zeros((1, 3, 2), np.float32)


@pytest.mark.parametrize("nodes, inputs, consts, fragment", [
    ([helper.make_node("RNN", ["x", "w", "r"], ["y"], hidden_size=4)], {"x": X3},
     {"w": np.zeros((1, 4, 2), np.float32), "r": np.zeros((), np.float32)}, "R must be 3-D"),
    ([helper.make_node("GRU", ["x", "w", "r"], ["y"], hidden_size=2)], {"x": X3},
     {"w": np.zeros((1, 6, 2), np.float32), "r": np.zeros((1, 7, 2), np.float32)},
     "input 2 (R) has shape (1, 7, 2), expected (1, 6, 2)"),
    ([helper.make_node("LSTM", ["x", "w", "r", "b"], ["y"], hidden_size=1)], {"x": X3},
     {"w": np.zeros((1, 4, 2), np.float32), "r": np.zeros((1, 4, 1), np.float32), "b": np.zeros((), np.float32)},
     "input 3 (B) has shape (), expected (1, 8)"),
    ([helper.make_node("RNN", ["x", "w", "r"], ["y"], hidden_size=1)], {"x": np.zeros((0, 3, 2), np.float32)},
     {"w": np.zeros((1, 1, 2), np.float32), "r": np.zeros((1, 1, 1), np.float32)}, "sequence length 0"),
    ([helper.make_node("Concat", ["a", "b"], ["y"], axis=-1)], {"a": np.zeros((2, 2), np.float32)},
     {"b": np.float32(1)}, "inputs have ranks [2, 0]"),
    ([helper.make_node("Reshape", ["a", "s"], ["y"])], {"a": np.zeros((2, 3, 4), np.float32)},
     {"s": np.array([2, 0, 0, 0])}, "copies (0) a dimension at an index beyond the rank 3"),
    ([helper.make_node("Resize", ["a", "", "s"], ["y"])], {"a": np.zeros((1, 1, 2, 2), np.float32)},
     {"s": np.array([1, 1, np.nan, 2], np.float32)}, "must be positive and finite"),
    ([helper.make_node("Resize", ["a", "", "", "s"], ["y"], mode="cubic")], {"a": np.zeros((1, 0, 4, 4), np.float32)},
     {"s": np.array([1, 1, 9, 10])}, "asks for data from an empty axis"),
    ([helper.make_node("Dropout", ["a", "r"], ["y"])], {"a": np.zeros((2, 3), np.float32)},
     {"r": np.array([0.1, 0.2], np.float32)}, "input 1 (ratio) has shape (2,), expected a scalar"),
    ([helper.make_node("Range", ["a", "b", "c"], ["y"])], {},
     {"a": np.float32(0), "b": np.float32(5), "c": np.float32(np.nan)}, "give no finite length"),
    ([helper.make_node("Range", ["a", "b", "c"], ["y"])], {},
     {"a": np.float32(-1e38), "b": np.float32(5), "c": np.float32(2)}, "over the size budget"),
    ([helper.make_node("Attention", ["q", "k", "v"], ["y"])], {"q": np.zeros((2, 3, 4, 8), np.float32)},
     {"k": np.zeros((2, 0, 6, 8), np.float32), "v": np.zeros((2, 3, 6, 8), np.float32)}, "cannot share 0 key"),
])
def test_converter_input_errors(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray],
                                consts: dict[str, np.ndarray], fragment: str) -> None:
    opset = 23 if nodes[0].op_type == "Attention" else 22 if nodes[0].op_type in ("RNN", "GRU", "LSTM") else 18
    assert fragment in converter_error(tensor_model(nodes, inputs, {"y": []}, consts, opset))


def test_trilu_clamps_an_extreme_diagonal() -> None:
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    model = tensor_model([helper.make_node("Trilu", ["x", "k"], ["y"], upper=0)], {"x": x}, {"y": [4, 5]},
                         {"k": np.array(np.iinfo(np.int64).min)}, opset=14)
    np.testing.assert_array_equal(needlec.compile(model)(x), np.zeros_like(x))


# -- values where ONNX Runtime decides ----------------------------------------------------------------------------

def compiled_single(op_type: str, inputs: dict[str, np.ndarray], out_shape: Sequence[int],
                    consts: dict[str, np.ndarray] | None = None, opset: int = 18, out_type: int = F32,
                    **attrs: Any) -> np.ndarray:
    names = list(inputs) + list(consts or {})
    model = tensor_model([helper.make_node(op_type, names, ["y"], **attrs)], inputs, {"y": out_shape}, consts, opset,
                         out_type)
    return needlec.compile(model)(**inputs)


def test_mean_of_an_empty_axis_is_zero() -> None:
    # ONNX Runtime gives 0 (NumPy NaN)
    x = np.zeros((3, 0, 2), np.float32)
    got = compiled_single("ReduceMean", {"x": x}, [3, 2], {"axes": np.array([1])}, keepdims=0)
    np.testing.assert_array_equal(got, np.zeros((3, 2), np.float32))


def test_clip_ignores_a_nan_bound_and_keeps_a_nan_input() -> None:
    x = np.array([np.nan, -3, 0, 3, np.inf], np.float32)
    for lo, hi, expected in ((np.nan, 1, [np.nan, -3, 0, 1, 1]), (-1, np.nan, [np.nan, -1, 0, 3, np.inf])):
        feeds = {"x": x, "lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)}
        np.testing.assert_array_equal(compiled_single("Clip", feeds, [5], opset=13), np.float32(expected))
        constant = compiled_single("Clip", {"x": x}, [5], {"lo": feeds["lo"], "hi": feeds["hi"]}, opset=13)
        np.testing.assert_array_equal(constant, np.float32(expected))


def test_batch_normalization_folds_scale_first() -> None:
    # x * (scale / std) + (bias - mean * scale / std): a huge mean does not overflow x - mean
    x = np.ones((1, 1, 2), np.float32)
    consts = {"s": np.float32([0.01]), "b": np.float32([0]), "m": np.float32([1e38]), "v": np.float32([0.01])}
    got = compiled_single("BatchNormalization", {"x": x}, [1, 1, 2], consts, opset=15)
    factor = 0.01 / np.sqrt(0.01 + 1e-5)
    np.testing.assert_allclose(got, np.full((1, 1, 2), factor * (1 - 1e38)), rtol=1e-5)


def test_absent_initial_state_contributes_nothing() -> None:
    # ONNX Runtime skips h0 @ R for a zero initial state: an inf in R does not make the first step NaN
    x = np.ones((1, 1, 2), np.float32)
    w = np.full((1, 1, 2), 0.25, np.float32)
    r = np.full((1, 1, 1), np.inf, np.float32)
    model = tensor_model([helper.make_node("RNN", ["x", "w", "r"], ["y"], hidden_size=1)], {"x": x},
                         {"y": [1, 1, 1, 1]}, {"w": w, "r": r}, opset=22)
    np.testing.assert_allclose(needlec.compile(model)(x), np.tanh(np.full((1, 1, 1, 1), 0.5)), rtol=1e-6)


# -- documented choices (ARCHITECTURE.md "Op semantics worth knowing") --------------------------------------------

def test_nan_wins_argmax_hardmax_and_max_pooling() -> None:
    # ONNX leaves NaN open; ONNX Runtime skips NaN, needlec follows NumPy: the first NaN wins / propagates
    x = np.array([[8.5, np.nan, 6.0, np.nan]], np.float32)
    assert compiled_single("ArgMax", {"x": x}, [1, 1], opset=13, out_type=onnx.TensorProto.INT64,
                           axis=1).tolist() == [[1]]
    np.testing.assert_array_equal(compiled_single("Hardmax", {"x": x}, [1, 4], opset=13, axis=1), [[0, 1, 0, 0]])
    pooled = compiled_single("MaxPool", {"x": x.reshape(1, 1, 4)}, [1, 1, 2], opset=13, kernel_shape=[2],
                             strides=[2])
    assert np.isnan(pooled).all()


def test_hardmax_ties_go_to_the_first() -> None:
    x = np.array([[1.0, 3.0, 3.0]], np.float32)
    np.testing.assert_array_equal(compiled_single("Hardmax", {"x": x}, [1, 3], opset=13), [[0, 1, 0]])


def test_reduce_log_sum_exp_is_shifted_by_the_maximum() -> None:
    # log(sum(exp(x))) without overflow: finite where a direct float32 evaluation (ONNX Runtime) gives inf
    x = np.array([[1e38, 0.0]], np.float32)
    got = compiled_single("ReduceLogSumExp", {"x": x}, [1, 1], {"axes": np.array([1])})
    np.testing.assert_allclose(got, [[1e38]], rtol=1e-6)


def test_dft_computes_in_double_precision() -> None:
    # closer to the exact transform than a float32 FFT: ONNX Runtime differs by float32 noise
    x = np.arange(100, dtype=np.float32).reshape(1, 10, 10, 1) * 5.4
    got = compiled_single("DFT", {"x": x}, [1, 10, 10, 2], opset=19, axis=1)
    exact = np.fft.fft(x[..., 0].astype(np.float64), axis=1)
    np.testing.assert_allclose(got, np.stack([exact.real, exact.imag], -1), rtol=0, atol=1e-5 * np.abs(exact).max())
