"""Timing shared by the benchmarks: medians over repeated runs after a warm-up."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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
