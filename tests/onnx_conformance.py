"""Running the ONNX node conformance cases shipped with the installed onnx package through needlec.

Shared by ``tests/test_onnx_conformance.py`` and ``tools/onnx_conformance_report.py``.
A case passes when every output matches the suite's expectation in shape,
dtype and value (the suite's rtol/atol), as onnx's own backend runner checks.
"""
from __future__ import annotations

import pathlib
import warnings
from functools import lru_cache

import numpy as np
import onnx

EXPECTED_FAILURES = pathlib.Path(__file__).parent / "onnx_expected_failures.txt"


@lru_cache(maxsize=1)
def node_cases() -> list:
    """Every node test case of the installed onnx package, sorted by name."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return sorted(collect_testcases(), key=lambda c: c.name)


def expected_failures() -> dict[str, str]:
    """``case name -> reason`` from tests/onnx_expected_failures.txt (``name<TAB>reason`` lines)."""
    result: dict[str, str] = {}
    for line in EXPECTED_FAILURES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition("\t")
            result[name.strip()] = reason.strip()
    return result


def _array(x):  # type: ignore[no-untyped-def]
    """Case data as NumPy (some cases store tensors as TensorProto); sequences stay lists."""
    return onnx.numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else x


def run_case(case, cpu: str = "host") -> list:  # type: ignore[no-untyped-def]
    """Import, compile for ``cpu`` and run one case; AssertionError or NeedlecError when it does not pass.

    Returns the outputs of every data set (a list per data set).
    """
    from needlec import onnx_backend as backend

    rep = backend.prepare(case.model, cpu=cpu)
    results = []
    for inputs, expected in case.data_sets:
        outputs = rep.run(list(inputs))
        results.append(list(outputs))
        assert len(outputs) == len(expected), f"{len(outputs)} outputs, expected {len(expected)}"
        for i, (got, want) in enumerate(zip(outputs, expected)):
            if want is None:  # an empty optional output
                assert got is None, f"output {i}: expected an empty optional"
                continue
            if isinstance(want, list):  # a sequence output
                assert isinstance(got, list) and len(got) == len(want), f"output {i}: sequence mismatch"
                for g, w in zip(got, want):
                    w = np.asarray(_array(w))
                    assert g.shape == w.shape and g.dtype == w.dtype, f"output {i}: element {g.dtype}{g.shape}"
                    np.testing.assert_allclose(g, w, rtol=case.rtol, atol=case.atol)
                continue
            want = np.asarray(_array(want))
            assert got.shape == want.shape, f"output {i}: shape {got.shape}, expected {want.shape}"
            assert got.dtype == want.dtype, f"output {i}: dtype {got.dtype}, expected {want.dtype}"
            if want.dtype == object:
                np.testing.assert_array_equal(got, want)
            elif want.dtype.kind not in "biufc":  # ml_dtypes formats (bfloat16, float8, int4): compare as f64
                np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=case.rtol,
                                           atol=case.atol, err_msg=f"output {i} differs")
            else:
                np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol,
                                           err_msg=f"output {i} differs")
    return results


def flat_arrays(outputs: list) -> list[np.ndarray]:
    """Every array in ``run_case``'s outputs (sequence elements included, empty optionals skipped)."""
    found: list[np.ndarray] = []
    for item in outputs:
        if isinstance(item, list):
            found.extend(flat_arrays(item))
        elif item is not None:
            found.append(np.asarray(item))
    return found
