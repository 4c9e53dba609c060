"""ONNX model validation at load: structural checks, onnx's checker, the size budget, internal errors.

Every refusal is a one-line ``OnnxImportError`` (or ``SizeBudgetError``) that
says what is wrong; the good twins show the checks are not blanket refusals.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import needlec
from needlec import cli
from needlec.errors import InternalError
from needlec.frontend.onnx import OnnxImportError, from_onnx
from needlec.frontend.onnx.budget import SizeBudgetError
from needlec.frontend.onnx.context import CONVERTERS
from needlec.frontend.onnx.importer import Importer
from tests.onnx_helpers import import_error
from tests.test_onnx_bad_models import BIAS, add_bias, external_bias, make_model, save


def one_input_model(node: onnx.NodeProto, x_shape: list, y_shape: list | None,
                    elem: int = TensorProto.FLOAT, y_elem: int | None = None, opset: int = 17) -> onnx.ModelProto:
    """A graph x -> node -> y with the given declared shapes (``None``: y has no declared shape)."""
    x = helper.make_tensor_value_info("x", elem, x_shape)
    y = helper.make_tensor_value_info("y", y_elem or elem, y_shape)
    return helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", opset)])


def relu(shape: list) -> onnx.ModelProto:
    return one_input_model(helper.make_node("Relu", ["x"], ["y"], name="r"), shape, shape)


# -- never silently wrong -----------------------------------------------------------------------------

def test_a_model_without_a_default_opset_import_is_refused() -> None:
    model = relu([2])
    del model.opset_import[:]
    assert "imports no opset of the default domain ('' or 'ai.onnx')" in import_error(model)


@pytest.mark.parametrize("opset", [0, onnx.defs.onnx_opset_version() + 1, 2 ** 63 - 1])
def test_an_opset_this_onnx_does_not_know_is_refused(opset: int) -> None:
    model = relu([2])
    model.opset_import[0].version = opset
    assert f"imports opset {opset} of the default domain; this installation knows opsets 1 to" in import_error(model)


def test_an_axis_past_the_int32_range_is_refused_before_onnx_sees_it() -> None:
    """onnx's shape inference truncates the axis to 32 bits and crashes the process on it."""
    node = helper.make_node("LayerNormalization", ["x"], ["y"], name="ln", axis=2 ** 31)
    assert "attribute 'axis' is 2147483648, out of range for any tensor's rank" in import_error(
        one_input_model(node, [2, 3], [2, 3]))


def test_an_external_data_location_with_a_nul_byte_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OnnxImportError) as error:
        from_onnx(str(external_bias(tmp_path, "w\0.bin")))
    assert "external data location 'w\\x00.bin' contains a NUL byte" in str(error.value)


@pytest.mark.parametrize("dims, message", [
    ([2, -3], "graph input 'x': dimension 1 is -3; dimensions must be >= 0"),
    ([2, 2 ** 62], "graph input 'x': a tensor of shape [2, 4611686018427387904] would need 9223372036854775808 "
                   "elements"),
])
def test_negative_or_overflowing_input_dims_are_refused(dims: list, message: str) -> None:
    assert message in import_error(relu(dims))


def test_negative_initializer_dims_are_refused() -> None:
    bias = onnx.TensorProto(name="b", data_type=TensorProto.FLOAT, dims=[2, -3])
    assert "graph initializer 'b': dimension 1 is -3; dimensions must be >= 0" in import_error(add_bias(bias))


def test_initializer_dims_that_disagree_with_the_data_are_refused() -> None:
    bias = numpy_helper.from_array(np.zeros(12, np.float32), "b")
    bias.dims[:] = [2, 3]
    assert "initializer 'b' cannot be read (corrupted data?): cannot reshape array of size 12" in \
        import_error(add_bias(bias))


@pytest.mark.parametrize("nodes, initializers, message", [
    ([helper.make_node("Relu", ["x"], ["y"], name="first"), helper.make_node("Neg", ["x"], ["y"], name="second")],
     [], "value 'y' is defined twice, by node 'first' (Relu) and by node 'second' (Neg)"),
    ([helper.make_node("Relu", ["x"], ["b"], name="r"), helper.make_node("Add", ["x", "b"], ["y"], name="a")],
     [numpy_helper.from_array(BIAS, "b")], "value 'b' is defined twice, by an initializer and by node 'r' (Relu)"),
    ([helper.make_node("Relu", ["x"], ["x"], name="r"), helper.make_node("Neg", ["x"], ["y"], name="n")],
     [], "value 'x' is defined twice, by a graph input and by node 'r' (Relu)"),
])
def test_duplicate_definitions_are_refused(nodes: list, initializers: list, message: str) -> None:
    assert message in import_error(make_model(nodes, initializers))


def test_an_initializer_may_default_a_graph_input() -> None:
    model = add_bias()
    model.graph.input.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3]))
    from_onnx(model)


def test_declared_output_types_are_compared_with_the_computed_ones() -> None:
    """Importer.run checks what onnx's inference may not see (here the model skips load_model's validation)."""
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    with pytest.raises(OnnxImportError, match=r"graph output 'y': the model declares shape \[2, 4\], needlec "
                                              r"computes \[2, 3\]"):
        Importer(one_input_model(node, [2, 3], [2, 4])).run()
    with pytest.raises(OnnxImportError, match="graph output 'y': the model declares element type INT64, needlec "
                                              "computes f32"):
        Importer(one_input_model(node, [2, 3], [2, 3], y_elem=TensorProto.INT64)).run()
    Importer(one_input_model(node, [2, 3], ["n", 3])).run()  # a symbolic dimension matches anything


def test_declared_output_shapes_that_disagree_with_inference_are_refused() -> None:
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    message = import_error(one_input_model(node, [2, 3], [2, 4]))
    assert message.startswith("invalid model (onnx checker): ") and "differ in dimension 1: (3) vs (4)" in message


# -- validated at load --------------------------------------------------------------------------------

def test_wrong_attribute_types_are_refused_by_the_checker() -> None:
    node = helper.make_node("Softmax", ["x"], ["y"], name="s", axis=1.5)
    message = import_error(one_input_model(node, [2, 3], [2, 3]))
    assert "'s" in message and "axis'" in message and "FLOAT" in message  # the converter's or the checker's


def test_unsorted_graphs_and_untyped_outputs_are_accepted_as_onnx_runtime_does() -> None:
    nodes = [helper.make_node("Neg", ["h"], ["y"], name="second"), helper.make_node("Relu", ["x"], ["h"], name="first")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.asarray([[-1, 2, -3], [4, -5, 6]], np.float32)
    np.testing.assert_array_equal(needlec.compile(model)(x), -np.maximum(x, 0))


# -- external data --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    ({"offset": "-1"}, "tensor 'b': external data offset '-1' is not a byte count (expected an integer >= 0)"),
    ({"offset": "abc"}, "tensor 'b': external data offset 'abc' is not a byte count"),
    ({"length": "-5"}, "tensor 'b': external data length '-5' is not a byte count"),
    ({"length": str(2 ** 40)}, "tensor 'b': external data length is 1099511627776 bytes, its shape [2, 3] needs "
                               "24 bytes"),
    ({"offset": str(2 ** 62)}, "tensor 'b': external data file 'weights.bin' is truncated (expected 24 bytes, "
                               "found 0)"),
    ({"location": ""}, "tensor 'b' is stored externally but names no location"),
])
def test_bad_external_data_fields_are_refused(tmp_path: Path, fields: dict, message: str) -> None:
    BIAS.tofile(tmp_path / "weights.bin")
    path = external_bias(tmp_path, "weights.bin")
    model = onnx.load(path, load_external_data=False)
    entries = model.graph.initializer[0].external_data
    for key, value in fields.items():
        for entry in entries:
            if entry.key == key:
                entry.value = value
        if key not in [e.key for e in entries]:
            entries.add(key=key, value=value)
    save(model, path)
    with pytest.raises(OnnxImportError) as info:
        from_onnx(str(path))
    assert message in str(info.value) and "\n" not in str(info.value)


# -- the size budget --------------------------------------------------------------------------------------

def test_the_default_budget_takes_2_to_the_31_elements_per_tensor() -> None:
    from_onnx(relu([2 ** 31]))  # imported only: nothing is allocated
    message = import_error(relu([2 ** 31 + 1]))
    assert "over the size budget of 2147483648 elements; raise it with --size-budget / size_budget=" in message


def test_size_budget_can_be_lowered_and_raised() -> None:
    with pytest.raises(SizeBudgetError, match=r"a tensor of shape \[2, 3\] would need 6 elements \(24 bytes\), "
                                              r"over the size budget of 5 elements"):
        from_onnx(relu([2, 3]), size_budget=5)
    from_onnx(relu([2, 3]), size_budget=6)
    from_onnx(relu([2 ** 31 + 1]), size_budget=2 ** 32)
    with pytest.raises(OnnxImportError, match="size_budget must be a positive number of elements, found 0"):
        from_onnx(relu([2]), size_budget=0)


def test_size_budget_through_compile_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = save(relu([2, 3]), tmp_path / "relu.onnx")
    with pytest.raises(SizeBudgetError):
        needlec.compile(str(path), size_budget=4)
    assert cli.main(["compile", str(path), "-o", str(tmp_path / "relu.so"), "-q", "--size-budget", "4"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "over the size budget of 4 elements" in err
    assert cli.main(["ir", str(path), "--stage", "input", "-q", "--size-budget", "6"]) == 0


def test_a_window_far_beyond_its_input_is_refused() -> None:
    node = helper.make_node("LRN", ["x"], ["y"], name="lrn", size=2 ** 31)
    message = import_error(one_input_model(node, [5, 5, 5, 5], [5, 5, 5, 5]))
    assert "node 'lrn' (LRN, opset 17): a window of 2147483648 elements over 625 outputs would need " in message
    assert "raise it with --size-budget" in message


def test_unrolled_scan_steps_are_budgeted() -> None:
    body = helper.make_graph([helper.make_node("Add", ["s", "v"], ["s2"])], "body",
                             [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2]),
                              helper.make_tensor_value_info("v", TensorProto.FLOAT, [2])],
                             [helper.make_tensor_value_info("s2", TensorProto.FLOAT, [2])])
    node = helper.make_node("Scan", ["init", "x"], ["y"], name="scan", num_scan_inputs=1, body=body)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("init", TensorProto.FLOAT, [2]),
                                            helper.make_tensor_value_info("x", TensorProto.FLOAT, [100, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(SizeBudgetError, match=r"node 'scan' \(Scan, opset 17\): unrolling the loop would need 100 "
                                              r"unrolled steps in all, over the size budget of 50 steps"):
        from_onnx(model, size_budget=50 * 2048)
    from_onnx(model)


def test_constant_folding_is_budgeted_before_it_allocates() -> None:
    shape = numpy_helper.from_array(np.asarray([64, 64], np.int64), "shape")
    node = helper.make_node("ConstantOfShape", ["shape"], ["c"], name="fill")
    add = helper.make_node("Add", ["x", "c"], ["y"], name="add")
    graph = helper.make_graph([node, add], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(OnnxImportError, match="would need 4096 elements"):
        Importer(model, size_budget=4000).run()


# -- internal errors ----------------------------------------------------------------------------------------

def test_a_converter_bug_is_an_internal_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    def broken(ctx):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    monkeypatch.setitem(CONVERTERS, "Relu", broken)
    with pytest.raises(InternalError, match=r"^internal error in the converter of Relu at node 'r' \(opset 17\), "
                                            r"please report: KeyError: 'boom'$"):
        from_onnx(relu([2]))
    path = save(relu([2]), tmp_path / "relu.onnx")
    assert cli.main(["compile", str(path), "-o", str(tmp_path / "relu.so"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("needlec: internal error in the converter of Relu") and err.count("\n") == 1
