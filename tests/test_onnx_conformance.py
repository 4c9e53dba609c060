"""The ONNX node conformance suite (every case shipped with the installed onnx) through needlec's backend.

Cases listed in tests/onnx_expected_failures.txt must fail (strict xfail, so
a fixed case is noticed and removed from the list); every other case must
pass. Regenerate the list with ``python tools/onnx_conformance_report.py``.

Every passing case also runs compiled for the baseline CPU ``x86-64-v2``
(SSE4.2: no AVX, FMA or F16C), which must pass too and agree bit for bit
with the host build on integer, bool, narrow-format and conversion outputs,
so a result that depends on the host's vector ISA shows up on any host.
"""
from __future__ import annotations

import pytest

from tests.onnx_conformance import expected_failures, flat_arrays, node_cases, run_case

pytestmark = pytest.mark.slow
CASES = node_cases()
EXPECTED = expected_failures()
MIN_PASSING = 1650  # the floor; strict xfail keeps the exact count honest
BASELINE_CPU = "x86-64-v2"
# ops whose float results are conversions, not arithmetic: exact on every CPU
CONVERSION_OPS = {"Cast", "CastLike", "QuantizeLinear", "DequantizeLinear", "BitCast", "Identity"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case, request) -> None:  # type: ignore[no-untyped-def]
    if case.name in EXPECTED:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=EXPECTED[case.name]))
    host = run_case(case)
    baseline = run_case(case, cpu=BASELINE_CPU)
    conversions = {node.op_type for node in case.model.graph.node} <= CONVERSION_OPS
    for got, want in zip(flat_arrays(baseline), flat_arrays(host)):
        if conversions or want.dtype.kind not in "fc":  # float arithmetic may round differently by vector width
            assert got.tobytes() == want.tobytes(), f"{BASELINE_CPU} build differs from the host build"


def test_expected_failures_name_real_cases_with_reasons() -> None:
    names = {c.name for c in CASES}
    assert set(EXPECTED) <= names, sorted(set(EXPECTED) - names)[:5]
    assert all(EXPECTED.values()), "every expected failure needs a reason"
    assert len(CASES) - len(EXPECTED) >= MIN_PASSING
