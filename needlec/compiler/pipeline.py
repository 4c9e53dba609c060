"""The pass manager: runs the pass table in order with dumps, verification, numeric checks and timing.

Options (``PipelineOptions``):

* ``print_after`` / ``print_after_all``: write the IR after the named passes
  (graph text for graph passes, loop IR after lowering) to ``stream``;
* ``dump_dir``: also write each dump to ``DIR/NN-pass.txt``;
* ``verify_each`` (on by default): run the structural verifier after every
  graph pass;
* ``check_numerics``: after every graph pass, run the reference interpreter
  on fixed random inputs and compare with the input graph's results;
* ``timing``: record seconds per pass (always recorded; printed when set).

A failing pass raises ``PassError`` naming the pass and the passes before it.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence, TextIO

import numpy as np

from needlec.compiler.interpreter import evaluate
from needlec.compiler.ir.graph import Graph
from needlec.compiler.ir.printer import print_graph
from needlec.compiler.ir.verifier import verify_graph
from needlec.compiler.loops.ir import Program
from needlec.compiler.loops.printer import print_program
from needlec.compiler.passes import PASS_NAMES, PASSES, Pass
from needlec.errors import NeedlecError, PassError


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

    def __post_init__(self) -> None:
        unknown = sorted(set(self.print_after) - set(PASS_NAMES))
        if unknown:
            raise NeedlecError(f"unknown pass {', '.join(unknown)} in print_after; passes are {', '.join(PASS_NAMES)}")


@dataclass
class PipelineResult:
    """The optimised graph, the lowered program and seconds spent per pass."""

    graph: Graph
    program: Program
    timings: list[tuple[str, float]] = field(default_factory=list)


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


class Pipeline:
    """Runs ``passes`` (the full table by default) over a copy of a graph."""

    def __init__(self, options: PipelineOptions | None = None, passes: Sequence[Pass] = PASSES) -> None:
        self.options = options or PipelineOptions()
        self.passes = tuple(passes)

    def run(self, graph: Graph) -> PipelineResult:
        opts = self.options
        current: Any = graph.copy()
        reference = None
        samples: list[np.ndarray] = []
        if opts.check_numerics:
            samples = sample_inputs(graph)
            reference = self._results(graph, samples)
        timings: list[tuple[str, float]] = []
        last_graph = current
        for position, p in enumerate(self.passes):
            start = time.perf_counter()
            try:
                current = p.run(current)
                if p.kind == "graph":
                    if opts.verify_each:
                        verify_graph(current)
                    if reference is not None:
                        self._compare(current, samples, reference)
            except PassError:
                raise
            except NeedlecError as exc:
                raise PassError(f"pass {p.name} failed{self._after(position)}: {exc}") from exc
            except Exception as exc:
                raise PassError(f"pass {p.name} crashed{self._after(position)}: "
                                f"{type(exc).__name__}: {exc}") from exc
            timings.append((p.name, time.perf_counter() - start))
            if opts.print_after_all or p.name in opts.print_after:
                self._dump(position, p, current)
            if p.kind == "graph":
                last_graph = current
        if opts.timing:
            self._print_timings(timings)
        return PipelineResult(last_graph, current, timings)

    def _after(self, position: int) -> str:
        before = [p.name for p in self.passes[:position]]
        return f" (after {', '.join(before)})" if before else ""

    @staticmethod
    def _results(graph: Graph, samples: list[np.ndarray]) -> dict[str, np.ndarray]:
        outputs, updates = evaluate(graph, samples)
        results = {f"output {i}": v for i, v in enumerate(outputs)}
        results.update({f"update of %{name}": v for name, v in updates.items()})
        return results

    def _compare(self, graph: Graph, samples: list[np.ndarray], reference: dict[str, np.ndarray]) -> None:
        results = self._results(graph, samples)
        for what, want in reference.items():
            got = results[what]
            tol = 1e-3 if want.dtype == np.float16 else 1e-5
            if got.shape != want.shape or not np.allclose(got, want, rtol=tol, atol=tol, equal_nan=True):
                raise NeedlecError(f"changed the numerics of {what} "
                                f"(max abs difference {np.max(np.abs(got.astype(float) - want.astype(float)))})")

    def _dump(self, position: int, p: Pass, ir: Any) -> None:
        text = (print_graph(ir, elide_constants=self.options.elide_constants) if isinstance(ir, Graph)
                else print_program(ir))
        header = f"// ----- IR after {p.name} -----\n"
        stream = self.options.stream or sys.stderr
        stream.write(header + text + ("" if text.endswith("\n") else "\n"))
        if self.options.dump_dir:
            os.makedirs(self.options.dump_dir, exist_ok=True)
            with open(os.path.join(self.options.dump_dir, f"{position:02d}-{p.name}.txt"), "w") as f:
                f.write(text)

    def _print_timings(self, timings: list[tuple[str, float]]) -> None:
        stream = self.options.stream or sys.stderr
        total = sum(t for _, t in timings)
        for name, seconds in timings:
            stream.write(f"{name:<22}{seconds * 1000:9.2f} ms\n")
        stream.write(f"{'total':<22}{total * 1000:9.2f} ms\n")
