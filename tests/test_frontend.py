"""The tracing frontend: Tensor operators, dtype promotion, indexing, the op API, nn.Module, trace errors.

Numerics go through ``needlec.compile`` (traced, compiled to native code)
and are compared with NumPy.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Callable

import numpy as np
import pytest

import needlec
from needlec import DType, nn, ops
from needlec.errors import NeedlecError, ShapeError, TraceError

RNG = np.random.default_rng(0)


def rand(*shape: int, low: float = -2.0, high: float = 2.0, dtype: Any = np.float32) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(dtype)


def run(fn: Callable[..., Any], *arrays: np.ndarray) -> Any:
    """``fn`` traced, compiled and run on ``arrays``."""
    return needlec.compile(fn, arrays)(*arrays)


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    want = np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got, want)


def ops_of(graph: needlec.Graph) -> list[str]:
    return [node.op for node in graph.nodes]


# -- NumPy references for the nn ops -------------------------------------------------
def np_conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int = 1, padding: int = 0,
              dilation: int = 1, groups: int = 1) -> np.ndarray:
    """Grouped 2-D cross-correlation (PyTorch's conv2d), accumulated in float64."""
    n, _, h, width = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (width + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dilation:i * dilation + stride * (oh - 1) + 1:stride,
                           j * dilation:j * dilation + stride * (ow - 1) + 1:stride]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out.astype(x.dtype)


def np_pool2d(x: np.ndarray, kernel: int, stride: int, padding: int, kind: str,
              count_include_pad: bool = True) -> np.ndarray:
    """PyTorch's max_pool2d / avg_pool2d (no ceil_mode) on NCHW ``x``."""
    fill = -np.inf if kind == "max" else 0.0
    widths = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    xp = np.pad(x.astype(np.float64), widths, constant_values=fill)
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]
    if kind == "max":
        return windows.max(axis=(-2, -1)).astype(x.dtype)
    if count_include_pad:
        counts = kernel * kernel
    else:
        ones = np.pad(np.ones(x.shape[2:]), widths[2:])
        counts = np.lib.stride_tricks.sliding_window_view(ones, (kernel, kernel))[::stride, ::stride].sum(axis=(-2, -1))
    return (windows.sum(axis=(-2, -1)) / counts).astype(x.dtype)


# -- operator overloads ------------------------------------------------------------------
def test_arithmetic_operators_match_numpy() -> None:
    a, b = rand(3, 4), rand(4, low=0.5, high=2.0)
    got = run(lambda a, b: (a + b, a - b, a * b, a / b, -a, abs(a), b ** 2, 2 ** a, a @ b, 1 - a, 3 / b,
                            a // b, a % b), a, b)
    want = (a + b, a - b, a * b, a / b, -a, np.abs(a), b ** 2, np.float32(2) ** a, a @ b, 1 - a, 3 / b,
            a // b, a % b)
    for g, w in zip(got, want):
        assert_close(g, w)


def test_comparison_and_boolean_operators_match_numpy() -> None:
    a, b = rand(5, 3), rand(3)
    got = run(lambda a, b: (a < b, a <= 0.5, a > b, a >= b, a == a, a != b,
                            (a > 0) & (b > 0), (a > 0) | (b > 0), (a > 0) ^ (b > 0), ~(a > 0)), a, b)
    want = (a < b, a <= 0.5, a > b, a >= b, a == a, a != b,
            (a > 0) & (b > 0), (a > 0) | (b > 0), (a > 0) ^ (b > 0), ~(a > 0))
    for g, w in zip(got, want):
        assert_close(g, w)


def test_numpy_arrays_on_either_side_become_constants() -> None:
    a = rand(2, 3)
    k = rand(2, 3)
    got = run(lambda a: (k + a, a * k, k @ a.T), a)
    for g, w in zip(got, (k + a, a * k, k @ a.T)):
        assert_close(g, w)


def test_integer_floor_division_and_modulo_follow_python() -> None:
    a = np.array([7, -7, 7, -7, 0, 5], np.int32)
    b = np.array([2, 2, -2, -2, 3, 5], np.int32)
    got = run(lambda a, b: (a // b, a % b, a / b), a, b)
    assert_close(got[0], a // b)
    assert_close(got[1], a % b)
    assert_close(got[2], (a / b).astype(np.float32))


def test_boolean_operators_reject_numeric_tensors() -> None:
    with pytest.raises(TraceError, match="logical_and: needs bool tensors, found f32"):
        needlec.trace(lambda a: a & a, rand(2))


# -- dtype promotion -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype, scalar, result", [
    (np.float32, 2, DType.F32), (np.float32, 2.5, DType.F32), (np.float16, 2.5, DType.F16),
    (np.int32, 3, DType.I32), (np.int32, 2.5, DType.F32), (np.uint8, 3, DType.U8),
    (np.bool_, 1, DType.I64), (np.bool_, True, DType.BOOL), (np.bool_, 0.5, DType.F32),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_python_scalars_are_weakly_typed(dtype: Any, scalar: Any, result: DType) -> None:
    x = np.ones(3, dtype)
    op = (lambda t: t | scalar) if isinstance(scalar, bool) else (lambda t: t * scalar)
    graph = needlec.trace(op, x)
    assert graph.outputs[0].dtype is result
    want = x | scalar if isinstance(scalar, bool) else x * np.asarray(scalar, result.np)
    assert_close(needlec.compile(graph)(x), np.asarray(want).astype(result.np))


@pytest.mark.parametrize("a, b", [(np.int32, np.int64), (np.int32, np.float32), (np.float16, np.float32),
                                  (np.uint8, np.int8), (np.bool_, np.float32), (np.float32, np.float64)],
                         ids=lambda d: np.dtype(d).name)
def test_two_tensors_promote_like_numpy_with_cast_nodes(a: Any, b: Any) -> None:
    x, y = np.arange(1, 5).astype(a), np.arange(2, 6).astype(b)
    graph = needlec.trace(lambda x, y: x + y if x.dtype is not DType.BOOL else y - x, x, y)
    expected = np.result_type(a, b)
    assert graph.outputs[0].dtype.np == expected
    assert "cast" in ops_of(graph)
    want = x + y if x.dtype != np.bool_ else y - x
    assert_close(needlec.compile(graph)(x, y), want.astype(expected))


def test_same_dtypes_need_no_cast() -> None:
    graph = needlec.trace(lambda x, y: x * y + 1.0, rand(3), rand(3))
    assert "cast" not in ops_of(graph)


def test_float_math_on_integers_computes_in_f32() -> None:
    x = np.arange(1, 7, dtype=np.int32)
    got = run(lambda x: (ops.exp(x), ops.sqrt(x), x.mean(), ops.floor(x)), x)
    assert_close(got[0], np.exp(x.astype(np.float32)))
    assert_close(got[1], np.sqrt(x.astype(np.float32)))
    assert_close(got[2], np.float32(x.mean()))
    assert_close(got[3], x)


# -- indexing and views ------------------------------------------------------------------
INDEX_KEYS = [
    (slice(1, 3), slice(None, None, 2), 0, None, Ellipsis),
    (Ellipsis, -1),
    (slice(None, None, -1), slice(2, -1)),
    (None,),
    (0, 0, 0, 0),
    (slice(None), slice(None), slice(1, 4, 2)),
    (1,),
    (slice(-2, None), Ellipsis, slice(None, None, -2)),
    (slice(5, 10),),
]


@pytest.mark.parametrize("key", INDEX_KEYS, ids=[str(k) for k in INDEX_KEYS])
def test_basic_indexing_matches_numpy(key: tuple) -> None:
    x = rand(4, 6, 5, 3)
    assert_close(run(lambda x: x[key], x), x[key])


def test_iterating_unrolls_over_the_first_axis() -> None:
    x = rand(3, 4)
    graph = needlec.trace(lambda x: tuple(row * i for i, row in enumerate(x)), x)
    assert ops_of(graph).count("slice") == 3
    for i, got in enumerate(needlec.compile(graph)(x)):
        assert_close(got, x[i] * i)


@pytest.mark.parametrize("key, message", [
    ((0, 0, 0), "too many indices"),
    ((7,), "index 7 is out of bounds for axis 0"),
    (([0, 1],), "indexing graph input %x with a list"),
    ((Ellipsis, Ellipsis), "at most one"),
    ((slice(None, None, 0),), "step must not be 0"),
])
def test_bad_indices_raise(key: tuple, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        needlec.trace(lambda x: x[key], rand(4, 6))


def test_reshape_of_a_transposed_tensor_inserts_a_copy() -> None:
    x = rand(3, 4)
    graph = needlec.trace(lambda x: x.T.reshape(2, -1), x)
    assert ops_of(graph) == ["permute", "copy", "reshape"]
    assert_close(needlec.compile(graph)(x), x.T.reshape(2, -1))


def test_reshape_of_a_dense_tensor_is_a_view() -> None:
    x = rand(3, 4)
    graph = needlec.trace(lambda x: (x.reshape(-1), x[1:].reshape(4, 2), x.reshape(3, 4)), x)
    assert ops_of(graph) == ["reshape", "slice", "reshape"]
    got = needlec.compile(graph)(x)
    for g, w in zip(got, (x.reshape(-1), x[1:].reshape(4, 2), x)):
        assert_close(g, w)


@pytest.mark.parametrize("shape", [(5, -1), (-1, -1), (7,), (-3, 4)])
def test_bad_reshapes_raise(shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"reshape: (cannot reshape|invalid target shape)"):
        needlec.trace(lambda x: x.reshape(*shape), rand(3, 4))


def test_tensor_methods_match_numpy() -> None:
    x = rand(2, 3, 4)
    got = run(lambda x: (x.permute(2, 0, 1), x.transpose(0, 2), x.T, x.flatten(1), x.sum(axis=(0, 2)),
                         x.mean(axis=-1, keepdims=True), x.max(axis=1), x.min(axis=0), x.prod(axis=2),
                         x.argmax(axis=1), x.argmin(axis=2), x.exp(), x.abs().log(), x.relu(),
                         x.astype("i32"), x.broadcast_to(2, 2, 3, 4), x.unsqueeze(1), x[:, :1].squeeze(1)), x)
    want = (x.transpose(2, 0, 1), x.transpose(2, 1, 0), x.T, x.reshape(2, 12), x.sum(axis=(0, 2)),
            x.mean(axis=-1, keepdims=True), x.max(axis=1), x.min(axis=0), x.prod(axis=2),
            x.argmax(axis=1), x.argmin(axis=2), np.exp(x), np.log(np.abs(x)), np.maximum(x, 0),
            x.astype(np.int32), np.broadcast_to(x, (2, 2, 3, 4)), x[:, None], x[:, 0])
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, rtol=1e-5 if i != 8 else 1e-4)


def test_static_properties() -> None:
    seen = {}

    def fn(x: Any) -> Any:
        seen.update(shape=x.shape, dtype=x.dtype, ndim=x.ndim, size=x.size, len=len(x))
        return x

    needlec.trace(fn, np.zeros((2, 5), np.int16))
    assert seen == {"shape": (2, 5), "dtype": DType.I16, "ndim": 2, "size": 10, "len": 2}


# -- the functional API against NumPy ------------------------------------------------------
POS = rand(2, 3, low=0.2, high=3.0)
A, B = rand(2, 3), rand(3)
M1, M2 = rand(2, 4, 3), rand(3, 5)
IMG = rand(2, 4, 7, 7)
W_CONV = rand(6, 2, 3, 3) * 0.3
BIAS = rand(6)

FUNCTIONAL: list[tuple[str, Callable, Callable, tuple]] = [
    ("neg", ops.neg, np.negative, (A,)),
    ("abs", ops.abs, np.abs, (A,)),
    ("exp", ops.exp, np.exp, (A,)),
    ("log", ops.log, np.log, (POS,)),
    ("sqrt", ops.sqrt, np.sqrt, (POS,)),
    ("rsqrt", ops.rsqrt, lambda x: 1 / np.sqrt(x), (POS,)),
    ("reciprocal", ops.reciprocal, lambda x: 1 / x, (POS,)),
    ("tanh", ops.tanh, np.tanh, (A,)),
    ("sigmoid", ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (A,)),
    ("relu", ops.relu, lambda x: np.maximum(x, 0), (A,)),
    ("erf", ops.erf, lambda x: np.vectorize(math.erf)(x).astype(np.float32), (A,)),
    ("sin", ops.sin, np.sin, (A,)),
    ("cos", ops.cos, np.cos, (A,)),
    ("floor", ops.floor, np.floor, (A,)),
    ("ceil", ops.ceil, np.ceil, (A,)),
    ("round", ops.round, np.round, (A * 3,)),
    ("sign", ops.sign, np.sign, (A,)),
    ("add", ops.add, np.add, (A, B)),
    ("sub", ops.sub, np.subtract, (A, B)),
    ("mul", ops.mul, np.multiply, (A, B)),
    ("div", ops.div, np.divide, (A, POS)),
    ("div_int_truncates", ops.div, lambda a, b: np.trunc(a / b).astype(np.int32),
     (np.array([7, -7, 9], np.int32), np.array([2, 2, -4], np.int32))),
    ("pow", ops.pow, np.power, (POS, B)),
    ("maximum", ops.maximum, np.maximum, (A, B)),
    ("minimum", ops.minimum, np.minimum, (A, B)),
    ("mod", ops.mod, np.mod, (A, POS)),
    ("eq", ops.eq, np.equal, (A, A[:1])),
    ("ne", ops.ne, np.not_equal, (A, A[:1])),
    ("lt", ops.lt, np.less, (A, B)),
    ("le", ops.le, np.less_equal, (A, B)),
    ("gt", ops.gt, np.greater, (A, B)),
    ("ge", ops.ge, np.greater_equal, (A, B)),
    ("logical_not", ops.logical_not, np.logical_not, (A > 0,)),
    ("logical_and", ops.logical_and, np.logical_and, (A > 0, B > 0)),
    ("logical_or", ops.logical_or, np.logical_or, (A > 0, B > 0)),
    ("logical_xor", ops.logical_xor, np.logical_xor, (A > 0, B > 0)),
    ("where", ops.where, np.where, (A > 0, A, B)),
    ("where_scalars", lambda c, a: ops.where(c, a, 0.0), lambda c, a: np.where(c, a, np.float32(0)), (A > 0, A)),
    ("cast", lambda x: ops.cast(x, DType.I32), lambda x: x.astype(np.int32), (A * 3,)),
    ("sum", lambda x: ops.sum(x, 1), lambda x: x.sum(1), (M1,)),
    ("sum_all", ops.sum, np.sum, (M1,)),
    ("sum_bool", lambda x: ops.sum(x > 0, 0), lambda x: (x > 0).sum(0), (A,)),
    ("max", lambda x: ops.max(x, (0, 2), keepdims=True), lambda x: x.max((0, 2), keepdims=True), (M1,)),
    ("min", lambda x: ops.min(x, -1), lambda x: x.min(-1), (M1,)),
    ("prod", lambda x: ops.prod(x, 0), lambda x: x.prod(0), (M1,)),
    ("mean", lambda x: ops.mean(x, (1, 2)), lambda x: x.mean((1, 2)), (M1,)),
    ("mean_all", ops.mean, lambda x: np.float32(x.mean()), (M1,)),
    ("argmax", lambda x: ops.argmax(x, 1), lambda x: x.argmax(1), (M1,)),
    ("argmax_flat", ops.argmax, np.argmax, (M1,)),
    ("argmin_keepdims", lambda x: ops.argmin(x, 2, keepdims=True), lambda x: x.argmin(2, keepdims=True), (M1,)),
    ("matmul", ops.matmul, np.matmul, (M1, M2)),
    ("matmul_vector", ops.matmul, np.matmul, (M1, B)),
    ("reshape", lambda x: ops.reshape(x, (3, -1)), lambda x: x.reshape(3, -1), (M1,)),
    ("permute", lambda x: ops.permute(x, (1, 2, 0)), lambda x: x.transpose(1, 2, 0), (M1,)),
    ("transpose", lambda x: ops.transpose(x, 0, -1), lambda x: x.swapaxes(0, -1), (M1,)),
    ("broadcast_to", lambda x: ops.broadcast_to(x, (4, 3)), lambda x: np.broadcast_to(x, (4, 3)), (B,)),
    ("slice", lambda x: ops.slice(x, [1, -1], [4, 0], [2, -1], [1, 2]), lambda x: x[:, 1:4:2, -1:0:-1], (M1,)),
    ("pad_constant", lambda x: ops.pad(x, [0, 1, 2, 1], value=1.5),
     lambda x: np.pad(x, ((0, 2), (1, 1)), constant_values=1.5), (A,)),
    ("pad_reflect", lambda x: ops.pad(x, [1, 2, 1, 2], mode="reflect"),
     lambda x: np.pad(x, ((1, 1), (2, 2)), mode="reflect"), (A,)),
    ("pad_edge", lambda x: ops.pad(x, [1, 0, 0, 2], mode="edge"), lambda x: np.pad(x, ((1, 0), (0, 2)), mode="edge"),
     (A,)),
    ("concat", lambda a, b: ops.concat([a, b, a], axis=1), lambda a, b: np.concatenate([a, b, a], 1), (A, rand(2, 2))),
    ("stack", lambda a, b: ops.stack([a, b], axis=-1), lambda a, b: np.stack([a, b], -1), (A, A * 2)),
    ("gather", lambda x, i: ops.gather(x, i, axis=1), lambda x, i: np.take(x, i, axis=1),
     (M1, np.array([[2, 0], [1, -1]], np.int64))),
    ("scatter", lambda x, i, u: ops.scatter(x, i, u, axis=1),
     lambda x, i, u: _np_scatter(x, i, u, 1), (A, np.array([[2, 0], [1, 0]], np.int64), rand(2, 2))),
    ("scatter_add", lambda x, i, u: ops.scatter(x, i, u, axis=0, reduction="add"),
     lambda x, i, u: _np_scatter(x, i, u, 0, np.add), (A, np.array([[1, 0, 1], [1, 1, 0]], np.int64), rand(2, 3))),
    ("iota", lambda x: x + ops.iota((2, 3), axis=1, dtype=DType.F32), lambda x: x + np.arange(3, dtype=np.float32),
     (A,)),
    ("full", lambda x: x * ops.full((3,), 2.5), lambda x: x * np.float32(2.5), (A,)),
    ("full_int", lambda x: x + ops.full((3,), 4), lambda x: x + np.int64(4), (np.arange(3, dtype=np.int64),)),
    ("zeros", lambda x: x + ops.zeros((2, 1)), lambda x: x + np.zeros((2, 1), np.float32), (A,)),
    ("ones", lambda x: ops.concat([x, ops.ones((1, 3))]), lambda x: np.concatenate([x, np.ones((1, 3), np.float32)]),
     (A,)),
    ("conv2d", lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding=1),
     lambda x, w, b: np_conv2d(x, w, b, stride=2, padding=1), (IMG, rand(6, 4, 3, 3) * 0.3, BIAS)),
    ("conv2d_grouped_dilated", lambda x, w: ops.conv2d(x, w, dilation=2, groups=2),
     lambda x, w: np_conv2d(x, w, dilation=2, groups=2), (IMG, W_CONV)),
    ("max_pool2d", lambda x: ops.max_pool2d(x, 3, stride=2, padding=1),
     lambda x: np_pool2d(x, 3, 2, 1, "max"), (IMG,)),
    ("avg_pool2d", lambda x: ops.avg_pool2d(x, 2), lambda x: np_pool2d(x, 2, 2, 0, "avg"), (IMG,)),
    ("avg_pool2d_pad", lambda x: ops.avg_pool2d(x, 3, stride=2, padding=1),
     lambda x: np_pool2d(x, 3, 2, 1, "avg"), (IMG,)),
    ("avg_pool2d_exclude_pad", lambda x: ops.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
     lambda x: np_pool2d(x, 3, 2, 1, "avg", count_include_pad=False), (IMG,)),
    ("linear", ops.linear, lambda x, w, b: x @ w.T + b, (M1, rand(5, 3), rand(5))),
    ("linear_no_bias", ops.linear, lambda x, w: x @ w.T, (M1, rand(5, 3))),
    ("softmax", lambda x: ops.softmax(x, axis=1), lambda x: _np_softmax(x, 1), (M1 * 20,)),
    ("log_softmax", ops.log_softmax, lambda x: np.log(_np_softmax(x, -1)), (M1 * 20,)),
    ("flatten", lambda x: ops.flatten(x, 1), lambda x: x.reshape(2, -1), (IMG,)),
    ("flatten_middle", lambda x: ops.flatten(x, 1, 2), lambda x: x.reshape(2, 28, 7), (IMG,)),
    ("squeeze", ops.squeeze, np.squeeze, (rand(1, 3, 1),)),
    ("unsqueeze", lambda x: ops.unsqueeze(x, -1), lambda x: x[..., None], (A,)),
    ("copy", ops.copy, np.copy, (A,)),
]


def _np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max(axis, keepdims=True))
    return (e / e.sum(axis, keepdims=True)).astype(x.dtype)


def _np_scatter(x: np.ndarray, idx: np.ndarray, upd: np.ndarray, axis: int, combine: Any = None) -> np.ndarray:
    out = x.copy()
    for pos in np.ndindex(*idx.shape):
        target = list(pos)
        target[axis] = idx[pos]
        out[tuple(target)] = upd[pos] if combine is None else combine(out[tuple(target)], upd[pos])
    return out


@pytest.mark.parametrize("name, op, reference, arrays", FUNCTIONAL, ids=[c[0] for c in FUNCTIONAL])
def test_functional_op_matches_numpy(name: str, op: Callable, reference: Callable, arrays: tuple) -> None:
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if name in ("prod", "pow", "log_softmax", "erf") else {}
    assert_close(run(op, *arrays), reference(*arrays), **tolerance)


def test_every_functional_export_is_tested_or_composed() -> None:
    case_names = [c[0] for c in FUNCTIONAL]
    covered_elsewhere = {"true_divide", "floor_divide", "fill", "rand"}  # operator, alias and rand tests
    # layer-level ops and losses are compared with PyTorch in test_nn_torch.py and test_losses.py
    covered_elsewhere |= set(nn.functional.__all__) | set(needlec.losses.__all__)
    untested = [name for name in ops.__all__ if name not in covered_elsewhere
                and not any(case == name or case.startswith(name + "_") for case in case_names)]
    assert untested == []


def torch_avg_pool2d(x: np.ndarray, k: int, s: int, p: int, ceil_mode: bool, count_include_pad: bool) -> np.ndarray:
    """PyTorch's avg_pool2d CPU kernel, transcribed loop for loop (output size and divisor rules)."""
    def out_size(size: int) -> int:
        n = (-(-(size + 2 * p - k) // s) if ceil_mode else (size + 2 * p - k) // s) + 1
        return n - 1 if ceil_mode and (n - 1) * s >= size + p else n

    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (out_size(h), out_size(w)))
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            hs, ws = i * s - p, j * s - p
            he, we = min(hs + k, h + p), min(ws + k, w + p)
            pool = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            divisor = pool if count_include_pad else (he - hs) * (we - ws)
            out[..., i, j] = x[..., hs:he, ws:we].astype(np.float64).sum(axis=(-2, -1)) / divisor
    return out.astype(x.dtype)


@pytest.mark.parametrize("k, s, p, ceil_mode, count_include_pad", [
    (3, 2, 0, True, True), (3, 2, 1, True, True), (3, 2, 1, True, False), (2, 3, 1, True, True),
    (3, 1, 1, False, False), (4, 3, 2, False, True),
])
def test_avg_pool2d_divisors_follow_pytorch(k: int, s: int, p: int, ceil_mode: bool, count_include_pad: bool) -> None:
    x = rand(2, 3, 6, 7)
    got = run(lambda x: ops.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad), x)
    assert_close(got, torch_avg_pool2d(x, k, s, p, ceil_mode, count_include_pad))


def test_rand_is_uniform_and_deterministic_per_seed() -> None:
    x = np.zeros((64, 64), np.float32)
    a, b, c = run(lambda x: (x + ops.rand((64, 64), seed=3), ops.rand((64, 64), seed=3), ops.rand((64, 64), seed=4)),
                  x)
    assert a.dtype == np.float32 and a.shape == (64, 64)
    assert 0.0 <= a.min() and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.02
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fill_is_full() -> None:
    assert ops.fill is ops.full
    assert_close(run(lambda x: x * ops.fill((2,), 3), np.ones(2, np.int64)), np.full(2, 3, np.int64))


def test_creation_ops_need_an_active_trace() -> None:
    with pytest.raises(TraceError, match="needlec.ops.full needs an active trace"):
        ops.full((2,), 1.0)


def test_where_needs_a_bool_condition() -> None:
    with pytest.raises(TraceError, match="where: the condition must be a bool tensor, found f32"):
        needlec.trace(lambda x: ops.where(x, x, 0.0), rand(3))


# -- data-dependent control flow ---------------------------------------------------------------
def _if_on_tensor(x: Any) -> Any:
    if x.sum() > 0:
        return x
    return -x


def _while_on_tensor(x: Any) -> Any:
    while x.max() < 10:
        x = x * 2
    return x


@pytest.mark.parametrize("fn, message", [
    (_if_on_tensor, r"bool\(\).*tensor %\d+ \(produced by op gt\)"),
    (_while_on_tensor, r"tensor %\d+ \(produced by op lt\)"),
    (lambda x: float(x.exp().sum()), r"float\(\) needs the value of tensor %\d+ \(produced by op reduce_sum\)"),
    (lambda x: x * int(x[0]), r"int\(\) needs the value of tensor %\d+ \(produced by op reshape\)"),
    (lambda x: x.max().item(), r"\.item\(\).*produced by op reduce_max"),
    (lambda x: x.numpy(), r"\.numpy\(\) needs the value of graph input %x"),
    (lambda x: np.asarray(x.relu()), r"NumPy array.*produced by op relu"),
    (lambda x: x if (x > 0) and True else x, r"produced by op gt"),
    (lambda x: [v for v in x.sum()], r"iterate over 0-d tensor %\d+ \(produced by op reduce_sum\)"),
    (lambda x: len(x.sum()), r"len\(\) of 0-d tensor"),
])
def test_data_dependent_control_flow_raises_trace_error(fn: Callable, message: str) -> None:
    with pytest.raises(TraceError, match=message) as info:
        needlec.trace(fn, rand(4))
    if "bool()" in message or "float()" in message:
        assert "data-dependent Python control flow cannot be traced" in str(info.value)
        assert "needlec.ops.where" in str(info.value)


def test_python_loops_and_static_branches_unroll() -> None:
    def fn(x: Any) -> Any:
        for _ in range(3):
            x = x * 2
        if x.shape[0] > 2:  # static: decided at trace time
            x = x + 1
        total = x[0]
        for i in range(1, x.shape[0]):
            total = total + x[i]
        return total

    x = rand(4, 3)
    graph = needlec.trace(fn, x)
    assert ops_of(graph).count("mul") == 3 and ops_of(graph).count("add") == 1 + 3
    assert_close(needlec.compile(graph)(x), (x * 8 + 1).sum(0), rtol=1e-5, atol=1e-5)


# -- trace: inputs, outputs, names ------------------------------------------------------------
def test_inputs_are_named_after_parameters_or_names_or_positions() -> None:
    x = rand(2)
    assert [v.name for v in needlec.trace(lambda a, b: a + b, x, x).inputs] == ["a", "b"]
    assert [v.name for v in needlec.trace(lambda a, b: a + b, x, x, names=["p", "q"]).inputs] == ["p", "q"]
    assert [v.name for v in needlec.trace(lambda *xs: xs[0] * xs[1], x, x).inputs] == ["x0", "x1"]
    assert [v.name for v in needlec.trace(nn.ReLU(), x).inputs] == ["x"]


def test_trace_rejects_wrong_input_counts() -> None:
    with pytest.raises(TraceError, match="cannot be called with 1 example input"):
        needlec.trace(lambda a, b: a + b, rand(2))
    with pytest.raises(TraceError, match="1 name\\(s\\) given for 2 example input"):
        needlec.trace(lambda a, b: a + b, rand(2), rand(2), names=["a"])


@pytest.mark.parametrize("fn, message", [
    (lambda x: x.shape, r"output 0 of <lambda> is a int"),
    (lambda x: None, r"<lambda>'s result is a NoneType"),
    (lambda x: np.zeros(3), r"<lambda>'s result is a ndarray"),
    (lambda x: {"y": x}, r"result is a dict"),
    (lambda x: (x, 1.0), r"output 1 of <lambda> is a float"),
    (lambda x: (), r"returned an empty tuple"),
])
def test_outputs_must_be_tensors(fn: Callable, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        needlec.trace(fn, rand(3))


def test_returning_an_input_or_a_constant_is_allowed() -> None:
    x = rand(3)
    got = run(lambda x: (x, ops.full((2,), 7.0), x), x)
    assert_close(got[0], x)
    assert_close(got[1], np.full(2, 7.0, np.float32))
    assert_close(got[2], x)


def test_tensors_of_another_trace_are_rejected() -> None:
    leaked = []
    needlec.trace(lambda x: leaked.append(x) or x, rand(2))
    with pytest.raises(TraceError, match="belongs to another trace|different traces"):
        needlec.trace(lambda x: x + leaked[0], rand(2))


def test_unsupported_operands_raise() -> None:
    with pytest.raises(TraceError, match="add: cannot use a str as a tensor operand"):
        needlec.trace(lambda x: x + "1", rand(2))


# -- nn.Module ---------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 8, rng=rng), nn.Tanh(), nn.Linear(8, 4, rng=rng))
        self.scale = nn.Parameter(np.full((4,), 0.5, np.float32))
        self.note = "not a parameter"

    def forward(self, x: Any) -> Any:
        return self.layers(x) * self.scale + 2 * self.scale + x @ self.layers[0].weight.T[:, :4]


def test_module_registers_parameters_and_submodules_in_order() -> None:
    block = Block(np.random.default_rng(1))
    names = [name for name, _ in block.named_parameters()]
    assert names == ["scale", "layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]
    assert [name for name, _ in block.named_modules()] == ["", "layers", "layers.0", "layers.1", "layers.2"]
    assert len(block.parameters()) == 5 and list(block.children()) == [block.layers]
    block.scale = np.zeros(4)  # no longer a Parameter: unregistered
    assert "scale" not in dict(block.named_parameters())


def test_parameters_become_named_constants_once_per_trace() -> None:
    block = Block(np.random.default_rng(1))
    x = rand(3, 4)
    graph = needlec.trace(block, x)
    assert sorted(v.name for v in graph.constants if "." in v.name or v.name == "scale") == \
        ["layers.0.bias", "layers.0.weight", "layers.2.bias", "layers.2.weight", "scale"]
    p = {name: p.data for name, p in block.named_parameters()}
    hidden = np.tanh(x @ p["layers.0.weight"].T + p["layers.0.bias"])
    want = (hidden @ p["layers.2.weight"].T + p["layers.2.bias"]) * p["scale"] + p["scale"] * 2 \
        + x @ p["layers.0.weight"].T[:, :4]
    assert_close(needlec.compile(block, [x])(x), want, atol=1e-5)


def test_shared_parameters_are_listed_once() -> None:
    shared = nn.Linear(3, 3, rng=np.random.default_rng(0))
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    graph = needlec.trace(model, rand(2, 3))
    assert [v.name for v in graph.constants if v.name.endswith(("weight", "bias"))] == ["0.weight", "0.bias"]


def test_parameter_outside_a_trace_raises() -> None:
    p = nn.Parameter(np.ones(3, np.float32))
    with pytest.raises(TraceError, match="needs an active trace"):
        p * 2
    np.testing.assert_array_equal(np.asarray(p) * 2, np.full(3, 2.0))


def test_module_without_super_init_raises() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(NeedlecError, match=r"Broken.__init__ must call super\(\).__init__\(\)"):
        Broken()


def test_module_without_forward_raises() -> None:
    with pytest.raises(NeedlecError, match="Module does not define forward"):
        nn.Module()(1)


def test_train_and_eval_set_the_flag_recursively() -> None:
    block = Block(np.random.default_rng(0))
    assert block.eval() is block
    assert all(not m.training for _, m in block.named_modules())
    block.train()
    assert all(m.training for _, m in block.named_modules())


def test_state_dict_round_trip() -> None:
    a, b = Block(np.random.default_rng(1)), Block(np.random.default_rng(2))
    state = a.state_dict()
    assert list(state) == [n for n, _ in a.named_parameters()]
    state["scale"][:] = 99.0  # a copy: the model is untouched
    assert a.scale.data[0] == 0.5
    state["scale"][:] = 0.5
    b.load_state_dict(state)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
    x = rand(2, 4)
    np.testing.assert_array_equal(needlec.compile(a, [x])(x), needlec.compile(b, [x])(x))


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(scale=np.zeros(5, np.float32)), r"scale expected float32\[4\], found float32\[5\]"),
    (lambda s: s.update(scale=np.zeros(4, np.float64)), r"scale expected float32\[4\], found float64\[4\]"),
    (lambda s: s.pop("layers.2.bias"), r"missing \['layers.2.bias'\], unexpected none"),
    (lambda s: s.update(extra=np.zeros(1)), r"missing none, unexpected \['extra'\]"),
])
def test_load_state_dict_rejects_mismatches(edit: Callable, message: str) -> None:
    model = Block(np.random.default_rng(1))
    before = model.state_dict()
    state = Block(np.random.default_rng(2)).state_dict()
    edit(state)
    with pytest.raises(NeedlecError, match=message):
        model.load_state_dict(state)
    for name, array in model.state_dict().items():  # nothing was loaded
        np.testing.assert_array_equal(array, before[name])


def test_load_state_dict_non_strict_skips_missing_names() -> None:
    model = Block(np.random.default_rng(1))
    model.load_state_dict({"scale": np.ones(4, np.float32), "other": np.zeros(2)}, strict=False)
    np.testing.assert_array_equal(model.scale.data, np.ones(4))


def test_initialisation_is_seeded_and_bounded_like_pytorch() -> None:
    nn.manual_seed(7)
    first = nn.Linear(100, 10)
    nn.manual_seed(7)
    second = nn.Linear(100, 10)
    np.testing.assert_array_equal(first.weight.data, second.weight.data)
    assert first.weight.data.dtype == np.float32 and first.weight.shape == (10, 100)
    assert np.abs(first.weight.data).max() <= 0.1 and np.abs(first.weight.data).max() > 0.09
    conv = nn.Conv2d(4, 6, 3, groups=2, rng=np.random.default_rng(0))
    assert conv.weight.shape == (6, 2, 3, 3) and conv.bias.shape == (6,)
    assert np.abs(conv.weight.data).max() <= 1 / math.sqrt(2 * 9)
    assert nn.Linear(3, 2, bias=False).bias is None
    with pytest.raises(NeedlecError, match="divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)


def test_module_repr() -> None:
    model = nn.Sequential(nn.Linear(2, 3, rng=np.random.default_rng(0)), nn.ReLU())
    assert repr(model) == "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)"
