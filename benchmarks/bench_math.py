"""Elementwise math speed: needlec (JIT) vs NumPy on a 4096x4096 f32 array, same run, interleaved.

    python benchmarks/bench_math.py [--repeat 10] [--size 4096] [--cpu host]

Times a tanh-GELU ``0.5*x*(1+tanh(0.79788456*(x+0.044715*x**3)))``, ``exp``
and ``erf`` (NumPy has no erf: SciPy's ``special.erf`` when installed, else
that row has no peer). Prints needlec ms, NumPy ms, the ratio
(>1 means needlec is faster) and needlec's bandwidth (input read + output
written) against NumPy's copy bandwidth (``np.copyto``) on this machine.
needlec runs on NEEDLEC_NUM_THREADS threads (default: every core), NumPy on one.
Medians of interleaved runs: machines are shared and noisy.
"""
from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from typing import Any

import llvmlite.binding as llvm
import numpy as np
from timing import interleaved_seconds

import needlec
from needlec import ops

Run = Callable[[], object]


def gelu_needlec(x: Any) -> Any:
    return 0.5 * x * (1 + ops.tanh(0.79788456 * (x + 0.044715 * x ** 3)))


def gelu_numpy(x: np.ndarray) -> np.ndarray:
    return np.float32(0.5) * x * (1 + np.tanh(np.float32(0.79788456) * (x + np.float32(0.044715) * x ** 3)))


def numpy_erf() -> Callable[[np.ndarray], np.ndarray] | None:
    """SciPy's vectorised erf, or None where SciPy is missing (NumPy has none)."""
    try:
        from scipy import special
    except ImportError:
        return None
    return special.erf  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--cpu", default="host", help="needlec's cpu= (host, x86-64-v3, ...)")
    args = parser.parse_args()
    x = np.random.default_rng(0).standard_normal((args.size, args.size), dtype=np.float32)
    copy_target = np.empty_like(x)
    features = sorted(f for f, on in llvm.get_host_cpu_features().items() if on and f.startswith(("avx", "fma")))
    threads = os.environ.get("NEEDLEC_NUM_THREADS", "all cores")
    print(f"host CPU {llvm.get_host_cpu_name()} ({' '.join(features)}); needlec cpu={args.cpu}, threads {threads}; "
          f"f32[{args.size}, {args.size}]; medians of {args.repeat} interleaved runs")
    erf = numpy_erf()
    cases: list[tuple[str, Callable[[Any], Any], Callable[[np.ndarray], np.ndarray] | None]] = [
        ("tanh-GELU", gelu_needlec, gelu_numpy), ("exp", ops.exp, np.exp), ("erf", ops.erf, erf)]
    compiled = [needlec.compile(fn, [x], cpu=args.cpu, progress=False) for _, fn, _ in cases]
    runs: list[Run] = [lambda: np.copyto(copy_target, x)]
    for (_, _, peer), model in zip(cases, compiled):
        runs.append(lambda model=model: model(x))
        if peer is not None:
            runs.append(lambda peer=peer: peer(x))
    for run in runs:  # warm-up: first-touch page faults, lazy compilation
        run()
    medians = iter(statistics.median(t) for t in interleaved_seconds(runs, args.repeat))
    moved = 2 * x.nbytes  # bytes one elementwise pass reads and writes
    copy_bandwidth = moved / next(medians)
    print(f"NumPy copy: {copy_bandwidth / 1e9:.1f} GB/s")
    print(f"{'case':<10} {'needlec ms':>11} {'NumPy ms':>9} {'ratio':>6} {'needlec GB/s':>13} {'of copy':>8}")
    for name, _, peer in cases:
        ours = next(medians)
        peer_columns = f"{'-':>9} {'-':>6}"
        if peer is not None:
            theirs = next(medians)
            peer_columns = f"{theirs * 1e3:9.1f} {theirs / ours:6.2f}"
        print(f"{name:<10} {ours * 1e3:11.1f} {peer_columns} {moved / ours / 1e9:13.1f} "
              f"{moved / ours / copy_bandwidth:8.0%}")


if __name__ == "__main__":
    main()
