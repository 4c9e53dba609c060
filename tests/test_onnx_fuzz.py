"""Seeded fuzzing of needlec's ONNX import: mutants of small node-test models never crash, hang or blow up.

Every mutant must give a one-line ``NeedlecError`` or compile (and then run);
a crash, a hang, an out-of-memory death, an internal error or a multi-line
error fails the test, which lists each failing mutant with the command that
rebuilds it. Environment:

- ``NEEDLEC_FUZZ_MUTANTS`` (default 500) and ``NEEDLEC_FUZZ_SEED`` (default 7)
  size and seed the run;
- ``NEEDLEC_FUZZ_SAVE=DIR`` writes each failing mutant to a folder under DIR
  (``tests/onnx_fuzz_runner.save_reproducer``).

``tools/fuzz_onnx.py`` runs larger campaigns over every node test.
"""
from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

import pytest

from tests.onnx_fuzz import MUTATIONS, load_cases, make_mutant, unmutated
from tests.onnx_fuzz_runner import FAILURES, Summary, Worker, run_mutants, save_reproducer

MUTANTS = int(os.environ.get("NEEDLEC_FUZZ_MUTANTS", "500"))
SEED = int(os.environ.get("NEEDLEC_FUZZ_SEED", "7"))
SLOW_MUTANTS = 2000


@pytest.fixture(scope="module")
def cases() -> list:
    return load_cases()


def fuzz(cases: list, seed: int, count: int) -> Summary:
    """Run ``count`` mutants of run ``seed`` on one isolated worker; save failures to $NEEDLEC_FUZZ_SAVE."""
    summary = Summary()
    for mutant, outcome in run_mutants(make_mutant(cases, seed, i) for i in range(count)):
        summary.add(mutant, outcome)
        if outcome.kind in FAILURES and os.environ.get("NEEDLEC_FUZZ_SAVE"):
            save_reproducer(mutant, outcome, Path(os.environ["NEEDLEC_FUZZ_SAVE"]),
                            f"python tools/fuzz_onnx.py --small --seed {seed} --index {mutant.index}")
    return summary


def failure_report(summary: Summary) -> str:
    lines = [f"{len(summary.failures)} failing mutant(s) ({summary.counts_line()}); rebuild one with "
             "`python tools/fuzz_onnx.py --small --seed SEED --index INDEX [--out DIR]`",
             "distinct messages:", summary.failing_messages(), "mutants:"]
    for mutant, outcome in summary.failures:
        text = outcome.message.strip().replace("\n", "\\n")[:200]
        lines.append(f"  {mutant.label} -> {outcome.kind} in {outcome.phase}: {outcome.error} {text} {outcome.where}")
    return "\n".join(lines)


def test_seeded_mutants_fail_cleanly_or_compile(cases: list) -> None:
    began = time.monotonic()
    summary = fuzz(cases, SEED, MUTANTS)
    print(f"{MUTANTS} mutants in {time.monotonic() - began:.0f} s: {summary.counts_line()}")
    if summary.failures:
        pytest.fail(failure_report(summary), pytrace=False)
    assert summary.counts["clean_error"] and summary.counts["matches"], summary.counts_line()


@pytest.mark.slow
def test_many_seeded_mutants_fail_cleanly_or_compile(cases: list) -> None:
    summary = fuzz(cases, SEED + 1, SLOW_MUTANTS)
    if summary.failures:
        pytest.fail(failure_report(summary), pytrace=False)


def test_mutants_are_reproducible_from_seed_and_index(cases: list) -> None:
    first = [make_mutant(cases, 3, i) for i in range(40)]
    again = [make_mutant(cases, 3, i) for i in reversed(range(40))][::-1]
    assert [(m.case, m.mutation, m.detail, m.model) for m in first] == \
           [(m.case, m.mutation, m.detail, m.model) for m in again]
    assert len({m.model for m in first}) > 30


def test_every_mutation_applies_somewhere(cases: list) -> None:
    seen = {make_mutant(cases, 11, i).mutation for i in range(1500)}
    assert seen == set(MUTATIONS)


def test_an_unmutated_model_matches_onnx_runtime(cases: list) -> None:
    case = next(c for c in cases if c.name == "test_add_bcast")
    with Worker() as worker:
        assert worker.evaluate(unmutated(case)).kind == "matches"


def test_the_worker_survives_a_crash_a_hang_and_memory_exhaustion() -> None:
    with Worker(timeout=5.0, memory_limit=2 << 30) as worker:
        crash = worker.call(ctypes.string_at, 0)
        assert crash.kind == "crash" and "SIGSEGV" in crash.message, crash
        hang = worker.call(time.sleep, 60, timeout=1.0)
        assert hang.kind == "hang", hang
        memory = worker.call(bytearray, 3 << 30)
        assert memory.kind == "memory" and memory.error == "MemoryError", memory
        assert worker.call(len, "abc") == 3
