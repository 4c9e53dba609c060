"""Normalisation layers: BatchNorm1d, BatchNorm2d and LayerNorm (PyTorch parameters, buffers and semantics)."""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Sequence

import numpy as np

from needlec.errors import NeedlecError, ShapeError
from needlec.frontend.nn import functional as NF
from needlec.frontend.nn.module import Buffer, Module, Parameter
from needlec.frontend.tensor import Tensor, active_context, as_tensor, graph_of


class _BatchNorm(Module):
    """Batch normalisation over axis 1 of an (N, C, ...) input; the subclasses fix the accepted ranks.

    Training mode normalises with the batch's mean and biased variance; eval
    mode with the running statistics (when ``track_running_stats``, else with
    the batch's too). ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` are Buffers: saved in ``state_dict`` as in
    PyTorch, but never changed by a forward pass, because a traced graph is
    pure. In training mode the forward pass instead *proposes* their next
    values (PyTorch's update: ``(1 - momentum) * running + momentum * batch``
    with the unbiased batch variance; a cumulative average when ``momentum``
    is None) to a trace that sets ``track_state_updates``; the training-step
    compiler turns the buffers into graph variables and applies them.
    """

    ranks: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, np.float32)) if affine else None
        if track_running_stats:
            self.running_mean = Buffer(np.zeros(num_features, np.float32))
            self.running_var = Buffer(np.ones(num_features, np.float32))
            self.num_batches_tracked = Buffer(np.array(0, np.int64))

    def forward(self, x: Any) -> Tensor:
        t = as_tensor(x, graph_of(x, what=type(self).__name__), type(self).__name__)
        if t.ndim not in self.ranks or t.shape[1] != self.num_features:
            expected = " or ".join(f"{r}-D" for r in self.ranks)
            raise ShapeError(f"{type(self).__name__}({self.num_features}): expected a {expected} input with "
                             f"{self.num_features} channels on axis 1, found shape {t.shape}")
        if not self.training and self.track_running_stats:
            return NF.batch_norm(t, self.running_mean, self.running_var, self.weight, self.bias, eps=self.eps)
        count = t.size // self.num_features
        if self.training and count <= 1:
            raise ShapeError(f"{type(self).__name__}: training needs more than 1 value per channel, found input "
                             f"shape {t.shape}")
        y, mean, var = NF.batch_norm_training(t, self.weight, self.bias, self.eps)
        if self.training and self.track_running_stats:
            self._propose_running_statistics(mean, var, count)
        return y

    def _propose_running_statistics(self, mean: Tensor, var: Tensor, count: int) -> None:
        """Propose PyTorch's running-statistics update to the trace, if it tracks state updates."""
        context = active_context(type(self).__name__)
        if not context.track_state_updates:
            return
        batches = self.num_batches_tracked + 1
        factor: Any = self.momentum if self.momentum is not None else 1.0 / batches.astype(mean.dtype)
        unbiased = var * (count / (count - 1))
        context.propose_update(self.running_mean, (1.0 - factor) * self.running_mean + factor * mean)
        context.propose_update(self.running_var, (1.0 - factor) * self.running_var + factor * unbiased)
        context.propose_update(self.num_batches_tracked, batches)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs (see ``_BatchNorm``)."""

    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs (see ``_BatchNorm``)."""

    ranks = (4,)


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` axes; ``weight`` (ones) and ``bias`` (zeros) of that shape."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True) -> None:
        super().__init__()
        shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) \
            else tuple(int(d) for d in normalized_shape)
        if not shape or math.prod(shape) == 0:
            raise NeedlecError(f"LayerNorm: normalized_shape must be non-empty with no zero dimension, "
                               f"found {shape}")
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = Parameter(np.ones(shape, np.float32)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, np.float32)) if elementwise_affine and bias else None

    def forward(self, x: Any) -> Tensor:
        return NF.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
