"""Golden IR tests: each file in tests/golden holds a pass's input and expected output as IR text."""
from __future__ import annotations

import pathlib

import pytest

from needlec.compiler.ir.parser import parse_graph
from needlec.compiler.ir.printer import print_graph
from needlec.compiler.ir.verifier import verify_graph
from needlec.compiler.passes import PASSES

GOLDEN = sorted((pathlib.Path(__file__).parent / "golden").glob("*.txt"))
BY_NAME = {p.name: p for p in PASSES}


def _split(path: pathlib.Path) -> tuple[str, str, str]:
    text = path.read_text()
    header, rest = text.split("\n", 1)
    assert header.startswith("// pass: "), f"{path.name}: first line must name the pass"
    source, expected = rest.split("// expect\n")
    return header.removeprefix("// pass: ").strip(), source, expected


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_pass_output_matches_golden(path: pathlib.Path) -> None:
    name, source, expected = _split(path)
    graph = BY_NAME[name].run(parse_graph(source))
    verify_graph(graph)
    assert print_graph(graph) == expected
    assert print_graph(parse_graph(expected)) == expected


def test_every_graph_pass_except_verify_has_a_golden_file() -> None:
    covered = {_split(p)[0] for p in GOLDEN}
    graph_passes = {p.name for p in PASSES if p.kind == "graph" and p.name != "verify"}
    assert graph_passes - covered <= {"dce"}, graph_passes - covered
