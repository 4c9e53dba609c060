"""Every primitive, compiled for the host CPU and for a baseline CPU, against its NumPy reference (table-driven).

Transcendental functions are also checked through an exported shared library,
where libm symbols resolve through the dynamic linker rather than MCJIT.
"""
from __future__ import annotations

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.compiler.codegen.llvm_emit import is_accumulation
from needlec.compiler.interpreter import interpret
from needlec.compiler.loops.ir import Assign, If, Loop, Stmt
from needlec.compiler.ops.registry import all_ops
from tests.opcases import OpCase, all_cases, build_case

CASES = all_cases()
BASELINE_CPU = "x86-64-v2"  # SSE4.2: no AVX, FMA or F16C


def assert_matches(got: np.ndarray, want: np.ndarray, case: OpCase) -> None:
    assert got.shape == want.shape, f"{case.id}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{case.id}: dtype {got.dtype} != {want.dtype}"
    if DType.from_numpy(want.dtype).is_storage:  # bit for bit, NaN codes included
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=case.id)
    elif DType.from_numpy(want.dtype).is_float:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=case.rtol,
                                   atol=case.atol, equal_nan=True, err_msg=case.id)
    else:
        np.testing.assert_array_equal(got, want, err_msg=case.id)


def reassociates(stmts: tuple[Stmt, ...]) -> bool:
    """Whether loop-IR ``stmts`` hold a float accumulation LLVM may round differently (``is_accumulation``)."""
    for s in stmts:
        if isinstance(s, Assign) and is_accumulation(s):
            return True
        if isinstance(s, Loop) and reassociates(s.body) or isinstance(s, If) and reassociates(s.then + s.orelse):
            return True
    return False


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_matches_reference(case: OpCase) -> None:
    """The host build and a baseline (x86-64-v2) build both match the reference, and each other bit for bit
    except where a float sum may be reordered by the vector width (a host-dependent result shows up here)."""
    graph, arrays = build_case(case)
    want = interpret(graph, arrays)
    compiled = needlec.compile(graph)
    got = compiled(*arrays)
    got = list(got) if isinstance(got, tuple) else [got]
    baseline = needlec.compile(graph, cpu=BASELINE_CPU)(*arrays)
    baseline = list(baseline) if isinstance(baseline, tuple) else [baseline]
    assert len(got) == len(want) == len(baseline)
    exact = not any(reassociates(kernel.body) for kernel in compiled.program.kernels)
    for g, b, w in zip(got, baseline, want):
        assert_matches(g, w, case)
        assert_matches(b, w, case)
        if exact or not DType.from_numpy(w.dtype).is_float:
            assert g.tobytes() == b.tobytes(), f"{case.id}: the {BASELINE_CPU} build differs from the host build"


def test_every_op_is_complete_and_tested() -> None:
    tested = {c.op for c in CASES}
    for name, opdef in all_ops().items():
        assert opdef.infer is not None and opdef.reference is not None, name
        assert opdef.is_view or opdef.lower is not None, f"{name} has no lowering"
        assert opdef.doc, f"{name} has no doc"
        assert opdef.grad is not None, f"{name} has no gradient rule (or NO_GRAD)"
        assert name in tested, f"{name} has no op test case"


LIBM_OPS = ("erf", "tanh", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh")


def test_transcendental_functions_link_into_a_shared_library(tmp_path) -> None:
    graph = Graph("libm")
    inputs = [graph.add_input(f"x{d.value}", TensorType((5,), d)) for d in (DType.F32, DType.F64, DType.F16)]
    graph.set_outputs([graph.add(op, x) for x in inputs for op in LIBM_OPS])
    x = np.array([0.1, 0.5, -0.7, 0.95, 1.5])  # acosh and asin/acos/atanh are NaN on part of it
    arrays = [x.astype(v.dtype.np) for v in graph.inputs]
    library = str(tmp_path / "libm_ops.so")
    needlec.compile(graph).export(library)
    got = needlec.load(library)(*arrays)
    want = interpret(graph, arrays)
    for i, (g, w) in enumerate(zip(got, want)):
        tol = 2e-3 if w.dtype == np.float16 else 1e-6
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True, err_msg=LIBM_OPS[i % len(LIBM_OPS)])
