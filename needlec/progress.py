"""Progress of a long compilation: a bar on a terminal, one line per stage elsewhere, records through logging.

``Progress`` is a pipeline ``Instrumentation`` (each pass is a stage) and a
``Stage`` for the steps after the pipeline (rendering, the LLVM stages,
linking). Every finished stage is a DEBUG record on the ``needlec.progress``
logger, and so is the total when the ``Progress`` is closed; ``needlec`` has a
``NullHandler``, so the library logs nothing unless the application
configures ``logging``.

What a ``Progress`` shows on ``stream`` (standard error by default), by ``show``:

* ``True`` (the CLI's ``compile``, ``needlec.compile(progress=True)``): on a
  terminal a progress bar (tqdm) naming the running stage, with stages done
  out of those expected, elapsed time and ETA, refreshed while a long stage
  (LLVM's O3) runs; elsewhere (a pipe, a log file) one plain line per
  finished stage, ``needlec: <stage> <duration>``; then a total.
* ``None`` (``needlec.compile``'s default, ``needlec ir`` / ``run``): the bar
  only, on a terminal, once the compilation has run for ``AUTO_DELAY``
  seconds, erased when it ends; nothing in a pipe or a notebook log.
* ``False``: nothing.

Use it as a context manager: leaving it closes the bar and reports the total.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from needlec.compiler.instrument import Instrumentation

if TYPE_CHECKING:
    from needlec.compiler.passes import Pass

log = logging.getLogger(__name__)

AUTO_DELAY = 2.0  # seconds of compilation before ``show=None`` displays its bar
REFRESH = 0.25  # seconds between redraws of the bar while a stage runs


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms" if seconds < 1 else f"{seconds:8.2f} s "


class Progress(Instrumentation):
    """Reports the stages of one compilation (see the module docstring); ``expected`` stages size the bar."""

    def __init__(self, show: bool | None = None, stream: TextIO | None = None, expected: int = 0) -> None:
        self.show = show
        self.expected = expected
        self.done = 0
        self._stream = stream
        self._start = time.perf_counter()
        self._stages: list[tuple[str, float]] = []
        self._running: str | None = None
        self._label = ""  # what the bar names: the running stage, else the last one, "done" when closed
        self._bar: Any = None  # a tqdm bar once displayed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def expect(self, stages: int) -> None:
        """Announce ``stages`` more stages (they size the bar; more may still come)."""
        self.expected += stages

    def _terminal(self) -> bool:
        return self.show is not False and self.stream.isatty()

    def _lines(self) -> bool:
        """Whether finished stages are printed as plain lines (shown, not on a terminal)."""
        return self.show is True and not self.stream.isatty()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed work as stage ``name`` and report it when it finishes."""
        with self._lock:
            self._running = self._label = name
            self._redraw()
        if self._terminal() and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="needlec-progress", daemon=True)
            self._ticker.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            with self._lock:
                self._running = None
                self._stages.append((name, seconds))
                self.done += 1
                self._redraw()
            log.debug("%s: %.3f s", name, seconds)
        if self._lines():
            self.stream.write(f"needlec: {name:<28}{_duration(seconds)}\n")
            self.stream.flush()

    def _redraw(self) -> None:
        """Show the bar when it is due and bring it up to date (called with the lock held)."""
        if not self._terminal():
            return
        if self._bar is None:
            if self.show is None and time.perf_counter() - self._start < AUTO_DELAY:
                return
            from tqdm import tqdm

            self._bar = tqdm(total=max(self.expected, self.done + 1), initial=self.done, file=self.stream,
                             unit="stage", leave=self.show is True, dynamic_ncols=True,
                             bar_format="needlec: {desc} {bar} {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
        bar = self._bar
        bar.total = max(self.expected, self.done + (self._running is not None))
        bar.n = self.done
        bar.set_description_str(self._label, refresh=False)
        bar.refresh()

    def _tick(self) -> None:
        """Redraw while stages run, so the elapsed time moves during a long one."""
        while not self._stop.wait(REFRESH):
            with self._lock:
                self._redraw()

    def run_pass(self, p: Pass, run: Callable[[], Any]) -> Any:
        """Each pass is a stage named after it."""
        with self.stage(p.name):
            return run()

    def close(self, failed: bool = False) -> None:
        """Stop the bar; unless ``failed``, report the total (a line when shown, a DEBUG record always)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self._bar is not None:
                if not failed:  # the stages expected but not run (a build without weights) are not missing
                    self.expected, self._label = self.done, "done"
                    self._redraw()
                self._bar.close()
                self._bar = None
        if failed or not self._stages:
            return
        total = time.perf_counter() - self._start
        name, slowest = max(self._stages, key=lambda stage: stage[1])
        summary = f"{len(self._stages)} stages in {total:.2f} s; slowest: {name} {slowest:.2f} s"
        log.debug("compiled: %s", summary)
        if self.show is True:
            self.stream.write(f"needlec: {summary}\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close(failed=kind is not None)
