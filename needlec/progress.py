"""Progress of a long compilation: one line per finished stage (pass, code generation, linking).

``Progress`` is a pipeline ``Instrumentation`` (each pass is a stage) and a
``Stage`` for the steps after the pipeline (rendering, LLVM, linking).

A line reads ``needlec: <stage> <duration>``. ``Progress("always")`` prints
every stage (the CLI's ``compile``), ``Progress("auto")`` stays silent until
the compilation has run for ``AUTO_DELAY`` seconds and then prints the stages
so far and every later one (``needlec.compile``), ``Progress("never")``
prints nothing. On a terminal the running stage's name is shown while it
runs. Lines go to ``stream`` (standard error by default), so they never mix
with IR dumps or results on standard output.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from needlec.compiler.passes import Pass
from needlec.compiler.pipeline import Instrumentation
from needlec.errors import NeedlecError

MODES = ("always", "auto", "never")
AUTO_DELAY = 2.0  # seconds of compilation before "auto" starts reporting


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms" if seconds < 1 else f"{seconds:8.2f} s "


class Progress(Instrumentation):
    """Reports the named stages of one compilation on ``stream``; see the module docstring."""

    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        if mode not in MODES:
            raise NeedlecError(f"unknown progress mode {mode!r}; expected one of {', '.join(MODES)}")
        self.mode = mode
        self._stream = stream
        self._start = time.perf_counter()
        self._pending: list[str] = []  # finished stages not printed yet ("auto" before AUTO_DELAY)

    @staticmethod
    def from_flag(flag: bool | None) -> Progress:
        """``True``: always, ``False``: never, ``None``: auto."""
        return Progress({True: "always", False: "never", None: "auto"}[flag])

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def _live(self) -> bool:
        """Whether stages are printed as they finish (rather than held back or dropped)."""
        if self.mode == "auto" and time.perf_counter() - self._start >= AUTO_DELAY:
            self.mode = "always"
        return self.mode == "always"

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed work as stage ``name`` and report it when it finishes."""
        tty = self._live() and self.stream.isatty()
        if tty:
            self.stream.write(f"needlec: {name} ...")
            self.stream.flush()
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            if tty:
                self.stream.write(" failed\n")
            raise
        line = f"needlec: {name:<28}{_duration(time.perf_counter() - start)}"
        if self.mode == "never":
            return
        self._pending.append(line)
        if self._live():
            self.stream.write("\r" if tty else "")
            self.stream.write("".join(text + "\n" for text in self._pending))
            self.stream.flush()
            self._pending.clear()

    def run_pass(self, p: Pass, run: Callable[[], Any]) -> Any:
        """Each pass is a stage named after it."""
        with self.stage(p.name):
            return run()
