"""Converters for elementwise ONNX ops: math, comparisons, logic, bitwise, Cast, Where, Clip, variadic
Max/Min/Sum/Mean, and the activations (Elu, Gelu, HardSwish, PRelu, SwiGLU, ...).

Ops with a needlec primitive of the same meaning are table rows (``UNARY``,
``BINARY``); the rest are small decompositions into those primitives. Scalar
constants take the dtype of the tensor they combine with, since needlec's
binary primitives want the same dtype on both sides. Multi-step activations
on f16/bf16 compute in f32 and round once.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ops import composites as C
from needlec.frontend.onnx.context import NodeContext, converter, onnx_dtype
from needlec.frontend.onnx.converters.tensor import cast

# ONNX op type -> needlec primitive, for ops that map one to one
UNARY = {"Neg": "neg", "Abs": "abs", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
         "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Erf": "erf", "Sin": "sin", "Cos": "cos",
         "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh",
         "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh", "Floor": "floor", "Ceil": "ceil",
         "Round": "round", "Sign": "sign", "Not": "logical_not", "BitwiseNot": "bitwise_not", "IsNaN": "isnan"}
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Equal": "eq", "Less": "lt",
          "LessOrEqual": "le", "Greater": "gt", "GreaterOrEqual": "ge", "And": "logical_and", "Or": "logical_or",
          "Xor": "logical_xor", "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or",
          "BitwiseXor": "bitwise_xor"}
# variadic ONNX op -> the binary primitive folded over its inputs
VARIADIC = {"Max": "max", "Min": "min", "Sum": "add", "Mean": "add"}


@converter(*UNARY)
def unary(ctx: NodeContext) -> list[Value]:
    """One-to-one unary ops."""
    return [ctx.add(UNARY[ctx.node.op_type], ctx.input(0))]


@converter(*BINARY)
def binary(ctx: NodeContext) -> list[Value]:
    """One-to-one binary ops (NumPy broadcasting, both sides of one dtype as ONNX requires)."""
    return [ctx.add(BINARY[ctx.node.op_type], ctx.input(0), ctx.input(1))]


@converter(*VARIADIC)
def variadic(ctx: NodeContext) -> list[Value]:
    """Max/Min/Sum/Mean of one or more broadcasting inputs, folded left to right."""
    inputs = ctx.inputs()
    if not inputs:
        raise ctx.error("needs at least one input, given none")
    result = inputs[0]
    for x in inputs[1:]:
        result = ctx.add(VARIADIC[ctx.node.op_type], result, x)
    if ctx.node.op_type == "Mean":
        result = ctx.add("div", result, ctx.scalar(len(inputs), result))
    return [result]


# -- math with ONNX-specific typing or attributes -------------------------------------

@converter("Pow")
def pow_(ctx: NodeContext) -> list[Value]:
    """Pow: the result has the base's dtype; integer bases compute in f64 and convert back (exact while the
    result fits f64's 53-bit significand)."""
    base, exponent = ctx.input(0), ctx.input(1)
    if base.dtype.is_float:
        return [ctx.add("pow", base, cast(ctx, exponent, base.dtype))]
    wide = ctx.add("pow", cast(ctx, base, DType.F64), cast(ctx, exponent, DType.F64))
    return [cast(ctx, wide, base.dtype)]


@converter("Mod")
def mod(ctx: NodeContext) -> list[Value]:
    """Mod: ``fmod=1`` takes the dividend's sign (C fmod), ``fmod=0`` the divisor's (Python %)."""
    a, b = ctx.input(0), ctx.input(1)
    return [ctx.add("fmod" if ctx.attr("fmod", 0) else "mod", a, b)]


@converter("BitShift")
def bit_shift(ctx: NodeContext) -> list[Value]:
    """BitShift LEFT/RIGHT on unsigned (or signed) integers."""
    direction = ctx.attr("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.error(f"direction must be LEFT or RIGHT, found {direction!r}")
    return [ctx.add("shift_left" if direction == "LEFT" else "shift_right", ctx.input(0), ctx.input(1))]


@converter("IsInf")
def is_inf(ctx: NodeContext) -> list[Value]:
    """IsInf with ``detect_positive`` / ``detect_negative`` selecting which infinities count."""
    x = ctx.input(0)
    positive, negative = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
    if not positive and not negative:
        return [ctx.add("fill", shape=list(x.shape), value=0.0, dtype=DType.BOOL)]
    infinite = ctx.add("isinf", x)
    if positive and negative:
        return [infinite]
    sign = ctx.add("gt" if positive else "lt", x, ctx.scalar(0, x))
    return [ctx.add("logical_and", infinite, sign)]


# -- selection, conversion, identity --------------------------------------------------

@converter("Where")
def where(ctx: NodeContext) -> list[Value]:
    """Where(condition, x, y)."""
    return [ctx.add("where", ctx.input(0), ctx.input(1), ctx.input(2))]


@converter("Identity")
def identity(ctx: NodeContext) -> list[Any]:
    """Identity passes its input through (a tensor, or a sequence as the importer holds it)."""
    return [ctx.raw_input(0)]


# the float8 formats, where Cast's ``saturate`` (default 1) clamps out-of-range values to the largest finite one
FLOAT8 = frozenset({DType.F8E4M3FN, DType.F8E4M3FNUZ, DType.F8E5M2, DType.F8E5M2FNUZ})


def _cast_to(ctx: NodeContext, x: Value, dtype: DType) -> Value:
    """``x`` cast to ``dtype``; a float cast to float8 with ``saturate`` first clamps to +-max (NaN stays NaN)."""
    if dtype in FLOAT8 and x.dtype.is_float and ctx.attr("saturate", 1):
        limit = float(ml_dtypes.finfo(dtype.np).max)
        x = ctx.add("min", ctx.add("max", x, ctx.scalar(-limit, x)), ctx.scalar(limit, x))
    return cast(ctx, x, dtype)


@converter("Cast")
def cast_(ctx: NodeContext) -> list[Value]:
    """Cast to attribute ``to`` (``saturate`` for float8 targets; unsupported types are a clear error)."""
    return [_cast_to(ctx, ctx.input(0), onnx_dtype(ctx.attr("to"), f"{ctx.where}: attribute 'to'"))]


@converter("CastLike")
def cast_like(ctx: NodeContext) -> list[Value]:
    """CastLike: cast input 0 to input 1's dtype (``saturate`` as Cast)."""
    return [_cast_to(ctx, ctx.input(0), ctx.input(1).dtype)]


@converter("Clip")
def clip(ctx: NodeContext) -> list[Value]:
    """Clip = min(max(x, lo), hi): bounds are attributes before opset 11 and optional inputs from it on."""
    x = ctx.input(0)
    if ctx.opset < 11:  # absent attributes default to the lowest / highest float: no bound
        lo, hi = (None if ctx.attr(name, None) is None else ctx.scalar(ctx.attr(name), x) for name in ("min", "max"))
    else:
        lo, hi = ctx.optional_input(1), ctx.optional_input(2)
    if lo is not None:
        x = _bounded(ctx, x, lo, "max")
    if hi is not None:
        x = _bounded(ctx, x, hi, "min")
    return [x]


def _bounded(ctx: NodeContext, x: Value, bound: Value, op: str) -> Value:
    """``op(x, bound)`` where a NaN bound limits nothing and a NaN in x stays NaN (ONNX Runtime's Clip)."""
    known = ctx.importer.fold(bound)
    if known is not None:
        return x if np.isnan(known).all() else ctx.add(op, x, bound)
    beyond = ctx.add("lt", bound, x) if op == "min" else ctx.add("lt", x, bound)  # false for either NaN
    return ctx.add("where", beyond, bound, x)


# -- activations ------------------------------------------------------------------
# Each is a function of the input x; f16 and bf16 inputs compute in f32 and round once at the end,
# since rounding every step of a decomposition loses several ulps (``widened``, also used by math.py).

LOW_PRECISION = frozenset({DType.F16, DType.BF16})


def widened(ctx: NodeContext, fn: Callable[..., Value], *inputs: Value) -> Value:
    """``fn(*inputs)``, computed in f32 when the first input is f16 or bf16 (result in the input dtype)."""
    dtype = inputs[0].dtype
    if dtype not in LOW_PRECISION:
        return fn(*inputs)
    return cast(ctx, fn(*(cast(ctx, x, DType.F32) for x in inputs)), dtype)


def _leaky(ctx: NodeContext, x: Value, slope: Value) -> Value:
    """x where x >= 0, else slope * x (LeakyRelu, PRelu)."""
    return ctx.add("where", ctx.add("lt", x, ctx.scalar(0, x)), ctx.add("mul", x, slope), x)


def _swish(ctx: NodeContext, x: Value) -> Value:
    """x * sigmoid(alpha * x) (Swish, and SwiGLU's gate)."""
    alpha = ctx.attr("alpha", 1.0)
    scaled = x if alpha == 1.0 else ctx.add("mul", x, ctx.scalar(alpha, x))
    return ctx.add("mul", x, ctx.add("sigmoid", scaled))


def _hard_sigmoid(ctx: NodeContext, x: Value, alpha: float, beta: float) -> Value:
    """max(0, min(1, alpha * x + beta))."""
    linear = ctx.add("add", ctx.add("mul", x, ctx.scalar(alpha, x)), ctx.scalar(beta, x))
    return ctx.add("max", ctx.add("min", linear, ctx.scalar(1, x)), ctx.scalar(0, x))


def _expm1_scaled(ctx: NodeContext, x: Value, scale: float) -> Value:
    """scale * (e**x - 1)."""
    return ctx.add("mul", ctx.add("sub", ctx.add("exp", x), ctx.scalar(1, x)), ctx.scalar(scale, x))


def _celu(ctx: NodeContext, x: Value) -> Value:
    """max(0, x) + min(0, alpha * (e**(x / alpha) - 1))."""
    alpha = ctx.attr("alpha", 1.0)
    curve = _expm1_scaled(ctx, ctx.add("div", x, ctx.scalar(alpha, x)), alpha)
    return ctx.add("add", ctx.add("relu", x), ctx.add("min", curve, ctx.scalar(0, x)))


def _selu(ctx: NodeContext, x: Value) -> Value:
    """gamma * x for x > 0, gamma * alpha * (e**x - 1) otherwise."""
    alpha, gamma = ctx.attr("alpha", 1.67326319217681884765625), ctx.attr("gamma", 1.05070102214813232421875)
    positive = ctx.add("mul", x, ctx.scalar(gamma, x))
    return ctx.add("where", ctx.add("gt", x, ctx.scalar(0, x)), positive, _expm1_scaled(ctx, x, alpha * gamma))


def _thresholded_relu(ctx: NodeContext, x: Value) -> Value:
    """x where x > alpha, else 0."""
    keep = ctx.add("gt", x, ctx.scalar(ctx.attr("alpha", 1.0), x))
    return ctx.add("where", keep, x, ctx.scalar(0, x))


def _shrink(ctx: NodeContext, x: Value) -> Value:
    """x + bias below -lambd, x - bias above lambd, 0 between."""
    bias, lambd = ctx.scalar(ctx.attr("bias", 0.0), x), ctx.attr("lambd", 0.5)
    above = ctx.add("where", ctx.add("gt", x, ctx.scalar(lambd, x)), ctx.add("sub", x, bias), ctx.scalar(0, x))
    return ctx.add("where", ctx.add("lt", x, ctx.scalar(-lambd, x)), ctx.add("add", x, bias), above)


def _softsign(ctx: NodeContext, x: Value) -> Value:
    """x / (1 + |x|)."""
    return ctx.add("div", x, ctx.add("add", ctx.add("abs", x), ctx.scalar(1, x)))


def _mish(ctx: NodeContext, x: Value) -> Value:
    """x * tanh(softplus(x))."""
    return ctx.add("mul", x, ctx.add("tanh", C.softplus(ctx, x)))


def _gelu(ctx: NodeContext, x: Value) -> Value:
    """x * Phi(x) exactly (``approximate='none'``) or with the tanh approximation (``composites.gelu``)."""
    approximate = ctx.attr("approximate", "none")
    if approximate not in C.GELU_FORMS:
        raise ctx.error(f"approximate must be 'none' or 'tanh', found {approximate!r}")
    return C.gelu(ctx, x, approximate)


ACTIVATIONS: dict[str, Callable[[NodeContext, Value], Value]] = {
    "LeakyRelu": lambda ctx, x: _leaky(ctx, x, ctx.scalar(ctx.attr("alpha", 0.01), x)),
    "Elu": lambda ctx, x: C.elu(ctx, x, ctx.attr("alpha", 1.0)), "Celu": _celu, "Selu": _selu,
    "ThresholdedRelu": _thresholded_relu, "Shrink": _shrink, "Softplus": C.softplus, "Softsign": _softsign,
    "Mish": _mish, "Gelu": _gelu, "Swish": _swish,
    "HardSigmoid": lambda ctx, x: _hard_sigmoid(ctx, x, ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5)),
    "HardSwish": lambda ctx, x: ctx.add("mul", x, _hard_sigmoid(ctx, x, 1 / 6, 0.5)),
}


@converter(*ACTIVATIONS)
def activation(ctx: NodeContext) -> list[Value]:
    """The one-input activations of ``ACTIVATIONS``."""
    return [widened(ctx, lambda x: ACTIVATIONS[ctx.node.op_type](ctx, x), ctx.input(0))]


@converter("PRelu")
def prelu(ctx: NodeContext) -> list[Value]:
    """PRelu: the slope broadcasts to x (unidirectionally)."""
    return [widened(ctx, lambda x, slope: _leaky(ctx, x, slope), ctx.input(0), ctx.input(1))]


@converter("SwiGLU")
def swiglu(ctx: NodeContext) -> list[Value]:
    """SwiGLU: Swish_alpha(gate) * value, inputs of one shape (no broadcasting)."""
    gate, value = ctx.input(0), ctx.input(1)
    if gate.shape != value.shape:
        raise ctx.error(f"inputs must have one shape, found {gate.shape} and {value.shape}")
    return [widened(ctx, lambda g, v: ctx.add("mul", _swish(ctx, g), v), gate, value)]
