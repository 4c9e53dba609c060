"""Finite-difference gradient checking, reusable by any test.

``check_gradients(graph, arrays)`` differentiates a graph's scalar output
with ``passes.autodiff.gradients``, compiles the extended graph with
``needlec.compile`` and compares every gradient with central differences of
the NumPy reference interpreter (float64, so ``eps`` ~1e-6 leaves errors near
1e-9). ``objective`` turns any float output into such a scalar, ``sum(out *
W)`` with fixed random weights ``W``, so every output element matters with a
different weight. ``check_second_order`` checks gradients of gradients
(Hessian-vector products against differences of the compiled gradient).
``float64_case`` converts a table-driven op case (``tests.opcases``) for
checking.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

import needlec
from needlec import DType, Graph
from needlec.compiler.interpreter import interpret
from needlec.compiler.ops.registry import NO_GRAD, get_op
from needlec.compiler.passes.gradients import gradients
from needlec.errors import ShapeError
from tests.opcases import OpCase, build_case

EPS = 1e-6
RTOL = 1e-5
ATOL = 1e-5


def is_differentiable(op: str) -> bool:
    """True when ``op`` has a real gradient rule (not ``NO_GRAD``)."""
    return get_op(op).grad not in (None, NO_GRAD)


def float64_case(case: OpCase) -> OpCase | None:
    """``case`` with every float input in f64, or None when nothing can be checked: no float input, an
    op that rejects f64, a float result that is not f64, or non-finite fixed data."""
    if not any(spec.dtype.is_float for spec in case.inputs):
        return None
    if any(spec.data is not None and spec.dtype.is_float and not np.all(np.isfinite(spec.data))
           for spec in case.inputs):
        return None
    inputs = tuple(dataclasses.replace(spec, dtype=DType.F64) if spec.dtype.is_float else spec
                   for spec in case.inputs)
    converted = dataclasses.replace(case, inputs=inputs)
    try:
        graph, arrays = build_case(converted)
    except ShapeError:
        return None
    if graph.outputs[0].dtype is not DType.F64 or not np.all(np.isfinite(interpret(graph, arrays)[0])):
        return None
    return converted


def objective(graph: Graph, seed: int = 0) -> Graph:
    """A copy of ``graph`` whose one output is ``sum(output0 * W)`` for fixed random weights ``W``."""
    result = graph.copy()
    out = result.outputs[0]
    weights = result.add_constant(np.random.default_rng(seed).uniform(-1.0, 1.0, out.shape), "w")
    weighted = result.add("mul", out, weights)
    result.set_outputs([result.add("reduce_sum", weighted, axes=list(range(len(out.shape))))])
    return result


def numeric_gradient(graph: Graph, arrays: Sequence[np.ndarray], index: int, eps: float = EPS) -> np.ndarray:
    """Central differences of ``graph``'s scalar output with respect to ``arrays[index]`` (reference interpreter)."""
    args = [np.array(a) for a in arrays]
    x = args[index].reshape(-1)
    grad = np.zeros(x.shape, np.float64)
    for i in range(x.size):
        saved = x[i]
        x[i] = saved + eps
        above = float(interpret(graph, args)[0])
        x[i] = saved - eps
        below = float(interpret(graph, args)[0])
        x[i] = saved
        grad[i] = (above - below) / (2 * eps)
    return grad.reshape(arrays[index].shape)


def compiled_gradients(graph: Graph, arrays: Sequence[np.ndarray], wrt: Sequence[int]) -> list[np.ndarray]:
    """[output, d output / d inputs[i] for i in wrt] from the compiled, autodiff-extended graph."""
    extended = graph.copy()
    (y,) = extended.outputs
    grads = gradients(extended, [y], [extended.inputs[i] for i in wrt])
    extended.set_outputs([y, *grads])
    results = needlec.compile(extended)(*arrays)
    return list(results) if isinstance(results, (list, tuple)) else [results]


def float_inputs(graph: Graph) -> list[int]:
    """Positions of the graph's float inputs."""
    return [i for i, v in enumerate(graph.inputs) if v.dtype.is_float]


def check_gradients(graph: Graph, arrays: Sequence[np.ndarray], wrt: Sequence[int] | None = None,
                    label: str = "", eps: float = EPS, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Assert that compiled autodiff gradients of ``graph``'s scalar output match central differences.

    ``wrt`` lists input positions (default: every float input).
    """
    label = label or graph.name
    wrt = float_inputs(graph) if wrt is None else list(wrt)
    value, *grads = compiled_gradients(graph, arrays, wrt)
    np.testing.assert_allclose(value, interpret(graph, arrays)[0], rtol=1e-10, atol=1e-10,
                               err_msg=f"{label}: objective")
    for index, got in zip(wrt, grads):
        assert got.shape == arrays[index].shape, f"{label}: gradient of input {index} has shape {got.shape}"
        want = numeric_gradient(graph, arrays, index, eps)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol,
                                   err_msg=f"{label}: gradient of input {index} (%{graph.inputs[index].name})")


def check_second_order(graph: Graph, arrays: Sequence[np.ndarray], wrt: Sequence[int] | None = None,
                       label: str = "", seed: int = 1, eps: float = 1e-5, rtol: float = RTOL,
                       atol: float = ATOL) -> None:
    """Assert that gradients of gradients are right: the Hessian-vector product ``d<grad, v>/dx`` built
    by differentiating the gradient graph again must match central differences of the compiled
    gradient along ``v`` (random, fixed by ``seed``)."""
    label = label or graph.name
    wrt = float_inputs(graph) if wrt is None else list(wrt)
    rng = np.random.default_rng(seed)
    directions = [rng.uniform(-1.0, 1.0, arrays[i].shape) for i in wrt]
    extended = graph.copy()
    xs = [extended.inputs[i] for i in wrt]
    grads = gradients(extended, extended.outputs, xs)
    dots = [extended.add("reduce_sum", extended.add("mul", g, extended.add_constant(v, "v")),
                         axes=list(range(len(g.shape)))) for g, v in zip(grads, directions)]
    inner = functools.reduce(lambda a, b: extended.add("add", a, b), dots)
    extended.set_outputs([*grads, *gradients(extended, [inner], xs)])
    compiled = needlec.compile(extended)

    def run(step: float) -> list[np.ndarray]:
        args = [np.array(a) for a in arrays]
        for i, v in zip(wrt, directions):
            args[i] = args[i] + step * v
        results = compiled(*args)
        return list(results) if isinstance(results, (list, tuple)) else [results]

    hessian_v = run(0.0)[len(wrt):]
    above, below = run(eps)[:len(wrt)], run(-eps)[:len(wrt)]
    for index, got, up, down in zip(wrt, hessian_v, above, below):
        np.testing.assert_allclose(got, (up - down) / (2 * eps), rtol=rtol, atol=atol,
                                   err_msg=f"{label}: Hessian-vector product for input {index}")


def check_case(case: OpCase, seed: int = 0) -> None:
    """Gradient check of one (float64) op case through ``objective``."""
    graph, arrays = build_case(case, seed)
    check_gradients(objective(graph, seed), arrays, label=case.id)


def check_case_second_order(case: OpCase, seed: int = 0) -> None:
    """Second-order check of one (float64) op case through ``objective``."""
    graph, arrays = build_case(case, seed)
    check_second_order(objective(graph, seed), arrays, label=case.id)
