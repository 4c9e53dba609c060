"""Basic layers: Linear, Conv2d, pooling, Flatten, Embedding, Dropout and the containers Sequential and Residual."""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Hashable, Iterator

import numpy as np

from needlec.errors import NeedlecError
from needlec.frontend import tensor_ops as F
from needlec.frontend.nn import functional as NF
from needlec.frontend.nn.module import Module, Parameter, generator, uniform
from needlec.frontend.tensor import Tensor, active_context, as_tensor, graph_of

# Dropout at step t draws from offset t * DROPOUT_STEP_STRIDE of its random stream: room for 2**40
# random numbers per step, so the calls within one step never reach the next step's numbers.
DROPOUT_STEP_STRIDE = 2 ** 40


class Linear(Module):
    """y = x @ weight.T + bias, weight of shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        bound = 1 / math.sqrt(in_features) if in_features else 0.0
        self.weight = Parameter(uniform(rng, bound, (out_features, in_features)))
        self.bias = Parameter(uniform(rng, bound, (out_features,))) if bias else None

    def forward(self, x: Any) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution over NCHW inputs; weight of shape (out, in / groups, kh, kw)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: F.IntPair, stride: F.IntPair = 1,
                 padding: F.IntPair = 0, dilation: F.IntPair = 1, groups: int = 1, bias: bool = True,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise NeedlecError(f"Conv2d: in_channels {in_channels} and out_channels {out_channels} must be "
                               f"divisible by groups {groups}")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        fan_in = in_channels // groups * kh * kw
        bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
        self.weight = Parameter(uniform(rng, bound, (out_channels, in_channels // groups, kh, kw)))
        self.bias = Parameter(uniform(rng, bound, (out_channels,))) if bias else None

    def forward(self, x: Any) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Merge axes ``start_dim..end_dim`` (by default every axis but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Any) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class MaxPool2d(Module):
    """Max pooling over the last two axes (stride defaults to the kernel size)."""

    def __init__(self, kernel_size: F.IntPair, stride: F.IntPair | None = None, padding: F.IntPair = 0,
                 dilation: F.IntPair = 1, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Any) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling over the last two axes (padding counted in the divisor by default, as in PyTorch)."""

    def __init__(self, kernel_size: F.IntPair, stride: F.IntPair | None = None, padding: F.IntPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Any) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Embedding(Module):
    """A lookup table: integer indices -> rows of ``weight`` (num_embeddings, embedding_dim), init N(0, 1).

    With ``padding_idx`` that row starts at zero and never receives a gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise NeedlecError(f"Embedding: padding_idx {padding_idx} is out of range for {num_embeddings} "
                               f"embeddings")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        weight = generator(rng).standard_normal((num_embeddings, embedding_dim)).astype(np.float32)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0.0
        self.weight = Parameter(weight)

    def forward(self, indices: Any) -> Tensor:
        return NF.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"


class Dropout(Module):
    """Zero elements with probability ``p`` in training mode (scaling the rest by 1 / (1 - p)); identity in eval.

    The mask is reproducible: it is a pure function of ``seed`` (drawn from the
    init generator unless given), ``step`` and the call's position in the
    trace. Call number k of step t draws ``random_uniform`` numbers from offset
    ``t * 2**40 + (numbers drawn by earlier calls with this seed in the same
    trace)``, so a Dropout used twice in one forward pass draws two masks.
    Advance ``step`` to draw new masks; ``needlec.grad`` re-traces when it
    changes. Inside a trace whose context has a run-time ``step`` (a compiled
    training step), that step is added to ``step`` at run time, so every
    compiled step draws new masks.
    """

    def __init__(self, p: float = 0.5, seed: int | None = None, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise NeedlecError(f"Dropout: probability p must be in [0, 1], found {p}")
        self.p = p
        self.seed = int(generator(rng).integers(2 ** 62)) if seed is None else seed
        self.step = 0

    def forward(self, x: Any) -> Tensor:
        t = as_tensor(x, graph_of(x, what="Dropout"), "Dropout")
        if not self.training or self.p == 0.0:
            return t
        context = active_context("Dropout")
        offset = self.step * DROPOUT_STEP_STRIDE + context.random_offset(self.seed, t.size)
        run_offset = None if context.step is None else context.step * DROPOUT_STEP_STRIDE
        return NF.dropout(t, self.p, True, seed=self.seed, offset=offset, run_offset=run_offset)

    def trace_key(self) -> Hashable:
        return self.training, self.p, self.seed, self.step

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Modules applied in order; sub-Modules are named ``0``, ``1``, ..."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, module in enumerate(modules):
            setattr(self, str(i), module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*list(self._modules.values())[index])
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class Residual(Module):
    """x + body(x): a skip connection around ``body`` (whose output must have x's shape)."""

    def __init__(self, body: Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Any) -> Tensor:
        return x + self.body(x)
