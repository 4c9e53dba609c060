"""needlec's own f32 exp, log, tanh and erf (``codegen/vector_math.py``): accuracy, special values, same bits
on every CPU, and loops that vectorise.

Each function runs compiled through needlec over every 4096th f32 bit pattern
(the whole finite range, both signs, subnormals included), a fine grid over
the range where its value changes, and its special values; the error against
a float64 reference, in ulps of the f32 result, stays within ``ULP_BOUND``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import needlec
from needlec import ops
from needlec.compiler.codegen.vector_math import SYMBOLS, ULP_BOUND
from needlec.compiler.target import CpuTarget, Target
from needlec.runtime.cpu_check import missing_features

INF, NAN = math.inf, math.nan
# function -> (needlec op, float64 reference, range of the fine grid)
FUNCTIONS: dict[str, tuple[Callable, Callable[[np.ndarray], np.ndarray], tuple[float, float]]] = {
    "exp": (ops.exp, np.exp, (-104.0, 89.0)),
    "log": (ops.log, np.log, (0.0, 4.0)),
    "tanh": (ops.tanh, np.tanh, (-10.0, 10.0)),
    "erf": (ops.erf, np.vectorize(math.erf, otypes=[np.float64]), (-4.5, 4.5)),
}
# function -> (input, exact result): libm's values at the edges
SPECIAL: dict[str, list[tuple[float, float]]] = {
    "exp": [(0.0, 1.0), (-0.0, 1.0), (INF, INF), (-INF, 0.0), (NAN, NAN), (1e-30, 1.0), (89.0, INF),
            (88.72284, INF), (1e30, INF), (-104.0, 0.0), (-1e30, 0.0)],  # 88.72284: the first overflow
    "log": [(1.0, 0.0), (0.0, -INF), (-0.0, -INF), (-1e-45, NAN), (-1.0, NAN), (-INF, NAN), (INF, INF),
            (NAN, NAN)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN), (9.1, 1.0), (-20.0, -1.0),
             (1e-40, 1e-40), (-1e-45, -1e-45), (2.0 ** -20, 2.0 ** -20)],
    "erf": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN), (4.0, 1.0), (-4.0, -1.0),
            (1e30, 1.0)],
}


def _cpus() -> list[str]:
    """The CPUs this host can run code for, among host and the psABI levels with and without AVX2 / AVX-512."""
    return ["host"] + [cpu for cpu in ("x86-64-v2", "x86-64-v3", "x86-64-v4")
                       if not missing_features(CpuTarget.named(cpu).features)]


def _inputs(name: str) -> np.ndarray:
    """Every 4096th bit pattern, a grid of 2**20 points over the function's range, and its special values."""
    lo, hi = FUNCTIONS[name][2]
    patterns = np.arange(0, 1 << 32, 4096, dtype=np.uint64).astype(np.uint32).view(np.float32)
    grid = np.linspace(lo, hi, 1 << 20, dtype=np.float32)
    special = np.array([x for x, _ in SPECIAL[name]], np.float32)
    return np.concatenate([patterns[np.isfinite(patterns)], grid, special])


def _run(name: str, x: np.ndarray, cpu: str) -> np.ndarray:
    return needlec.compile(FUNCTIONS[name][0], [x], cpu=cpu, progress=False)(x)


def ulp_error(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in ulps of the f32 result (the exact value's f32 exponent; subnormals' ulp is 2**-149).

    Where the exact value rounds to inf or NaN in f32, 0 if ``got`` is that too, else inf.
    """
    exponent = np.maximum(np.frexp(exact)[1] - 1, -126)
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = exact.astype(np.float32)
        error = np.abs(got.astype(np.float64) - exact) / np.ldexp(1.0, exponent - 23)
    same = (got == rounded) | (np.isnan(got) & np.isnan(rounded))
    return np.where(np.isfinite(rounded), error, np.where(same, 0.0, INF))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_error_within_the_stated_ulp_bound(name: str) -> None:
    x = _inputs(name)
    with np.errstate(all="ignore"):
        exact = FUNCTIONS[name][1](x.astype(np.float64))
    error = ulp_error(_run(name, x, "host"), exact)
    worst = int(np.argmax(error))
    assert error[worst] <= ULP_BOUND[name], f"{name}({x[worst]!r}): {error[worst]:.3f} ulp"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_special_values_are_exact(name: str) -> None:
    x = np.array([v for v, _ in SPECIAL[name]], np.float32)
    want = np.array([r for _, r in SPECIAL[name]], np.float32)
    got = _run(name, x, "host")
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), (x, got)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32)), (x, got, want)  # signed zeros


@pytest.mark.parametrize("name", FUNCTIONS)
def test_same_bits_on_every_cpu(name: str) -> None:
    x = _inputs(name)
    results = {cpu: _run(name, x, cpu) for cpu in _cpus()}
    host = results.pop("host")
    for cpu, got in results.items():
        assert np.array_equal(got.view(np.uint32), host.view(np.uint32)), f"{name} on {cpu} differs from host"


def _gelu(x: Any) -> Any:
    return 0.5 * x * (1 + ops.tanh(0.79788456 * (x + 0.044715 * x ** 3)))


@pytest.mark.parametrize("fn", [ops.exp, ops.log, ops.tanh, ops.erf, ops.sigmoid, _gelu],
                         ids=["exp", "log", "tanh", "erf", "sigmoid", "gelu"])
def test_math_loops_vectorise_without_libm_calls(fn: Callable) -> None:
    x = np.linspace(-3, 3, 4096, dtype=np.float32).reshape(64, 64)
    text = needlec.compile(fn, [x], cpu="x86-64-v3", progress=False).llvm_ir()
    called = set(re.findall(r"call [^@]*@\"?([\w.]+)", text))
    scalar_math = {s for s in called if re.fullmatch(r"(llvm\.(exp|log|tanh)\.f32|(exp|log|tanh|erf)f|needlec\..*)", s)}
    assert not scalar_math, scalar_math
    assert re.search(r"= f(add|mul|div|sub) <8 x float>", text) and "llvm.fma.v8f32" in text


def test_cpu_math_table_names_the_vector_bodies() -> None:
    target = Target.named("cpu", "x86-64-v3")
    for name, symbol in SYMBOLS.items():
        assert target.math_symbol(name, "f32") == symbol
        assert target.math_symbol(name, "f64") in (f"llvm.{name}.f64", name)  # f64 keeps libm and LLVM's
