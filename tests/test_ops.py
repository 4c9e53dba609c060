"""Every primitive, compiled for the CPU, against its NumPy reference (table-driven)."""
from __future__ import annotations

import numpy as np
import pytest

import needlec
from needlec.compiler.interpreter import interpret
from needlec.compiler.ops.registry import all_ops
from tests.opcases import OpCase, all_cases, build_case

CASES = all_cases()


def assert_matches(got: np.ndarray, want: np.ndarray, case: OpCase) -> None:
    assert got.shape == want.shape, f"{case.id}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{case.id}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=case.rtol,
                                   atol=case.atol, equal_nan=True, err_msg=case.id)
    else:
        np.testing.assert_array_equal(got, want, err_msg=case.id)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_matches_reference(case: OpCase) -> None:
    graph, arrays = build_case(case)
    want = interpret(graph, arrays)
    got = needlec.compile(graph)(*arrays)
    got = list(got) if isinstance(got, tuple) else [got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_matches(g, w, case)


def test_every_op_is_complete_and_tested() -> None:
    tested = {c.op for c in CASES}
    for name, opdef in all_ops().items():
        assert opdef.infer is not None and opdef.reference is not None, name
        assert opdef.is_view or opdef.lower is not None, f"{name} has no lowering"
        assert opdef.doc, f"{name} has no doc"
        assert opdef.grad is not None, f"{name} has no gradient rule (or NO_GRAD)"
        assert name in tested, f"{name} has no op test case"
