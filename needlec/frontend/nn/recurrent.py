"""Recurrent layers: RNN (tanh or relu) and LSTM, multi-layer, unrolled over the (static) sequence length.

Parameters follow PyTorch: per layer k, ``weight_ih_l{k}`` (gates * hidden,
input), ``weight_hh_l{k}`` (gates * hidden, hidden), ``bias_ih_l{k}`` and
``bias_hh_l{k}``, all initialised uniform in +-1/sqrt(hidden_size). The
LSTM's gate blocks are ordered input, forget, cell (g), output. The input
projection of a whole sequence is one matrix product per layer; only the
hidden-to-hidden product runs per step.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from needlec.errors import NeedlecError, ShapeError
from needlec.frontend import tensor_ops as F
from needlec.frontend.nn.layers import Dropout
from needlec.frontend.nn.module import Module, Parameter, uniform
from needlec.frontend.tensor import Tensor, as_tensor, graph_of


class _Recurrent(Module):
    """The layer stack shared by RNN and LSTM; subclasses define the cell and the state layout."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if num_layers < 1 or hidden_size < 1:
            raise NeedlecError(f"{type(self).__name__}: num_layers and hidden_size must be positive, found "
                               f"{num_layers} and {hidden_size}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        bound = 1 / math.sqrt(hidden_size)
        rows = self.gates * hidden_size
        for k in range(num_layers):
            inputs = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", Parameter(uniform(rng, bound, (rows, inputs))))
            setattr(self, f"weight_hh_l{k}", Parameter(uniform(rng, bound, (rows, hidden_size))))
            if bias:
                setattr(self, f"bias_ih_l{k}", Parameter(uniform(rng, bound, (rows,))))
                setattr(self, f"bias_hh_l{k}", Parameter(uniform(rng, bound, (rows,))))
        self.layer_dropout = Dropout(dropout, rng=rng)  # between layers, in training mode (as PyTorch)

    def _sequence(self, x: Any) -> Tensor:
        """The input as a time-major (T, N, input_size) Tensor, checked."""
        name = type(self).__name__
        t = as_tensor(x, graph_of(x, what=name), name)
        if t.ndim != 3 or t.shape[2] != self.input_size or 0 in t.shape[:2]:
            layout = "(N, T, input_size)" if self.batch_first else "(T, N, input_size)"
            raise ShapeError(f"{name}: expected a non-empty input of shape {layout} with input_size "
                             f"{self.input_size}, found {t.shape}")
        return F.transpose(t, 0, 1) if self.batch_first else t

    def _initial(self, state: Any, batch: int, what: str) -> list[Tensor]:
        """Per-layer (N, hidden) slices of a (num_layers, N, hidden) initial state (zeros when None)."""
        if state is None:
            return [F.zeros((batch, self.hidden_size)) for _ in range(self.num_layers)]
        name = type(self).__name__
        t = as_tensor(state, graph_of(state, what=name), name)
        expected = (self.num_layers, batch, self.hidden_size)
        if t.shape != expected:
            raise ShapeError(f"{name}: {what} must have shape {expected}, found {t.shape}")
        return [t[k] for k in range(self.num_layers)]

    def _layers(self, seq: Tensor, states: list[list[Tensor]]) -> tuple[Tensor, list[list[Tensor]]]:
        """Run every layer over ``seq`` (T, N, features); ``states[k]`` is layer k's state, returned updated."""
        steps, batch = seq.shape[:2]
        for k in range(self.num_layers):
            w_ih, w_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")
            bias = getattr(self, f"bias_ih_l{k}") + getattr(self, f"bias_hh_l{k}") if self.bias else None
            flat = F.reshape(seq, (steps * batch, seq.shape[2]))
            projected = F.reshape(F.linear(flat, w_ih, bias), (steps, batch, -1))
            outputs = []
            for t in range(steps):
                states[k] = self._cell(projected[t] + F.linear(states[k][0], w_hh), states[k])
                outputs.append(states[k][0])
            seq = F.stack(outputs, 0)
            if k < self.num_layers - 1:
                seq = self.layer_dropout(seq)
        return seq, states

    def _cell(self, gates: Tensor, state: list[Tensor]) -> list[Tensor]:
        """The next state (hidden state first) from the summed input and hidden projections (per subclass)."""
        raise NotImplementedError(f"{type(self).__name__} does not define its cell")

    def _output(self, seq: Tensor) -> Tensor:
        return F.transpose(seq, 0, 1) if self.batch_first else seq

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}")


class RNN(_Recurrent):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh (default) or relu.

    ``forward(input, h0=None)`` returns ``(output, h_n)``: output (T, N, hidden)
    (batch first with ``batch_first``) and h_n (num_layers, N, hidden).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 rng: np.random.Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise NeedlecError(f"RNN: nonlinearity must be 'tanh' or 'relu', found {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, rng)
        self.nonlinearity = nonlinearity

    def _cell(self, gates: Tensor, state: list[Tensor]) -> list[Tensor]:
        return [F.tanh(gates) if self.nonlinearity == "tanh" else F.relu(gates)]

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Tensor]:
        seq = self._sequence(input)
        states = [[h] for h in self._initial(hx, seq.shape[1], "h0")]
        seq, states = self._layers(seq, states)
        return self._output(seq), F.stack([s[0] for s in states], 0)


class LSTM(_Recurrent):
    """Long short-term memory: gates i, f, g, o; c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t).

    ``forward(input, (h0, c0)=None)`` returns ``(output, (h_n, c_n))`` with
    PyTorch's shapes.
    """

    gates = 4

    def _cell(self, gates: Tensor, state: list[Tensor]) -> list[Tensor]:
        h = self.hidden_size
        squashed = F.sigmoid(gates)  # one kernel for the three sigmoid gates (the g block is unused)
        i, f, o = squashed[:, :h], squashed[:, h:2 * h], squashed[:, 3 * h:]
        g = F.tanh(gates[:, 2 * h:3 * h])
        c = f * state[1] + i * g
        return [o * F.tanh(c), c]

    def forward(self, input: Any, hx: tuple[Any, Any] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        seq = self._sequence(input)
        h0, c0 = (None, None) if hx is None else hx
        states = [[h, c] for h, c in zip(self._initial(h0, seq.shape[1], "h0"),
                                         self._initial(c0, seq.shape[1], "c0"))]
        seq, states = self._layers(seq, states)
        return self._output(seq), (F.stack([s[0] for s in states], 0), F.stack([s[1] for s in states], 0))
