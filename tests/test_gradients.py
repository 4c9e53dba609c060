"""Gradients of every differentiable op against finite differences, gradients of gradients, and the driver.

The table reuses the op tests' cases (``tests.opcases``) in float64, so each
rule is checked on the same broadcast, size-1, scalar, empty and strided
layouts as its forward op; to bound compile time it keeps, per op, the cases
that add a feature not yet covered (every case of conv2d and window_reduce).
Values where the derivative is undefined (ties, zeros of relu/abs, rounding
boundaries) get explicit tests of the PyTorch conventions instead.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ir.printer import print_graph
from needlec.compiler.ops.registry import all_ops
from needlec.compiler.passes.gradients import gradients
from needlec.errors import NeedlecError
from tests.gradcheck import (check_case, check_case_second_order, check_gradients, check_second_order,
                             compiled_gradients, float64_case, is_differentiable, objective)
from tests.opcases import OpCase, all_cases


def _float64_table() -> list[OpCase]:
    """Every op case of a differentiable op, converted to float64, without duplicates."""
    cases: dict[str, OpCase] = {}
    for case in all_cases():
        if is_differentiable(case.op):
            converted = float64_case(case)
            if converted is not None:
                cases.setdefault(converted.id, converted)
    return list(cases.values())


def _features(case: OpCase) -> set[str]:
    """What a case exercises: layouts, scalar / size-1 / empty / differing shapes, rank, arity, and which
    attributes it sets (string and bool attributes by value, negative integers separately)."""
    shapes = [spec.shape for spec in case.inputs]
    tags = {f"layout {spec.layout}" for spec in case.inputs}
    tags |= {f"rank {max(len(s) for s in shapes)}", f"{len(shapes)} inputs"}
    tags |= {tag for tag, hit in (("scalar", any(len(s) == 0 for s in shapes)), ("empty", any(0 in s for s in shapes)),
                                  ("size-1", any(1 in s for s in shapes)), ("shapes differ", len(set(shapes)) > 1))
             if hit}
    for key, value in case.attrs.items():
        if isinstance(value, (str, bool)):
            tags.add(f"{key}={value}")
            continue
        tags.add(key)
        if any(isinstance(v, int) and v < 0 for v in (value if isinstance(value, (list, tuple)) else [value])):
            tags.add(f"{key} negative")
    return tags


# every case of these: their geometry (strides x pads x dilations x groups x ceil mode) is the point
EXHAUSTIVE = {"conv2d", "window_reduce"}


def _covering(cases: list[OpCase]) -> list[OpCase]:
    """A deterministic subset keeping, in table order, each case that adds a feature its op has not
    covered yet (compiling is the cost: about 0.1 s per case)."""
    covered: dict[str, set[str]] = {}
    chosen = []
    for case in cases:
        seen = covered.setdefault(case.op, set())
        features = _features(case)
        if case.op in EXHAUSTIVE or not features <= seen:
            seen |= features
            chosen.append(case)
    return chosen


FLOAT64_CASES = _float64_table()
TABLE = _covering(FLOAT64_CASES)


def _second_order_table() -> list[OpCase]:
    """Per differentiable op, its largest case of at most 256 input elements."""
    best: dict[str, tuple[int, OpCase]] = {}
    for case in FLOAT64_CASES:
        size = sum(int(np.prod(spec.shape)) for spec in case.inputs if spec.dtype.is_float)
        if size <= 256 and size > best.get(case.op, (-1, case))[0]:
            best[case.op] = (size, case)
    return [case for _, case in best.values()]


SECOND_ORDER = _second_order_table()


@pytest.mark.parametrize("case", TABLE, ids=[c.id for c in TABLE])
def test_gradient_matches_finite_differences(case: OpCase) -> None:
    check_case(case)


@pytest.mark.parametrize("case", SECOND_ORDER, ids=[c.id for c in SECOND_ORDER])
def test_gradient_of_gradient_matches_finite_differences(case: OpCase) -> None:
    check_case_second_order(case)


def test_every_differentiable_op_is_checked() -> None:
    differentiable = {name for name in all_ops() if is_differentiable(name)}
    assert differentiable - {c.op for c in TABLE} == set()
    assert differentiable - {c.op for c in SECOND_ORDER} == set()


# -- explicit conventions at points where the derivative is not defined ----------------------------

def _sum_gradients(build: Callable[..., Value], *arrays: np.ndarray) -> list[np.ndarray]:
    """Compiled d sum(build(graph, *inputs)) / d(float inputs)."""
    graph = Graph("g")
    inputs = [graph.add_input(f"x{i}", TensorType(a.shape, DType.from_numpy(a.dtype))) for i, a in enumerate(arrays)]
    out = build(graph, *inputs)
    graph.set_outputs([graph.add("reduce_sum", out, axes=list(range(len(out.shape))))])
    wrt = [i for i, v in enumerate(inputs) if v.dtype.is_float]
    return compiled_gradients(graph, arrays, wrt)[1:]


def test_elementwise_max_and_min_split_ties_evenly() -> None:
    a, b = np.array([1.0, 2.0, 3.0, 2.0]), np.array([2.0, 2.0, 1.0, 5.0])
    da, db = _sum_gradients(lambda g, x, y: g.add("max", x, y), a, b)
    np.testing.assert_array_equal(da, [0.0, 0.5, 1.0, 0.0])
    np.testing.assert_array_equal(db, [1.0, 0.5, 0.0, 1.0])
    da, db = _sum_gradients(lambda g, x, y: g.add("min", x, y), a, b)
    np.testing.assert_array_equal(da, [1.0, 0.5, 0.0, 1.0])
    np.testing.assert_array_equal(db, [0.0, 0.5, 1.0, 0.0])


def test_max_and_min_reductions_split_ties_evenly() -> None:
    x = np.array([[1.0, 3.0, 3.0, 3.0], [2.0, 0.0, 2.0, -1.0]])
    (dmax,) = _sum_gradients(lambda g, v: g.add("reduce_max", v, axes=[1]), x)
    np.testing.assert_allclose(dmax, [[0, 1 / 3, 1 / 3, 1 / 3], [0.5, 0, 0.5, 0]], rtol=1e-15)
    (dmin,) = _sum_gradients(lambda g, v: g.add("reduce_min", v, axes=[0, 1], keepdims=True), x)
    np.testing.assert_array_equal(dmin, [[0, 0, 0, 0], [0, 0, 0, 1]])


def test_window_max_gives_a_tie_to_the_first_maximum() -> None:
    x = np.array([[1.0, 3.0, 3.0, 2.0]])  # windows [1, 3], [3, 3], [3, 2]: the first 3 wins twice
    (dx,) = _sum_gradients(lambda g, v: g.add("window_reduce", v, kind="max", kernel=[2]), x)
    np.testing.assert_array_equal(dx, [[0.0, 2.0, 1.0, 0.0]])


def test_window_max_sends_nothing_from_windows_of_padding_only() -> None:
    x = np.array([[4.0, -1.0, 2.0]])  # the middle window reads positions -1 and 3: both padding
    (dx,) = _sum_gradients(lambda g, v: g.add("window_reduce", v, kind="max", kernel=[2], dilations=[4],
                                               pads=[2, 2]), x)
    np.testing.assert_array_equal(dx, [[1.0, 0.0, 1.0]])


def test_scatter_max_splits_ties_between_data_and_updates() -> None:
    data, updates = np.array([1.0, 5.0]), np.array([1.0, 0.0, 5.0])
    indices = np.array([0, 0, 1])
    d_data, d_updates = _sum_gradients(lambda g, d, i, u: g.add("scatter", d, i, u, reduction="max"),
                                       data, indices, updates)
    np.testing.assert_array_equal(d_data, [0.5, 0.5])
    np.testing.assert_array_equal(d_updates, [0.5, 0.0, 0.5])


def test_scatter_gives_overwritten_values_no_gradient() -> None:
    data, updates = np.array([1.0, 2.0, 3.0]), np.array([7.0, 8.0, 9.0])
    indices = np.array([0, 0, 2])  # update 1 overwrites update 0; data 0 and 2 are overwritten
    d_data, d_updates = _sum_gradients(lambda g, d, i, u: g.add("scatter", d, i, u), data, indices, updates)
    np.testing.assert_array_equal(d_data, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(d_updates, [0.0, 1.0, 1.0])


def test_relu_and_abs_have_zero_gradient_at_zero() -> None:
    x = np.array([-1.5, 0.0, 2.0])
    (d_relu,) = _sum_gradients(lambda g, v: g.add("relu", v), x)
    (d_abs,) = _sum_gradients(lambda g, v: g.add("abs", v), x)
    np.testing.assert_array_equal(d_relu, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(d_abs, [-1.0, 0.0, 1.0])


def test_pow_masks_a_zero_base_like_pytorch() -> None:
    a, b = np.array([0.0, 0.0, 2.0, 0.0]), np.array([2.0, 0.0, 3.0, 0.5])
    da, db = _sum_gradients(lambda g, x, y: g.add("pow", x, y), a, b)
    np.testing.assert_allclose(da, [0.0, 0.0, 12.0, np.inf])
    np.testing.assert_allclose(db, [0.0, 0.0, 8.0 * np.log(2.0), 0.0])


def test_products_with_zero_factors() -> None:
    """reduce_prod and scatter mul are exact at zeros (one zero or several in a product)."""
    graph = Graph("prod")
    x = graph.add_input("x", TensorType((3, 4), DType.F64))
    graph.set_outputs([graph.add("reduce_prod", x, axes=[1])])
    rows = np.array([[0.0, 2.0, -1.5, 0.5], [0.0, 3.0, 0.0, 1.0], [1.5, -2.0, 0.5, 3.0]])
    check_gradients(objective(graph, seed=3), [rows])

    graph = Graph("scatter_mul")
    data = graph.add_input("data", TensorType((3,), DType.F64))
    updates = graph.add_input("updates", TensorType((5,), DType.F64))
    indices = graph.add_constant(np.array([0, 1, 1, 2, 0]), "i")
    graph.set_outputs([graph.add("scatter", data, indices, updates, reduction="mul")])
    check_gradients(objective(graph, seed=3), [np.array([2.0, 0.0, 1.5]), np.array([0.0, 0.0, 3.0, -1.0, 0.5])])


def test_topk_gives_a_tie_to_the_lower_index() -> None:
    x = np.array([[1.0, 3.0, 3.0, 2.0], [4.0, 4.0, 4.0, 0.0]])
    (dx,) = _sum_gradients(lambda g, v: g.add("topk", v, k=2), x)
    np.testing.assert_array_equal(dx, [[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    (dx,) = _sum_gradients(lambda g, v: g.add("topk", v, k=1, axis=0, largest=False), x)
    np.testing.assert_array_equal(dx, [[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumulative_product_is_exact_at_zeros(exclusive: bool, reverse: bool) -> None:
    """Rows with no zero, one zero and two zeros: the rule never divides by x."""
    graph = Graph("cumprod")
    x = graph.add_input("x", TensorType((3, 5), DType.F64))
    graph.set_outputs([graph.add("cumulative", x, kind="prod", axis=1, exclusive=exclusive, reverse=reverse)])
    rows = np.array([[0.5, -1.5, 2.0, 0.75, 1.25], [1.5, 0.0, -2.0, 0.5, 3.0], [0.0, 2.0, 0.0, -1.0, 0.5]])
    check_gradients(objective(graph, seed=3), [rows])
    check_second_order(objective(graph, seed=3), [rows])


# -- dtypes ----------------------------------------------------------------------------------------

def test_float_casts_cast_the_gradient_back() -> None:
    graph = Graph("casts")
    x = graph.add_input("x", TensorType((2, 3), DType.F64))
    narrow = graph.add("cast", x, dtype=DType.F32)
    graph.set_outputs([graph.add("cast", narrow, dtype=DType.F64)])
    weighted = objective(graph, seed=3)
    (w,) = [c.data for c in weighted.constants if c.data.shape == (2, 3)]
    _, dx = compiled_gradients(weighted, [np.ones((2, 3))], [0])
    assert dx.dtype == np.float64
    np.testing.assert_array_equal(dx, w.astype(np.float32).astype(np.float64))


def test_float32_graphs_get_float32_gradients() -> None:
    x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)
    (dx,) = _sum_gradients(lambda g, v: g.add("mul", g.add("tanh", v), v), x)
    assert dx.dtype == np.float32
    t = np.tanh(x.astype(np.float64))
    np.testing.assert_allclose(dx, t + x * (1 - t * t), rtol=1e-6)


def test_integer_paths_carry_no_gradient() -> None:
    """A value that passes through an integer cast or an index contributes nothing."""
    x = np.array([0.5, 1.7, -2.2])
    (dx,) = _sum_gradients(lambda g, v: g.add("add", v, g.add("cast", g.add("cast", v, dtype=DType.I32),
                                                                 dtype=DType.F64)), x)
    np.testing.assert_array_equal(dx, [1.0, 1.0, 1.0])
    data, indices = np.array([1.0, 2.0, 3.0]), np.array([2, 2, 0], np.int64)
    (d_data,) = _sum_gradients(lambda g, d, i: g.add("gather", d, i), data, indices)
    np.testing.assert_array_equal(d_data, [1.0, 0.0, 2.0])


def test_integer_outputs_and_inputs_cannot_be_differentiated() -> None:
    graph = Graph("ints")
    x = graph.add_input("x", TensorType((3,), DType.F32))
    i = graph.add_input("i", TensorType((3,), DType.I64))
    index = graph.add("argmax", x, axis=0)
    with pytest.raises(NeedlecError, match="i64.*only float values have gradients"):
        gradients(graph, [index], [x])
    total = graph.add("reduce_sum", x, axes=[0])
    with pytest.raises(NeedlecError, match=f"%{i.name} has dtype i64"):
        gradients(graph, [total], [i])


# -- the driver ------------------------------------------------------------------------------------

def test_unrelated_input_gets_zero_gradient() -> None:
    graph = Graph("unrelated")
    x = graph.add_input("x", TensorType((2, 2), DType.F64))
    z = graph.add_input("z", TensorType((3,), DType.F64))
    y = graph.add("reduce_sum", graph.add("exp", x), axes=[0, 1])
    dx, dz = gradients(graph, [y], [x, z])
    graph.set_outputs([dx, dz])
    xs = np.array([[0.0, 1.0], [-1.0, 0.5]])
    got_dx, got_dz = needlec.compile(graph)(xs, np.ones(3))
    np.testing.assert_allclose(got_dx, np.exp(xs), rtol=1e-15)
    np.testing.assert_array_equal(got_dz, np.zeros(3))


def test_uses_of_a_value_accumulate() -> None:
    """y = sum(x * x + x) uses x three times: dy/dx = 2x + 1."""
    x = np.array([[1.0, -2.0, 0.5]])
    (dx,) = _sum_gradients(lambda g, v: g.add("add", g.add("mul", v, v), v), x)
    np.testing.assert_array_equal(dx, 2 * x + 1)


def test_seeds_weight_the_outputs() -> None:
    graph = Graph("seeds")
    x = graph.add_input("x", TensorType((3,), DType.F64))
    a, b = graph.add("sin", x), graph.add("mul", x, x)
    seed_a = graph.add_constant(np.array([1.0, 2.0, 3.0]), "sa")
    seed_b = graph.add_constant(np.array([-1.0, 0.0, 0.5]), "sb")
    (dx,) = gradients(graph, [a, b], [x], seeds=[seed_a, seed_b])
    graph.set_outputs([dx])
    xs = np.array([0.1, 0.2, 0.3])
    want = seed_a.data * np.cos(xs) + seed_b.data * 2 * xs
    np.testing.assert_allclose(needlec.compile(graph)(xs), want, rtol=1e-14)


def test_gradient_nodes_name_their_forward_node() -> None:
    graph = Graph("origin")
    x = graph.add_input("x", TensorType((2, 3), DType.F32))
    w = graph.add_input("w", TensorType((3, 4), DType.F32))
    product = graph.add("matmul", x, w)
    loss = graph.add("reduce_sum", graph.add("tanh", product), axes=[0, 1])
    forward = {node.name: node for node in graph.nodes}
    count = len(graph.nodes)
    gradients(graph, [loss], [x, w])
    added = graph.nodes[count:]
    assert added and all(node.origin in forward for node in added), [(n.op, n.origin) for n in added]
    assert {node.origin for node in added} == set(forward)
    matmul_grads = [node for node in added if node.op == "matmul"]
    assert len(matmul_grads) == 2 and all(node.origin == product.name for node in matmul_grads)
    assert f'origin="{product.name}"' in print_graph(graph)


# -- Hessian-vector products -----------------------------------------------------------------------

def test_hessian_vector_product_of_a_tanh_layer() -> None:
    """f(x, W) = sum(tanh(x @ W) ** 2)."""
    graph = Graph("tanh_layer")
    x = graph.add_input("x", TensorType((3, 4), DType.F64))
    w = graph.add_input("w", TensorType((4, 5), DType.F64))
    hidden = graph.add("tanh", graph.add("matmul", x, w))
    square = graph.add("pow", hidden, graph.add_constant(np.array(2.0), "two"))
    graph.set_outputs([graph.add("reduce_sum", square, axes=[0, 1])])
    rng = np.random.default_rng(5)
    check_second_order(graph, [rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (4, 5))])


def test_hessian_vector_product_of_a_small_conv_net() -> None:
    """conv (stride 2, padding, 2 groups) -> tanh -> max pool -> dense -> log-sum-exp."""
    graph = Graph("conv_net")
    x = graph.add_input("x", TensorType((2, 2, 7, 7), DType.F64))
    kernel = graph.add_input("k", TensorType((4, 1, 3, 3), DType.F64))
    dense = graph.add_input("d", TensorType((16, 3), DType.F64))
    conv = graph.add("conv2d", x, kernel, strides=[2, 2], pads=[1, 1, 1, 1], groups=2)
    pooled = graph.add("window_reduce", graph.add("tanh", conv), kind="max", kernel=[2, 2], strides=[2, 2])
    logits = graph.add("matmul", graph.add("reshape", pooled, shape=[2, 16]), dense)
    lse = graph.add("log", graph.add("reduce_sum", graph.add("exp", logits), axes=[1]))
    graph.set_outputs([graph.add("reduce_sum", lse, axes=[0])])
    rng = np.random.default_rng(6)
    arrays = [rng.uniform(-1, 1, (2, 2, 7, 7)), rng.uniform(-1, 1, (4, 1, 3, 3)), rng.uniform(-1, 1, (16, 3))]
    check_gradients(graph, arrays)
    check_second_order(graph, arrays)
