"""The docs cannot drift: docs/ONNX_OPS.md is regenerated in memory and compared, and the IR dumps quoted in
docs/IR_WALKTHROUGH.md are checked against what `needlec ir` prints today."""
from __future__ import annotations

import importlib.util
import pathlib
import re
from typing import Any

import onnx
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _table_tool() -> Any:
    spec = importlib.util.spec_from_file_location("onnx_ops_table", ROOT / "tools" / "onnx_ops_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_onnx_ops_table_lists_every_converter() -> None:
    from needlec.frontend.onnx.context import CONVERTERS

    tool = _table_tool()
    doc = (ROOT / "docs" / "ONNX_OPS.md").read_text()
    rows = {(m.group(2), m.group(1)) for m in re.finditer(r"^\| (\w+) \| `([\w.]+)` \|", doc, re.MULTILINE)}
    assert {tool.split_key(key) for key in CONVERTERS} == rows


def test_onnx_ops_table_is_up_to_date() -> None:
    doc = (ROOT / "docs" / "ONNX_OPS.md").read_text()
    if f"onnx {onnx.__version__}," not in doc:  # schema versions and conformance cases depend on onnx's version
        pytest.skip(f"docs/ONNX_OPS.md was generated with another onnx than {onnx.__version__}")
    assert _table_tool().render() == doc, \
        "docs/ONNX_OPS.md is out of date: run python tools/onnx_ops_table.py --write"


def test_every_expected_failure_names_an_op() -> None:
    tool = _table_tool()
    known = tool.schemas()
    for case in tool.expected_failures():
        tool.case_op(case, known)  # ValueError when a case name matches no op


def _dump_lines(doc: str, command: str) -> list[str]:
    """The lines of the code block in ``doc`` that starts with ``$ command``, without the elision marks."""
    block = doc.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and "..." not in line]


@pytest.mark.parametrize("stage", ["input", "loops"])
def test_ir_walkthrough_dumps_match_needlec_ir(stage: str, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/IR_WALKTHROUGH.md quotes `needlec ir examples/mlp.py`: every line it shows is in today's output."""
    from needlec.cli import main

    assert main(["ir", str(ROOT / "examples" / "mlp.py"), "--stage", stage, "-q"]) == 0
    output = set(capsys.readouterr().out.splitlines())
    doc = (ROOT / "docs" / "IR_WALKTHROUGH.md").read_text()
    stale = [line for line in _dump_lines(doc, f"needlec ir examples/mlp.py --stage {stage}") if line not in output]
    assert not stale, f"docs/IR_WALKTHROUGH.md is stale; lines no longer printed: {stale}"
