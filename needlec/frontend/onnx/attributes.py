"""Validation of an ONNX node's attributes before its converter runs.

Two layers, both data: the op's ONNX schema (``onnx.defs.get_schema``) says
which attributes exist, which are required and what type each has; the
``VALUE_RULES`` table below adds the allowed values the schema does not carry
(axes within the input's rank, positive sizes, 0/1 flags, mode strings). One
checker, ``check_attributes``, applies both, so converters can trust that an
attribute has its schema type and, where a rule exists, a valid value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, SupportsInt, cast
from collections.abc import Callable

import numpy as np
import onnx
from onnx import AttributeProto
from onnx.defs import OpSchema

from needlec.compiler.ir.graph import Value

Check = Callable[[Any, "int | None"], "str | None"]  # (value, rank of input 0 or None) -> what was expected, or None


# -- value checks: each returns what it expected when the value is wrong, else None --

def _ints(value: Any) -> list[int]:
    return list(value) if isinstance(value, list) else [value]


def flag(value: Any, rank: int | None) -> str | None:
    """0 or 1 (a boolean stored as an int)."""
    return None if value in (0, 1) else "0 or 1"


def positive(value: Any, rank: int | None) -> str | None:
    """An int, or every int of a list, at least 1."""
    return None if all(v >= 1 for v in _ints(value)) else "positive value(s)"


def non_negative(value: Any, rank: int | None) -> str | None:
    """An int, or every int of a list, at least 0."""
    return None if all(v >= 0 for v in _ints(value)) else "non-negative value(s)"


def one_of(*allowed: Any) -> Check:
    """The value (or each value of a list) is one of ``allowed``."""
    def check(value: Any, rank: int | None) -> str | None:
        values = value if isinstance(value, list) else [value]
        return None if all(v in allowed for v in values) else "one of " + ", ".join(map(str, allowed))
    return check


def axis(extra: int = 0, inclusive: bool = False) -> Check:
    """Axis value(s) in [-(rank + extra), rank + extra) of input 0 (``inclusive``: up to rank + extra)."""
    def check(value: Any, rank: int | None) -> str | None:
        if rank is None:
            return None
        low, high = -(rank + extra), rank + extra + (1 if inclusive else 0)
        return None if all(low <= v < high for v in _ints(value)) else f"axis value(s) in [{low}, {high - 1}]"
    return check


def permutation(value: Any, rank: int | None) -> str | None:
    """A permutation of the axes of input 0."""
    return None if rank is None or sorted(value) == list(range(rank)) else f"a permutation of 0..{rank - 1}"


def data_type(value: Any, rank: int | None) -> str | None:
    """An ONNX TensorProto element type code (Cast-1's type names are left to the converter)."""
    if isinstance(value, str):
        return None
    known = set(onnx.TensorProto.DataType.values()) - {onnx.TensorProto.UNDEFINED}
    return None if value in known else "a TensorProto data type code"


@dataclass(frozen=True)
class ValueRule:
    """``attribute`` of the ops ``ops`` (empty: of every op that has it) must pass ``check``."""

    attribute: str
    check: Check
    ops: tuple[str, ...] = ()


CONV_POOL = ("Conv", "ConvInteger", "ConvTranspose", "QLinearConv", "DeformConv", "MaxPool", "AveragePool", "LpPool",
             "MaxUnpool", "Col2Im")
STANDARD_AXIS = ("ArgMax", "ArgMin", "Compress", "Concat", "Gather", "GatherElements", "Hardmax", "LayerNormalization",
                 "LogSoftmax", "LpNormalization", "RMSNormalization", "Scatter", "ScatterElements", "Softmax", "Split",
                 "SplitToSequence", "TopK", "Unique")
AXES_OF_INPUT = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
                 "ReduceProd", "ReduceSum", "ReduceSumSquare", "Squeeze", "Slice", "MeanVarianceNormalization",
                 "CenterCropPad", "Resize")

VALUE_RULES: tuple[ValueRule, ...] = (
    # booleans stored as ints: ONNX Runtime treats only 1 as true, the ONNX reference any nonzero value
    *(ValueRule(name, flag) for name in (
        "keepdims", "noop_with_empty_axes", "select_last_index", "transA", "transB", "ceil_mode", "count_include_pad",
        "storage_order", "upper", "exclusive", "reverse", "largest", "sorted", "center_point_box", "align_corners",
        "layout", "input_forget", "linear_before_reset", "onesided", "inverse", "is_causal", "training_mode",
        "detect_negative", "detect_positive", "new_axis", "allowzero", "fmod", "saturate", "exclude_outside")),
    # sizes and counts: a zero or negative one has no meaning (and divides by zero)
    *(ValueRule(name, positive) for name in (
        "kernel_shape", "strides", "dilations", "blocksize", "group", "hidden_size", "size", "num_groups",
        "q_num_heads", "kv_num_heads", "output_height", "output_width", "num_scan_inputs")),
    # paddings and counts that may be zero
    ValueRule("pads", non_negative, CONV_POOL),  # Pad's pads may be negative (cropping)
    ValueRule("output_padding", non_negative),
    ValueRule("sampling_ratio", non_negative),
    ValueRule("batch_dims", non_negative),
    # axes: within the rank of input 0 (OneHot's and Unsqueeze's count the new axis, Flatten's may equal the rank)
    ValueRule("axis", axis(), STANDARD_AXIS),
    ValueRule("axis", axis(inclusive=True), ("Flatten",)),
    ValueRule("axis", axis(extra=1), ("OneHot",)),
    ValueRule("axes", axis(), AXES_OF_INPUT),
    ValueRule("batch_axis", one_of(0, 1), ("ReverseSequence",)),
    ValueRule("time_axis", one_of(0, 1), ("ReverseSequence",)),
    ValueRule("perm", permutation, ("Transpose",)),
    # element types
    ValueRule("to", data_type, ("Cast", "BitCast")),
    ValueRule("dtype", data_type),
    ValueRule("stash_type", data_type),
    # mode strings: the sets the ONNX operator documents (GridSample's before and from opset 20)
    ValueRule("auto_pad", one_of("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")),
    ValueRule("mode", one_of("DCR", "CRD"), ("DepthToSpace",)),
    ValueRule("mode", one_of("constant", "reflect", "edge", "wrap"), ("Pad",)),
    ValueRule("mode", one_of("nearest", "linear", "cubic"), ("Resize",)),
    ValueRule("mode", one_of("nearest", "linear", "bilinear"), ("Upsample",)),
    ValueRule("mode", one_of("bilinear", "nearest", "bicubic", "linear", "cubic"), ("GridSample",)),
    ValueRule("mode", one_of("avg", "max"), ("RoiAlign",)),
    ValueRule("padding_mode", one_of("zeros", "border", "reflection"), ("GridSample",)),
    ValueRule("coordinate_transformation_mode", one_of("half_pixel", "output_half_pixel"), ("RoiAlign",)),
    ValueRule("coordinate_transformation_mode", one_of(
        "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
        "tf_crop_and_resize", "tf_half_pixel_for_nn"), ("Resize",)),
    ValueRule("round_mode", one_of("up", "down", "nearest"), ("Cast", "CastLike")),
    ValueRule("nearest_mode", one_of("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"), ("Resize",)),
    ValueRule("keep_aspect_ratio_policy", one_of("stretch", "not_larger", "not_smaller"), ("Resize",)),
    ValueRule("direction", one_of("forward", "reverse", "bidirectional"), ("RNN", "GRU", "LSTM")),
    ValueRule("direction", one_of("LEFT", "RIGHT"), ("BitShift",)),
    ValueRule("reduction", one_of("none", "add", "mul", "max", "min"), ("ScatterElements", "ScatterND")),
    ValueRule("reduction", one_of("none", "sum", "mean"), ("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")),
    ValueRule("approximate", one_of("none", "tanh"), ("Gelu",)),
)

TYPE_NAMES = {t: AttributeProto.AttributeType.Name(t) for t in AttributeProto.AttributeType.values()}


def _schema(op_type: str, opset: int, domain: str) -> OpSchema | None:
    """The schema of ``op_type`` in force at ``opset`` (an opset past onnx's newest reads as the newest)."""
    try:
        return onnx.defs.get_schema(op_type, min(opset, 2 ** 31 - 1), domain)  # onnx takes a 32-bit version
    except onnx.defs.SchemaError:
        return None


def _first_version(op_type: str, domain: str) -> int | None:
    """The opset in which ``op_type`` first exists, None when ONNX does not define it."""
    versions = [s.since_version for s in onnx.defs.get_all_schemas_with_history()
                if s.name == op_type and s.domain == domain]
    return min(versions) if versions else None


def _array(tensor: onnx.TensorProto) -> np.ndarray:
    """``tensor``'s data; ValueError for an unknown element type (onnx's reader would raise KeyError)."""
    if tensor.data_type not in onnx.TensorProto.DataType.values():
        raise ValueError(f"element type {tensor.data_type} is not an ONNX type")
    return onnx.numpy_helper.to_array(tensor)


def _value(attribute: AttributeProto) -> Any:
    """The attribute's value with strings decoded; ValueError or TypeError for data that cannot be read."""
    if attribute.type == AttributeProto.TENSOR:
        return _array(attribute.t)
    if attribute.type == AttributeProto.SPARSE_TENSOR:
        _array(attribute.sparse_tensor.values)
        return _array(attribute.sparse_tensor.indices)
    if attribute.type == AttributeProto.TENSORS:
        return [_array(t) for t in attribute.tensors]
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if attribute.type == AttributeProto.STRINGS:
        return [v.decode("utf-8") for v in value]
    return value


def _shown(value: Any) -> str:
    text = str(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_attributes(node: onnx.NodeProto, opset: int, rank: int | None) -> list[str]:
    """Problems with ``node``'s attributes at ``opset`` (``rank``: input 0's rank when it is a tensor), one line
    each; empty when they are fine or the op has no ONNX schema (contributed domains)."""
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    schema = _schema(node.op_type, opset, domain)
    if schema is None:
        if domain:
            return []
        since = _first_version(node.op_type, domain)
        first = f"; it first exists in opset {since}" if since is not None else ""
        return [f"op {node.op_type} is not defined in ONNX opset {opset}{first}"]
    problems = []
    seen: set[str] = set()
    for attribute in node.attribute:
        name = attribute.name
        if name in seen:
            problems.append(f"attribute {name!r} is given twice")
            continue
        seen.add(name)
        spec = schema.attributes.get(name)
        if spec is None:
            known = ", ".join(sorted(schema.attributes)) or "none"
            problems.append(f"attribute {name!r} is unknown (expected one of: {known})")
            continue
        expected = _type_number(spec)
        if attribute.type != expected:
            problems.append(f"attribute {name!r} must be {TYPE_NAMES[expected]}, found "
                            f"{TYPE_NAMES.get(attribute.type, str(attribute.type))}")
            continue
        try:
            value = _value(attribute)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            problems.append(f"attribute {name!r} ({TYPE_NAMES[expected]}) cannot be read: {str(exc).splitlines()[0]}")
            continue
        for rule in VALUE_RULES:
            if rule.attribute == name and (not rule.ops or node.op_type in rule.ops):
                wanted = rule.check(value, rank)
                if wanted is not None:
                    problems.append(f"attribute {name!r} is {_shown(value)}, expected {wanted}")
    for name, spec in schema.attributes.items():
        if spec.required and name not in seen:
            problems.append(f"required attribute {name!r} is missing (expected {TYPE_NAMES[_type_number(spec)]})")
    return problems


def _type_number(spec: OpSchema.Attribute) -> int:
    """``spec``'s type as an ``AttributeProto`` type number (a pybind11 enum: ``int()`` works, the stub lacks
    ``__int__``)."""
    return int(cast(SupportsInt, spec.type))


def attribute_error(node: onnx.NodeProto, opset: int, first_input: Any) -> str | None:
    """One line describing what is wrong with ``node``'s attributes (``first_input``: the binding of its input 0,
    for axis rules), or None when they are valid."""
    rank = first_input.type.rank if isinstance(first_input, Value) else None
    problems = check_attributes(node, opset, rank)
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more attribute problem(s))" if len(problems) > 1 else ""
    return problems[0] + more
