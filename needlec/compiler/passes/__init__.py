"""The ordered pass tables: every pass needlec runs, by name, in pipeline order, per target.

``kind`` says what a pass maps: ``graph`` (Graph -> Graph), ``lower``
(Graph -> loop-IR Program) or ``loops`` ((Program, Target) -> Program).
Graph passes and the lowering are shared by every target; each target has
its own loop passes (``LOOP_PASSES``); ``passes_for(name)`` is one target's
whole table.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from needlec.compiler.passes.canonicalize import canonicalize
from needlec.compiler.passes.constant_fold import constant_fold
from needlec.compiler.passes.cse import cse
from needlec.compiler.passes.dce import dce
from needlec.compiler.passes.fold_weights import fold_weights
from needlec.compiler.passes.fuse import fuse_elementwise
from needlec.compiler.passes.lower_to_loops import lower_to_loops
from needlec.compiler.passes.materialize_outputs import materialize_outputs
from needlec.compiler.passes.plan_memory import plan_memory
from needlec.compiler.passes.precompute_constants import precompute_constants
from needlec.compiler.passes.schedule import schedule
from needlec.compiler.passes.verify import verify


@dataclass(frozen=True)
class Pass:
    """A named pipeline stage; its docstring is the run function's."""

    name: str
    run: Callable[..., Any]  # (Graph) for graph and lower passes, (Program, Target) for loop passes
    kind: str

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0]


GRAPH_PASSES: tuple[Pass, ...] = (
    Pass("verify", verify, "graph"),
    Pass("canonicalize", canonicalize, "graph"),
    Pass("constant_fold", constant_fold, "graph"),
    Pass("fold_weights", fold_weights, "graph"),
    Pass("cse", cse, "graph"),
    Pass("dce", dce, "graph"),
    Pass("materialize_outputs", materialize_outputs, "graph"),
    Pass("fuse_elementwise", fuse_elementwise, "graph"),
    Pass("lower_to_loops", lower_to_loops, "lower"),
)

LOOP_PASSES: dict[str, tuple[Pass, ...]] = {
    "cpu": (
        Pass("schedule", schedule, "loops"),
        Pass("precompute_constants", precompute_constants, "loops"),
        Pass("plan_memory", plan_memory, "loops"),
    ),
}


def passes_for(target: str) -> tuple[Pass, ...]:
    """The whole pass table of target ``target`` (``cpu``): the shared graph passes, then its loop passes."""
    return GRAPH_PASSES + LOOP_PASSES[target]


PASSES: tuple[Pass, ...] = passes_for("cpu")
PASS_NAMES: tuple[str, ...] = tuple(dict.fromkeys(p.name for table in LOOP_PASSES
                                                  for p in GRAPH_PASSES + LOOP_PASSES[table]))
