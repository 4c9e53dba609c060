"""Table-driven op cases: one ``OpCase`` per (op, shapes, dtypes, layout, attributes).

Each family module (``elementwise``, ``views``, ...) exposes ``CASES``; the
harness builds a one-node graph per case (inputs may first pass through a
view so the op sees strided or broadcast layouts), compiles it for the CPU
and compares with the reference interpreter. Add a family by adding its
module name to ``FAMILIES``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from needlec import DType, Graph, TensorType
from needlec.compiler.ir.graph import Value

FAMILIES = ("elementwise", "views", "data", "random", "reduce", "linalg", "window", "conv", "sort", "scan", "storage",
            "backward")


@dataclass(frozen=True)
class In:
    """One op input.

    ``layout``: ``dense`` (a graph input), ``permuted`` (a graph input of the
    reversed shape, transposed back), ``strided`` (every other element of a
    wider input along the last axis) or ``const`` (a constant holding
    ``data``). ``low``/``high`` bound random values (floats uniform, ints
    inclusive); ``data`` fixes the values.
    """

    shape: tuple[int, ...]
    dtype: DType = DType.F32
    layout: str = "dense"
    low: float = -3.0
    high: float = 3.0
    data: Any = None


@dataclass(frozen=True)
class OpCase:
    op: str
    inputs: tuple[In, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    rtol: float = 1e-5
    atol: float = 1e-6

    @property
    def id(self) -> str:
        ins = ",".join(f"{i.dtype.value}{list(i.shape)}{'' if i.layout == 'dense' else ':' + i.layout}"
                       for i in self.inputs)
        attrs = ",".join(f"{k}={v}" for k, v in sorted(self.attrs.items()))
        return f"{self.op}({ins}){'{' + attrs + '}' if attrs else ''}"


def random_array(spec: In, rng: np.random.Generator) -> np.ndarray:
    """Values for ``spec`` (``spec.data`` when given)."""
    if spec.data is not None:
        return np.asarray(spec.data, spec.dtype.np).reshape(spec.shape)
    if spec.dtype.is_float_format:
        return rng.uniform(spec.low, spec.high, spec.shape).astype(spec.dtype.np)
    if spec.dtype.is_bool:
        return rng.integers(0, 2, spec.shape).astype(np.bool_)
    low, high = int(spec.low), int(spec.high)
    if not spec.dtype.is_signed:
        low = max(low, 0)
    return rng.integers(low, high + 1, spec.shape).astype(spec.dtype.np)


def build_case(case: OpCase, seed: int = 0) -> tuple[Graph, list[np.ndarray]]:
    """A graph applying ``case.op`` to its inputs, and random arrays for the graph inputs."""
    rng = np.random.default_rng(seed)
    g = Graph(case.op)
    args: list[Value] = []
    arrays: list[np.ndarray] = []
    for i, spec in enumerate(case.inputs):
        data = random_array(spec, rng)
        if spec.layout == "const":
            args.append(g.add_constant(data, f"k{i}"))
        elif spec.layout == "dense":
            args.append(g.add_input(f"x{i}", TensorType(spec.shape, spec.dtype)))
            arrays.append(data)
        elif spec.layout == "permuted":
            rev = list(reversed(range(len(spec.shape))))
            x = g.add_input(f"x{i}", TensorType(tuple(reversed(spec.shape)), spec.dtype))
            args.append(g.add("permute", x, perm=rev))
            arrays.append(np.ascontiguousarray(np.transpose(data, rev)))
        elif spec.layout == "strided":
            assert spec.shape, "strided layout needs rank >= 1"
            wide = np.repeat(data, 2, axis=-1)
            x = g.add_input(f"x{i}", TensorType(wide.shape, spec.dtype))
            args.append(g.add("slice", x, starts=[0], stops=[wide.shape[-1]], steps=[2], axes=[-1]))
            arrays.append(wide)
        else:
            raise ValueError(f"unknown layout {spec.layout}")
    node = g.add_node(case.op, args, case.attrs)
    g.set_outputs(node.outputs)
    return g, arrays


def all_cases() -> list[OpCase]:
    """Every case of every family."""
    cases: list[OpCase] = []
    for family in FAMILIES:
        cases.extend(importlib.import_module(f"tests.opcases.{family}").CASES)
    return cases


def unary_shapes(seed: int = 1) -> list[tuple[tuple[int, ...], str]]:
    """(shape, layout) pairs every unary-like op is tested on: scalar, size-1, empty, random, strided."""
    rng = np.random.default_rng(seed)
    random_shape = tuple(int(d) for d in rng.integers(1, 6, rng.integers(2, 4)))
    return [((), "dense"), ((1,), "dense"), ((0, 3), "dense"), ((7,), "dense"), (random_shape, "dense"),
            ((3, 1, 4), "permuted"), ((2, 5), "strided")]


def binary_shapes(seed: int = 2) -> list[tuple[tuple[int, ...], tuple[int, ...], str]]:
    """(shape a, shape b, layout) pairs covering broadcasting, scalars, size-1, empty and views."""
    rng = np.random.default_rng(seed)
    a = tuple(int(d) for d in rng.integers(1, 5, 3))
    b = tuple(1 if rng.random() < 0.5 else d for d in a[1:])
    return [((), (), "dense"), ((5,), (), "dense"), ((), (5,), "dense"), ((4, 1), (1, 5), "dense"),
            ((2, 3, 4), (4,), "dense"), ((0, 3), (1, 3), "dense"), ((1,), (6,), "dense"), (a, b, "dense"),
            ((3, 4), (3, 4), "permuted"), ((2, 6), (2, 6), "strided")]
