"""The ordered pass table: every pass needlec runs, by name, in pipeline order.

``kind`` says what a pass maps: ``graph`` (Graph -> Graph), ``lower``
(Graph -> loop-IR Program) or ``loops`` (Program -> Program).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from needlec.compiler.passes.canonicalize import canonicalize
from needlec.compiler.passes.constant_fold import constant_fold
from needlec.compiler.passes.cse import cse
from needlec.compiler.passes.dce import dce
from needlec.compiler.passes.lower_to_loops import lower_to_loops
from needlec.compiler.passes.materialize_outputs import materialize_outputs
from needlec.compiler.passes.plan_memory import plan_memory
from needlec.compiler.passes.schedule import schedule
from needlec.compiler.passes.verify import verify


@dataclass(frozen=True)
class Pass:
    """A named pipeline stage; its docstring is the run function's."""

    name: str
    run: Callable[[Any], Any]
    kind: str

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0]


PASSES: tuple[Pass, ...] = (
    Pass("verify", verify, "graph"),
    Pass("canonicalize", canonicalize, "graph"),
    Pass("constant_fold", constant_fold, "graph"),
    Pass("cse", cse, "graph"),
    Pass("dce", dce, "graph"),
    Pass("materialize_outputs", materialize_outputs, "graph"),
    Pass("lower_to_loops", lower_to_loops, "lower"),
    Pass("schedule", schedule, "loops"),
    Pass("plan_memory", plan_memory, "loops"),
)

PASS_NAMES: tuple[str, ...] = tuple(p.name for p in PASSES)
