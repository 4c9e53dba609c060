"""The ONNX node conformance suite (every case shipped with the installed onnx) through needlec's backend.

Cases listed in tests/onnx_expected_failures.txt must fail (strict xfail, so
a fixed case is noticed and removed from the list); every other case must
pass. Regenerate the list with ``python tools/onnx_conformance_report.py``.
"""
from __future__ import annotations

import pytest

from tests.onnx_conformance import expected_failures, node_cases, run_case

pytestmark = pytest.mark.slow
CASES = node_cases()
EXPECTED = expected_failures()
MIN_PASSING = 1650  # the floor; strict xfail keeps the exact count honest


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case, request) -> None:  # type: ignore[no-untyped-def]
    if case.name in EXPECTED:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=EXPECTED[case.name]))
    run_case(case)


def test_expected_failures_name_real_cases_with_reasons() -> None:
    names = {c.name for c in CASES}
    assert set(EXPECTED) <= names, sorted(set(EXPECTED) - names)[:5]
    assert all(EXPECTED.values()), "every expected failure needs a reason"
    assert len(CASES) - len(EXPECTED) >= MIN_PASSING
