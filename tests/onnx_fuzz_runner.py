"""Running fuzz mutants through needlec in an isolated worker process and classifying what happened.

A ``Worker`` is a long-lived ``spawn`` subprocess with an address-space cap
(``RLIMIT_AS``, 4 GiB by default) and its standard output and error in a log
file. It receives one task at a time; the parent waits up to ``timeout``
seconds and replaces the worker after a crash or a timeout, so a segfault or
a hang never takes the caller down. ``evaluate`` (run in the worker) compiles
the mutant with ``needlec.compile(path)``, runs it once on the case's test
inputs (or seeded random inputs of the compiled signature's shapes) and, when
ONNX Runtime also accepts and runs the model, compares the outputs.

Outcomes: ``matches`` / ``mismatch`` (compiled, compared with ONNX Runtime),
``compiled`` (ONNX Runtime refused it, or the run was skipped),
``clean_error`` (a one-line ``NeedlecError``), and the failures
``internal`` (``needlec.errors.InternalError`` where it exists, or any other
exception), ``multiline_error``, ``crash`` (the worker died), ``hang``
(timeout) and ``memory`` (``MemoryError``, or the worker died out of memory).
A worker that dies or stalls inside ONNX Runtime is ONNX Runtime's problem:
that gives ``compiled``.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import queue
import re
import resource
import shutil
import signal
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.onnx_fuzz import Mutant

OUTCOMES = ("matches", "mismatch", "compiled", "clean_error", "internal", "multiline_error", "crash", "hang",
            "memory")
FAILURES = frozenset({"internal", "multiline_error", "crash", "hang", "memory"})
TIMEOUT_S = 20.0
MEMORY_LIMIT = 4 << 30
MAX_INPUT_BYTES = 64 << 20
MEMORY_MARKERS = ("out of memory", "bad_alloc", "MemoryError", "Cannot allocate memory", "failed to allocate")

_connection: Any = None  # the worker's end of the pipe, for report_phase


@dataclass(frozen=True)
class Outcome:
    """What happened to one mutant: its kind, the error text, the phase it reached and where it failed."""

    kind: str
    message: str = ""
    phase: str = ""
    error: str = ""
    where: str = ""

    def signature(self, op: str) -> tuple[str, str, str]:
        """``(kind, op, message signature)``: quoted names and numbers masked, one line, for grouping."""
        text = self.message.strip().splitlines()[0] if self.message.strip() else ""
        text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
        text = re.sub(r"\d+", "N", text)[:160]
        if self.kind in ("internal", "memory"):
            text = f"{self.error}: {text} @ {self.where}"
        return self.kind, op, text


# ----------------------------------------------------------------------------------------------- in the worker

def report_phase(phase: str) -> None:
    """Tell the parent which phase the current task has reached (a no-op outside a worker)."""
    if _connection is not None:
        _connection.send(("phase", phase))


def _worker_main(connection: Any, log_path: str, memory_limit: int) -> None:
    """The worker's loop: output to the log, address space capped, then ``(function, args)`` tasks until EOF."""
    global _connection
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    _connection = connection
    while True:
        try:
            function, args = connection.recv()
        except EOFError:
            return
        try:
            result = function(*args)
        except Exception as exc:  # a harness function failed: report it, keep serving
            result = error_outcome(exc, "harness")
        connection.send(("done", result))


def error_outcome(exc: BaseException, phase: str, folder: str = "") -> Outcome:
    """Classify an exception raised while compiling or running a mutant."""
    from needlec import errors

    internal = getattr(errors, "InternalError", None)
    message = str(exc).replace(folder, "<dir>") if folder else str(exc)
    root = exc
    while root.__cause__ is not None:  # an InternalError wrapping a converter's exception: where that one came from
        root = root.__cause__
    frames = [f for f in traceback.extract_tb(root.__traceback__) if f"{os.sep}needlec{os.sep}" in f.filename]
    where = ""
    if frames:
        frame = frames[-1]
        where = f"{frame.filename[frame.filename.rindex(os.sep + 'needlec' + os.sep) + 1:]}:{frame.lineno} {frame.name}"
    if isinstance(exc, MemoryError):
        kind = "memory"
    elif not isinstance(exc, errors.NeedlecError) or (internal is not None and isinstance(exc, internal)):
        kind = "internal"
    elif "\n" in message or "\r" in message:
        kind = "multiline_error"
    else:
        kind = "clean_error"
    return Outcome(kind, message[:2000], phase, type(exc).__name__, where)


def evaluate(mutant: Mutant, workdir: str, compare: bool = True) -> Outcome:
    """Compile ``mutant`` from a file in a fresh folder under ``workdir``, run it, compare with ONNX Runtime."""
    import needlec

    folder = tempfile.mkdtemp(dir=workdir)
    try:
        path = write_mutant(mutant, Path(folder))
        report_phase("compile")
        try:
            compiled = needlec.compile(str(path), progress=False)
        except Exception as exc:
            return error_outcome(exc, "compile", folder)
        inputs = make_inputs(compiled.signature.inputs, mutant.inputs)
        if inputs is None:
            return Outcome("compiled", "run skipped: inputs cannot be made or are too large", "run")
        report_phase("run")
        try:
            got = compiled(*inputs)
        except Exception as exc:
            return error_outcome(exc, "run", folder)
        if not compare:
            return Outcome("compiled", "", "run")
        report_phase("ort")
        return compare_with_ort(str(path), compiled.signature.inputs, inputs, got if isinstance(got, tuple) else (got,))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_mutant(mutant: Mutant, folder: Path) -> Path:
    """Write the mutant's model (``model.onnx``) and the files beside it into ``folder``; the model's path."""
    for name, data in mutant.files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (folder / "model.onnx").write_bytes(mutant.model)
    return folder / "model.onnx"


def make_inputs(specs: Iterable[Any], known: dict[str, np.ndarray]) -> list[np.ndarray] | None:
    """Arrays for the compiled signature: the case's test input where it fits, else seeded random values."""
    specs = list(specs)
    if sum(math.prod(s.shape) * s.dtype.itemsize for s in specs) > MAX_INPUT_BYTES:
        return None
    rng = np.random.default_rng(0)
    arrays = []
    for spec in specs:
        value = known.get(spec.name)
        if value is not None and value.shape == spec.shape and value.dtype == spec.dtype:
            arrays.append(value)
            continue
        try:
            arrays.append(_random_array(rng, spec.shape, spec.dtype))
        except (TypeError, ValueError):
            return None
    return arrays


def _random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        return rng.integers(0 if dtype.kind == "u" else -3, 4, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def compare_with_ort(path: str, specs: Iterable[Any], inputs: list[np.ndarray],
                     got: tuple[np.ndarray, ...]) -> Outcome:
    """``matches`` / ``mismatch`` against ONNX Runtime (CPU, one thread); ``compiled`` when it refuses the model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    feeds = {spec.name: array for spec, array in zip(specs, inputs)}
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        if sorted(i.name for i in session.get_inputs()) != sorted(feeds):
            return Outcome("compiled", "ONNX Runtime's inputs differ from needlec's", "ort")
        expected = session.run(None, feeds)
    except Exception as exc:
        return Outcome("compiled", f"ONNX Runtime refused it: {str(exc).strip()[:300]}", "ort")
    if len(expected) != len(got):
        return Outcome("mismatch", f"{len(got)} output(s), ONNX Runtime gives {len(expected)}", "ort")
    for i, (g, e) in enumerate(zip(got, expected)):
        e = np.asarray(e)
        if e.dtype == np.uint8 and g.dtype.kind == "V" and g.dtype.itemsize == 1:  # ORT hands float8 back as bits
            g = g.view(np.uint8)
        if g.shape != e.shape or g.dtype != e.dtype:
            return Outcome("mismatch", f"output {i}: {g.dtype}{list(g.shape)}, ONNX Runtime gives "
                                       f"{e.dtype}{list(e.shape)}", "ort")
        if not _close(g, e):
            return Outcome("mismatch", f"output {i}: values differ", "ort")
    return Outcome("matches", "", "ort")


def _close(got: np.ndarray, expected: np.ndarray) -> bool:
    if expected.dtype.kind in "biuOSU":
        return bool(np.array_equal(got, expected))
    return bool(np.allclose(got.astype(np.complex128 if expected.dtype.kind == "c" else np.float64),
                            expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64),
                            rtol=1e-3, atol=1e-4, equal_nan=True))


# ----------------------------------------------------------------------------------------------- in the parent

class Worker:
    """A replaceable isolated process that runs one task at a time under a timeout and a memory cap."""

    def __init__(self, timeout: float = TIMEOUT_S, memory_limit: int = MEMORY_LIMIT) -> None:
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.folder = tempfile.mkdtemp(prefix="needlec-fuzz-")
        self._log = os.path.join(self.folder, "worker.log")
        Path(self._log).touch()
        self._process: Any = None
        self._connection: Any = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        connection, child = context.Pipe()
        process = context.Process(target=_worker_main, args=(child, self._log, self.memory_limit), daemon=True)
        process.start()
        child.close()
        self._process, self._connection = process, connection

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._connection.close()
        self._process = self._connection = None

    def close(self) -> None:
        """Stop the worker process and remove its folder."""
        self._stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def call(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """``function(*args)`` run in the worker; an exception, crash, timeout or memory death gives an ``Outcome``."""
        if self._process is None or not self._process.is_alive():
            self._stop()
            self._start()
        log_start = os.path.getsize(self._log)
        self._connection.send((function, args))
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        phase = "start"
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or not self._connection.poll(remaining):
                    self._stop()
                    return _outside_needlec(phase, "timed out") or Outcome(
                        "hang", f"no result after {limit:g} s", phase)
                tag, value = self._connection.recv()
            except (EOFError, OSError):
                return self._died(phase, log_start)
            if tag == "done":
                return value
            phase = value

    def evaluate(self, mutant: Mutant, compare: bool = True) -> Outcome:
        """``evaluate(mutant)`` in the worker."""
        return self.call(evaluate, mutant, self.folder, compare)

    def _died(self, phase: str, log_start: int) -> Outcome:
        self._process.join(10)
        code = self._process.exitcode
        with open(self._log, "rb") as f:
            f.seek(log_start)
            tail = f.read().decode(errors="replace")[-4000:]
        self._stop()
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        outside = _outside_needlec(phase, f"worker died ({how})")
        if outside is not None:
            return outside
        last = (tail.strip().splitlines() or [""])[-1][:300]
        if any(marker in tail for marker in MEMORY_MARKERS):
            return Outcome("memory", f"worker died ({how}) out of memory: {last}", phase, how)
        return Outcome("crash", f"worker died ({how}): {last}", phase, how)


def _outside_needlec(phase: str, what: str) -> Outcome | None:
    """A death or stall inside ONNX Runtime (after needlec compiled and ran the model) is not needlec's."""
    return Outcome("compiled", f"ONNX Runtime {what}", phase) if phase == "ort" else None


def run_mutants(mutants: Iterable[Mutant], workers: int = 1, timeout: float = TIMEOUT_S,
                compare: bool = True) -> Iterator[tuple[Mutant, Outcome]]:
    """Evaluate ``mutants`` on ``workers`` isolated workers; yields ``(mutant, outcome)`` in input order."""
    pool: queue.Queue[Worker] = queue.Queue()
    everyone = [Worker(timeout) for _ in range(workers)]
    for worker in everyone:
        pool.put(worker)

    def one(mutant: Mutant) -> tuple[Mutant, Outcome]:
        worker = pool.get()
        try:
            return mutant, worker.evaluate(mutant, compare)
        finally:
            pool.put(worker)

    try:
        if workers == 1:
            yield from map(one, mutants)
        else:
            with ThreadPoolExecutor(workers) as executor:
                yield from executor.map(one, mutants)
    finally:
        for worker in everyone:
            worker.close()


def save_reproducer(mutant: Mutant, outcome: Outcome, directory: Path, regenerate: str = "") -> Path:
    """Write the mutant (model, files beside it, inputs) and ``info.json`` to a new folder under ``directory``.

    ``regenerate`` is the command that rebuilds the mutant from its seed and index.
    """
    folder = Path(directory) / f"{outcome.kind}-{mutant.case}-s{mutant.seed}-i{mutant.index}"
    folder.mkdir(parents=True, exist_ok=True)
    path = write_mutant(mutant, folder)
    np.savez(folder / "inputs.npz", **mutant.inputs)
    info = {"case": mutant.case, "op": mutant.op, "mutation": mutant.mutation, "detail": mutant.detail,
            "seed": mutant.seed, "index": mutant.index, "outcome": asdict(outcome),
            "reproduce": f"needlec compile {path} -o /tmp/mutant.so",
            "regenerate": regenerate}
    (folder / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return folder


class Summary:
    """Counts per outcome and per mutation, and the first mutant of each distinct signature."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.by_mutation: dict[str, Counter[str]] = defaultdict(Counter)
        self.signatures: dict[tuple[str, str, str], tuple[int, Mutant, Outcome]] = {}
        self.failures: list[tuple[Mutant, Outcome]] = []

    def add(self, mutant: Mutant, outcome: Outcome) -> bool:
        """Count one result; True when its signature is new."""
        self.counts[outcome.kind] += 1
        self.by_mutation[mutant.mutation][outcome.kind] += 1
        if outcome.kind in FAILURES:
            self.failures.append((mutant, outcome))
        key = outcome.signature(mutant.op)
        count, first, first_outcome = self.signatures.get(key, (0, mutant, outcome))
        self.signatures[key] = (count + 1, first, first_outcome)
        return count == 0

    def counts_line(self) -> str:
        return ", ".join(f"{kind} {self.counts[kind]}" for kind in OUTCOMES if self.counts[kind])

    def mutation_table(self) -> str:
        """One row per mutation kind with its count per outcome."""
        kinds = [k for k in OUTCOMES if self.counts[k]]
        rows = [f"{'mutation':<18}" + "".join(f"{k:>16}" for k in kinds)]
        for mutation in sorted(self.by_mutation):
            rows.append(f"{mutation:<18}" + "".join(f"{self.by_mutation[mutation][k]:>16}" for k in kinds))
        return "\n".join(rows)

    def failing_signatures(self) -> str:
        """Each distinct failing signature with its count and first mutant, most frequent first."""
        lines = []
        rows = [(key, entry) for key, entry in self.signatures.items() if key[0] in FAILURES]
        for (kind, op, text), (count, mutant, outcome) in sorted(rows, key=lambda r: (-r[1][0], r[0])):
            lines.append(f"{count:5d} x {kind} [{op}] {text}\n        e.g. {mutant.label} (phase {outcome.phase}): "
                         f"{_one_line(outcome.message)}")
        return "\n".join(lines)

    def failing_messages(self) -> str:
        """Each distinct failing (outcome, message signature) over all ops: count, ops, first mutant."""
        groups: dict[tuple[str, str], list[tuple[int, str, Mutant, Outcome]]] = defaultdict(list)
        for (kind, op, text), (count, mutant, outcome) in self.signatures.items():
            if kind in FAILURES:
                groups[kind, text].append((count, op, mutant, outcome))
        lines = []
        for (kind, text), rows in sorted(groups.items(), key=lambda g: -sum(r[0] for r in g[1])):
            _, _, mutant, outcome = max(rows, key=lambda r: r[0])
            ops = _one_line(", ".join(sorted(r[1] for r in rows)), 160)
            lines.append(f"{sum(r[0] for r in rows):5d} x {kind}: {text}\n        ops ({len(rows)}): {ops}"
                         f"\n        e.g. {mutant.label}: {_one_line(outcome.message)}")
        return "\n".join(lines)


def _one_line(text: str, limit: int = 240) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "…"
