"""Timing shared by the benchmarks: medians over repeated runs after a warm-up, alone or interleaved."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def median_seconds(run: Callable[[], object], warmup: int = 2, repeats: int = 50) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_seconds(runs: Sequence[Callable[[], object]], repeats: int) -> list[list[float]]:
    """Wall times of each run over ``repeats`` rounds of one call each (round-robin), so noise hits all alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, spent in zip(runs, times):
            start = time.perf_counter()
            run()
            spent.append(time.perf_counter() - start)
    return times


def repeats_within(round_seconds: float, budget: float, least: int, most: int) -> int:
    """How many rounds of ``round_seconds`` fit ``budget`` seconds, at least ``least`` and at most ``most``."""
    return max(least, min(most, int(budget / max(round_seconds, 1e-9))))
