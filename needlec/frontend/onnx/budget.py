"""The size budget: a cap on the memory and work a model can make the importer ask for.

A model's numbers (dimensions, attributes, external data lengths, trip
counts) drive allocation and unrolling at import time, so a malformed model
could ask for terabytes or for a trillion unrolled steps. Every such size is
checked against a ``SizeBudget`` *before* anything is allocated or unrolled.
One number, ``elements``, sets it (``size_budget=`` in the API,
``--size-budget`` on the command line); the other limits derive from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Iterable

from needlec.frontend.onnx.context import OnnxImportError

DEFAULT_ELEMENTS = 2 ** 31  # per tensor: 8 GiB of f32, far above real weights (BERT-base's largest is 23M elements)
ELEMENTS_PER_STEP = 2048  # unrolled Loop/Scan steps allowed = elements // this (about a million by default)
WINDOW_WORK_FACTOR = 64  # a windowed op may do this many times the budget in multiply-adds (output x window)


class SizeBudgetError(OnnxImportError):
    """A model asks for more elements, window work or unrolled steps than the size budget allows."""


def _readable_bytes(count: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


@dataclass(frozen=True)
class SizeBudget:
    """The most elements any one tensor may have; the step and window-work limits follow from it."""

    elements: int = DEFAULT_ELEMENTS

    @classmethod
    def of(cls, size_budget: int | SizeBudget | None) -> SizeBudget:
        """The budget ``size_budget`` names: None for the default, an element count, or a budget."""
        if isinstance(size_budget, SizeBudget):
            return size_budget
        if size_budget is None:
            return cls()
        if isinstance(size_budget, bool) or not isinstance(size_budget, int) or size_budget <= 0:
            raise OnnxImportError(f"size_budget must be a positive number of elements, found {size_budget!r}")
        return cls(size_budget)

    @property
    def steps(self) -> int:
        """The most Loop/Scan steps the importer unrolls in one model."""
        return max(1, self.elements // ELEMENTS_PER_STEP)

    def _over(self, where: str, what: str, amount: str, limit: str) -> SizeBudgetError:
        return SizeBudgetError(f"{where}: {what} would need {amount}, over the size budget of {limit}; raise it "
                               "with --size-budget / size_budget=")

    def check_elements(self, count: int, itemsize: int, where: str, what: str) -> None:
        """SizeBudgetError when ``count`` elements of ``itemsize`` bytes exceed the budget."""
        if count > self.elements:
            raise self._over(where, what, f"{count} elements ({_readable_bytes(count * itemsize)})",
                             f"{self.elements} elements")

    def check_shape(self, shape: Iterable[int], itemsize: int, where: str, what: str) -> None:
        """``check_elements`` for a shape (dimensions already known to be >= 0)."""
        self.check_elements(math.prod(shape), itemsize, where, what)

    def check_window(self, outputs: int, window: int, where: str) -> None:
        """SizeBudgetError when a windowed op's work (output elements x window elements) is over the budget."""
        if outputs * window > self.elements * WINDOW_WORK_FACTOR:
            raise self._over(where, f"a window of {window} elements over {outputs} outputs",
                             f"{outputs * window} steps", f"{self.elements * WINDOW_WORK_FACTOR} steps "
                             f"({WINDOW_WORK_FACTOR} x {self.elements})")

    def check_steps(self, total: int, where: str) -> None:
        """SizeBudgetError when ``total`` unrolled Loop/Scan steps exceed the budget."""
        if total > self.steps:
            raise self._over(where, "unrolling the loop", f"{total} unrolled steps in all",
                             f"{self.steps} steps (size budget / {ELEMENTS_PER_STEP})")
