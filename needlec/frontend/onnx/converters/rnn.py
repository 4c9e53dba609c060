"""Converters for the recurrent ops RNN, GRU and LSTM, unrolled over the static sequence length.

The input projection ``X W^T + Wb`` of every time step is one matmul before
the loop; each step then adds ``H R^T`` and applies the cell. Directions run
the same cell forward, backward, or both (bidirectional stacks them on the
direction axis). ``sequence_lens`` (a constant or a run-time input) masks the
steps past each batch entry's length: the state is held and Y is zero there,
which walking the steps backwards also turns into ONNX's per-entry reversal.
``layout=1`` swaps the batch and time axes of X, the states and the outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ops import composites as C
from needlec.frontend.onnx.context import NodeContext, converter
from needlec.frontend.onnx.converters.sequence import narrow, reshape, stack, take

Activation = Callable[[Value], Value]
# activation name -> (default alpha, default beta); None where the function takes no such parameter
ACTIVATION_PARAMS: dict[str, tuple[float | None, float | None]] = {
    "relu": (None, None), "tanh": (None, None), "sigmoid": (None, None), "softsign": (None, None),
    "softplus": (None, None), "affine": (1.0, 0.0), "leakyrelu": (0.01, None), "thresholdedrelu": (1.0, None),
    "scaledtanh": (1.0, 1.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, None),
}
DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def make_activation(ctx: NodeContext, name: str, alpha: float | None, beta: float | None,
                    clip: float | None) -> Activation:
    """The ONNX recurrent activation ``name`` as a function building graph nodes (input clipped first)."""
    kind = name.lower()

    def apply(x: Value) -> Value:
        def s(v: float | None) -> Value:
            assert v is not None  # ACTIVATION_PARAMS gives every activation reading alpha or beta a default
            return ctx.scalar(v, x)

        if clip is not None:
            x = ctx.add("max", ctx.add("min", x, s(clip)), s(-clip))
        if kind in ("relu", "tanh", "sigmoid"):
            return ctx.add(kind, x)
        if kind == "affine":
            return ctx.add("add", ctx.add("mul", x, s(alpha)), s(beta))
        if kind == "leakyrelu":
            return ctx.add("where", ctx.add("lt", x, s(0)), ctx.add("mul", x, s(alpha)), x)
        if kind == "thresholdedrelu":
            return ctx.add("where", ctx.add("gt", x, s(alpha)), x, s(0))
        if kind == "scaledtanh":
            return ctx.add("mul", ctx.add("tanh", ctx.add("mul", x, s(beta))), s(alpha))
        if kind == "hardsigmoid":
            line = ctx.add("add", ctx.add("mul", x, s(alpha)), s(beta))
            return ctx.add("max", ctx.add("min", line, s(1)), s(0))
        if kind == "elu":
            assert alpha is not None  # defaulted by ACTIVATION_PARAMS
            return C.elu(ctx, x, alpha)
        if kind == "softsign":
            return ctx.add("div", x, ctx.add("add", ctx.add("abs", x), s(1)))
        return C.softplus(ctx, x)

    return apply


def activations(ctx: NodeContext, op: str, directions: int) -> list[list[Activation]]:
    """Per direction, the cell's activation functions (alphas and betas consumed in order)."""
    names = ctx.attr("activations", DEFAULT_ACTIVATIONS[op] * directions)
    per_direction = len(DEFAULT_ACTIVATIONS[op])
    if len(names) != per_direction * directions:
        raise ctx.error(f"activations lists {len(names)} functions, expected {per_direction * directions}")
    alphas, betas = list(ctx.attr("activation_alpha", [])), list(ctx.attr("activation_beta", []))
    clip = ctx.attr("clip", None)
    functions = []
    for position, name in enumerate(names):
        if name.lower() not in ACTIVATION_PARAMS:
            raise ctx.error(f"unknown activation {name!r}; expected one of {', '.join(sorted(ACTIVATION_PARAMS))}")
        alpha, beta = ACTIVATION_PARAMS[name.lower()]
        alpha = alphas.pop(0) if alpha is not None and alphas else alpha
        beta = betas.pop(0) if beta is not None and betas else beta
        # LSTM's third activation reads the cell state, which is not clipped (as ONNX Runtime does)
        output_activation = op == "LSTM" and position % per_direction == 2
        functions.append(make_activation(ctx, name, alpha, beta, None if output_activation else clip))
    return [functions[d * per_direction:(d + 1) * per_direction] for d in range(directions)]


@dataclass
class Direction:
    """One direction's weights, sliced from the stacked inputs (R transposed, gates on the last axis)."""

    x_proj: Value          # (T, batch, gates*H): X W^T + Wb
    r_t: Value             # (H, gates*H)
    r_bias: Value          # (gates*H,)
    peepholes: Value | None
    acts: list[Activation]


def gate(ctx: NodeContext, x: Value, index: int, hidden: int) -> Value:
    """Gate ``index`` of a (..., gates*H) value."""
    return narrow(ctx, x, -1, index * hidden, (index + 1) * hidden)


def zeros(ctx: NodeContext, like: Value, shape: tuple[int, ...]) -> Value:
    """A zero constant of ``shape`` in ``like``'s dtype (absent biases and initial states)."""
    return ctx.constant(np.zeros(shape, like.dtype.np))


def direction_weights(ctx: NodeContext, op: str, x: Value, d: int, hidden: int,
                      acts: list[Activation]) -> Direction:
    """Direction ``d``'s weights, with the input projection of every step computed at once."""
    gates = GATES[op]
    w, r = take(ctx, ctx.input(1), 0, d), take(ctx, ctx.input(2), 0, d)
    bias = take(ctx, ctx.input(3), 0, d) if ctx.has_input(3) else zeros(ctx, x, (2 * gates * hidden,))
    x_proj = ctx.add("add", ctx.add("matmul", x, ctx.add("permute", w, perm=(1, 0))),
                     narrow(ctx, bias, 0, 0, gates * hidden))
    peepholes = take(ctx, ctx.input(7), 0, d) if op == "LSTM" and ctx.has_input(7) else None
    r_bias = narrow(ctx, bias, 0, gates * hidden, 2 * gates * hidden)
    return Direction(x_proj, ctx.add("permute", r, perm=(1, 0)), r_bias, peepholes, acts)


def recur(ctx: NodeContext, h: Value, r_t: Value) -> Value:
    """``h @ r_t``, zero for a known all-zero state (the absent initial state): ONNX Runtime skips that product, so
    inf/NaN in R do not turn the first step into NaN (0 * inf)."""
    known = ctx.importer.fold(h)
    if known is not None and not known.any():
        return zeros(ctx, h, (h.shape[0], r_t.shape[1]))
    return ctx.add("matmul", h, r_t)


def rnn_cell(ctx: NodeContext, weights: Direction, x_t: Value, state: list[Value], hidden: int) -> list[Value]:
    """H' = f(x W^T + Wb + H R^T + Rb)."""
    (h,) = state
    pre = ctx.add("add", ctx.add("add", x_t, recur(ctx, h, weights.r_t)), weights.r_bias)
    return [weights.acts[0](pre)]


def gru_cell(ctx: NodeContext, weights: Direction, x_t: Value, state: list[Value], hidden: int) -> list[Value]:
    """Update gate z, reset gate r, candidate h (reset applied before or after R_h); H' = (1 - z) h + z H."""
    (h,) = state
    f, g = weights.acts
    recurrent = recur(ctx, h, narrow(ctx, weights.r_t, 1, 0, 2 * hidden))
    gates = ctx.add("add", ctx.add("add", narrow(ctx, x_t, -1, 0, 2 * hidden), recurrent),
                    narrow(ctx, weights.r_bias, 0, 0, 2 * hidden))
    z, r = f(gate(ctx, gates, 0, hidden)), f(gate(ctx, gates, 1, hidden))
    r_h, rb_h = narrow(ctx, weights.r_t, 1, 2 * hidden, 3 * hidden), gate(ctx, weights.r_bias, 2, hidden)
    if ctx.attr("linear_before_reset", 0):
        recurrent_h = ctx.add("mul", r, ctx.add("add", recur(ctx, h, r_h), rb_h))
    else:
        recurrent_h = ctx.add("add", recur(ctx, ctx.add("mul", r, h), r_h), rb_h)
    candidate = g(ctx.add("add", gate(ctx, x_t, 2, hidden), recurrent_h))
    keep = ctx.add("mul", z, h)
    return [ctx.add("add", ctx.add("mul", ctx.add("sub", ctx.scalar(1, z), z), candidate), keep)]


def lstm_cell(ctx: NodeContext, weights: Direction, x_t: Value, state: list[Value], hidden: int) -> list[Value]:
    """Gates i, o, f, c (with peepholes; f = 1 - i under input_forget); C' = f C + i g(c), H' = o h(C')."""
    h, c = state
    f, g, act_h = weights.acts
    gates = ctx.add("add", ctx.add("add", x_t, recur(ctx, h, weights.r_t)), weights.r_bias)
    i_pre, o_pre, f_pre, c_pre = (gate(ctx, gates, k, hidden) for k in range(4))
    peep = weights.peepholes
    if peep is not None:
        i_pre = ctx.add("add", i_pre, ctx.add("mul", gate(ctx, peep, 0, hidden), c))
        f_pre = ctx.add("add", f_pre, ctx.add("mul", gate(ctx, peep, 2, hidden), c))
    i = f(i_pre)
    forget = ctx.add("sub", ctx.scalar(1, i), i) if ctx.attr("input_forget", 0) else f(f_pre)
    c_new = ctx.add("add", ctx.add("mul", forget, c), ctx.add("mul", i, g(c_pre)))
    if peep is not None:
        o_pre = ctx.add("add", o_pre, ctx.add("mul", gate(ctx, peep, 1, hidden), c_new))
    return [ctx.add("mul", f(o_pre), act_h(c_new)), c_new]


CELLS = {"RNN": rnn_cell, "GRU": gru_cell, "LSTM": lstm_cell}


def step_masks(ctx: NodeContext, steps: int, batch: int) -> list[Value] | None:
    """Per time step, a (batch, 1) bool "step < sequence_lens" (None when every entry runs all steps)."""
    if not ctx.has_input(4):
        return None
    known = ctx.const(4)
    if known is not None and np.all(known == steps):
        return None
    lengths = reshape(ctx, ctx.add("cast", ctx.input(4), dtype=DType.I64), (batch, 1))
    return [ctx.add("lt", ctx.constant(np.int64(t)), lengths) for t in range(steps)]


def initial_state(ctx: NodeContext, i: int, x: Value, d: int, batch: int, hidden: int, layout: int) -> Value:
    """Direction ``d``'s (batch, H) slice of state input ``i`` (zeros when absent)."""
    if not ctx.has_input(i):
        return zeros(ctx, x, (batch, hidden))
    return take(ctx, ctx.input(i), 1 if layout else 0, d)


def check_weight_shapes(ctx: NodeContext, op: str, directions: int, hidden: int, input_size: int, batch: int,
                        layout: int) -> None:
    """An error naming the first of W, R, B, sequence_lens, initial_h, initial_c, P whose shape is not ONNX's."""
    gates = GATES[op]
    state = (batch, directions, hidden) if layout else (directions, batch, hidden)
    expected = {1: ("W", (directions, gates * hidden, input_size)), 2: ("R", (directions, gates * hidden, hidden)),
                3: ("B", (directions, 2 * gates * hidden)), 4: ("sequence_lens", (batch,)),
                5: ("initial_h", state), 6: ("initial_c", state), 7: ("P", (directions, 3 * hidden))}
    for i, (name, shape) in expected.items():
        if ctx.has_input(i) and ctx.input(i).shape != shape:
            raise ctx.error(f"input {i} ({name}) has shape {ctx.input(i).shape}, expected {shape} (direction "
                            f"count {directions}, hidden_size {hidden}, input size {input_size}, batch {batch})")


def recurrent(ctx: NodeContext, op: str) -> list[Value | None]:
    """Y (T, dirs, batch, H), Y_h (dirs, batch, H) and, for LSTM, Y_c, in ONNX's layout."""
    x = ctx.input(0)
    layout = ctx.attr("layout", 0)
    if x.type.rank != 3:
        raise ctx.error(f"X must be 3-D, found shape {x.shape}")
    if layout:
        x = ctx.add("permute", x, perm=(1, 0, 2))
    steps, batch, input_size = x.shape
    if steps == 0:
        raise ctx.error("X has sequence length 0; a recurrence needs at least one step")
    if ctx.input(2).type.rank != 3:
        raise ctx.error(f"R must be 3-D (directions, gates*hidden, hidden), found shape {ctx.input(2).shape}")
    hidden = ctx.attr("hidden_size", ctx.input(2).shape[-1])
    direction = ctx.attr("direction", "forward")
    directions = 2 if direction == "bidirectional" else 1
    if ctx.input(1).type.rank == 3 and ctx.input(1).shape[0] != directions:
        raise ctx.error(f"W has {ctx.input(1).shape[0]} directions, direction={direction!r} needs {directions}")
    check_weight_shapes(ctx, op, directions, hidden, input_size, batch, layout)
    masks = step_masks(ctx, steps, batch)
    state_inputs = [5, 6] if op == "LSTM" else [5]
    ys, finals = [], []
    for d, acts in enumerate(activations(ctx, op, directions)):
        weights = direction_weights(ctx, op, x, d, hidden, acts)
        state = [initial_state(ctx, i, x, d, batch, hidden, layout) for i in state_inputs]
        outputs: list[Value] = []
        backwards = direction == "reverse" or d == 1
        for t in (reversed(range(steps)) if backwards else range(steps)):
            new = CELLS[op](ctx, weights, take(ctx, weights.x_proj, 0, t), state, hidden)
            if masks is not None:
                new = [ctx.add("where", masks[t], n, s) for n, s in zip(new, state)]
                outputs.append(ctx.add("where", masks[t], new[0], ctx.scalar(0, x)))
            else:
                outputs.append(new[0])
            state = new
        ys.append(stack(ctx, outputs[::-1] if backwards else outputs, 0))
        finals.append(state)
    y = stack(ctx, ys, 1)                                        # (T, dirs, batch, H)
    y_h = stack(ctx, [s[0] for s in finals], 0)                  # (dirs, batch, H)
    y_c = stack(ctx, [s[1] for s in finals], 0) if op == "LSTM" else None
    if layout:
        y = ctx.add("permute", y, perm=(2, 0, 1, 3))
        y_h = ctx.add("permute", y_h, perm=(1, 0, 2))
        y_c = ctx.add("permute", y_c, perm=(1, 0, 2)) if y_c is not None else None
    return [y, y_h, y_c][:ctx.num_outputs]


@converter("RNN")
def rnn(ctx: NodeContext) -> list[Value | None]:
    return recurrent(ctx, "RNN")


@converter("GRU")
def gru(ctx: NodeContext) -> list[Value | None]:
    return recurrent(ctx, "GRU")


@converter("LSTM")
def lstm(ctx: NodeContext) -> list[Value | None]:
    return recurrent(ctx, "LSTM")
