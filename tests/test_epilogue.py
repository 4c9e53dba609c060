"""Epilogues: a matmul or conv2d whose value only an elementwise chain reads stores the chain's result directly
(``lower_to_loops.epilogue_roots`` / ``builder.FusedOutput``), under the GEMM schedule and the plain nests alike."""
from __future__ import annotations

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.compiler.interpreter import interpret
from needlec.compiler.ir.graph import Value

RNG = np.random.default_rng(3)


def _const(g: Graph, shape: tuple[int, ...], name: str) -> Value:
    return g.add_constant(RNG.standard_normal(shape).astype(np.float32), name)


def _relu(g: Graph, x: Value) -> Value:
    return g.add_node("max", [x, g.add_constant(np.zeros((), np.float32), "zero")]).outputs[0]


def _conv_block(channels: int, size: int) -> Graph:
    """conv -> + bias -> + residual -> relu: one kernel."""
    g = Graph("block")
    x = g.add_input("x", TensorType((1, 8, size, size), DType.F32))
    r = g.add_input("r", TensorType((1, channels, size, size), DType.F32))
    (y,) = g.add_node("conv2d", [x, _const(g, (channels, 8, 3, 3), "w")], {"pads": [1, 1, 1, 1]}).outputs
    (y,) = g.add_node("add", [y, _const(g, (channels, 1, 1), "b")]).outputs
    (y,) = g.add_node("add", [y, r]).outputs
    g.set_outputs([_relu(g, y)])
    return g


def _dense(rows: int, depth: int, cols: int) -> Graph:
    """matmul -> + bias -> tanh."""
    g = Graph("dense")
    a = g.add_input("a", TensorType((rows, depth), DType.F32))
    (y,) = g.add_node("matmul", [a, _const(g, (depth, cols), "w")]).outputs
    (y,) = g.add_node("add", [y, _const(g, (cols,), "b")]).outputs
    g.set_outputs(g.add_node("tanh", [y]).outputs)
    return g


def _check(graph: Graph) -> needlec.api.Compiled:
    arrays = [RNG.standard_normal(v.shape).astype(np.float32) for v in graph.inputs]
    compiled = needlec.compile(graph, progress=False, check_numerics=True)
    want = interpret(graph, arrays)
    got = compiled(*arrays)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want, strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)
    return compiled


@pytest.mark.parametrize("channels,size", [(16, 9), (3, 5), (7, 1)], ids=["gemm", "thin", "one-pixel"])
def test_conv_bias_residual_relu_is_one_kernel(channels: int, size: int) -> None:
    compiled = _check(_conv_block(channels, size))
    (kernel,) = compiled.program.kernels
    assert [s.op for s in kernel.sources] == ["conv2d", "add", "add", "max"]


@pytest.mark.parametrize("rows,depth,cols", [(37, 64, 300), (2, 5, 3), (6, 600, 17)],
                         ids=["gemm", "streaming-size", "chunked-depth"])
def test_dense_bias_tanh_is_one_kernel(rows: int, depth: int, cols: int) -> None:
    compiled = _check(_dense(rows, depth, cols))
    (kernel,) = compiled.program.kernels
    assert [s.op for s in kernel.sources] == ["matmul", "add", "tanh"]


def test_a_product_read_twice_keeps_its_buffer() -> None:
    g = Graph("twice")
    a = g.add_input("a", TensorType((8, 16), DType.F32))
    (y,) = g.add_node("matmul", [a, _const(g, (16, 16), "w")]).outputs
    (s,) = g.add_node("tanh", [y]).outputs
    (t,) = g.add_node("exp", [y]).outputs
    g.set_outputs([s, t])
    compiled = _check(g)
    assert any(k.sources[-1].op == "matmul" for k in compiled.program.kernels)


def test_a_broadcast_of_the_product_is_no_epilogue() -> None:
    g = Graph("wide")
    a = g.add_input("a", TensorType((8, 16), DType.F32))
    (y,) = g.add_node("matmul", [a, _const(g, (16, 1), "w")]).outputs
    (z,) = g.add_node("add", [y, _const(g, (8, 5), "c")]).outputs  # (8, 1) + (8, 5): y is broadcast
    g.set_outputs([z])
    compiled = _check(g)
    assert [k.sources[-1].op for k in compiled.program.kernels] == ["matmul", "add"]
