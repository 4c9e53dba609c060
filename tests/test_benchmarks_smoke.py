"""The CPU benchmark (benchmarks/bench_cpu.py) still runs: its tiniest configuration; no speed is asserted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow  # about 10 s of CPU, more on a loaded machine (one compiled model, four kernels)
def test_bench_cpu_smallest_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_cpu
    import cpu_models

    monkeypatch.setattr(cpu_models, "CACHE", tmp_path / "models")
    threads = bench_cpu.available_cores()  # the kernels run in this process (no subprocess for another count)
    monkeypatch.setenv("NEEDLEC_NUM_THREADS", str(threads))  # main() sets it: restored afterwards
    rows_file = tmp_path / "rows.json"
    code = bench_cpu.main(["--only", "models,kernels", "--models", "test-resnet", "--gemm-sizes", "16",
                           "--size", "16", "--repeat", "1", "--threads", str(threads), "--json", str(rows_file)])
    assert code == 0
    result = json.loads(rows_file.read_text())
    assert result["host"]["cores"] >= 1
    rows = {row["name"]: row for row in result["rows"]}
    assert list(rows) == ["test resnet (tests/onnx_models.py)", "SGEMM 16^3", "tanh-GELU 16x16", "softmax rows 16x16",
                          "layer norm rows 16x16"]
    for row in rows.values():
        assert row["needlec_ms"] > 0 and row["peer_ms"] > 0 and row["ratio"] > 0, row
        assert "MISMATCH" not in row["notes"], row
