"""Elementwise primitives: unary math, float predicates, binary ops with NumPy broadcasting, where.

Each op is one row of a table: (name, allowed dtypes, NumPy reference, scalar
loop-IR expression, gradient rule). The loop-IR binary ops follow NumPy
semantics for every dtype (integer division truncates and gives 0 on division
by zero, ``mod`` is floor-mod), so references and lowerings agree on edge
cases. ``fmod`` is C's fmod (truncated: the result has the dividend's sign);
an integer ``fmod`` by 0 gives 0, like ``div``. Bitwise ops take integers
only (use the ``logical_*`` ops on bool). Shifts follow NumPy: the amount is
read as unsigned (a negative amount is huge), a shift by the bit width or more
gives 0, except that ``shift_right`` of a negative signed value then gives -1;
``shift_right`` is arithmetic for signed and logical for unsigned dtypes.
Gradient rules
follow PyTorch where it defines a value at a kink: relu'(0) = abs'(0) = 0 and
max/min split the gradient evenly between equal operands.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import ALL_DTYPES, FLOAT_DTYPES, INT_DTYPES, NUMERIC_DTYPES, DType
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import ScalarFn, binary, const, select, unary
from needlec.compiler.loops.ir import Expr
from needlec.compiler.ops.common import broadcast_shapes, check_dtypes, grad_where
from needlec.compiler.ops.registry import NO_GRAD, GradFn, OpDef, ReferenceFn, register

if TYPE_CHECKING:
    from needlec.compiler.ops.grad import GradContext

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


def _np_fmod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C's fmod; integers give 0 for a zero divisor (and for -1, whose remainder is always 0: no MIN % -1)."""
    with np.errstate(all="ignore"):
        if a.dtype.kind in "iu":
            trivial = (b == 0) | (b == -1) if a.dtype.kind == "i" else b == 0
            return np.where(trivial, 0, np.fmod(a, np.where(trivial, 1, b).astype(b.dtype))).astype(a.dtype)
        return np.fmod(a, b)


# -- gradient rules: d(input) from the input(s) x / a, b, the output y and the output gradient g --------

UnaryGrad = Callable[["GradContext", Value, Value, Value], Value]
BinaryGrad = Callable[["GradContext", Value, Value, Value, Value], tuple[Value, Value]]


def _d_abs(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
    return ctx.add("mul", g, ctx.add("sign", x))  # sign(0) = 0 gives abs'(0) = 0, as PyTorch


def _d_sqrt(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
    return ctx.add("div", g, ctx.add("mul", y, ctx.const(2.0, y)))


def _d_rsqrt(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
    return ctx.add("mul", ctx.add("div", ctx.add("mul", g, y), x), ctx.const(-0.5, y))


def _d_reciprocal(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
    return ctx.add("neg", ctx.add("mul", g, ctx.add("mul", y, y)))


def _d_tanh(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
    return ctx.add("mul", g, ctx.add("sub", ctx.const(1.0, y), ctx.add("mul", y, y)))


def _d_sigmoid(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
    return ctx.add("mul", g, ctx.add("mul", y, ctx.add("sub", ctx.const(1.0, y), y)))


def _d_relu(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
    return grad_where(ctx, ctx.add("gt", x, ctx.const(0.0, x)), g)  # relu'(0) = 0, as PyTorch


def _d_tan(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
    return ctx.add("mul", g, ctx.add("add", ctx.const(1.0, y), ctx.add("mul", y, y)))


def _over_sqrt(sign: float, offset: float, square_sign: float) -> UnaryGrad:
    """``sign * g / sqrt(offset + square_sign * x**2)``: asin (1, 1, -1), acos (-1, 1, -1), asinh (1, 1, 1),
    acosh (1, -1, 1)."""

    def rule(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
        radicand = ctx.add("add", ctx.const(offset, x), ctx.add("mul", ctx.const(square_sign, x), ctx.add("mul", x, x)))
        return ctx.add("div", ctx.add("mul", g, ctx.const(sign, g)), ctx.add("sqrt", radicand))

    return rule


def _over_square(square_sign: float) -> UnaryGrad:
    """``g / (1 + square_sign * x**2)``: atan (1), atanh (-1)."""

    def rule(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
        return ctx.add("div", g, ctx.add("add", ctx.const(1.0, x), ctx.add("mul", ctx.const(square_sign, x),
                                                                           ctx.add("mul", x, x))))

    return rule


def _d_fmod(ctx: GradContext, a: Value, b: Value, y: Value, g: Value) -> tuple[Value, Value]:
    """a fmod b = a - b * trunc(a / b), with trunc(q) = q < 0 ? ceil(q) : floor(q)."""
    q = ctx.add("div", a, b)
    trunc = ctx.add("where", ctx.add("lt", q, ctx.const(0.0, q)), ctx.add("ceil", q), ctx.add("floor", q))
    return g, ctx.add("neg", ctx.add("mul", g, trunc))


def _d_erf(ctx: GradContext, x: Value, y: Value, g: Value) -> Value:
    bell = ctx.add("exp", ctx.add("neg", ctx.add("mul", x, x)))
    return ctx.add("mul", g, ctx.add("mul", bell, ctx.const(2.0 / math.sqrt(math.pi), x)))


def _d_pow(ctx: GradContext, a: Value, b: Value, y: Value, g: Value) -> tuple[Value, Value]:
    """PyTorch's masks: d/da is 0 where b == 0, d/db is 0 where a == 0 and b >= 0 (no 0 * inf)."""
    power = ctx.add("pow", a, ctx.add("sub", b, ctx.const(1.0, b)))
    da = grad_where(ctx, ctx.add("ne", b, ctx.const(0.0, b)), ctx.add("mul", g, ctx.add("mul", b, power)))
    zero_base = ctx.add("logical_and", ctx.add("eq", a, ctx.const(0.0, a)), ctx.add("ge", b, ctx.const(0.0, b)))
    db = ctx.add("mul", g, ctx.add("where", zero_base, ctx.const(0.0, y), ctx.add("mul", y, ctx.add("log", a))))
    return da, db


def _d_extremum(wins: str) -> BinaryGrad:
    """max (``wins`` = gt) / min (lt): the winner gets g, ties split it evenly (PyTorch's maximum/minimum)."""
    loses = {"gt": "lt", "lt": "gt"}[wins]

    def rule(ctx: GradContext, a: Value, b: Value, y: Value, g: Value) -> tuple[Value, Value]:
        half = grad_where(ctx, ctx.add("eq", a, b), ctx.add("mul", g, ctx.const(0.5, g)))
        return (ctx.add("where", ctx.add(wins, a, b), g, half),
                ctx.add("where", ctx.add(loses, a, b), g, half))

    return rule


# name -> (dtypes, reference, scalar expression, doc, gradient rule or NO_GRAD)
UNARY: dict[str, tuple[frozenset[DType], Callable[[np.ndarray], np.ndarray], Callable[[Expr], Expr], str,
                       UnaryGrad | GradFn]] = {
    "neg": (NUMERIC_DTYPES, np.negative, lambda x: unary("neg", x), "-x",
            lambda ctx, x, y, g: ctx.add("neg", g)),
    "abs": (NUMERIC_DTYPES, np.abs, lambda x: unary("abs", x), "|x|", _d_abs),
    "exp": (FLOAT_DTYPES, np.exp, lambda x: unary("exp", x), "e**x",
            lambda ctx, x, y, g: ctx.add("mul", g, y)),
    "log": (FLOAT_DTYPES, np.log, lambda x: unary("log", x), "natural logarithm",
            lambda ctx, x, y, g: ctx.add("div", g, x)),
    "sqrt": (FLOAT_DTYPES, np.sqrt, lambda x: unary("sqrt", x), "square root", _d_sqrt),
    "rsqrt": (FLOAT_DTYPES, lambda x: 1 / np.sqrt(x), lambda x: binary("div", _one(x), unary("sqrt", x)),
              "1 / sqrt(x)", _d_rsqrt),
    "reciprocal": (FLOAT_DTYPES, lambda x: 1 / x, lambda x: binary("div", _one(x), x), "1 / x", _d_reciprocal),
    "tanh": (FLOAT_DTYPES, np.tanh, lambda x: unary("tanh", x), "hyperbolic tangent", _d_tanh),
    "sigmoid": (FLOAT_DTYPES, lambda x: 1 / (1 + np.exp(-x)),
                lambda x: binary("div", _one(x), binary("add", _one(x), unary("exp", unary("neg", x)))),
                "1 / (1 + e**-x)", _d_sigmoid),
    "relu": (NUMERIC_DTYPES, lambda x: np.maximum(x, 0).astype(x.dtype), lambda x: binary("max", x, _zero(x)),
             "max(x, 0)", _d_relu),
    "erf": (FLOAT_DTYPES, _erf, lambda x: unary("erf", x), "Gauss error function", _d_erf),
    "sin": (FLOAT_DTYPES, np.sin, lambda x: unary("sin", x), "sine",
            lambda ctx, x, y, g: ctx.add("mul", g, ctx.add("cos", x))),
    "cos": (FLOAT_DTYPES, np.cos, lambda x: unary("cos", x), "cosine",
            lambda ctx, x, y, g: ctx.add("mul", g, ctx.add("neg", ctx.add("sin", x)))),
    "tan": (FLOAT_DTYPES, np.tan, lambda x: unary("tan", x), "tangent", _d_tan),
    "asin": (FLOAT_DTYPES, np.arcsin, lambda x: unary("asin", x), "inverse sine (NaN outside [-1, 1])",
             _over_sqrt(1.0, 1.0, -1.0)),
    "acos": (FLOAT_DTYPES, np.arccos, lambda x: unary("acos", x), "inverse cosine (NaN outside [-1, 1])",
             _over_sqrt(-1.0, 1.0, -1.0)),
    "atan": (FLOAT_DTYPES, np.arctan, lambda x: unary("atan", x), "inverse tangent", _over_square(1.0)),
    "sinh": (FLOAT_DTYPES, np.sinh, lambda x: unary("sinh", x), "hyperbolic sine",
             lambda ctx, x, y, g: ctx.add("mul", g, ctx.add("cosh", x))),
    "cosh": (FLOAT_DTYPES, np.cosh, lambda x: unary("cosh", x), "hyperbolic cosine",
             lambda ctx, x, y, g: ctx.add("mul", g, ctx.add("sinh", x))),
    "asinh": (FLOAT_DTYPES, np.arcsinh, lambda x: unary("asinh", x), "inverse hyperbolic sine",
              _over_sqrt(1.0, 1.0, 1.0)),
    "acosh": (FLOAT_DTYPES, np.arccosh, lambda x: unary("acosh", x), "inverse hyperbolic cosine (NaN below 1)",
              _over_sqrt(1.0, -1.0, 1.0)),
    "atanh": (FLOAT_DTYPES, np.arctanh, lambda x: unary("atanh", x),
              "inverse hyperbolic tangent (+-inf at +-1, NaN outside)", _over_square(-1.0)),
    # piecewise constant: the gradient is 0 almost everywhere
    "floor": (FLOAT_DTYPES, np.floor, lambda x: unary("floor", x), "round down", NO_GRAD),
    "ceil": (FLOAT_DTYPES, np.ceil, lambda x: unary("ceil", x), "round up", NO_GRAD),
    "round": (FLOAT_DTYPES, np.round, lambda x: unary("round", x), "round half to even", NO_GRAD),
    "sign": (NUMERIC_DTYPES, np.sign, _sign, "-1, 0 or 1 (NaN stays NaN)", NO_GRAD),
    "logical_not": (BOOL, np.logical_not, lambda x: unary("not", x), "boolean not", NO_GRAD),
    "bitwise_not": (INT_DTYPES, np.invert, lambda x: unary("not", x), "every bit flipped (integers)", NO_GRAD),
}

# float -> bool tests: name -> (NumPy reference, scalar expression, doc); not differentiable
PREDICATES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[Expr], Expr], str]] = {
    "isnan": (np.isnan, lambda x: binary("ne", x, x), "x is NaN (bool)"),
    "isinf": (np.isinf, lambda x: binary("eq", unary("abs", x), const(math.inf, x.dtype)),
              "x is +inf or -inf (bool; compare with 0 for one sign)"),
}

# name -> (dtypes, result is bool, reference, loop-IR binary op, gradient rule or NO_GRAD)
BINARY: dict[str, tuple[frozenset[DType], bool, Callable[[np.ndarray, np.ndarray], np.ndarray], str,
                        BinaryGrad | GradFn]] = {
    "add": (NUMERIC_DTYPES, False, np.add, "add", lambda ctx, a, b, y, g: (g, g)),
    "sub": (NUMERIC_DTYPES, False, np.subtract, "sub", lambda ctx, a, b, y, g: (g, ctx.add("neg", g))),
    "mul": (NUMERIC_DTYPES, False, np.multiply, "mul",
            lambda ctx, a, b, y, g: (ctx.add("mul", g, b), ctx.add("mul", g, a))),
    "div": (NUMERIC_DTYPES, False, _np_div, "div",  # d/db (a / b) = -y / b
            lambda ctx, a, b, y, g: (ctx.add("div", g, b),
                                     ctx.add("neg", ctx.add("div", ctx.add("mul", g, y), b)))),
    "pow": (FLOAT_DTYPES, False, np.power, "pow", _d_pow),
    "max": (NUMERIC_DTYPES, False, np.maximum, "max", _d_extremum("gt")),
    "min": (NUMERIC_DTYPES, False, np.minimum, "min", _d_extremum("lt")),
    # a mod b = a - b * floor(a / b)
    "mod": (NUMERIC_DTYPES, False, _np_mod, "mod",
            lambda ctx, a, b, y, g: (g, ctx.add("neg", ctx.add("mul", g,
                                                             ctx.add("floor", ctx.add("div", a, b)))))),
    "fmod": (NUMERIC_DTYPES, False, _np_fmod, "fmod", _d_fmod),
    "eq": (ALL_DTYPES, True, np.equal, "eq", NO_GRAD),
    "ne": (ALL_DTYPES, True, np.not_equal, "ne", NO_GRAD),
    "lt": (NUMERIC_DTYPES, True, np.less, "lt", NO_GRAD),
    "le": (NUMERIC_DTYPES, True, np.less_equal, "le", NO_GRAD),
    "gt": (NUMERIC_DTYPES, True, np.greater, "gt", NO_GRAD),
    "ge": (NUMERIC_DTYPES, True, np.greater_equal, "ge", NO_GRAD),
    "logical_and": (BOOL, False, np.logical_and, "and", NO_GRAD),
    "logical_or": (BOOL, False, np.logical_or, "or", NO_GRAD),
    "logical_xor": (BOOL, False, np.logical_xor, "xor", NO_GRAD),
    "bitwise_and": (INT_DTYPES, False, np.bitwise_and, "and", NO_GRAD),
    "bitwise_or": (INT_DTYPES, False, np.bitwise_or, "or", NO_GRAD),
    "bitwise_xor": (INT_DTYPES, False, np.bitwise_xor, "xor", NO_GRAD),
    "shift_left": (INT_DTYPES, False, np.left_shift, "shl", NO_GRAD),
    "shift_right": (INT_DTYPES, False, np.right_shift, "shr", NO_GRAD),
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


def _unary_grad(rule: UnaryGrad | GradFn) -> GradFn:
    if rule is NO_GRAD:
        return NO_GRAD
    unary_rule = cast(UnaryGrad, rule)  # every rule but NO_GRAD in UNARY is a UnaryGrad

    def grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
        return [unary_rule(ctx, node.inputs[0], node.outputs[0], out_grads[0])]

    return grad


def _binary_grad(rule: BinaryGrad | GradFn) -> GradFn:
    if rule is NO_GRAD:
        return NO_GRAD

    def grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
        a, b = node.inputs
        return list(rule(ctx, a, b, node.outputs[0], out_grads[0]))

    return grad


def _unary_scalar(expr: Callable[[Expr], Expr]) -> ScalarFn:
    def scalar(args: Sequence[Expr], attrs: Mapping[str, Any]) -> Expr:
        return expr(args[0])

    return scalar


def _binary_scalar(op: str) -> ScalarFn:
    def scalar(args: Sequence[Expr], attrs: Mapping[str, Any]) -> Expr:
        return binary(op, args[0], args[1])

    return scalar


def _predicate_reference(ref: Callable[[np.ndarray], np.ndarray]) -> ReferenceFn:
    def reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [np.asarray(ref(args[0]))]

    return reference


for _name, (_dtypes, _ref, _expr, _doc, _grad) in UNARY.items():
    register(OpDef(_name, 1, _unary_infer(_name, _dtypes), _unary_reference(_ref),
                   None, grad=_unary_grad(_grad), doc=_doc, scalar=_unary_scalar(_expr)))

def _predicate_infer(name: str) -> Callable:
    def infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        check_dtypes(name, types, FLOAT_DTYPES)
        return [TensorType(types[0].shape, DType.BOOL)]

    return infer


for _name, (_test, _expr, _doc) in PREDICATES.items():
    register(OpDef(_name, 1, _predicate_infer(_name), _predicate_reference(_test),
                   None, grad=NO_GRAD, doc=_doc, scalar=_unary_scalar(_expr)))

for _name, (_dtypes, _to_bool, _binary_ref, _loop_op, _binary_rule) in BINARY.items():
    register(OpDef(_name, 2, _binary_infer(_name, _dtypes, _to_bool), _binary_reference(_binary_ref, _to_bool),
                   None, grad=_binary_grad(_binary_rule), doc=f"elementwise {_name} with NumPy broadcasting",
                   scalar=_binary_scalar(_loop_op)))


def _where_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    cond, a, b = types
    check_dtypes("where", [cond], BOOL)
    dtype = check_dtypes("where", [a, b], ALL_DTYPES)
    return [TensorType(broadcast_shapes("where", cond.shape, a.shape, b.shape), dtype)]


def _where_grad(ctx: GradContext, node: Node, out_grads: Sequence[Value]) -> list[Value | None]:
    """The gradient goes to the branch the condition picked."""
    cond, (g,) = node.inputs[0], out_grads
    return [None, grad_where(ctx, cond, g), ctx.add("where", cond, ctx.const(0.0, g), g)]


register(OpDef(
    "where", 3, _where_infer,
    lambda args, attrs: [np.where(*args).astype(args[1].dtype)],
    None, grad=_where_grad, doc="cond ? a : b with NumPy broadcasting",
    scalar=lambda args, attrs: select(args[0], args[1], args[2])))
