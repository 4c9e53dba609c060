"""What watches a compilation: ``Instrumentation`` (hooks around every pass) and ``Stage`` (a named step outside
the pass table: code generation, LLVM, linking).

Kept apart from ``pipeline.py`` and free of heavy imports, so that what only
reports (``needlec/progress.py``, the build steps) loads without the pass
table, the IR or NumPy.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from needlec.compiler.passes import Pass

Stage = Callable[[str], AbstractContextManager]  # reports a named step outside the pass table (codegen, linking)


def no_stage(name: str) -> AbstractContextManager:
    """A ``Stage`` that reports nothing."""
    return nullcontext()


class Instrumentation:
    """Hooks the pass manager calls around every pass; the defaults do nothing."""

    def run_pass(self, p: Pass, run: Callable[[], Any]) -> Any:
        """Run pass ``p`` by calling ``run()`` and return its result (wrap it to time or report it)."""
        return run()

    def after_pass(self, position: int, p: Pass, ir: Any) -> None:
        """Inspect the IR ``p`` produced; raising fails the pass."""

    def finish(self, timings: Sequence[tuple[str, float]]) -> None:
        """Called once after the last pass with the seconds each pass took."""
