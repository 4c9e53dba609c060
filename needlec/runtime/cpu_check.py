"""Whether this host can run code built for a set of CPU features: refuse clearly instead of dying with SIGILL.

Artifacts record the LLVM features their code may use (``cpu`` and
``cpu_features`` in the signature, see ``compiler/target.py``); the
Python loaders check them here before any model code runs, and the C side
(``build/checked.py``) checks them with CPUID.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import llvmlite.binding as llvm

from needlec.errors import ArtifactError


@lru_cache(maxsize=1)
def _host_features() -> dict[str, bool]:
    return dict(llvm.get_host_cpu_features())


def missing_features(required: Sequence[str]) -> list[str]:
    """Those of ``required`` this host lacks (a feature LLVM does not report for this host is not checked)."""
    have = _host_features()
    return sorted(f for f in required if f in have and not have[f])


def check_cpu_features(cpu: str, required: Sequence[str], what: str) -> None:
    """ArtifactError naming the missing features when this host cannot run ``what`` (built for ``cpu``)."""
    missing = missing_features(required)
    if missing:
        raise ArtifactError(f"{what} was built for CPU {cpu!r} and needs CPU features this host "
                            f"({llvm.get_host_cpu_name()}) lacks: {', '.join(missing)}; rebuild it with cpu host "
                            "or a baseline such as x86-64-v2")
