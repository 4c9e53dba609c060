"""Every fuzzer reproducer in tests/repro/ is refused with a clean error, or compiles and agrees with ONNX Runtime.

Each folder holds a mutated ONNX node-test model (``model.onnx``, sometimes
``inputs_and_needlec_outputs.pkl`` with the inputs it ran on). Models run in
an isolated worker process with a 4 GiB address-space cap and a timeout
(``tests/onnx_fuzz_runner.Worker``), so a hang, a crash or a runaway
allocation fails one case instead of the run. A clean error is a one-line
``NeedlecError`` that is not an ``InternalError``, does not quote a raw Python
exception and is not LLVM's multi-line complaint.

``OPEN`` lists the reproducers whose fixes have not landed yet, with the
stage where they still fail and why; a strict xfail notices a fix.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterator

import pytest

from tests.onnx_fuzz import Mutant
from tests.onnx_fuzz_runner import Outcome, Worker, error_outcome, evaluate

REPRO = Path(__file__).resolve().parent / "repro" / "fuzz-t2"
FOLDERS = sorted(p.name for p in REPRO.iterdir() if (p / "model.onnx").is_file())
INPUTS_FILE = "inputs_and_needlec_outputs.pkl"
TIMEOUT_S = 30.0
RAW_EXCEPTIONS = ("TypeError:", "IndexError:", "KeyError:", "ValueError:", "ZeroDivisionError:", "OverflowError:",
                  "AttributeError:", "RecursionError:", "MemoryError:")

MISMATCH = "values differ from ONNX Runtime (numeric class S117-S155, fixed in the converters)"
# folder -> (stage, reason): "import" fails at import (both tests), "compile" only when compiled, run and compared
OPEN: dict[str, tuple[str, str]] = {
    "S117_mismatch_value_DFT": ("compile", f"DFT: {MISMATCH}"),
    "S118_mismatch_value_MaxPool": ("compile", f"MaxPool: {MISMATCH}"),
    "S119_mismatch_value_LSTM": ("compile", f"LSTM: {MISMATCH}"),
    "S120_mismatch_value_Hardmax": ("compile", f"Hardmax: {MISMATCH}"),
    "S121_mismatch_value_DFT": ("compile", f"DFT: {MISMATCH}"),
    "S122_mismatch_value_GridSample": ("compile", f"GridSample: {MISMATCH}"),
    "S123_mismatch_value_DFT": ("compile", f"DFT: {MISMATCH}"),
    "S124_mismatch_value_DFT": ("compile", f"DFT: {MISMATCH}"),
    "S125_mismatch_value_MaxPool": ("compile", f"MaxPool: {MISMATCH}"),
    "S127_mismatch_value_ArgMax": ("compile", f"ArgMax: {MISMATCH}"),
    "S129_mismatch_value__": ("compile", f"a non-op mutation: {MISMATCH}"),
    "S130_mismatch_value_LRN": ("compile", f"LRN: {MISMATCH}"),
    "S131_mismatch_value_InstanceNormalization": ("compile", f"InstanceNormalization: {MISMATCH}"),
    "S132_mismatch_value__": ("compile", f"a non-op mutation: {MISMATCH}"),
    "S133_mismatch_value_DFT": ("compile", f"DFT: {MISMATCH}"),
    "S134_mismatch_value_LRN": ("compile", f"LRN: {MISMATCH}"),
    "S135_mismatch_value_ConvTranspose": ("compile", f"ConvTranspose: {MISMATCH}"),
    "S136_mismatch_value_Attention": ("compile", f"Attention: {MISMATCH}"),
    "S141_mismatch_value_Conv": ("compile", f"Conv: {MISMATCH}"),
    "S142_mismatch_value_DFT": ("compile", f"DFT: {MISMATCH}"),
    "S143_mismatch_value_ReduceLogSumExp": ("compile", f"ReduceLogSumExp: {MISMATCH}"),
    "S144_mismatch_value__": ("compile", f"a non-op mutation: {MISMATCH}"),
    "S147_mismatch_value_ConvTranspose": ("compile", f"ConvTranspose: {MISMATCH}"),
    "S148_mismatch_value__": ("compile", f"a non-op mutation: {MISMATCH}"),
}


def mutant(folder: str) -> Mutant:
    """Reproducer ``folder`` as a fuzz ``Mutant``: the model, the files beside it and its recorded inputs."""
    directory = REPRO / folder
    files = {p.name: p.read_bytes() for p in directory.iterdir()
             if p.is_file() and p.name not in ("model.onnx", INPUTS_FILE)}
    inputs = {}
    if (directory / INPUTS_FILE).exists():
        with open(directory / INPUTS_FILE, "rb") as f:
            inputs = dict(pickle.load(f).get("inputs", []))  # runs the fuzzer skipped record no inputs
    return Mutant(folder, "", "reproducer", folder, 0, 0, (directory / "model.onnx").read_bytes(), files, inputs)


def import_only(folder: str) -> Outcome:
    """Run in the worker: import reproducer ``folder`` (no code generation)."""
    import needlec

    try:
        needlec.from_onnx(str(REPRO / folder / "model.onnx"))
    except Exception as exc:
        return error_outcome(exc, "import", str(REPRO / folder))
    return Outcome("compiled", "imported", "import")


def assert_clean(outcome: Outcome) -> None:
    """A one-line specific error, a model ONNX Runtime refuses, or outputs that match ONNX Runtime's."""
    assert outcome.kind in ("clean_error", "compiled", "matches"), outcome
    if outcome.kind == "clean_error":
        assert not any(name in outcome.message for name in RAW_EXCEPTIONS), outcome.message
        assert "rejected the module" not in outcome.message, outcome.message


def _mark_open(request: pytest.FixtureRequest, folder: str, stages: tuple[str, ...]) -> None:
    if folder in OPEN and OPEN[folder][0] in stages:
        request.applymarker(pytest.mark.xfail(strict=True, reason=OPEN[folder][1]))


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker(TIMEOUT_S) as isolated:
        yield isolated


def test_open_list_names_real_folders() -> None:
    assert set(OPEN) <= set(FOLDERS), sorted(set(OPEN) - set(FOLDERS))
    assert all(stage in ("import", "compile") and reason for stage, reason in OPEN.values())


@pytest.mark.parametrize("folder", FOLDERS)
def test_reproducer_imports_or_is_refused_cleanly(folder: str, worker: Worker,
                                                  request: pytest.FixtureRequest) -> None:
    _mark_open(request, folder, ("import",))
    assert_clean(worker.call(import_only, folder))


@pytest.mark.slow
@pytest.mark.parametrize("folder", FOLDERS)
def test_reproducer_compiles_and_matches_onnx_runtime_or_is_refused(folder: str, worker: Worker,
                                                                    request: pytest.FixtureRequest) -> None:
    _mark_open(request, folder, ("import", "compile"))
    assert_clean(worker.call(evaluate, mutant(folder), worker.folder, True))
