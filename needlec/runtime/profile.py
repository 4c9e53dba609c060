"""Per-kernel profiles of a loaded model: time per kernel, its share, achieved rates, Chrome trace events.

A model built by this needlec exports three profiling symbols
(``needlec/abi.py``): a switch, per-kernel counters its entry point fills
while the switch is on (``CLOCK_MONOTONIC`` nanoseconds, the clock of
``time.monotonic_ns`` on Linux), and JSON naming each kernel, the graph
nodes it implements and the static estimates of its floating-point
operations and bytes per call. ``Profiler`` binds them; ``Profiler.run``
times ``repeat`` calls and returns a ``Profile``: ``str()`` is a table
sorted by time with a total line, ``trace_events()`` / ``write_trace(path)``
the Chrome trace-event JSON that Perfetto and ``chrome://tracing`` open (one
``model_run`` event per call and one event per kernel per call). A library
built before profiling existed lacks the symbols: it still loads and runs,
and profiling it raises ``NeedlecError``.
"""
from __future__ import annotations

import ctypes
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from needlec import abi
from needlec.errors import NeedlecError

SetProfilingFn = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32)
_FIELDS = len(abi.PROFILE_FIELDS)
_TOTAL, _CALLS, _LAST_START, _LAST = (abi.PROFILE_FIELDS.index(f)
                                      for f in ("total_ns", "calls", "last_start_ns", "last_ns"))


@dataclass(frozen=True)
class KernelSource:
    """A graph node a kernel implements: its name, op and origin (the ONNX node it came from, or None)."""

    node: str
    op: str
    origin: str | None = None

    def __str__(self) -> str:
        return f"%{self.node} ({self.op}{'' if self.origin is None else ' @ ' + self.origin})"


@dataclass(frozen=True)
class KernelInfo:
    """What a model says of one kernel: its name, sources and static flops and bytes per call."""

    name: str
    sources: tuple[KernelSource, ...]
    flops: int
    bytes: int

    @property
    def nodes(self) -> str:
        """The sources as text: ``%h (conv2d @ /0/Conv), %r (relu)``."""
        return ", ".join(str(s) for s in self.sources)


@dataclass(frozen=True)
class KernelTime:
    """One kernel's row of a ``Profile``: its ``info``, calls and total nanoseconds."""

    info: KernelInfo
    calls: int
    total_ns: int

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def mean_ns(self) -> float:
        return self.total_ns / self.calls if self.calls else 0.0

    @property
    def gflops(self) -> float:
        """Achieved GFLOP/s from the static estimate (0 when the kernel does no floating-point arithmetic)."""
        return self.info.flops * self.calls / self.total_ns if self.total_ns else 0.0

    @property
    def gbytes(self) -> float:
        """Achieved GB/s from the static estimate of bytes read and written."""
        return self.info.bytes * self.calls / self.total_ns if self.total_ns else 0.0


@dataclass(frozen=True)
class TraceEvent:
    """One timed span: a kernel's call (``kernel`` its index) or a whole run (``kernel`` None), in ns."""

    run: int
    kernel: int | None
    start_ns: int
    duration_ns: int


@dataclass(frozen=True)
class Profile:
    """``repeat`` profiled runs of model ``model``: per-kernel ``rows`` (longest total first) and ``events``.

    ``wall_ns`` is the time of the runs as the caller saw them (input checks
    and output allocation included), measured around each call.
    """

    model: str
    repeat: int
    kernels: tuple[KernelInfo, ...]
    rows: tuple[KernelTime, ...]
    wall_ns: int
    events: tuple[TraceEvent, ...]

    @property
    def total_ns(self) -> int:
        """Nanoseconds inside kernels, all runs together."""
        return sum(row.total_ns for row in self.rows)

    def __str__(self) -> str:
        total = self.total_ns
        per_run = self.wall_ns / self.repeat / 1e6
        share = 100 * total / self.wall_ns if self.wall_ns else 0.0
        lines = [f"profile of {self.model}: {self.repeat} run{'s' if self.repeat != 1 else ''}, "
                 f"{per_run:.3f} ms per run, {share:.1f}% of it in {len(self.rows)} kernels "
                 "(GFLOP/s and GB/s from static estimates)"]
        width = min(max([len(r.name) for r in self.rows] + [len("kernel")]), 64)
        lines.append(f"{'share':>6} {'total ms':>10} {'mean us':>10} {'calls':>6} {'GFLOP/s':>8} {'GB/s':>8}  "
                     f"{'kernel':<{width}}  nodes")

        def line(part: float, ns: float, mean: float, calls: str, flops: float, gbytes: float, name: str,
                 nodes: str) -> str:
            rate = f"{flops:8.2f}" if flops else f"{'-':>8}"
            return (f"{part:5.1f}% {ns / 1e6:10.3f} {mean / 1e3:10.2f} {calls:>6} {rate} {gbytes:8.2f}  "
                    f"{name:<{width}}  {nodes}").rstrip()

        for row in self.rows:
            lines.append(line(100 * row.total_ns / total if total else 0.0, row.total_ns, row.mean_ns,
                              str(row.calls), row.gflops, row.gbytes, row.name, row.info.nodes))
        flops = sum(r.info.flops * r.calls for r in self.rows)
        moved = sum(r.info.bytes * r.calls for r in self.rows)
        lines.append(line(100.0 if total else 0.0, total, total / self.repeat, "", flops / total if total else 0.0,
                          moved / total if total else 0.0, f"total of {len(self.rows)} kernels", ""))
        return "\n".join(lines)

    def trace_events(self) -> dict[str, Any]:
        """The runs as Chrome trace-event JSON (``{"traceEvents": [...]}``), microseconds from the first run."""
        pid, tid = os.getpid(), threading.get_native_id()
        origin = min((e.start_ns for e in self.events), default=0)
        events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": f"needlec {self.model}"}}]
        for e in self.events:
            if e.kernel is None:
                args: dict[str, Any] = {"run": e.run}
                name, cat = "model_run", "session"
            else:
                info = self.kernels[e.kernel]
                name, cat = info.name, "kernel"
                args = {"run": e.run, "ops": [s.op for s in info.sources], "nodes": info.nodes,
                        "flops": info.flops, "bytes": info.bytes}
            events.append({"name": name, "cat": cat, "ph": "X", "ts": (e.start_ns - origin) / 1e3,
                           "dur": e.duration_ns / 1e3, "pid": pid, "tid": tid, "args": args})
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def write_trace(self, path: str | os.PathLike[str]) -> None:
        """Write ``trace_events()`` to ``path`` (open it in https://ui.perfetto.dev or chrome://tracing)."""
        try:
            with open(path, "w") as f:
                json.dump(self.trace_events(), f)
        except OSError as exc:
            raise NeedlecError(f"cannot write the trace {os.fspath(path)}: {exc.strerror or exc}") from None


class Profiler:
    """The profiling symbols of one loaded model: its switch, its counters and its kernels' ``KernelInfo``."""

    def __init__(self, set_profiling: Callable[[int], int], counters: int, info: str) -> None:
        self._set = set_profiling
        parsed = json.loads(info)
        if list(parsed.get("fields", [])) != list(abi.PROFILE_FIELDS):
            raise NeedlecError(f"unknown profile counters {parsed.get('fields')}")
        self.kernels = tuple(
            KernelInfo(k["name"], tuple(KernelSource(s["node"], s["op"], s.get("origin")) for s in k["sources"]),
                       int(k["flops"]), int(k["bytes"])) for k in parsed["kernels"])
        count = len(self.kernels) * _FIELDS
        if count:
            raw = (ctypes.c_int64 * count).from_address(counters)
            self._counters = np.frombuffer(memoryview(raw).cast("B"), dtype=np.int64).reshape(len(self.kernels),
                                                                                            _FIELDS)
        else:
            self._counters = np.zeros((0, _FIELDS), np.int64)

    @classmethod
    def bind(cls, lookup: Callable[[str], int], prefix: str) -> Profiler | None:
        """The profiler of the model whose symbols ``lookup(name)`` finds (an address, 0 when missing), or None
        when it has no profiling symbols (built before they existed)."""
        switch, counters, info = (lookup(name(prefix)) for name in
                                  (abi.set_profiling, abi.profile_counters, abi.profile_info))
        if not (switch and counters and info):
            return None
        text = ctypes.CFUNCTYPE(ctypes.c_char_p)(info)()
        return cls(SetProfilingFn(switch), ctypes.CFUNCTYPE(ctypes.c_void_p)(counters)(), text.decode())

    @classmethod
    def from_library(cls, lib: ctypes.CDLL, prefix: str) -> Profiler | None:
        """The profiler of the model with symbol prefix ``prefix`` in the loaded library ``lib`` (or None)."""
        def lookup(name: str) -> int:
            symbol = getattr(lib, name, None)
            return 0 if symbol is None else ctypes.cast(symbol, ctypes.c_void_p).value or 0

        return cls.bind(lookup, prefix)

    def enable(self, on: bool) -> bool:
        """Switch timing on or off for the following calls; returns whether it was on."""
        return bool(self._set(1 if on else 0))

    def reset(self) -> None:
        """Zero every counter."""
        self._counters[...] = 0

    def counters(self) -> np.ndarray:
        """A copy of the counters: one row per kernel, columns ``abi.PROFILE_FIELDS``."""
        return self._counters.copy()

    def run(self, call: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], model: str,
            repeat: int, warmup: int = 1) -> Profile:
        """Call ``call(*args, **kwargs)`` ``warmup`` times untimed, then ``repeat`` times timed; the ``Profile``.

        The counters start from zero; the switch is left as it was."""
        if not isinstance(repeat, int) or repeat < 1:
            raise NeedlecError(f"profile: repeat expects a positive count, found {repeat!r}")
        if not isinstance(warmup, int) or warmup < 0:
            raise NeedlecError(f"profile: warmup expects a count >= 0, found {warmup!r}")
        for _ in range(warmup):
            call(*args, **kwargs)
        events: list[TraceEvent] = []
        wall = 0
        self.reset()
        previous = self.enable(True)
        try:
            for run in range(repeat):
                begin = time.monotonic_ns()
                call(*args, **kwargs)
                end = time.monotonic_ns()
                wall += end - begin
                events.append(TraceEvent(run, None, begin, end - begin))
                last = self._counters[:, [_LAST_START, _LAST]].tolist()
                events += [TraceEvent(run, k, int(start), int(took)) for k, (start, took) in enumerate(last)]
        finally:
            self.enable(previous)
        totals = self.counters()
        rows = sorted((KernelTime(info, int(c[_CALLS]), int(c[_TOTAL])) for info, c in zip(self.kernels, totals)),
                      key=lambda r: -r.total_ns)
        return Profile(model, repeat, self.kernels, tuple(rows), wall, tuple(events))
