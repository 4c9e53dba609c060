"""The pass manager: runs one target's pass table in order, with instrumentation between passes.

Everything that watches the pipeline is an ``Instrumentation`` (as LLVM's
PassInstrumentation or xDSL's pass-pipeline callback): ``run_pass`` wraps each
pass (timing, progress), ``after_pass`` inspects its result (verification,
numeric checks, dumps) and may fail it, ``finish`` sees the timings. The
standard instruments below come from ``PipelineOptions``:

* ``print_after`` / ``print_after_all``: write the IR after the named passes
  (graph text for graph passes, loop IR from the lowering on) to ``stream``;
  ``dump_dir`` also writes each dump to ``DIR/NN-pass.txt``;
* ``verify_each`` (on by default): the structural verifier after every pass
  (graph verifier for graph passes, loop-IR verifier from the lowering on);
* ``check_numerics``: after every pass, run the reference interpreter (the
  graph's, or the loop-IR interpreter once lowered) on fixed random inputs
  and compare with the input graph's results;
* ``timing``: print seconds per pass at the end (always recorded);
* ``fuse`` (on by default): run ``fuse_elementwise``; off, every non-view node
  gets its own kernel.

Callers add their own (``Pipeline(..., instruments=[progress])``). A failing
pass or check raises ``PassError`` naming the pass and the passes before it.
"""
from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from needlec.compiler.instrument import Instrumentation
from needlec.compiler.interpreter import evaluate
from needlec.compiler.ir.graph import Graph
from needlec.compiler.ir.printer import print_graph
from needlec.compiler.ir.verifier import verify_graph
from needlec.compiler.loops.interpreter import run_program
from needlec.compiler.loops.ir import Program
from needlec.compiler.loops.printer import print_program
from needlec.compiler.loops.verifier import verify_program
from needlec.compiler.passes import PASS_NAMES, Pass, passes_for
from needlec.compiler.target import Target
from needlec.errors import NeedlecError, PassError

class VerifyEach(Instrumentation):
    """The structural verifier after every pass: the graph verifier, then the loop-IR verifier."""

    def after_pass(self, position: int, p: Pass, ir: Any) -> None:
        if isinstance(ir, Graph):
            verify_graph(ir)
        else:
            verify_program(ir)


def sample_inputs(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    """Deterministic random inputs matching ``graph``'s input types."""
    rng = np.random.default_rng(seed)
    arrays = []
    for v in graph.inputs:
        dtype = v.dtype.np
        if v.dtype.is_float:
            arrays.append(rng.uniform(-2, 2, v.shape).astype(dtype))
        elif v.dtype.is_bool:
            arrays.append(rng.integers(0, 2, v.shape).astype(dtype))
        else:
            low = 0 if not v.dtype.is_signed else -5
            arrays.append(rng.integers(low, 6, v.shape).astype(dtype))
    return arrays


class CheckNumerics(Instrumentation):
    """After every pass, the reference results of the IR on fixed random inputs must match the input graph's.

    Graphs run on the graph interpreter (``compiler/interpreter.py``),
    programs on the loop-IR interpreter (``compiler/loops/interpreter.py``).
    """

    def __init__(self, graph: Graph) -> None:
        self.samples = sample_inputs(graph)
        outputs, updates = evaluate(graph, self.samples)
        self.reference = self._named(outputs, updates)

    @staticmethod
    def _named(outputs: Sequence[np.ndarray], updates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = {f"output {i}": np.asarray(v) for i, v in enumerate(outputs)}
        results.update({f"update of %{name}": np.asarray(v) for name, v in updates.items()})
        return results

    def after_pass(self, position: int, p: Pass, ir: Any) -> None:
        if isinstance(ir, Graph):
            outputs, updates = evaluate(ir, self.samples)
        else:
            outputs, updates = run_program(ir, self.samples)
        results = self._named(outputs, updates)
        for what, want in self.reference.items():
            got = results.get(what)
            tol = 1e-3 if want.dtype == np.float16 else 1e-5
            if got is None or got.shape != want.shape or \
                    not np.allclose(got, want, rtol=tol, atol=tol, equal_nan=True):
                difference = "missing" if got is None else (
                    f"shape {got.shape}, expected {want.shape}" if got.shape != want.shape else
                    f"max abs difference {np.max(np.abs(got.astype(float) - want.astype(float)))}")
                raise NeedlecError(f"changed the numerics of {what} ({difference})")


class PrintAfter(Instrumentation):
    """Writes the IR after the passes in ``names`` (every pass if ``None``) to ``stream`` and ``dump_dir``."""

    def __init__(self, names: frozenset[str] | None, stream: TextIO | None, dump_dir: str | None,
                 elide_constants: int | None) -> None:
        self.names = names
        self.stream = stream
        self.dump_dir = dump_dir
        self.elide_constants = elide_constants

    def after_pass(self, position: int, p: Pass, ir: Any) -> None:
        if self.names is not None and p.name not in self.names:
            return
        text = (print_graph(ir, elide_constants=self.elide_constants) if isinstance(ir, Graph)
                else print_program(ir, elide_constants=self.elide_constants))
        stream = self.stream or sys.stderr
        stream.write(f"// ----- IR after {p.name} -----\n" + text + ("" if text.endswith("\n") else "\n"))
        if self.dump_dir:
            os.makedirs(self.dump_dir, exist_ok=True)
            with open(os.path.join(self.dump_dir, f"{position:02d}-{p.name}.txt"), "w") as f:
                f.write(text)


class Timing(Instrumentation):
    """Prints the seconds each pass took, and the total, to ``stream`` at the end."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def finish(self, timings: Sequence[tuple[str, float]]) -> None:
        stream = self.stream or sys.stderr
        for name, seconds in timings:
            stream.write(f"{name:<22}{seconds * 1000:9.2f} ms\n")
        stream.write(f"{'total':<22}{sum(t for _, t in timings) * 1000:9.2f} ms\n")


@dataclass
class PipelineOptions:
    """How to run the pipeline; see the module docstring."""

    print_after: frozenset[str] = frozenset()
    print_after_all: bool = False
    verify_each: bool = True
    check_numerics: bool = False
    timing: bool = False
    dump_dir: str | None = None
    stream: TextIO | None = None
    elide_constants: int | None = 16
    fuse: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.print_after, str):
            self.print_after = frozenset([self.print_after])
        self.print_after = frozenset(self.print_after)
        unknown = sorted(set(self.print_after) - set(PASS_NAMES))
        if unknown:
            raise NeedlecError(f"unknown pass {', '.join(unknown)} in print_after; passes are {', '.join(PASS_NAMES)}")

    def instruments(self, graph: Graph) -> list[Instrumentation]:
        """The standard instruments these options ask for, checks before dumps."""
        found: list[Instrumentation] = []
        if self.verify_each:
            found.append(VerifyEach())
        if self.check_numerics:
            found.append(CheckNumerics(graph))
        if self.print_after_all or self.print_after:
            found.append(PrintAfter(None if self.print_after_all else self.print_after, self.stream, self.dump_dir,
                                    self.elide_constants))
        if self.timing:
            found.append(Timing(self.stream))
        return found


@dataclass
class PipelineResult:
    """The optimised graph, the lowered and scheduled program and seconds spent per pass."""

    graph: Graph
    program: Program
    timings: list[tuple[str, float]] = field(default_factory=list)


class Pipeline:
    """Runs ``target``'s pass table (or ``passes``) over a copy of a graph, with ``instruments`` around each pass."""

    def __init__(self, options: PipelineOptions | None = None, target: Target | None = None,
                 instruments: Sequence[Instrumentation] = (), passes: Sequence[Pass] | None = None) -> None:
        self.options = options or PipelineOptions()
        self.target = target or Target.named()
        table = tuple(passes) if passes is not None else passes_for(self.target.name)
        self.passes = table if self.options.fuse else tuple(p for p in table if p.name != "fuse_elementwise")
        self.extra = tuple(instruments)

    def run(self, graph: Graph) -> PipelineResult:
        instruments = [*self.options.instruments(graph), *self.extra]
        current: Any = graph.copy()
        last_graph = current
        timings: list[tuple[str, float]] = []
        for position, p in enumerate(self.passes):
            try:
                start = time.perf_counter()
                current = self._run_one(p, current, instruments)
                timings.append((p.name, time.perf_counter() - start))
                for instrument in instruments:
                    instrument.after_pass(position, p, current)
            except PassError:
                raise
            except NeedlecError as exc:
                raise PassError(f"pass {p.name} failed{self._after(position)}: {exc}") from exc
            except Exception as exc:
                raise PassError(f"pass {p.name} crashed{self._after(position)}: "
                                f"{type(exc).__name__}: {exc}") from exc
            if p.kind == "graph":
                last_graph = current
        for instrument in instruments:
            instrument.finish(timings)
        return PipelineResult(last_graph, current, timings)

    def _run_one(self, p: Pass, ir: Any, instruments: Sequence[Instrumentation]) -> Any:
        """Run ``p`` on ``ir`` (loop passes also get the target), wrapped by every instrument in order."""
        def run_alone() -> Any:
            return p.run(ir, self.target) if p.kind == "loops" else p.run(ir)

        run: Callable[[], Any] = run_alone
        for instrument in reversed(instruments):
            run = functools.partial(instrument.run_pass, p, run)
        return run()

    def _after(self, position: int) -> str:
        before = [p.name for p in self.passes[:position]]
        return f" (after {', '.join(before)})" if before else ""
