"""Elementwise primitives: unary math, binary ops with NumPy broadcasting, where, cast.

Each op is one row of a table: (name, allowed dtypes, NumPy reference, scalar
loop-IR expression). The loop-IR binary ops follow NumPy semantics for every
dtype (integer division truncates and gives 0 on division by zero, ``mod`` is
floor-mod), so references and lowerings agree on edge cases.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import ALL_DTYPES, FLOAT_DTYPES, NUMERIC_DTYPES, DType
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import binary, cast, const, select, unary
from needlec.compiler.loops.ir import Expr
from needlec.compiler.ops.common import broadcast_shapes, check_dtypes, lower_elementwise
from needlec.compiler.ops.registry import Attr, OpDef, register

BOOL = frozenset({DType.BOOL})

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _one(x: Expr) -> Expr:
    return const(1, x.dtype)


def _zero(x: Expr) -> Expr:
    return const(0, x.dtype)


def _sign(x: Expr) -> Expr:
    s = select(binary("gt", x, _zero(x)), _one(x),
               select(binary("lt", x, _zero(x)), const(-1, x.dtype) if x.dtype.is_signed else _zero(x), _zero(x)))
    return select(binary("ne", x, x), x, s) if x.dtype.is_float else s


def _np_int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Truncating integer division with 0 for division by zero (C / ONNX semantics)."""
    with np.errstate(all="ignore"):
        safe = np.where(b == 0, 1, b).astype(b.dtype)
        q = np.floor_divide(a, safe)
        r = a - q * safe
        q = q + ((r != 0) & ((a < 0) != (safe < 0))).astype(q.dtype)
        return np.where(b == 0, 0, q).astype(a.dtype)


def _np_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu":
        return _np_int_div(a, b)
    with np.errstate(all="ignore"):
        return np.divide(a, b)


def _np_mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if a.dtype.kind in "iu":
            return np.where(b == 0, 0, np.mod(a, np.where(b == 0, 1, b).astype(b.dtype))).astype(a.dtype)
        return np.mod(a, b)


# name -> (dtypes, reference, scalar expression, doc)
UNARY: dict[str, tuple[frozenset[DType], Callable[[np.ndarray], np.ndarray], Callable[[Expr], Expr], str]] = {
    "neg": (NUMERIC_DTYPES, np.negative, lambda x: unary("neg", x), "-x"),
    "abs": (NUMERIC_DTYPES, np.abs, lambda x: unary("abs", x), "|x|"),
    "exp": (FLOAT_DTYPES, np.exp, lambda x: unary("exp", x), "e**x"),
    "log": (FLOAT_DTYPES, np.log, lambda x: unary("log", x), "natural logarithm"),
    "sqrt": (FLOAT_DTYPES, np.sqrt, lambda x: unary("sqrt", x), "square root"),
    "rsqrt": (FLOAT_DTYPES, lambda x: 1 / np.sqrt(x), lambda x: binary("div", _one(x), unary("sqrt", x)),
              "1 / sqrt(x)"),
    "reciprocal": (FLOAT_DTYPES, lambda x: 1 / x, lambda x: binary("div", _one(x), x), "1 / x"),
    "tanh": (FLOAT_DTYPES, np.tanh, lambda x: unary("tanh", x), "hyperbolic tangent"),
    "sigmoid": (FLOAT_DTYPES, lambda x: 1 / (1 + np.exp(-x)),
                lambda x: binary("div", _one(x), binary("add", _one(x), unary("exp", unary("neg", x)))),
                "1 / (1 + e**-x)"),
    "relu": (NUMERIC_DTYPES, lambda x: np.maximum(x, 0).astype(x.dtype), lambda x: binary("max", x, _zero(x)),
             "max(x, 0)"),
    "erf": (FLOAT_DTYPES, _erf, lambda x: unary("erf", x), "Gauss error function"),
    "sin": (FLOAT_DTYPES, np.sin, lambda x: unary("sin", x), "sine"),
    "cos": (FLOAT_DTYPES, np.cos, lambda x: unary("cos", x), "cosine"),
    "floor": (FLOAT_DTYPES, np.floor, lambda x: unary("floor", x), "round down"),
    "ceil": (FLOAT_DTYPES, np.ceil, lambda x: unary("ceil", x), "round up"),
    "round": (FLOAT_DTYPES, np.round, lambda x: unary("round", x), "round half to even"),
    "sign": (NUMERIC_DTYPES, np.sign, _sign, "-1, 0 or 1 (NaN stays NaN)"),
    "logical_not": (BOOL, np.logical_not, lambda x: unary("not", x), "boolean not"),
}

# name -> (dtypes, result is bool, reference, loop-IR binary op)
BINARY: dict[str, tuple[frozenset[DType], bool, Callable[[np.ndarray, np.ndarray], np.ndarray], str]] = {
    "add": (NUMERIC_DTYPES, False, np.add, "add"),
    "sub": (NUMERIC_DTYPES, False, np.subtract, "sub"),
    "mul": (NUMERIC_DTYPES, False, np.multiply, "mul"),
    "div": (NUMERIC_DTYPES, False, _np_div, "div"),
    "pow": (FLOAT_DTYPES, False, np.power, "pow"),
    "max": (NUMERIC_DTYPES, False, np.maximum, "max"),
    "min": (NUMERIC_DTYPES, False, np.minimum, "min"),
    "mod": (NUMERIC_DTYPES, False, _np_mod, "mod"),
    "eq": (ALL_DTYPES, True, np.equal, "eq"),
    "ne": (ALL_DTYPES, True, np.not_equal, "ne"),
    "lt": (NUMERIC_DTYPES, True, np.less, "lt"),
    "le": (NUMERIC_DTYPES, True, np.less_equal, "le"),
    "gt": (NUMERIC_DTYPES, True, np.greater, "gt"),
    "ge": (NUMERIC_DTYPES, True, np.greater_equal, "ge"),
    "logical_and": (BOOL, False, np.logical_and, "and"),
    "logical_or": (BOOL, False, np.logical_or, "or"),
    "logical_xor": (BOOL, False, np.logical_xor, "xor"),
}


def _unary_infer(name: str, dtypes: frozenset[DType]) -> Callable:
    def infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        dtype = check_dtypes(name, types, dtypes)
        return [TensorType(types[0].shape, dtype)]

    return infer


def _unary_reference(fn: Callable[[np.ndarray], np.ndarray]) -> Callable:
    def reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        (x,) = args
        with np.errstate(all="ignore"):
            return [np.asarray(fn(x)).astype(x.dtype)]

    return reference


def _binary_infer(name: str, dtypes: frozenset[DType], to_bool: bool) -> Callable:
    def infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        dtype = check_dtypes(name, types, dtypes)
        shape = broadcast_shapes(name, *(t.shape for t in types))
        return [TensorType(shape, DType.BOOL if to_bool else dtype)]

    return infer


def _binary_reference(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], to_bool: bool) -> Callable:
    def reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        a, b = args
        with np.errstate(all="ignore"):
            result = np.asarray(fn(a, b))
        return [result.astype(np.bool_ if to_bool else a.dtype)]

    return reference


for _name, (_dtypes, _ref, _expr, _doc) in UNARY.items():
    register(OpDef(_name, 1, _unary_infer(_name, _dtypes), _unary_reference(_ref),
                   lower_elementwise(lambda args, f=_expr: f(args[0])), doc=_doc))

for _name, (_dtypes, _to_bool, _ref, _op) in BINARY.items():
    register(OpDef(_name, 2, _binary_infer(_name, _dtypes, _to_bool), _binary_reference(_ref, _to_bool),
                   lower_elementwise(lambda args, op=_op: binary(op, args[0], args[1])),
                   doc=f"elementwise {_name} with NumPy broadcasting"))


def _where_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    cond, a, b = types
    check_dtypes("where", [cond], BOOL)
    dtype = check_dtypes("where", [a, b], ALL_DTYPES)
    return [TensorType(broadcast_shapes("where", cond.shape, a.shape, b.shape), dtype)]


register(OpDef(
    "where", 3, _where_infer,
    lambda args, attrs: [np.where(*args).astype(args[1].dtype)],
    lower_elementwise(lambda args: select(args[0], args[1], args[2])),
    doc="cond ? a : b with NumPy broadcasting"))


def _cast_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    return [TensorType(types[0].shape, attrs["dtype"])]


def _cast_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return [args[0].astype(attrs["dtype"].np)]


def _cast_lower(kb, ins, outs, attrs):  # type: ignore[no-untyped-def]
    return lower_elementwise(lambda args: cast(args[0], attrs["dtype"]), promote=False)(kb, ins, outs, attrs)


register(OpDef("cast", 1, _cast_infer, _cast_reference, _cast_lower,
               attrs={"dtype": Attr("dtype")}, doc="convert to another dtype (float->int truncates)"))
