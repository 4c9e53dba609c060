"""Converters for elementwise ONNX ops (math, comparisons, logic, activations, Cast, Where, Clip)."""
from __future__ import annotations

from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext, converter

# ONNX op type -> needlec primitive, for ops that map one to one
UNARY = {"Neg": "neg", "Abs": "abs", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
         "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Erf": "erf", "Sin": "sin", "Cos": "cos",
         "Floor": "floor", "Ceil": "ceil", "Round": "round", "Sign": "sign", "Not": "logical_not"}
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Equal": "eq", "Less": "lt",
          "LessOrEqual": "le", "Greater": "gt", "GreaterOrEqual": "ge", "And": "logical_and", "Or": "logical_or",
          "Xor": "logical_xor"}


@converter(*UNARY)
def unary(ctx: NodeContext) -> list[Value]:
    return [ctx.add(UNARY[ctx.node.op_type], ctx.input(0))]


@converter(*BINARY)
def binary(ctx: NodeContext) -> list[Value]:
    return [ctx.add(BINARY[ctx.node.op_type], ctx.input(0), ctx.input(1))]
