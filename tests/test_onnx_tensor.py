"""ONNX converters for tensor, shape, indexing, resampling and data-dependent ops.

Each case builds a small ONNX model with ``onnx.helper``, imports it with
``from_onnx``, compiles it, and compares every output (shape, dtype, values)
with ``onnx.reference.ReferenceEvaluator`` on the same inputs. Shape-like
inputs (shapes, pads, starts, ...) are initializers, so they are compile-time
constants; run-time data (indices, grids, regions) are graph inputs. The error
cases check the one-line ``OnnxImportError`` naming node, op and opset.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import needlec
from needlec.frontend.onnx import OnnxImportError, from_onnx
from tests.onnx_helpers import assert_same, run_onnx

RNG = np.random.default_rng(0)
I64 = np.int64


def model_of(nodes: Sequence[onnx.NodeProto], feeds: dict[str, np.ndarray], consts: dict[str, np.ndarray],
             outputs: Sequence[str], opset: int) -> onnx.ModelProto:
    """A model running ``nodes``: ``feeds`` are graph inputs, ``consts`` initializers."""
    graph_inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for name, a in feeds.items()]
    initializers = [onnx.numpy_helper.from_array(np.asarray(a), name) for name, a in consts.items()]
    graph = helper.make_graph(list(nodes), "g", graph_inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outputs], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def compare(model: onnx.ModelProto, feeds: dict[str, np.ndarray], rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """needlec's outputs equal the ONNX reference's in shape, dtype and value."""
    expected = ReferenceEvaluator(model).run(None, feeds)
    assert_same(run_onnx(model, feeds), expected, rtol, atol)


def check(op_type: str, inputs: Sequence[str], feeds: dict[str, np.ndarray],
          consts: dict[str, np.ndarray] | None = None, opset: int = 18, outputs: int = 1, rtol: float = 1e-5,
          atol: float = 1e-6, **attrs: Any) -> None:
    """One-node model of ``op_type`` with ``outputs`` outputs ('' in ``inputs`` marks an absent optional input)
    against the reference."""
    names = [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op_type, list(inputs), names, name="node0", **attrs)
    compare(model_of([node], feeds, consts or {}, names, opset), feeds, rtol, atol)


def normal(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def ints(*values: int) -> np.ndarray:
    return np.asarray(values, I64)


# -- constants and shapes -------------------------------------------------------------

@pytest.mark.parametrize("attrs", [
    {"value": onnx.numpy_helper.from_array(np.arange(6, dtype=np.int32).reshape(2, 3))},
    {"value_float": 2.5}, {"value_floats": [1.0, -2.0]}, {"value_int": 7}, {"value_ints": [3, -4, 5]},
])
def test_constant(attrs: dict[str, Any]) -> None:
    check("Constant", [], {}, **attrs)


@pytest.mark.parametrize("values,indices", [
    (helper.make_tensor("v", TensorProto.FLOAT, [2], [5.0, 6.0]),
     helper.make_tensor("i", TensorProto.INT64, [2], [1, 7])),
    (helper.make_tensor("v", TensorProto.FLOAT, [2], [5.0, 6.0]),
     helper.make_tensor("i", TensorProto.INT64, [2, 2], [0, 1, 2, 1])),
])
def test_sparse_constant(values: onnx.TensorProto, indices: onnx.TensorProto) -> None:
    """Linear indices (1, 7) and coordinates ((0, 1), (2, 1)) place the values alike (the reference cannot run
    sparse constants)."""
    node = helper.make_node("Constant", [], ["y"], sparse_value=helper.make_sparse_tensor(values, indices, [3, 3]))
    got = needlec.compile(from_onnx(model_of([node], {}, {}, ["y"], 18)))()
    np.testing.assert_array_equal(got, np.asarray([[0, 5, 0], [0, 0, 0], [0, 6, 0]], np.float32))


@pytest.mark.parametrize("value", [None, np.asarray([3], np.int32), np.asarray([2 ** 60 + 1], I64),
                                   np.asarray([1.5], np.float64)])
def test_constant_of_shape(value: np.ndarray | None) -> None:
    attrs = {} if value is None else {"value": onnx.numpy_helper.from_array(value)}
    check("ConstantOfShape", ["s"], {}, {"s": ints(2, 3)}, **attrs)


@pytest.mark.parametrize("attrs", [{}, {"start": 1}, {"end": -1}, {"start": -2, "end": 10}, {"start": 3, "end": 1}])
def test_shape_and_size(attrs: dict[str, Any]) -> None:
    x = normal(2, 3, 4)
    check("Shape", ["x"], {"x": x}, opset=21, **attrs)
    check("Size", ["x"], {"x": x})


def test_bit_cast() -> None:
    x = np.asarray([1.0, -0.0, np.inf, np.nan, 1e-40], np.float32)
    check("BitCast", ["x"], {"x": x}, opset=26, to=TensorProto.INT32)
    check("BitCast", ["x"], {"x": np.asarray([-1, 5, -128], np.int8)}, opset=26, to=TensorProto.UINT8)


def test_eye_like() -> None:
    check("EyeLike", ["x"], {"x": normal(3, 5)}, k=1, dtype=TensorProto.INT32)
    check("EyeLike", ["x"], {"x": normal(4, 2)}, k=-1)


# -- reshapes --------------------------------------------------------------------------

@pytest.mark.parametrize("shape,allowzero,x_shape", [
    ((0, -1), 0, (2, 3, 4)), ((-1,), 0, (2, 3, 4)), ((4, 0, 2), 0, (2, 3, 4)), ((0, 3), 1, (0, 3)),
])
def test_reshape(shape: tuple[int, ...], allowzero: int, x_shape: tuple[int, ...]) -> None:
    check("Reshape", ["x", "s"], {"x": normal(*x_shape)}, {"s": ints(*shape)}, allowzero=allowzero)


def test_reshape_of_a_strided_view_copies_first() -> None:
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
             helper.make_node("Reshape", ["t", "s"], ["y"])]
    feeds = {"x": normal(3, 4)}
    compare(model_of(nodes, feeds, {"s": ints(2, 6)}, ["y"], 18), feeds)


@pytest.mark.parametrize("axis", [0, 1, 3, -1, -3])
def test_flatten(axis: int) -> None:
    check("Flatten", ["x"], {"x": normal(2, 3, 1, 4)}, axis=axis)


def test_squeeze_and_unsqueeze_across_opsets() -> None:
    x = normal(1, 3, 1, 2)
    check("Squeeze", ["x"], {"x": x}, opset=11, axes=[0, -2])
    check("Squeeze", ["x", "a"], {"x": x}, {"a": ints(2)}, opset=13)
    check("Squeeze", ["x"], {"x": x}, opset=13)
    check("Unsqueeze", ["x"], {"x": x}, opset=11, axes=[0, 5])
    check("Unsqueeze", ["x", "a"], {"x": x}, {"a": ints(-1, 1)}, opset=13)


@pytest.mark.parametrize("perm", [None, [0, 2, 1], [2, 0, 1]])
def test_transpose(perm: list[int] | None) -> None:
    attrs = {} if perm is None else {"perm": perm}
    check("Transpose", ["x"], {"x": normal(2, 3, 4)}, **attrs)


def test_concat_skips_empty_inputs() -> None:
    check("Concat", ["a", "b", "c"], {"a": normal(2, 3), "b": normal(2, 0), "c": normal(2, 1)}, axis=-1)


def test_depth_space_round_trips() -> None:
    x = normal(1, 8, 2, 3)
    for mode in ("DCR", "CRD"):
        check("DepthToSpace", ["x"], {"x": x}, blocksize=2, mode=mode)
    check("SpaceToDepth", ["x"], {"x": normal(2, 2, 4, 6)}, blocksize=2)


# -- splitting and slicing ------------------------------------------------------------

def test_split_forms() -> None:
    x = normal(7, 2)
    check("Split", ["x"], {"x": x}, opset=11, outputs=2, axis=0, split=[3, 4])
    check("Split", ["x", "s"], {"x": x}, {"s": ints(2, 0, 5)}, opset=13, outputs=3)
    check("Split", ["x"], {"x": x}, opset=18, outputs=3, num_outputs=3)
    check("Split", ["x"], {"x": normal(6, 2)}, opset=13, outputs=3)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ((1, 0), (3, 10), (0, 1), (1, 2)),
    ((-1,), (-2 ** 63,), (1,), (-1,)),            # negative step to the very start
    ((10,), (0,), (0,), (-2,)),                   # start clamped to dim - 1
    ((0, -3), (2 ** 63 - 1, -1), (-2, -1), None),  # clamped end, negative axes, default steps
    ((5,), (1,), (1,), (1,)),                     # empty
])
def test_slice(starts: tuple[int, ...], ends: tuple[int, ...], axes: tuple[int, ...],
               steps: tuple[int, ...] | None) -> None:
    consts = {"s": ints(*starts), "e": ints(*ends), "a": ints(*axes)}
    if steps is not None:
        consts["t"] = ints(*steps)
    check("Slice", ["x", "s", "e", "a"] + (["t"] if steps else []), {"x": normal(4, 5)}, consts, opset=13)


def test_slice_attributes_before_opset_10() -> None:
    check("Slice", ["x"], {"x": normal(4, 5)}, opset=9, starts=[1, -3], ends=[100, -1], axes=[0, 1])


# -- repetition, generators and masks ---------------------------------------------------

def test_expand_tile_range_trilu() -> None:
    check("Expand", ["x", "s"], {"x": normal(3, 1)}, {"s": ints(2, 1, 4)})
    check("Tile", ["x", "r"], {"x": normal(2, 3)}, {"r": ints(2, 3)})
    check("Range", ["a", "b", "c"], {}, {"a": np.asarray(10, np.int32), "b": np.asarray(1, np.int32),
                                         "c": np.asarray(-3, np.int32)})
    check("Range", ["a", "b", "c"], {}, {"a": np.float32(0.5), "b": np.float32(2.0), "c": np.float32(0.4)})
    x = normal(2, 4, 5)
    check("Trilu", ["x"], {"x": x}, opset=14)
    check("Trilu", ["x", "k"], {"x": x}, {"k": ints(-1)}, opset=14, upper=0)


# -- padding -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes(mode: str) -> None:
    check("Pad", ["x", "p"], {"x": normal(3, 4)}, {"p": ints(1, 2, 2, 5)}, opset=19, mode=mode)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_negative_pads_crop_first(mode: str) -> None:
    """The reference rejects negative pads; ONNX says they remove elements, before any padding."""
    x = normal(4, 5)
    node = helper.make_node("Pad", ["x", "p"], ["y"], mode=mode)
    got = needlec.compile(from_onnx(model_of([node], {"x": x}, {"p": ints(-1, 2, 1, -2)}, ["y"], 19)))(x)
    np.testing.assert_array_equal(got, np.pad(x[1:, :3], [(0, 1), (2, 0)], mode=mode))


def test_pad_forms() -> None:
    x = normal(2, 3, 4)
    check("Pad", ["x"], {"x": x}, opset=2, pads=[0, 1, 0, 0, 0, 2], value=1.5)
    check("Pad", ["x", "p", "v", "a"], {"x": x}, {"p": ints(1, 2, 0, 1), "v": np.float32(-3), "a": ints(-1, 0)},
          opset=18)
    check("Pad", ["x", "p", "v"], {"x": x, "v": np.float32(7)}, {"p": ints(1, 0, 0, 0, 2, 1)}, opset=18)
    check("Pad", ["x", "p", "v"], {"x": ints(3, -4)}, {"p": ints(2, 1), "v": np.asarray(2 ** 60 + 1, I64)}, opset=18)


def test_center_crop_pad() -> None:
    check("CenterCropPad", ["x", "s"], {"x": normal(5, 4, 3)}, {"s": ints(4, 7)}, axes=[0, 1])


# -- indexing -------------------------------------------------------------------------------

def test_gathers() -> None:
    data = normal(4, 5, 3)
    check("Gather", ["x", "i"], {"x": data, "i": ints(0, -1, 2).reshape(3, 1)}, axis=1)
    check("GatherElements", ["x", "i"], {"x": data, "i": RNG.integers(-3, 3, (4, 2, 3))}, axis=1)
    check("GatherND", ["x", "i"], {"x": data, "i": np.asarray([[[1, -1]], [[0, 2]], [[3, 0]], [[2, 4]]])},
          batch_dims=0)
    check("GatherND", ["x", "i"], {"x": data, "i": np.asarray([[2], [4], [0], [1]])}, batch_dims=1)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatters(reduction: str) -> None:
    data = normal(4, 3)
    indices = np.asarray([[1, 0, -1], [1, 2, 0]])
    check("ScatterElements", ["x", "i", "u"], {"x": data, "i": indices, "u": normal(2, 3)}, axis=1,
          reduction=reduction)
    check("ScatterND", ["x", "i", "u"], {"x": data, "i": np.asarray([[1], [3], [1]]), "u": normal(3, 3)},
          reduction=reduction)


def test_scatter_before_opset_11() -> None:
    """Scatter (deprecated, unknown to the reference) is ScatterElements without reduction."""
    feeds = {"x": normal(3, 3), "i": np.asarray([[1, 0, 2]]), "u": normal(1, 3)}
    node = helper.make_node("Scatter", ["x", "i", "u"], ["y"], axis=0)
    got = needlec.compile(from_onnx(model_of([node], feeds, {}, ["y"], 10)))(*feeds.values())
    expected = feeds["x"].copy()
    np.put_along_axis(expected, feeds["i"], feeds["u"], axis=0)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter(mode: str) -> None:
    past, update = normal(2, 3, 6, 2), normal(2, 3, 3, 2)
    feeds = {"p": past, "u": update, "w": ints(1, 4) if mode == "circular" else ints(3, 0)}
    check("TensorScatter", ["p", "u", "w"], feeds, opset=24, mode=mode)


def test_one_hot_and_reverse_sequence() -> None:
    check("OneHot", ["i", "d", "v"], {"i": np.asarray([[0, -1], [5, 2]], np.float32), "v": np.float32([2, 9])},
          {"d": np.asarray(4, I64)}, axis=1)
    check("ReverseSequence", ["x", "l"], {"x": normal(4, 3, 2), "l": ints(1, 4, 3)}, opset=10, time_axis=0,
          batch_axis=1)


def test_col2im() -> None:
    check("Col2Im", ["x", "i", "b"], {"x": normal(2, 12, 12)}, {"i": ints(5, 6), "b": ints(2, 3)},
          pads=[1, 0, 0, 1], strides=[1, 2], dilations=[2, 1])


# -- resampling -------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs,scales,sizes", [
    ({"mode": "linear"}, [1, 1, 1.7, 0.6], None),
    ({"mode": "cubic", "antialias": 1}, [1, 1, 0.5, 0.4], None),
    ({"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5, "coordinate_transformation_mode": "align_corners"},
     None, [1, 2, 7, 3]),
    ({"mode": "nearest", "axes": [3, 2], "keep_aspect_ratio_policy": "not_larger", "nearest_mode": "ceil"}, None,
     [9, 4]),
    ({"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric", "antialias": 1}, None, [1, 2, 3, 8]),
])
def test_resize(attrs: dict[str, Any], scales: list[float] | None, sizes: list[int] | None) -> None:
    consts = {"s": np.float32(scales)} if scales else {"z": ints(*sizes)}
    inputs = ["x", "", "s"] if scales else ["x", "", "", "z"]
    check("Resize", inputs, {"x": normal(1, 2, 5, 6)}, consts, opset=19, atol=1e-5, **attrs)


def test_resize_tf_crop_and_resize_and_integers() -> None:
    x = normal(1, 1, 4, 5)
    check("Resize", ["x", "r", "", "z"], {"x": x}, {"r": np.float32([0.2, 0.1, 0.9, 1.2]), "z": ints(3, 6)},
          opset=19, axes=[2, 3], mode="linear", coordinate_transformation_mode="tf_crop_and_resize",
          extrapolation_value=-5.0)
    pixels = RNG.integers(0, 256, (1, 1, 3, 4)).astype(np.uint8)
    check("Resize", ["x", "", "s"], {"x": pixels}, {"s": np.float32([1, 1, 2.5, 1.5])}, opset=19, mode="linear")
    labels = RNG.integers(-9, 9, (2, 3, 4)).astype(np.int32)
    check("Resize", ["x", "", "", "z"], {"x": labels}, {"z": ints(2, 5, 3)}, opset=19, mode="nearest")
    check("Resize", ["x", "", "", "z"], {"x": labels}, {"z": ints(0, 5)}, opset=19, mode="nearest", axes=[1, 2])


def test_upsample_nearest() -> None:
    check("Upsample", ["x", "s"], {"x": normal(1, 2, 2, 3)}, {"s": np.float32([1, 1, 2, 3])}, opset=9)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample(mode: str, padding: str, align_corners: int) -> None:
    grid = RNG.uniform(-1.6, 1.6, (2, 3, 4, 2)).astype(np.float32)
    check("GridSample", ["x", "g"], {"x": normal(2, 3, 4, 5), "g": grid}, opset=22, mode=mode,
          padding_mode=padding, align_corners=align_corners, atol=1e-5)


def test_grid_sample_volumetric() -> None:
    grid = RNG.uniform(-1.2, 1.2, (1, 2, 3, 2, 3)).astype(np.float32)
    check("GridSample", ["x", "g"], {"x": normal(1, 2, 3, 4, 2), "g": grid}, opset=22, mode="linear",
          padding_mode="reflection")


@pytest.mark.parametrize("align_corners", [0, 1])
def test_affine_grid(align_corners: int) -> None:
    check("AffineGrid", ["t", "s"], {"t": normal(2, 2, 3)}, {"s": ints(2, 3, 4, 5)}, opset=20,
          align_corners=align_corners)
    check("AffineGrid", ["t", "s"], {"t": normal(1, 3, 4)}, {"s": ints(1, 1, 2, 3, 4)}, opset=20,
          align_corners=align_corners)


ROIS = np.asarray([[0.5, 1.0, 6.0, 7.5], [2.0, 0.0, 3.0, 9.0], [-2.0, -1.0, 12.0, 4.0]], np.float32)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("transform", ["half_pixel", "output_half_pixel"])
def test_roi_align_with_run_time_regions(mode: str, transform: str) -> None:
    feeds = {"x": normal(2, 3, 10, 8), "r": ROIS, "b": ints(1, 0, 1)}
    check("RoiAlign", ["x", "r", "b"], feeds, opset=22, mode=mode, coordinate_transformation_mode=transform,
          output_height=3, output_width=2, sampling_ratio=2, spatial_scale=0.8, rtol=1e-4, atol=1e-5)


def test_roi_align_adaptive_sampling_needs_known_regions() -> None:
    check("RoiAlign", ["x", "r", "b"], {"x": normal(2, 3, 10, 8)}, {"r": ROIS, "b": ints(1, 0, 1)}, opset=22,
          output_height=2, output_width=3, sampling_ratio=0, rtol=1e-4, atol=1e-5)


# -- data-dependent output shapes (compile-time inputs) -------------------------------------------

def test_data_dependent_ops_with_constant_inputs() -> None:
    data = np.asarray([[1, 0, 3], [0, 0, 2], [1, 0, 3]], np.float32)
    check("NonZero", ["c"], {}, {"c": data})
    check("Unique", ["c"], {}, {"c": data.reshape(-1)}, opset=11, outputs=4, sorted=0)
    check("Unique", ["c"], {}, {"c": data}, opset=11, outputs=4, axis=0)
    check("Compress", ["x", "c"], {"x": normal(3, 4)}, {"c": np.asarray([True, False, True])}, opset=11, axis=0)
    check("Compress", ["x", "c"], {"x": normal(3, 4)}, {"c": np.asarray([False, True, True, False, True])}, opset=11)


@pytest.mark.parametrize("center_point_box", [0, 1])
def test_non_max_suppression(center_point_box: int) -> None:
    boxes = RNG.uniform(0, 10, (2, 8, 4)).astype(np.float32)
    consts = {"b": boxes, "s": RNG.uniform(0, 1, (2, 3, 8)).astype(np.float32), "m": ints(3),
              "i": np.float32([0.3]), "t": np.float32([0.2])}
    check("NonMaxSuppression", ["b", "s", "m", "i", "t"], {}, consts, opset=11, center_point_box=center_point_box)


# -- errors -----------------------------------------------------------------------------------------

def import_error(op_type: str, inputs: Sequence[str], feeds: dict[str, np.ndarray], consts: dict[str, np.ndarray],
                 opset: int = 18, **attrs: Any) -> str:
    node = helper.make_node(op_type, list(inputs), ["y"], name="node0", **attrs)
    with pytest.raises(OnnxImportError) as info:
        from_onnx(model_of([node], feeds, consts, ["y"], opset))
    message = str(info.value)
    assert "\n" not in message and f"'node0' ({op_type}, opset {opset})" in message, message
    return message


def test_run_time_shape_input_is_a_clear_error() -> None:
    message = import_error("Reshape", ["x", "s"], {"x": normal(2, 3), "s": ints(3, 2)}, {})
    assert "input 1 (shape) must be known at compile time" in message


def test_missing_required_attribute() -> None:
    message = import_error("DepthToSpace", ["x"], {"x": normal(1, 4, 2, 2)}, {})
    assert "required attribute 'blocksize' is missing" in message


def test_data_dependent_output_shape_needs_a_constant() -> None:
    message = import_error("NonZero", ["x"], {"x": normal(3)}, {}, opset=13)
    assert "output shape depends on its values" in message


@pytest.mark.parametrize("op_type,inputs,consts,expected", [
    ("Reshape", ["x", "s"], {"s": ints(4, -1, -1)}, "more than one -1"),
    ("Reshape", ["x", "s"], {"s": ints(5, -1)}, "cannot reshape"),
    ("Squeeze", ["x", "a"], {"a": ints(1)}, "its size is not 1"),
    ("Slice", ["x", "s", "e", "a", "t"], {"s": ints(0), "e": ints(1), "a": ints(0), "t": ints(0)}, "steps"),
    ("Pad", ["x", "p"], {"p": ints(1, 1)}, "pads has 2 values"),
    ("Tile", ["x", "r"], {"r": ints(2)}, "repeats"),
    ("BitCast", ["x"], {}, "the sizes differ"),
])
def test_bad_shape_inputs(op_type: str, inputs: list[str], consts: dict[str, np.ndarray], expected: str) -> None:
    attrs = {"to": TensorProto.INT64} if op_type == "BitCast" else {}
    opset = 26 if op_type == "BitCast" else 18
    assert expected in import_error(op_type, inputs, {"x": normal(2, 3)}, consts, opset, **attrs)
