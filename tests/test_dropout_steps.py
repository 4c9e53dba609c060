"""Dropout in a compiled program with a run-time step counter draws a fresh, reproducible mask per call."""
from __future__ import annotations

import numpy as np

import needlec
from needlec import nn
from needlec.frontend.trace import record


def test_step_variable_gives_a_new_mask_every_call() -> None:
    dropout = nn.Dropout(0.5, seed=7)
    x = np.ones((64, 32), np.float32)
    graph = record(dropout, x, step_variable=True).graph
    compiled = needlec.compile(graph, check_numerics=True)
    first, second = compiled(x), compiled(x)
    assert compiled.get_variable("step") == 2
    assert not np.array_equal(first, second)
    for out in (first, second):
        assert set(np.unique(out)) <= {0.0, 2.0} and 0.4 < np.mean(out == 0) < 0.6
    again = needlec.compile(graph)
    np.testing.assert_array_equal(again(x), first)  # reproducible from the seed
    dropout.step = 1  # the static step and the run-time step add up
    np.testing.assert_array_equal(needlec.compile(record(dropout, x, step_variable=True).graph)(x), second)


def test_without_step_variable_the_mask_is_fixed() -> None:
    dropout = nn.Dropout(0.5, seed=7)
    x = np.ones((16, 16), np.float32)
    compiled = needlec.compile(record(dropout, x).graph)
    np.testing.assert_array_equal(compiled(x), compiled(x))
