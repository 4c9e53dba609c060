"""Converters for the ai.onnx.preview.training optimizers: Adagrad, Adam and Momentum.

Each node updates one or more tensors at once: inputs are the learning rate R,
the step count T, then the tensors X, gradients G and the optimizer states,
grouped by kind (all X, then all G, ...); outputs are the new X, then the new
states, grouped the same way. The step count is a run-time input, so its
effects (Adagrad's decay, Adam's bias correction, Momentum's first-step
coefficient) are built in the graph; the scalar coefficients are computed in
f64 and cast to the tensors' dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext, converter

DOMAIN = "ai.onnx.preview.training"


@dataclass
class Step:
    """The shared scalars of one update: learning rate and step count (f64), and whether T > 0."""

    rate: Value
    count: Value
    started: Value


Update = Callable[[NodeContext, Step, list[Value]], list[Value]]


def grouped(ctx: NodeContext, groups: int, update: Update) -> list[Value]:
    """Apply ``update(ctx, step, [x, g, states...])`` to each tensor; outputs grouped by kind."""
    tensors = ctx.num_inputs - 2
    if tensors <= 0 or tensors % groups:
        raise ctx.error(f"expected R, T and {groups} inputs per optimized tensor, found {ctx.num_inputs} inputs")
    count = tensors // groups
    t = ctx.input(1)
    step = Step(ctx.add("cast", ctx.input(0), dtype=DType.F64), ctx.add("cast", t, dtype=DType.F64),
                ctx.add("gt", t, ctx.scalar(0, t)))
    results = [update(ctx, step, [ctx.input(2 + k * count + i) for k in range(groups)]) for i in range(count)]
    return [per_tensor[kind] for kind in range(groups - 1) for per_tensor in results]


def f64(ctx: NodeContext, value: float) -> Value:
    return ctx.constant(value, DType.F64)


def like(ctx: NodeContext, scalar: Value, x: Value) -> Value:
    """An f64 scalar coefficient in ``x``'s dtype."""
    return ctx.add("cast", scalar, dtype=x.dtype)


def regularized(ctx: NodeContext, x: Value, g: Value) -> Value:
    """``norm_coefficient * x + g``: the gradient with the L2 regularization term."""
    return ctx.add("add", ctx.add("mul", ctx.scalar(ctx.attr("norm_coefficient", 0.0), x), x), g)


@converter(f"{DOMAIN}::Adagrad")
def adagrad(ctx: NodeContext) -> list[Value]:
    def update(ctx: NodeContext, step: Step, tensors: list[Value]) -> list[Value]:
        x, g, h = tensors
        decay = ctx.add("mul", step.count, f64(ctx, ctx.attr("decay_factor", 0.0)))
        decayed = ctx.add("div", step.rate, ctx.add("add", f64(ctx, 1.0), decay))
        g = regularized(ctx, x, g)
        h_new = ctx.add("add", h, ctx.add("mul", g, g))
        denominator = ctx.add("add", ctx.add("sqrt", h_new), ctx.scalar(ctx.attr("epsilon", 0.0), x))
        x_new = ctx.add("sub", x, ctx.add("div", ctx.add("mul", like(ctx, decayed, x), g), denominator))
        return [x_new, h_new]

    return grouped(ctx, 3, update)


@converter(f"{DOMAIN}::Adam")
def adam(ctx: NodeContext) -> list[Value]:
    alpha, beta = ctx.attr("alpha", 0.9), ctx.attr("beta", 0.999)

    def update(ctx: NodeContext, step: Step, tensors: list[Value]) -> list[Value]:
        x, g, v, h = tensors
        g = regularized(ctx, x, g)
        v_new = ctx.add("add", ctx.add("mul", ctx.scalar(alpha, v), v), ctx.add("mul", ctx.scalar(1 - alpha, g), g))
        h_new = ctx.add("add", ctx.add("mul", ctx.scalar(beta, h), h),
                        ctx.add("mul", ctx.scalar(1 - beta, g), ctx.add("mul", g, g)))
        denominator = ctx.add("add", ctx.add("sqrt", h_new), ctx.scalar(ctx.attr("epsilon", 0.0), x))
        one = f64(ctx, 1.0)
        beta_power = ctx.add("pow", f64(ctx, beta), step.count)
        alpha_power = ctx.add("pow", f64(ctx, alpha), step.count)
        corrected = ctx.add("div", ctx.add("mul", step.rate, ctx.add("sqrt", ctx.add("sub", one, beta_power))),
                            ctx.add("sub", one, alpha_power))
        adjusted = ctx.add("where", step.started, corrected, step.rate)
        x_new = ctx.add("sub", x, ctx.add("mul", like(ctx, adjusted, x), ctx.add("div", v_new, denominator)))
        x_new = ctx.add("mul", ctx.scalar(1 - ctx.attr("norm_coefficient_post", 0.0), x), x_new)
        return [x_new, v_new, h_new]

    return grouped(ctx, 4, update)


@converter(f"{DOMAIN}::Momentum")
def momentum(ctx: NodeContext) -> list[Value]:
    alpha, beta, mode = ctx.attr("alpha"), ctx.attr("beta"), ctx.attr("mode")
    if mode not in ("standard", "nesterov"):
        raise ctx.error(f"mode {mode!r} is not 'standard' or 'nesterov'")

    def update(ctx: NodeContext, step: Step, tensors: list[Value]) -> list[Value]:
        x, g, v = tensors
        g = regularized(ctx, x, g)
        coefficient = ctx.add("where", step.started, ctx.scalar(beta, x), ctx.scalar(1, x))
        v_new = ctx.add("add", ctx.add("mul", ctx.scalar(alpha, v), v), ctx.add("mul", coefficient, g))
        direction = v_new if mode == "standard" else ctx.add("add", g, ctx.add("mul", ctx.scalar(alpha, v_new), v_new))
        return [ctx.add("sub", x, ctx.add("mul", like(ctx, step.rate, x), direction)), v_new]

    return grouped(ctx, 3, update)
