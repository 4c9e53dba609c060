"""ONNX converters for convolutions, pooling, normalizations, Dropout and quantization.

Each case builds a one-node ONNX model with ``onnx.helper``, imports it with
``from_onnx`` and compares its outputs (shape, dtype, values) with
``onnx.reference.ReferenceEvaluator``, or with a NumPy reference written here
where the ONNX reference is wrong (grouped ConvTranspose, MaxPool indices next
to padding, per-row MatMulInteger zero points). Most cases run the imported
graph in needlec's reference interpreter, which checks the converter's
decomposition quickly; the cases marked ``compiled`` go through the whole
compiler. The error cases check the one-line ``OnnxImportError`` naming node,
op and opset.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import needlec
from needlec.compiler.interpreter import interpret
from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ops.registry import get_op
from needlec.frontend.onnx import from_onnx
from tests.onnx_helpers import assert_same, import_error

RNG = np.random.default_rng(0)


def make_model(op_type: str, inputs: Sequence[str], feeds: dict[str, np.ndarray], opset: int, num_outputs: int,
               attrs: dict[str, Any], consts: dict[str, np.ndarray] | None = None,
               output_shapes: Sequence[Sequence[int]] | None = None) -> onnx.ModelProto:
    """A one-node model: ``feeds`` are graph inputs, ``consts`` initializers, '' marks an absent input."""
    outputs = [f"y{i}" for i in range(num_outputs)]
    node = helper.make_node(op_type, list(inputs), outputs, name="node0", **attrs)
    graph_inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for name, a in feeds.items()]
    if output_shapes is None:
        graph_outputs = [helper.make_empty_tensor_value_info(o) for o in outputs]
    else:
        graph_outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, shape)
                         for o, shape in zip(outputs, output_shapes)]
    initializers = [onnx.numpy_helper.from_array(a, name) for name, a in (consts or {}).items()]
    graph = helper.make_graph([node], "g", graph_inputs, graph_outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], compiled: bool) -> list[np.ndarray]:
    """needlec's outputs of ``model`` on ``feeds``: compiled, or run by the reference interpreter."""
    graph = from_onnx(model)
    if not compiled:
        return interpret(graph, list(feeds.values()))
    got = needlec.compile(graph)(*feeds.values())
    return list(got) if isinstance(got, tuple) else [got]


def check(op_type: str, inputs: Sequence[str], feeds: dict[str, np.ndarray], opset: int = 22, num_outputs: int = 1,
          compiled: bool = False, rtol: float = 1e-4, atol: float = 1e-5, **attrs: Any) -> None:
    """needlec's outputs equal the ONNX reference's."""
    model = make_model(op_type, inputs, feeds, opset, num_outputs, attrs)
    assert_same(run(model, feeds, compiled), ReferenceEvaluator(model).run(None, feeds), rtol, atol)


def normal(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def integers(low: int, high: int, shape: Sequence[int], dtype: Any) -> np.ndarray:
    return RNG.integers(low, high, shape).astype(dtype)




# -- Conv ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((1, 2, 9), (4, 1, 3), {"group": 2, "dilations": [2], "strides": [2], "pads": [1, 2]}),
    ((1, 2, 9), (4, 2, 3), {"auto_pad": "SAME_LOWER", "strides": [2]}),
    ((2, 3, 7, 6), (4, 3, 3, 2), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 2, 8, 8), (4, 2, 3, 3), {"auto_pad": "VALID", "strides": [2, 3]}),
    ((2, 4, 5, 6, 7), (6, 2, 3, 2, 3), {"group": 2, "strides": [2, 1, 2], "pads": [1, 0, 1, 0, 1, 1],
                                         "dilations": [1, 2, 1]}),
    ((1, 2, 4, 5, 6, 3), (2, 2, 2, 3, 2, 2), {"pads": [1, 0, 1, 0, 0, 1, 0, 1]}),
])
def test_conv(x_shape: tuple[int, ...], w_shape: tuple[int, ...], attrs: dict[str, Any]) -> None:
    feeds = {"x": normal(*x_shape), "w": normal(*w_shape), "b": normal(w_shape[0])}
    check("Conv", ["x", "w", "b"], feeds, **attrs)


def test_conv_3d_compiled() -> None:
    """The 3-D decomposition (one conv2d per depth tap over strided slices) through the whole compiler."""
    feeds = {"x": normal(1, 4, 5, 6, 5), "w": normal(4, 2, 3, 3, 2)}
    check("Conv", ["x", "w"], feeds, compiled=True, group=2, strides=[2, 1, 1], pads=[1, 1, 0, 1, 0, 1],
          dilations=[2, 1, 1])


# -- ConvTranspose ---------------------------------------------------------------------------------

def conv_transpose_reference(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, strides: Sequence[int],
                             pads: Sequence[int], dilations: Sequence[int], output_padding: Sequence[int],
                             groups: int) -> np.ndarray:
    """Transposed convolution in its scatter form: each input element adds its kernel-weighted copy."""
    rank = x.ndim - 2
    c, per_group_out, *kernel = w.shape
    per_group_in = c // groups
    out_dims = [s * (n - 1) + op + (k - 1) * d + 1 - pads[i] - pads[rank + i] for i, (n, s, k, d, op) in
                enumerate(zip(x.shape[2:], strides, kernel, dilations, output_padding))]
    full = np.zeros((x.shape[0], per_group_out * groups, *[o + pads[i] + pads[rank + i] + s * 2 * k for i, (o, s, k)
                                                            in enumerate(zip(out_dims, strides, kernel))]))
    for position in itertools.product(*(range(n) for n in x.shape[2:])):
        for taps in itertools.product(*(range(k) for k in kernel)):
            target = tuple(p * s + t * d for p, s, t, d in zip(position, strides, taps, dilations))
            for g in range(groups):
                inputs = x[(slice(None), slice(g * per_group_in, (g + 1) * per_group_in), *position)]
                weights = w[(slice(g * per_group_in, (g + 1) * per_group_in), slice(None), *taps)]
                full[(slice(None), slice(g * per_group_out, (g + 1) * per_group_out), *target)] += inputs @ weights
    window = tuple(slice(pads[i], pads[i] + o) for i, o in enumerate(out_dims))
    y = full[(slice(None), slice(None), *window)]
    if bias is not None:
        y = y + bias.reshape(-1, *[1] * rank)
    return y.astype(x.dtype)


@pytest.mark.parametrize("x_shape,w_shape,attrs,compiled", [
    ((2, 4, 3, 4), (4, 3, 3, 2), {"group": 2, "strides": [2, 3], "dilations": [2, 1], "pads": [1, 0, 2, 1],
                                  "output_padding": [1, 2]}, True),
    ((1, 2, 5), (2, 3, 3), {"strides": [3], "pads": [2, 1]}, False),
    ((1, 6, 2, 3, 2), (6, 1, 2, 2, 3), {"group": 3, "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 0]}, False),
])
def test_conv_transpose_grouped(x_shape: tuple[int, ...], w_shape: tuple[int, ...], attrs: dict[str, Any],
                                compiled: bool) -> None:
    feeds = {"x": normal(*x_shape), "w": normal(*w_shape), "b": normal(w_shape[1] * attrs.get("group", 1))}
    model = make_model("ConvTranspose", ["x", "w", "b"], feeds, 22, 1, attrs)
    rank = len(x_shape) - 2
    expected = conv_transpose_reference(feeds["x"], feeds["w"], feeds["b"], attrs.get("strides", [1] * rank),
                                        attrs.get("pads", [0] * 2 * rank), attrs.get("dilations", [1] * rank),
                                        attrs.get("output_padding", [0] * rank), attrs.get("group", 1))
    assert_same(run(model, feeds, compiled), [expected])


@pytest.mark.parametrize("attrs", [
    {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"auto_pad": "SAME_UPPER", "strides": [2, 3]},
])
def test_conv_transpose_output_geometry(attrs: dict[str, Any]) -> None:
    check("ConvTranspose", ["x", "w"], {"x": normal(1, 2, 3, 4), "w": normal(2, 3, 3, 3)}, **attrs)


def test_conv_transpose_output_shape_crops_and_grows() -> None:
    """output_shape overrides pads: the natural extent 3 * 2 + 3 = 9 cropped to 8 (the odd unit at the
    beginning) and 2 * 3 + 3 = 9 grown to 10 (zeros at the end), as the spec's total_padding formula says."""
    x, w = normal(1, 2, 3, 4), normal(2, 3, 3, 3)
    model = make_model("ConvTranspose", ["x", "w"], {"x": x, "w": w}, 22, 1, {"output_shape": [8, 10],
                                                                              "strides": [3, 2]})
    natural = conv_transpose_reference(x, w, None, [3, 2], [1, 0, 0, 0], [1, 1], [0, 0], 1)
    expected = np.pad(natural, [(0, 0), (0, 0), (0, 0), (0, 1)])
    assert_same(run(model, {"x": x, "w": w}, False), [expected])


# -- integer and deformable convolutions ---------------------------------------------------------

def test_conv_integer_per_channel_zero_points() -> None:
    feeds = {"x": integers(0, 255, (1, 2, 5, 6), np.uint8), "w": integers(0, 255, (3, 2, 2, 3), np.uint8),
             "xz": np.array(100, np.uint8), "wz": integers(0, 255, (3,), np.uint8)}
    check("ConvInteger", ["x", "w", "xz", "wz"], feeds, opset=10, dilations=[2, 1], pads=[0, 1, 1, 0])


def test_qlinear_conv_per_channel_scales_and_bias() -> None:
    feeds = {"x": integers(-128, 127, (1, 4, 5, 5), np.int8), "xs": np.array(0.05, np.float32),
             "xz": np.array(3, np.int8), "w": integers(-128, 127, (6, 2, 3, 3), np.int8),
             "ws": np.abs(normal(6)) * 0.01, "wz": np.zeros(6, np.int8), "ys": np.array(0.3, np.float32),
             "yz": np.array(-2, np.int8), "b": integers(-500, 500, (6,), np.int32)}
    check("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], feeds, opset=10, group=2,
          pads=[1, 1, 1, 1], strides=[2, 1])


def test_deform_conv_groups_offsets_and_mask() -> None:
    feeds = {"x": normal(2, 4, 5, 6), "w": normal(6, 2, 2, 3), "offset": normal(2, 2 * 6 * 2, 3, 2),
             "b": normal(6), "mask": np.abs(normal(2, 2 * 6, 3, 2))}
    check("DeformConv", ["x", "w", "offset", "b", "mask"], feeds, group=2, offset_group=2, strides=[2, 3],
          dilations=[2, 1], pads=[1, 1, 1, 1])


@pytest.mark.parametrize("inputs,activation", [(["x", "w", "b", "past"], "silu"), (["x", "w", "", "past"], "none"),
                                               (["x", "w"], "swish")])
def test_causal_conv_with_state(inputs: list[str], activation: str) -> None:
    values = {"x": normal(2, 3, 5), "w": normal(3, 1, 4), "b": normal(3), "past": normal(2, 3, 3)}
    feeds = {name: values[name] for name in inputs if name}
    check("CausalConvWithState", inputs, feeds, opset=27, num_outputs=2, activation=activation)


# -- pooling ---------------------------------------------------------------------------------------

POOL_WINDOWS = [
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1, "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 3], "dilations": [2, 2], "pads": [1, 0, 0, 2]},
    {"kernel_shape": [3, 2], "auto_pad": "SAME_UPPER", "strides": [2, 3]},
    {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [2, 2]},
]


@pytest.mark.parametrize("op_type,extra", [("MaxPool", {}), ("AveragePool", {}),
                                           ("AveragePool", {"count_include_pad": 1}), ("LpPool", {"p": 3})])
@pytest.mark.parametrize("window", POOL_WINDOWS)
def test_pools(op_type: str, extra: dict[str, Any], window: dict[str, Any]) -> None:
    check(op_type, ["x"], {"x": normal(2, 3, 7, 8)}, **window, **extra)


def max_pool_indices_reference(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                               pads: Sequence[int], column_major: bool) -> np.ndarray:
    """MaxPool's Indices by brute force: flat index of each window's first maximum (spatial axes column-major
    when asked)."""
    rank = len(kernel)
    spatial = x.shape[2:]
    out_dims = [(n + pads[i] + pads[rank + i] - k) // s + 1
                for i, (n, k, s) in enumerate(zip(spatial, kernel, strides))]
    result = np.zeros((*x.shape[:2], *out_dims), np.int64)
    for image in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for out in itertools.product(*(range(o) for o in out_dims)):
            best, where = -np.inf, None
            for taps in itertools.product(*(range(k) for k in kernel)):
                position = tuple(o * s - pads[i] + t for i, (o, s, t) in enumerate(zip(out, strides, taps)))
                if all(0 <= p < n for p, n in zip(position, spatial)) and x[(*image, *position)] > best:
                    best, where = x[(*image, *position)], position
            assert where is not None
            order = where[::-1] if column_major else where
            dims = spatial[::-1] if column_major else spatial
            flat = (image[0] * x.shape[1] + image[1]) * int(np.prod(spatial)) + int(np.ravel_multi_index(order, dims))
            result[(*image, *out)] = flat
    return result


@pytest.mark.parametrize("shape,attrs,compiled", [
    ((2, 2, 5, 6), {"kernel_shape": [2, 3], "pads": [1, 1, 1, 1]}, True),
    ((1, 2, 5, 6), {"kernel_shape": [2, 3], "strides": [2, 2], "storage_order": 1}, True),
    ((1, 2, 4, 5, 6), {"kernel_shape": [2, 2, 3], "strides": [2, 2, 2], "storage_order": 1}, False),
    ((1, 2, 9), {"kernel_shape": [3], "pads": [1, 1], "strides": [2], "storage_order": 1}, False),
])
def test_max_pool_indices(shape: tuple[int, ...], attrs: dict[str, Any], compiled: bool) -> None:
    x = normal(*shape)
    model = make_model("MaxPool", ["x"], {"x": x}, 22, 2, attrs)
    rank = len(shape) - 2
    pads = attrs.get("pads", [0] * 2 * rank)
    values, indices = run(model, {"x": x}, compiled)
    expected = max_pool_indices_reference(x, attrs["kernel_shape"], attrs.get("strides", [1] * rank), pads,
                                          attrs.get("storage_order", 0) == 1)
    np.testing.assert_array_equal(indices, expected)
    assert_same([values], ReferenceEvaluator(model).run(None, {"x": x})[:1])


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")  # the reference pads uint8 with NaN
def test_max_pool_uint8() -> None:
    check("MaxPool", ["x"], {"x": integers(0, 255, (1, 2, 5, 5), np.uint8)}, kernel_shape=[3, 3], pads=[1, 1, 1, 1])


@pytest.mark.parametrize("op_type,reduce", [("GlobalAveragePool", np.mean), ("GlobalMaxPool", np.max)])
def test_global_pools(op_type: str, reduce: Any) -> None:
    x = normal(2, 3, 4, 5, 2)
    model = make_model(op_type, ["x"], {"x": x}, 22, 1, {})
    assert_same(run(model, {"x": x}, False), [reduce(x, axis=(2, 3, 4), keepdims=True)])


def test_max_unpool_output_shape_from_declared_output() -> None:
    """A run-time output_shape input still gives a static result when the model declares the output's shape."""
    x = normal(1, 2, 4, 4)
    values, indices = ReferenceEvaluator(make_model("MaxPool", ["x"], {"x": x}, 22, 2,
                                                    {"kernel_shape": [2, 2], "strides": [2, 2]})).run(None, {"x": x})
    feeds = {"v": values, "i": indices, "shape": np.array([1, 2, 5, 5], np.int64)}
    model = make_model("MaxUnpool", ["v", "i", "shape"], feeds, 22, 1, {"kernel_shape": [2, 2], "strides": [2, 2]},
                       output_shapes=[(1, 2, 5, 5)])
    assert_same(run(model, feeds, False), ReferenceEvaluator(model).run(None, feeds))


def test_max_unpool_without_output_shape() -> None:
    feeds = {"v": normal(1, 1, 2, 3), "i": np.array([[[[0, 3, 5], [12, 14, 17]]]], np.int64)}
    check("MaxUnpool", ["v", "i"], feeds, kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0])


# -- normalizations --------------------------------------------------------------------------------

def test_batch_normalization_inference_rank_2() -> None:
    feeds = {"x": normal(4, 3), "s": normal(3), "b": normal(3), "m": normal(3), "v": np.abs(normal(3))}
    check("BatchNormalization", ["x", "s", "b", "m", "v"], feeds, opset=15, epsilon=1e-3)


def test_batch_normalization_training_outputs() -> None:
    feeds = {"x": normal(2, 3, 4), "s": normal(3), "b": normal(3), "m": normal(3), "v": np.abs(normal(3))}
    check("BatchNormalization", ["x", "s", "b", "m", "v"], feeds, opset=15, num_outputs=3, training_mode=1,
          momentum=0.7)


@pytest.mark.parametrize("opset,scale_size", [(18, 3), (21, 6)])
def test_group_normalization(opset: int, scale_size: int) -> None:
    """Opset 18 scales per group, opset 21 per channel."""
    feeds = {"x": normal(2, 6, 3), "s": normal(scale_size), "b": normal(scale_size)}
    check("GroupNormalization", ["x", "s", "b"], feeds, opset=opset, num_groups=3, epsilon=1e-3)


def test_layer_normalization_axis_and_statistics() -> None:
    check("LayerNormalization", ["x", "s"], {"x": normal(2, 3, 4), "s": normal(3, 4)}, opset=17, num_outputs=3,
          axis=1)


def test_layer_normalization_f16_stashes_in_f32() -> None:
    """f16 data is normalized in f32 (stash_type); Mean and InvStdDev are f32, as the spec's type U says."""
    x, scale = normal(2, 3, 4, dtype=np.float16), normal(4, dtype=np.float16)
    model = make_model("LayerNormalization", ["x", "s"], {"x": x, "s": scale}, 17, 3, {})
    y, centre, inv_std = run(model, {"x": x, "s": scale}, False)
    wide = x.astype(np.float32)
    expected_mean = wide.mean(-1, keepdims=True)
    expected_inv = 1 / np.sqrt(wide.var(-1, keepdims=True) + 1e-5)
    assert_same([centre, inv_std], [expected_mean, expected_inv])
    assert_same([y], [(((wide - expected_mean) * expected_inv).astype(np.float16) * scale)], rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("op_type,inputs,feeds,opset,attrs", [
    ("RMSNormalization", ["x", "s"], {"x": normal(2, 3, 4), "s": normal(3, 4)}, 23, {"axis": -2, "epsilon": 0.1}),
    ("InstanceNormalization", ["x", "s", "b"], {"x": normal(2, 3, 7), "s": normal(3), "b": normal(3)}, 22,
     {"epsilon": 0.1}),
    ("LpNormalization", ["x"], {"x": normal(3, 4)}, 22, {"p": 2, "axis": 0}),
    ("LpNormalization", ["x"], {"x": np.abs(normal(3, 4))}, 22, {"p": 1, "axis": -1}),
    ("MeanVarianceNormalization", ["x"], {"x": normal(3, 4, 5)}, 13, {"axes": [1]}),
    ("LRN", ["x"], {"x": normal(3, 3, 4, 5)}, 13, {"size": 4, "alpha": 0.01, "beta": 0.6, "bias": 1.5}),
])
def test_normalizations(op_type: str, inputs: list[str], feeds: dict[str, np.ndarray], opset: int,
                        attrs: dict[str, Any]) -> None:
    check(op_type, inputs, feeds, opset=opset, **attrs)


def test_lp_normalization_zero_norm_gives_zero() -> None:
    x = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    model = make_model("LpNormalization", ["x"], {"x": x}, 22, 1, {"axis": 1})
    assert_same(run(model, {"x": x}, False), [np.array([[0.0, 0.0], [0.6, 0.8]], np.float32)])


# -- Dropout ---------------------------------------------------------------------------------------

def test_dropout_inference_is_identity_with_a_mask_of_ones() -> None:
    x = normal(3, 4)
    check("Dropout", ["x", "r"], {"x": x, "r": np.array(0.7, np.float32)}, num_outputs=2, seed=1)


def test_dropout_training_keeps_where_the_draw_reaches_the_ratio() -> None:
    """Training mode keeps element i when random_uniform(seed)[i] >= ratio and scales it by 1 / (1 - ratio);
    a run-time training_mode of false gives the input back untouched."""
    x, ratio = normal(4, 50), np.array(0.25, np.float32)
    model = make_model("Dropout", ["x", "r", "t"], {"x": x, "r": ratio, "t": np.array(True)}, 22, 2, {"seed": 5})
    compiled = needlec.compile(from_onnx(model))
    y, mask = compiled(x, ratio, np.array(True))
    draws = get_op("random_uniform").reference([], {"shape": list(x.shape), "seed": 5, "dtype": DType.F32,
                                                    "offset": 0})[0]
    np.testing.assert_array_equal(mask, draws >= ratio)
    np.testing.assert_allclose(y, np.where(mask, x / (1 - ratio), 0), rtol=1e-6)
    assert 0.6 < mask.mean() < 0.9
    y, mask = compiled(x, ratio, np.array(False))
    np.testing.assert_array_equal(y, x)
    assert mask.all()


# -- quantization ----------------------------------------------------------------------------------

@pytest.mark.parametrize("feeds,attrs", [
    ({"x": normal(3, 4) * 100, "s": np.array([0.5, 1.0, 2.0], np.float32), "z": np.array([-3, 4, 0], np.int8)},
     {"axis": 0}),
    ({"x": normal(3, 5) * 10, "s": np.abs(normal(3, 3)) + 0.1, "z": integers(0, 255, (3, 3), np.uint8)},
     {"axis": 1, "block_size": 2}),
    ({"x": normal(2, 3) * 1e5, "s": np.array(2.0, np.float32), "z": np.array(7, np.uint16)}, {}),
    ({"x": normal(2, 3) * 1e5, "s": np.array(2.0, np.float32)}, {"output_dtype": TensorProto.INT16}),
    ({"x": normal(6) * 1000}, {}),
])
def test_quantize_linear_saturates(feeds: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
    feeds = {"s": np.array(3.0, np.float32), **feeds}
    check("QuantizeLinear", [name for name in ("x", "s", "z") if name in feeds], feeds, opset=23, **attrs)


@pytest.mark.parametrize("feeds,attrs", [
    ({"x": integers(-128, 127, (3, 5), np.int8), "s": np.abs(normal(3, 3)),
      "z": integers(-5, 5, (3, 3), np.int8)}, {"axis": 1, "block_size": 2}),
    ({"x": integers(-1000, 1000, (4,), np.int32), "s": np.array(0.1, np.float32)}, {}),
    ({"x": integers(0, 60000, (2, 3), np.uint16), "s": np.array([0.1, 2.0, 3.0], np.float32),
      "z": np.array([1, 2, 30000], np.uint16)}, {"axis": 1}),
    ({"x": integers(0, 255, (2, 3), np.uint8), "s": np.array(0.5, np.float16), "z": np.array(9, np.uint8)}, {}),
])
def test_dequantize_linear(feeds: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
    check("DequantizeLinear", [name for name in ("x", "s", "z") if name in feeds], feeds, opset=23, **attrs)


@pytest.mark.parametrize("x", [np.zeros((2, 3), np.float32), normal(2, 3) + 5, normal(4, 5) * 3])
def test_dynamic_quantize_linear(x: np.ndarray) -> None:
    check("DynamicQuantizeLinear", ["x"], {"x": x}, opset=11, num_outputs=3)


def test_matmul_integer_per_row_and_column_zero_points() -> None:
    a, b = integers(0, 255, (2, 4, 3), np.uint8), integers(-128, 127, (3, 5), np.int8)
    a_zero, b_zero = integers(0, 255, (4,), np.uint8), integers(-128, 127, (5,), np.int8)
    feeds = {"a": a, "b": b, "az": a_zero, "bz": b_zero}
    model = make_model("MatMulInteger", ["a", "b", "az", "bz"], feeds, 10, 1, {})
    expected = (a.astype(np.int32) - a_zero.astype(np.int32)[:, None]) @ (b.astype(np.int32) - b_zero.astype(np.int32))
    assert_same(run(model, feeds, True), [expected])


@pytest.mark.parametrize("scale_dtype", [np.float32, np.float16])
def test_qlinear_matmul(scale_dtype: Any) -> None:
    feeds = {"a": integers(0, 255, (2, 3, 4), np.uint8), "as": np.array([0.02], scale_dtype),
             "az": np.array([7], np.uint8), "b": integers(0, 255, (4, 5), np.uint8),
             "bs": np.array([0.03], scale_dtype), "bz": np.array([200], np.uint8),
             "ys": np.array([0.05], scale_dtype), "yz": np.array([128], np.uint8)}
    check("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], feeds, opset=21)


# -- errors ----------------------------------------------------------------------------------------

def test_error_missing_kernel_shape() -> None:
    message = import_error(make_model("MaxPool", ["x"], {"x": normal(1, 1, 4, 4)}, 22, 1, {}))
    assert "node0" in message and "MaxPool" in message and "opset 22" in message and "kernel_shape" in message


def test_error_run_time_output_shape_without_declared_shape() -> None:
    feeds = {"v": normal(1, 1, 2, 2), "i": np.zeros((1, 1, 2, 2), np.int64), "shape": np.array([1, 1, 5, 5])}
    message = import_error(make_model("MaxUnpool", ["v", "i", "shape"], feeds, 22, 1, {"kernel_shape": [2, 2]}))
    assert "MaxUnpool" in message and "output_shape" in message and "compile time" in message


def test_error_wrong_pads_length() -> None:
    feeds = {"x": normal(1, 1, 5, 5), "w": normal(1, 1, 3, 3)}
    message = import_error(make_model("Conv", ["x", "w"], feeds, 22, 1, {"pads": [1, 1]}))
    assert "Conv" in message and "'pads' has 2 values, expected 4" in message


def test_error_channel_mismatch_names_the_node() -> None:
    feeds = {"x": normal(1, 3, 5, 5), "w": normal(2, 2, 3, 3)}
    message = import_error(make_model("Conv", ["x", "w"], feeds, 22, 1, {}))
    assert "node0" in message and "Conv" in message and "channels" in message


def test_error_quantize_to_a_float_type() -> None:
    model = make_model("QuantizeLinear", ["x", "s"], {"x": normal(3), "s": np.array(1.0, np.float32)}, 23, 1,
                       {"output_dtype": TensorProto.FLOAT})
    assert "quantizing to f32 is not supported" in import_error(model)


def test_error_groups_do_not_divide_channels() -> None:
    feeds = {"x": normal(1, 6, 2), "s": normal(6), "b": normal(6)}
    message = import_error(make_model("GroupNormalization", ["x", "s", "b"], feeds, 21, 1, {"num_groups": 4}))
    assert "GroupNormalization" in message and "not divisible by num_groups 4" in message
