"""Names a user gave survive compilation: a graph output that is a view keeps its name (the copy that
materialises it takes it), ONNX node names are the provenance of the primitives their converters create
(graph dumps, loop-IR kernel names), and a bare array is one example input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import needlec
from needlec.cli import main
from needlec.compiler.ir.parser import parse_graph
from needlec.compiler.ir.printer import print_graph
from needlec.driver import to_graph
from needlec.frontend import nn


def relu_transpose() -> onnx.ModelProto:
    """Relu -> Transpose; the graph output ``logits`` is the transpose (a view)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [3, 2])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="/0/Relu"),
             helper.make_node("Transpose", ["r"], ["logits"], perm=[1, 0], name="/1/Transpose")]
    graph = helper.make_graph(nodes, "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_view_output_keeps_its_name() -> None:
    compiled = needlec.compile(relu_transpose())
    assert compiled.signature.outputs[0].name == "logits"
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    np.testing.assert_array_equal(compiled(x), np.maximum(x, 0).T)


def test_python_function_returning_a_transpose_keeps_its_output_name() -> None:
    compiled = needlec.compile(lambda t: t.T, [np.ones((2, 3), np.float32)])
    traced = to_graph(lambda t: t.T, [np.ones((2, 3), np.float32)])
    assert compiled.signature.outputs[0].name == traced.outputs[0].name == "out"
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(compiled(x), x.T)


def test_several_view_outputs_keep_their_names() -> None:
    compiled = needlec.compile(lambda t: (t.T, t[:1]), [np.ones((2, 3), np.float32)])
    assert [o.name for o in compiled.signature.outputs] == ["out0", "out1"]


def test_one_view_returned_twice_gives_two_distinct_outputs() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    graph = to_graph(lambda t: t.T, [x])
    graph.set_outputs([graph.outputs[0], graph.outputs[0]])
    compiled = needlec.compile(graph)
    names = [o.name for o in compiled.signature.outputs]
    assert names[0] == "out" and len(set(names)) == 2
    first, second = compiled(x)
    np.testing.assert_array_equal(first, x.T)
    np.testing.assert_array_equal(second, x.T)


def test_graph_dump_shows_the_output_name_on_the_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(relu_transpose(), str(path))
    assert main(["ir", str(path), "--stage", "graph", "-q"]) == 0
    out = capsys.readouterr().out
    assert "%logits: f32[3, 2] = copy(" in out and "return %logits" in out


def test_onnx_node_names_are_the_provenance_of_graph_nodes_and_kernels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = to_graph(relu_transpose())
    assert [(n.op, n.origin) for n in graph.nodes] == [("relu", "/0/Relu"), ("permute", "/1/Transpose")]
    text = print_graph(graph)
    assert 'origin="/0/Relu"' in text
    assert [n.origin for n in parse_graph(text).nodes] == ["/0/Relu", "/1/Transpose"]
    path = tmp_path / "m.onnx"
    onnx.save(relu_transpose(), str(path))
    assert main(["ir", str(path), "--stage", "loops", "-q"]) == 0
    out = capsys.readouterr().out
    assert "kernel k0_relu__0_Relu(" in out
    assert "kernel k1_copy__1_Transpose(" in out  # the output's copy comes from the Transpose's view


def test_a_bare_array_is_one_example_input() -> None:
    layer = nn.Linear(3, 2)
    x = np.ones((4, 3), np.float32)
    compiled = needlec.compile(layer, x)
    assert [i.shape for i in compiled.signature.inputs] == [(4, 3)]
    np.testing.assert_allclose(compiled(x), needlec.compile(layer, [x])(x), rtol=1e-6)
