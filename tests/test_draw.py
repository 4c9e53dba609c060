"""Pictures of a compilation (needlec/draw.py, `needlec ir --dot/--svg/--html`): the DOT parses back with one
cluster per kernel, the built-in SVG layout is well-formed XML showing every kernel, node and buffer, the HTML page
is self-contained, and the command writes the files and reports each on stderr."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pydot
import pytest
from onnx import TensorProto, helper, numpy_helper

from needlec import draw
from needlec.cli import main
from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Graph
from needlec.compiler.ir.types import TensorType
from needlec.compiler.pipeline import Pipeline, PipelineResult
from needlec.driver import load_model_file
from needlec.errors import NeedlecError

ROOT = Path(__file__).resolve().parent.parent
CNN = str(ROOT / "examples" / "cnn.py")
ODD = 'my "odd" <node> & \\back'  # an ONNX node name that DOT, XML and HTML must all escape
SVG = "{http://www.w3.org/2000/svg}"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pydot.dot_parser")  # its pyparsing calls


def odd_names_model() -> onnx.ModelProto:
    """y = relu(x @ W + B) whose node and value names need escaping everywhere."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x\\in", "W"], ["x@W"], name=ODD),
             helper.make_node("Add", ["x@W", "B"], ["pre"], name="bias<&>"),
             helper.make_node("Relu", ["pre"], ["y\"out"], name="relu")]
    graph = helper.make_graph(nodes, "odd", [helper.make_tensor_value_info("x\\in", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y\"out", TensorProto.FLOAT, [2, 4])],
                              [numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "W"),
                               numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def training_graph() -> Graph:
    """x + w with the variable w updated to the result after each call, in a graph whose name needs escaping."""
    g = Graph('step "<&>"')
    x = g.add_input("x", TensorType((3,), DType.F32))
    w = g.add_variable(np.zeros(3, np.float32), "w")
    y = g.add("add", x, w)
    g.set_outputs([y])
    g.set_update(w, y)
    return g


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from tests.onnx_models import MODELS

    folder = tmp_path_factory.mktemp("draw")
    onnx.save(odd_names_model(), folder / "odd.onnx")
    return {"cnn": CNN, "resnet": str(MODELS["resnet"].export(folder / "resnet.onnx", batch=1)),
            "odd": str(folder / "odd.onnx")}


@pytest.fixture(scope="module")
def results(models: dict[str, str]) -> dict[str, PipelineResult]:
    found = {name: Pipeline().run(load_model_file(path)) for name, path in models.items()}
    found["training"] = Pipeline().run(training_graph())
    return found


def lines(label: str | None) -> list[str]:
    """The lines of a DOT label's text (an HTML-like label loses its tags, each ending a line)."""
    label = label or ""
    if label.startswith("<") and label.endswith(">"):
        label = re.sub(r"<[^>]*>", "\n", label[1:-1])
    return [html.unescape(line) for line in label.strip('"').split("\n") if line]


def unquote(text: str) -> str:
    """A quoted DOT string's text: ``\\n`` is a line break, a backslash escapes the next character."""
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text[1:-1])


def labels(graph: pydot.Dot | pydot.Subgraph) -> list[list[str]]:
    """The label lines of each vertex of ``graph`` (not of its subgraphs)."""
    return [lines(n.get("label")) for n in graph.get_nodes() if n.get_name() not in ("node", "edge", "graph")]


@pytest.mark.parametrize("model", ["cnn", "resnet", "odd", "training"])
def test_dot_parses_back_with_one_cluster_per_kernel_around_its_nodes(results, model: str) -> None:
    result = results[model]
    (parsed,) = pydot.graph_from_dot_data(draw.to_dot(result).to_string())
    clusters = parsed.get_subgraphs()
    assert [lines(c.get("label")) for c in clusters] == [[k.name] for k in result.program.kernels]
    types = {v.name: v.type for v in result.graph.values()}
    for cluster, kernel in zip(clusters, result.program.kernels):
        own = kernel.sources[-1]  # the node a kernel computes is drawn inside its cluster, headed by its op
        assert [own.op, f"%{own.node}: {types[own.node]}"] in [label[:2] for label in labels(cluster)], kernel.name
        heading, *buffers = unquote(cluster.get("tooltip")).split("\n")  # where each of its buffers lives
        assert heading == f"kernel {kernel.name}" and [b.split(": ")[0] for b in buffers] == \
            [b.name for b in kernel.buffers]
        storage = result.program.storage
        assert all(f"arena @{storage[b.name].offset}, " in line or storage[b.name].kind != "arena"
                   for b, line in zip(kernel.buffers, buffers))
    everything = [line for graph in [parsed, *clusters] for label in labels(graph) for line in label]
    for node in result.graph.nodes:
        assert f"%{node.name}: {node.outputs[0].type}" in everything
        if node.origin is not None:
            assert f"origin {node.origin}" in everything
    for value in result.graph.constants:
        assert f"const %{value.name}: {value.type}" in everything
    reads = sum(1 for n in result.graph.nodes for v in n.inputs if not (v.is_constant or v.is_variable))
    updates = sum(1 for var, v in result.graph.updates if v is not var)
    edges = parsed.get_edges()
    assert len(edges) == reads + len(result.graph.outputs) + updates
    assert {e.get("label").strip('"') for e in edges} <= {str(t) for t in types.values()}
    assert f"memory plan: arena of {result.program.arena_size} bytes" in everything
    assert all(name in everything for name, where in result.program.storage.items() if where.kind == "arena")


def test_onnx_node_names_and_odd_names_survive_escaping(results) -> None:
    origins = {n.origin for n in results["odd"].graph.nodes}
    assert {ODD, "bias<&>", "relu"} <= origins
    resnet_origins = {n.origin for n in results["resnet"].graph.nodes}
    assert "/stem/stem.0/stem.0.0/Conv" in resnet_origins
    (parsed,) = pydot.graph_from_dot_data(draw.to_dot(results["training"]).to_string())
    assert lines(parsed.get("label")) == ['step "<&>"']
    (parsed,) = pydot.graph_from_dot_data(draw.to_dot(results["odd"]).to_string())
    everything = [line for c in parsed.get_subgraphs() for label in labels(c) for line in label]
    assert f"origin {ODD}" in everything and '%y"out: f32[2, 4]' in everything


def boxes(root: ET.Element, kind: str) -> list[list[float]]:
    """x, y, width and height of the rectangle of each SVG group of class ``kind``."""
    groups = [g for g in root.iter(f"{SVG}g") if g.get("class", "").split()[0] == kind]
    return [[float(rect.attrib[a]) for a in ("x", "y", "width", "height")] for g in groups
            for rect in g.iter(f"{SVG}rect")]


@pytest.mark.parametrize("model", ["cnn", "resnet", "odd", "training"])
def test_fallback_svg_is_well_formed_and_shows_every_kernel_node_and_buffer(results, monkeypatch, model: str) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)  # as on the CI hosts: no graphviz
    result = results[model]
    root = ET.fromstring(draw.render(result, "svg"))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for kernel in result.program.kernels:
        assert kernel.name in texts
    for node in result.graph.nodes:
        assert f"%{node.name}: {node.outputs[0].type}" in texts
    assert f"memory plan: arena of {result.program.arena_size} bytes" in texts
    kernels, nodes = boxes(root, "kernel"), boxes(root, "box")
    assert len(kernels) == len(result.program.kernels)
    for i, (x, y, w, h) in enumerate(nodes):  # boxes never overlap
        assert all(x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y for x2, y2, w2, h2 in nodes[:i])
    for (x, y, w, h), kernel in zip(kernels, result.program.kernels):  # each kernel's rectangle holds a box
        assert any(x < bx and y < by and bx + bw < x + w and by + bh < y + h for bx, by, bw, bh in nodes), kernel.name


def test_svg_goes_through_graphviz_when_dot_is_on_path(results, monkeypatch) -> None:
    formats = []

    def create(self: pydot.Dot, prog: object = None, format: str = "ps", encoding: object = None) -> bytes:
        formats.append(format)
        return b'<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg><text>by graphviz</text></svg>\n'

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot" if name == "dot" else None)
    monkeypatch.setattr(pydot.Dot, "create", create)
    assert draw.render(results["cnn"], "svg").endswith("<svg><text>by graphviz</text></svg>\n")
    page = draw.render(results["cnn"], "html")
    assert "<svg><text>by graphviz</text></svg>" in page and "<?xml" not in page and "DOCTYPE svg" not in page
    assert formats == ["svg", "svg"]

    def fail(self: pydot.Dot, prog: object = None, format: str = "ps", encoding: object = None) -> bytes:
        raise AssertionError('"dot" with args [...] returned code: 1')

    monkeypatch.setattr(pydot.Dot, "create", fail)
    with pytest.raises(NeedlecError, match="graphviz's dot failed: .*returned code: 1"):
        draw.render(results["cnn"], "svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
@pytest.mark.parametrize("model", ["resnet", "odd", "training"])
def test_graphviz_draws_the_dot(results, model: str) -> None:
    """Where graphviz is installed, it accepts the DOT (HTML-like labels included) and keeps every kernel name."""
    root = ET.fromstring(draw.to_svg(results[model]))
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {k.name for k in results[model].program.kernels} <= texts


def test_html_page_is_self_contained_with_the_picture_and_tables(results) -> None:
    result = results["odd"]
    page = draw.to_html(result, graphviz=False)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 1
    ET.fromstring(page[page.index("<svg"):page.index("</svg>") + 6])
    assert not re.search(r"\b(src|href)=|@import|url\((?!#)", page)  # nothing to fetch
    for kernel in result.program.kernels:
        assert f"<tr><td>{kernel.name}</td>" in page
    assert re.search(f"<td>[^<]*{re.escape(html.escape(ODD))}[^<]*</td>", page)  # the origins column
    for name, where in result.program.storage.items():
        if where.kind == "arena":
            assert f"<tr><td>{name}</td><td>{where.offset}</td>" in page
    assert f"Kernels ({len(result.program.kernels)})" in page


def test_ir_writes_each_picture_and_prints_only_what_it_wrote(tmp_path, capsys) -> None:
    paths = [str(tmp_path / name) for name in ("g.dot", "g.svg", "g.html")]
    assert main(["ir", CNN, "--dot", paths[0], "--svg", paths[1], "--html", paths[2]]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"needlec: wrote {p}" for p in paths]  # no progress in a pipe
    assert Path(paths[0]).read_text().startswith("digraph")
    assert "<svg" in Path(paths[1]).read_text() and "<svg" in Path(paths[2]).read_text()


def test_ir_pictures_with_a_stage_and_quiet(tmp_path, capsys) -> None:
    svg = tmp_path / "g.svg"
    assert main(["ir", CNN, "--svg", str(svg), "--stage", "graph", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("// ----- graph after the last graph pass -----")
    assert "// ----- input graph" not in captured.out and "// ----- loop IR" not in captured.out
    assert captured.err == "" and svg.is_file()


def test_ir_refuses_a_missing_folder_before_compiling(tmp_path, capsys) -> None:
    dot = tmp_path / "g.dot"
    missing = tmp_path / "nowhere" / "g.svg"
    assert main(["ir", CNN, "--dot", str(dot), "--svg", str(missing)]) == 1
    assert capsys.readouterr().err == (f"needlec: error: cannot write {missing}: the folder {missing.parent} "
                                       "does not exist\n")
    assert not dot.exists()


def test_the_command_draws_an_onnx_model(models, tmp_path) -> None:
    page = tmp_path / "odd.html"
    done = subprocess.run([sys.executable, "-m", "needlec.cli", "ir", models["odd"], "--html", str(page)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", f"needlec: wrote {page}\n")
    assert html.escape(ODD) in page.read_text()
