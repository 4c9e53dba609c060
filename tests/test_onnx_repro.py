"""Every fuzzer reproducer in tests/repro/ is refused with a clean error, or compiles and agrees with ONNX Runtime.

Each folder holds a mutated ONNX node-test model (``model.onnx``, sometimes
``inputs_and_needlec_outputs.pkl`` with the inputs it ran on). Models run in
an isolated worker process with a 4 GiB address-space cap and a timeout
(``tests/onnx_fuzz_runner.Worker``), so a hang, a crash or a runaway
allocation fails one case instead of the run. A clean error is a one-line
``NeedlecError`` that is not an ``InternalError``, does not quote a raw Python
exception and is not LLVM's multi-line complaint.

``OPEN`` lists the reproducers whose values differ from ONNX Runtime by a
documented choice where ONNX leaves the semantics open, with the stage and
the reason; a strict xfail notices when one starts to agree.
"""
from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.onnx_fuzz import Mutant
from tests.onnx_fuzz_runner import Outcome, Worker, error_outcome, evaluate

REPRO = Path(__file__).resolve().parent / "repro" / "fuzz-t2"
FOLDERS = sorted(p.name for p in REPRO.iterdir() if (p / "model.onnx").is_file())
INPUTS_FILE = "inputs_and_needlec_outputs.pkl"
TIMEOUT_S = 30.0
RAW_EXCEPTIONS = ("TypeError:", "IndexError:", "KeyError:", "ValueError:", "ZeroDivisionError:", "OverflowError:",
                  "AttributeError:", "RecursionError:", "MemoryError:")

# documented choices where ONNX leaves the semantics open (docs/ARCHITECTURE.md, "Op semantics worth knowing";
# each has a test in tests/test_onnx_attributes.py): needlec's values differ from ONNX Runtime's on purpose
DFT = "documented choice: DFT computes in f64 (6e-6 from the exact transform); ONNX Runtime's float32 FFT is up " \
      "to 3.4e-4 off, beyond this comparison's atol 1e-4"
NAN_WINS = "documented choice: NaN wins in max-like ops; ONNX Runtime skips NaN"
IEEE = "documented choice: inf/NaN in the inputs or weights follow IEEE arithmetic in needlec's order of operations"
# folder -> (stage, reason): "import" fails at import (both tests), "compile" only when compiled, run and compared
OPEN: dict[str, tuple[str, str]] = {
    **{folder: ("compile", DFT) for folder in (
        "S117_mismatch_value_DFT", "S121_mismatch_value_DFT", "S123_mismatch_value_DFT", "S124_mismatch_value_DFT",
        "S129_mismatch_value__", "S132_mismatch_value__", "S142_mismatch_value_DFT", "S144_mismatch_value__",
        "S148_mismatch_value__")},
    **{folder: ("compile", NAN_WINS) for folder in (
        "S118_mismatch_value_MaxPool", "S120_mismatch_value_Hardmax", "S125_mismatch_value_MaxPool",
        "S127_mismatch_value_ArgMax")},
    **{folder: ("compile", IEEE) for folder in (
        "S119_mismatch_value_LSTM", "S122_mismatch_value_GridSample", "S130_mismatch_value_LRN",
        "S131_mismatch_value_InstanceNormalization", "S134_mismatch_value_LRN", "S135_mismatch_value_ConvTranspose",
        "S136_mismatch_value_Attention", "S147_mismatch_value_ConvTranspose")},
    "S133_mismatch_value_DFT": ("compile", DFT),
    "S143_mismatch_value_ReduceLogSumExp": ("compile", "documented choice: ReduceLogSumExp is shifted by the "
                                                       "maximum and stays finite where ONNX Runtime overflows to inf"),
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
