"""Composite ops (``compiler/ops/composites.py``): NumPy references on edge cases, and one graph whatever builds it.

Each composite is built into a bare ``Graph`` (the ``GraphBuilder`` every
frontend reduces to) and evaluated with the NumPy reference interpreter; the
same composite reached through the traced frontend (``needlec.ops``), a
``GradContext``, a ``Rewriter`` and the ONNX converters must give the same
nodes.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Callable

import numpy as np
import pytest

import needlec
from needlec import ops
from needlec.compiler.interpreter import interpret
from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Graph, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.ops import composites as C
from needlec.compiler.ops.grad import GradContext
from needlec.compiler.passes.rewrite import Rewriter

Build = Callable[[Any, Value], Value]


def build(fn: Build, *arrays: np.ndarray, builder: Callable[[Graph], Any] = lambda g: g) -> Graph:
    """A graph whose inputs are shaped like ``arrays`` and whose output is ``fn(builder, *inputs)``."""
    graph = Graph("composite")
    inputs = [graph.add_input(f"x{i}", TensorType(a.shape, DType.from_numpy(a.dtype))) for i, a in enumerate(arrays)]
    graph.set_outputs([fn(builder(graph), *inputs)])
    return graph


def evaluate(fn: Build, *arrays: np.ndarray) -> np.ndarray:
    """``fn`` built into a Graph and run by the NumPy reference interpreter."""
    return interpret(build(fn, *arrays), list(arrays))[0]


def structure(graph: Graph) -> list[tuple[str, tuple, tuple]]:
    """Each node's op, its inputs as (kind, dtype, shape) or constant data, and its attributes: the graph up to
    value names."""
    def describe(v: Value) -> tuple:
        if v.is_constant:
            return ("const", v.dtype, v.data.tobytes())
        return ("value", v.dtype, v.shape)

    return [(n.op, tuple(describe(v) for v in n.inputs), tuple(sorted((k, repr(a)) for k, a in n.attrs.items())))
            for n in graph.nodes]


# -- NumPy references (float64, then rounded to the input dtype) ---------------------------------

def np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    wide = x.astype(np.float64)
    e = np.exp(wide - wide.max(axis, keepdims=True))
    return (e / e.sum(axis, keepdims=True)).astype(x.dtype)


def np_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    wide = x.astype(np.float64)
    shifted = wide - wide.max(axis, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis, keepdims=True))).astype(x.dtype)


def np_softplus(x: np.ndarray) -> np.ndarray:
    wide = x.astype(np.float64)
    return (np.maximum(wide, 0) + np.log1p(np.exp(-np.abs(wide)))).astype(x.dtype)


def np_gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    wide = x.astype(np.float64)
    if approximate == "tanh":
        return (0.5 * wide * (1 + np.tanh(math.sqrt(2 / math.pi) * (wide + 0.044715 * wide ** 3)))).astype(x.dtype)
    return (0.5 * wide * (1 + np.vectorize(math.erf)(wide / math.sqrt(2)))).astype(x.dtype)


def np_elu(x: np.ndarray, alpha: float) -> np.ndarray:
    wide = x.astype(np.float64)
    return np.where(wide > 0, wide, alpha * np.expm1(np.minimum(wide, 0))).astype(x.dtype)


EXTREMES = np.array([[-1e30, -100.0, -20.0, -1e-30, 0.0, 1e-30, 20.0, 100.0, 1e30]], np.float32)
NORMAL = np.random.default_rng(0).normal(0, 3, (4, 9)).astype(np.float32)


# -- softmax family --------------------------------------------------------------------------------

@pytest.mark.parametrize("x", [NORMAL, EXTREMES, NORMAL.astype(np.float16)], ids=["normal", "extremes", "f16"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_family_matches_numpy(x: np.ndarray, axis: int) -> None:
    tol = {"rtol": 2e-3, "atol": 2e-3} if x.dtype == np.float16 else {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(evaluate(lambda b, v: C.softmax(b, v, axis), x), np_softmax(x, axis), **tol)
    np.testing.assert_allclose(evaluate(lambda b, v: C.log_softmax(b, v, axis), x), np_log_softmax(x, axis), **tol)


def test_a_row_of_only_minus_inf() -> None:
    """NaN for softmax and log_softmax (PyTorch, ONNX Softmax); zeros with ``zero_masked_rows`` (ONNX Attention)."""
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 1.0]], np.float32)
    plain = evaluate(lambda b, v: C.softmax(b, v, -1), x)
    assert np.isnan(plain[0]).all()
    np.testing.assert_allclose(plain[1], np_softmax(x[1:], -1)[0], rtol=1e-6)
    masked = evaluate(lambda b, v: C.softmax(b, v, -1, zero_masked_rows=True), x)
    np.testing.assert_array_equal(masked[0], np.zeros(3, np.float32))
    np.testing.assert_allclose(masked[1], plain[1], rtol=0)
    assert np.isnan(evaluate(lambda b, v: C.log_softmax(b, v, -1), x)[0]).all()


def test_compiled_masked_softmax_agrees_with_the_interpreter() -> None:
    x = np.array([[-np.inf, -np.inf], [3.0, -np.inf], [1e30, -1e30]], np.float32)
    graph = build(lambda b, v: C.softmax(b, v, -1, zero_masked_rows=True), x)
    np.testing.assert_array_equal(needlec.compile(graph)(x), interpret(graph, [x])[0])


# -- activations -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_softplus_is_stable_at_both_ends(dtype: type) -> None:
    x = np.array([-1e4, -100.0, -30.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 30.0, 100.0, 1e4], dtype)
    got = evaluate(C.softplus, x)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_softplus(x), rtol=2e-3 if dtype == np.float16 else 1e-6, atol=0)


def test_softplus_keeps_tiny_results() -> None:
    """log1p(exp(x)) for x << 0 is exp(x) itself, not the 0 that log(1 + exp(x)) rounds to."""
    x = np.array([-50.0, -80.0], np.float32)
    np.testing.assert_allclose(evaluate(C.softplus, x), np.exp(x.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_gelu(approximate: str, dtype: type) -> None:
    x = np.array([-1e4, -10.0, -3.0, -0.5, 0.0, 0.5, 3.0, 10.0, 1e4], dtype)
    tol = {"rtol": 2e-3, "atol": 1e-3} if dtype == np.float16 else {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(evaluate(lambda b, v: C.gelu(b, v, approximate), x), np_gelu(x, approximate), **tol)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_elu_never_overflows_the_discarded_branch(alpha: float) -> None:
    x = np.array([-1e4, -5.0, -1e-3, 0.0, 1e-3, 5.0, 1e4, 3e38], np.float32)
    got = evaluate(lambda b, v: C.elu(b, v, alpha), x)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_elu(x, alpha), rtol=1e-6, atol=1e-7)


# -- normalisation -----------------------------------------------------------------------------------

def test_layer_norm_returns_mean_and_inverse_std() -> None:
    x = np.random.default_rng(1).normal(5, 2, (3, 4, 5)).astype(np.float32)
    graph = Graph("ln")
    v = graph.add_input("x", TensorType(x.shape, DType.F32))
    graph.set_outputs(C.layer_norm(graph, v, [1, 2], 1e-5))
    y, mean, inverse = interpret(graph, [x])
    wide = x.astype(np.float64)
    want_mean = wide.mean((1, 2), keepdims=True)
    want_inverse = 1 / np.sqrt(wide.var((1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-6)
    np.testing.assert_allclose(inverse, want_inverse, rtol=1e-5)
    np.testing.assert_allclose(y, (wide - want_mean) * want_inverse, rtol=1e-4, atol=1e-5)


def test_layer_norm_of_f16_with_an_f32_stash() -> None:
    x = np.random.default_rng(2).normal(0, 100, (2, 16)).astype(np.float16)
    graph = build(lambda b, v: C.layer_norm(b, v, [1], 1e-5, stash=DType.F32)[0], x)
    assert graph.outputs[0].dtype is DType.F16
    wide = x.astype(np.float64)
    want = (wide - wide.mean(1, keepdims=True)) / np.sqrt(wide.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(interpret(graph, [x])[0], want.astype(np.float16), rtol=2e-3, atol=2e-3)


def test_batch_norm_inference_is_the_folded_form() -> None:
    """x * k + (bias - mean * k), k = scale / sqrt(var + eps): no overflow in x - mean for huge inputs."""
    x = np.array([[[3e38, -3e38]], [[1.0, 2.0]]], np.float32)  # (N=2, C=1, L=2)
    stats = [np.array([[-3e38]], np.float32), np.array([[4.0]], np.float32),  # mean, var as (C, 1)
             np.array([[0.5]], np.float32), np.array([[1.0]], np.float32)]    # scale, bias
    got = evaluate(lambda b, v, m, var, s, bias: C.batch_norm_inference(b, v, m, var, 0.0, s, bias), x, *stats)
    mean, var, scale, bias = stats
    k = scale / np.sqrt(var)
    with np.errstate(over="ignore"):
        assert np.isinf(x - mean).any()  # the centred form would overflow
    np.testing.assert_array_equal(got, x * k + (bias - mean * k))


def test_batch_norm_training_statistics() -> None:
    x = np.random.default_rng(3).normal(2, 3, (4, 3, 5)).astype(np.float32)
    graph = Graph("bn")
    v = graph.add_input("x", TensorType(x.shape, DType.F32))
    graph.set_outputs(C.batch_norm_training(graph, v, 1e-5))
    y, mean, var = interpret(graph, [x])
    wide = x.astype(np.float64)
    np.testing.assert_allclose(mean, wide.mean((0, 2), keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(var, wide.var((0, 2), keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(y, (wide - wide.mean((0, 2), keepdims=True)) / np.sqrt(wide.var((0, 2), keepdims=True)
                                                                                   + 1e-5), rtol=1e-4, atol=1e-5)


# -- transposed convolution ----------------------------------------------------------------------------

def np_conv_transpose_1d(x: np.ndarray, w: np.ndarray, stride: int, pad: int, dilation: int, extra: int,
                         groups: int) -> np.ndarray:
    """The definition: every input element scatters its kernel into the output, then the pads are cut."""
    n, c, length = x.shape
    _, per_group_out, k = w.shape
    full = (length - 1) * stride + (k - 1) * dilation + 1 + extra
    out = np.zeros((n, per_group_out * groups, full))
    in_per_group = c // groups
    for ci in range(c):
        g = ci // in_per_group
        for o in range(per_group_out):
            for i in range(length):
                for t in range(k):
                    out[:, g * per_group_out + o, i * stride + t * dilation] += x[:, ci, i] * w[ci, o, t]
    return out[:, :, pad:full - pad]


@pytest.mark.parametrize("stride,pad,dilation,extra,groups", [(1, 0, 1, 0, 1), (2, 1, 1, 1, 1), (3, 0, 2, 0, 2)])
def test_conv_transpose_matches_its_definition(stride: int, pad: int, dilation: int, extra: int,
                                               groups: int) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3)).astype(np.float32)
    got = evaluate(lambda b, v, k: C.conv_transpose(b, v, k, [stride], [pad, pad], [dilation], [extra], groups),
                   x, w)
    np.testing.assert_allclose(got, np_conv_transpose_1d(x, w, stride, pad, dilation, extra, groups),
                               rtol=1e-5, atol=1e-5)


# -- one graph, whatever builds it ---------------------------------------------------------------------

TRACED: list[tuple[str, Build, Callable[[Any], Any]]] = [
    ("softmax", lambda b, v: C.softmax(b, v, -1), lambda t: ops.softmax(t, -1)),
    ("log_softmax", lambda b, v: C.log_softmax(b, v, 0), lambda t: ops.log_softmax(t, 0)),
    ("gelu", lambda b, v: C.gelu(b, v), ops.gelu),
    ("gelu_tanh", lambda b, v: C.gelu(b, v, "tanh"), lambda t: ops.gelu(t, "tanh")),
    ("elu", lambda b, v: C.elu(b, v, 0.5), lambda t: ops.elu(t, 0.5)),
    ("softplus", C.softplus, ops.softplus),
    ("layer_norm", lambda b, v: C.layer_norm(b, v, [1], 1e-5)[0], lambda t: ops.layer_norm(t, 9)),
]


@pytest.mark.parametrize("name,direct,traced", TRACED, ids=[c[0] for c in TRACED])
def test_the_traced_frontend_builds_the_same_graph(name: str, direct: Build, traced: Callable[[Any], Any]) -> None:
    assert structure(needlec.trace(traced, NORMAL)) == structure(build(direct, NORMAL))


@pytest.mark.parametrize("name,direct", [(c[0], c[1]) for c in TRACED], ids=[c[0] for c in TRACED])
def test_grad_context_and_rewriter_build_the_same_graph(name: str, direct: Build) -> None:
    want = structure(build(direct, NORMAL))
    assert structure(build(direct, NORMAL, builder=lambda g: GradContext(g, None))) == want

    def at_a_placeholder(graph: Graph) -> Rewriter:
        """A Rewriter inserts before its node: position it at a node that is removed afterwards."""
        placeholder = graph.add_node("copy", [graph.inputs[0]])
        return Rewriter(graph, placeholder)

    graph = build(direct, NORMAL, builder=at_a_placeholder)
    graph.remove_nodes([n for n in graph.nodes if n.op == "copy" and n.outputs[0] not in graph.outputs])
    assert structure(graph) == want


ONNX_CASES: list[tuple[str, dict[str, Any], int, Build]] = [
    ("Softmax", {"axis": -1}, 13, lambda b, v: C.softmax(b, v, -1)),
    ("LogSoftmax", {"axis": 0}, 13, lambda b, v: C.log_softmax(b, v, 0)),
    ("Gelu", {"approximate": "tanh"}, 20, lambda b, v: C.gelu(b, v, "tanh")),
    ("Elu", {"alpha": 0.5}, 13, lambda b, v: C.elu(b, v, 0.5)),
    ("Softplus", {}, 13, C.softplus),
]


@pytest.mark.parametrize("op_type,attrs,opset,direct", ONNX_CASES, ids=[c[0] for c in ONNX_CASES])
def test_the_onnx_converter_builds_the_same_graph(op_type: str, attrs: dict[str, Any], opset: int,
                                                  direct: Build) -> None:
    onnx = pytest.importorskip("onnx")
    from needlec.frontend.onnx.importer import from_onnx

    node = onnx.helper.make_node(op_type, ["x"], ["y"], **attrs)
    shape = list(EXTREMES.shape)
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)]),
        opset_imports=[onnx.helper.make_opsetid("", opset)])
    imported = from_onnx(model)
    assert structure(imported) == structure(build(direct, EXTREMES))
    np.testing.assert_array_equal(interpret(imported, [EXTREMES])[0], evaluate(direct, EXTREMES))
