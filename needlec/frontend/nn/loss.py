"""Loss Modules wrapping ``needlec.frontend.losses`` (PyTorch's names and constructor arguments)."""
from __future__ import annotations

from typing import Any

from needlec.frontend import losses
from needlec.frontend.nn.module import Module
from needlec.frontend.tensor import Tensor


class CrossEntropyLoss(Module):
    """``losses.cross_entropy(input, target)`` with the settings given here."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input: Any, target: Any) -> Tensor:
        return losses.cross_entropy(input, target, reduction=self.reduction, ignore_index=self.ignore_index,
                                    label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(Module):
    """``losses.mse_loss(input, target)``."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Any, target: Any) -> Tensor:
        return losses.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class BCEWithLogitsLoss(Module):
    """``losses.binary_cross_entropy_with_logits(input, target)`` with optional ``weight`` and ``pos_weight``."""

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__()
        self.weight, self.reduction, self.pos_weight = weight, reduction, pos_weight

    def forward(self, input: Any, target: Any) -> Tensor:
        return losses.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                       pos_weight=self.pos_weight)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
