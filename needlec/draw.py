"""Pictures of a model's compilation: the data flow, its kernels (fusion groups) and the memory plan.

``picture(result)`` collects what a picture shows from a ``PipelineResult``:
one box per graph input, node and output (a node's constant and variable
inputs are listed inside its box with their types), one edge per value a node
reads, labelled with the value's type, one group per loop-IR kernel holding
the graph nodes it implements (its ``sources``; a node folded into several
kernels is drawn in the first), and the arena plan. It is drawn as DOT
(``to_dot``: a ``pydot.Dot`` with one ``cluster_`` subgraph per kernel, the
memory plan as a table node and each kernel's buffers in its tooltip), as SVG
(``to_svg``: graphviz's ``dot`` when it is on PATH, else ``layered_svg``, a
small layered layout of our own) and as one self-contained HTML page
(``to_html``: the SVG plus tables of the kernels and of the memory plan).
"""
from __future__ import annotations

import html
import shutil
from dataclasses import dataclass

import networkx as nx
import pydot

from needlec.compiler.loops.ir import Program
from needlec.compiler.ops.registry import get_op
from needlec.compiler.pipeline import PipelineResult
from needlec.errors import NeedlecError

FILL = {"input": "#dbeafe", "output": "#dcfce7", "node": "#ffffff", "view": "#f3f4f6", "update": "#fef9c3"}


@dataclass
class Box:
    """A vertex: ``kind`` is ``input``, ``node``, ``view`` (no kernel: aliases its input), ``update`` or ``output``."""

    id: str
    kind: str
    title: str
    lines: list[str]


@dataclass
class Edge:
    source: str
    target: str
    label: str


@dataclass
class Group:
    """One kernel: its name, the boxes it is drawn around, its sources, their origins and where its buffers live."""

    name: str
    members: list[str]
    nodes: list[str]
    origins: list[str]
    buffers: list[str]


@dataclass
class MemoryRow:
    """One arena buffer: offset and size in bytes, and the kernels from its first to its last use."""

    buffer: str
    offset: int
    nbytes: int
    live: str


@dataclass
class Picture:
    title: str
    boxes: list[Box]
    edges: list[Edge]
    groups: list[Group]
    memory: list[MemoryRow]
    arena_size: int


def _where(program: Program, name: str) -> str:
    """Where buffer ``name`` lives, e.g. ``arena @128, 64 B``, ``input 0``, ``constant``."""
    storage, buf = program.storage[name], program.buffers[name]
    if storage.kind == "arena":
        return f"arena @{storage.offset}, {buf.size * buf.dtype.itemsize} B"
    return f"{storage.kind} {storage.slot}" if storage.kind in ("input", "output") else str(storage.kind)


def _memory(program: Program) -> list[MemoryRow]:
    """The arena buffers in order of first use (never-used ones last) with their live kernel range."""
    uses: dict[str, list[int]] = {}
    for i, kernel in enumerate(program.kernels):
        for buf in kernel.buffers:
            uses.setdefault(buf.name, []).append(i)
    arena = [name for name, where in program.storage.items() if where.kind == "arena"]
    arena.sort(key=lambda name: (uses[name][0] if name in uses else len(program.kernels), name))
    return [MemoryRow(name, program.storage[name].offset,
                      program.buffers[name].size * program.buffers[name].dtype.itemsize,
                      f"k{uses[name][0]}..k{uses[name][-1]}" if name in uses else "unused") for name in arena]


def picture(result: PipelineResult) -> Picture:
    """What a picture of ``result`` shows (see the module docstring)."""
    graph, program = result.graph, result.program
    boxes: list[Box] = []
    edges: list[Edge] = []
    box_of: dict[int, str] = {}  # id(value) -> the box that produces it
    for i, value in enumerate(graph.inputs):
        boxes.append(Box(f"i{i}", "input", "input", [f"%{value.name}: {value.type}"]))
        box_of[id(value)] = f"i{i}"
    node_box: dict[str, str] = {}
    origin_of: dict[str, str | None] = {}
    for i, node in enumerate(graph.nodes):
        box = Box(f"n{i}", "view" if get_op(node.op).is_view else "node", node.op,
                  [f"%{v.name}: {v.type}" for v in node.outputs])
        if node.origin is not None:
            box.lines.append(f"origin {node.origin}")
        for value in node.inputs:
            if value.is_constant or value.is_variable:
                box.lines.append(f"{'var' if value.is_variable else 'const'} %{value.name}: {value.type}")
            else:
                edges.append(Edge(box_of[id(value)], box.id, str(value.type)))
        box_of.update((id(v), box.id) for v in node.outputs)
        boxes.append(box)
        node_box[node.name] = box.id
        origin_of[node.name] = node.origin
    for i, value in enumerate(graph.outputs):
        boxes.append(Box(f"o{i}", "output", "output", [f"%{value.name}: {value.type}"]))
        edges.append(Edge(box_of[id(value)], f"o{i}", str(value.type)))
    update_box: dict[str, str] = {}
    for i, (variable, value) in enumerate((var, v) for var, v in graph.updates if v is not var):
        boxes.append(Box(f"u{i}", "update", "update", [f"%{variable.name}: {variable.type}"]))
        edges.append(Edge(box_of[id(value)], f"u{i}", str(value.type)))
        update_box[variable.name] = f"u{i}"

    groups: list[Group] = []
    placed: set[str] = set()
    for kernel in program.kernels:
        ids = [update_box[s.node] if s.op == "update" else node_box[s.node] for s in kernel.sources]
        members = [b for b in dict.fromkeys(ids) if b not in placed]
        placed.update(members)
        origins = [o for o in dict.fromkeys(origin_of.get(s.node) for s in kernel.sources) if o is not None]
        groups.append(Group(kernel.name, members, [f"%{s.node} ({s.op})" for s in kernel.sources], origins,
                            [f"{b.name}: {_where(program, b.name)}" for b in kernel.buffers]))
    return Picture(graph.name, boxes, edges, groups, _memory(program), program.arena_size)


# -- DOT ---------------------------------------------------------------------------------------------------------

def _quoted(text: str) -> str:
    """``text`` for a quoted DOT attribute: pydot escapes quotes and newlines, not backslashes."""
    return text.replace("\\", "\\\\")


def _box_label(box: Box) -> str:
    lines = "".join(f'{html.escape(line)}<BR ALIGN="LEFT"/>' for line in box.lines)
    return f'<<B>{html.escape(box.title)}</B><BR/><FONT POINT-SIZE="10">{lines}</FONT>>'


def _memory_label(p: Picture) -> str:
    rows = "".join(f"<TR><TD ALIGN=\"LEFT\">{html.escape(r.buffer)}</TD><TD ALIGN=\"RIGHT\">{r.offset}</TD>"
                   f"<TD ALIGN=\"RIGHT\">{r.nbytes}</TD><TD>{r.live}</TD></TR>" for r in p.memory)
    return (f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">'
            f'<TR><TD COLSPAN="4"><B>memory plan: arena of {p.arena_size} bytes</B></TD></TR>'
            f"<TR><TD>buffer</TD><TD>offset</TD><TD>bytes</TD><TD>live</TD></TR>{rows}</TABLE>>")


def _dot(p: Picture) -> pydot.Dot:
    dot = pydot.Dot("needlec", graph_type="digraph", label=f"<<B>{html.escape(p.title)}</B>>", labelloc="t",
                    fontname="Helvetica")
    dot.set_node_defaults(shape="box", style="rounded,filled", fontname="Helvetica")
    dot.set_edge_defaults(fontname="Helvetica", fontsize="9")
    parent: dict[str, pydot.Dot | pydot.Cluster] = {box.id: dot for box in p.boxes}
    for i, group in enumerate(p.groups):
        cluster = pydot.Cluster(f"k{i}", label=f"<<B>{html.escape(group.name)}</B>>", style="rounded,dashed",
                                color="#2563eb", fontname="Helvetica",
                                tooltip=_quoted("kernel " + group.name + "\n" + "\n".join(group.buffers)))
        dot.add_subgraph(cluster)  # type: ignore[arg-type]  # pydot annotates Subgraph; it takes a Cluster too
        parent.update((member, cluster) for member in group.members)
    for box in p.boxes:
        parent[box.id].add_node(pydot.Node(box.id, label=_box_label(box), fillcolor=FILL[box.kind],
                                           shape="ellipse" if box.kind in ("input", "output") else "box"))
    for edge in p.edges:
        dot.add_edge(pydot.Edge(edge.source, edge.target, label=edge.label))
    dot.add_node(pydot.Node("memory_plan", shape="plain", fillcolor="white", label=_memory_label(p)))
    return dot


def to_dot(result: PipelineResult) -> pydot.Dot:
    """The picture of ``result`` as a ``pydot.Dot``: one cluster per kernel, the memory plan as a table node."""
    return _dot(picture(result))


# -- SVG without graphviz: layers by longest path from the inputs ------------------------------------------------

CHAR_W, LINE_H, PAD, GAP_X, GAP_Y, TITLE_H = 7.5, 16, 8, 32, 64, 18
Rect = tuple[float, float, float, float]  # x, y, width, height


def _size(box: Box, heading: str) -> tuple[float, float]:
    """Width and height of ``box``, at least as wide as ``heading`` (its kernel's name)."""
    return (2 * PAD + CHAR_W * max(len(t) for t in [heading, box.title, *box.lines]),
            2 * PAD + LINE_H * (1 + len(box.lines)))


def _layout(p: Picture, top: float) -> dict[str, Rect]:
    """Each box's rectangle, from ``top`` down: layer ``k`` holds the boxes whose longest path from an input has
    ``k`` edges, ordered by the mean centre of their predecessors; every layer is centred on one vertical line."""
    dg = nx.DiGraph()
    dg.add_nodes_from(box.id for box in p.boxes)
    dg.add_edges_from((e.source, e.target) for e in p.edges)
    boxes = {box.id: box for box in p.boxes}
    order = {box.id: i for i, box in enumerate(p.boxes)}
    heading = {member: group.name for group in p.groups for member in group.members[:1]}
    at: dict[str, Rect] = {}
    y = top
    for layer in nx.topological_generations(dg):
        def key(b: str) -> tuple[float, int]:
            centres = [at[s][0] + at[s][2] / 2 for s in dg.predecessors(b)]
            return (sum(centres) / len(centres) if centres else 0.0, order[b])

        layer = sorted(layer, key=key)
        sizes = [_size(boxes[b], heading.get(b, "")) for b in layer]
        x = -(sum(w for w, _ in sizes) + GAP_X * (len(layer) - 1)) / 2
        for b, (w, h) in zip(layer, sizes):
            at[b] = (x, y, w, h)
            x += w + GAP_X
        y += max(h for _, h in sizes) + GAP_Y
    left = min([x for x, _, _, _ in at.values()], default=0.0) - 2 * PAD
    return {b: (x - left, y, w, h) for b, (x, y, w, h) in at.items()}


def _text(x: float, y: float, text: str, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{html.escape(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, extra: str) -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" {extra}/>'


def _title(*lines: str) -> str:
    """An SVG tooltip."""
    return f"<title>{html.escape(chr(10).join(lines))}</title>"


def _kernel_svg(group: Group, at: dict[str, Rect]) -> str:
    x0 = min(at[m][0] for m in group.members) - PAD
    y0 = min(at[m][1] for m in group.members) - PAD - TITLE_H
    x1 = max(at[m][0] + at[m][2] for m in group.members) + PAD
    y1 = max(at[m][1] + at[m][3] for m in group.members) + PAD
    return (f'<g class="kernel">{_title("kernel " + group.name, *group.buffers)}'
            + _rect(x0, y0, x1 - x0, y1 - y0, 'rx="6" fill="#eff6ff" stroke="#2563eb" stroke-dasharray="4 3"')
            + _text(x0 + 6, y0 + 13, group.name, ' font-weight="bold" fill="#1d4ed8"') + "</g>")


def _edge_svg(edge: Edge, at: dict[str, Rect]) -> str:
    sx, sy, sw, sh = at[edge.source]
    tx, ty, tw, _ = at[edge.target]
    x1, y1, x2, y2 = sx + sw / 2, sy + sh, tx + tw / 2, ty
    ym = (y1 + y2) / 2
    return (f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{ym:.1f} {x2:.1f},{ym:.1f} {x2:.1f},{y2:.1f}" fill="none" '
            'stroke="#6b7280" marker-end="url(#arrow)"/>'
            + _text((x1 + x2) / 2 + 4, ym, edge.label, ' font-size="10" fill="#4b5563"'))


def _box_svg(box: Box, at: dict[str, Rect]) -> str:
    x, y, w, h = at[box.id]
    corner = h / 2 if box.kind in ("input", "output") else 4
    lines = "".join(_text(x + PAD, y + PAD + LINE_H * (i + 1.7), line) for i, line in enumerate(box.lines))
    return (f'<g class="box {box.kind}">{_title(box.title, *box.lines)}'
            + _rect(x, y, w, h, f'rx="{corner:.1f}" fill="{FILL[box.kind]}" stroke="#374151"')
            + _text(x + PAD, y + PAD + LINE_H * 0.75, box.title, ' font-weight="bold"') + lines + "</g>")


def _memory_svg(p: Picture, x: float, y: float) -> tuple[str, float]:
    """The memory plan as SVG text columns starting at (``x``, ``y``); returns it and the y below it."""
    rows = [("buffer", "offset", "bytes", "live")] + [(r.buffer, str(r.offset), str(r.nbytes), r.live)
                                                      for r in p.memory]
    widths = [max(len(row[c]) for row in rows) * CHAR_W + 2 * PAD for c in range(4)]
    parts = [_text(x, y, f"memory plan: arena of {p.arena_size} bytes", ' font-weight="bold"')]
    for i, row in enumerate(rows):
        column_x = x
        for c, cell in enumerate(row):
            parts.append(_text(column_x, y + LINE_H * (i + 1.2), cell, ' font-weight="bold"' if i == 0 else ""))
            column_x += widths[c]
    return '<g class="memory">' + "".join(parts) + "</g>", y + LINE_H * (len(rows) + 1)


def layered_svg(p: Picture) -> str:
    """SVG of ``p`` without graphviz: boxes in layers by longest path from the inputs, kernels as rectangles
    behind their boxes, edges as curves labelled with their types, the memory plan below."""
    at = _layout(p, top=2 * TITLE_H + 2 * PAD)
    bottom = max([y + h for _, y, _, h in at.values()], default=TITLE_H) + GAP_Y
    memory, height = _memory_svg(p, 2 * PAD, bottom)
    width = max([x + w for x, _, w, _ in at.values()] + [CHAR_W * 60]) + 2 * PAD
    size = f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}"'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" {size} font-family="monospace" font-size="12">'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>'
            + _text(2 * PAD, TITLE_H, p.title, ' font-weight="bold" font-size="14"')
            + "".join(_kernel_svg(g, at) for g in p.groups) + "".join(_edge_svg(e, at) for e in p.edges)
            + "".join(_box_svg(b, at) for b in p.boxes) + memory + "</svg>\n")


def _svg(p: Picture, graphviz: bool | None) -> str:
    if graphviz is None:
        graphviz = shutil.which("dot") is not None
    if not graphviz:
        return layered_svg(p)
    try:
        svg = _dot(p).create(format="svg")
    except (OSError, AssertionError) as exc:  # pydot asserts that dot exited with 0
        raise NeedlecError(f"graphviz's dot failed: {exc}") from None
    return svg.decode("utf-8") if isinstance(svg, bytes) else svg  # pydot annotates str, returns dot's bytes


def to_svg(result: PipelineResult, graphviz: bool | None = None) -> str:
    """SVG of ``result``: through graphviz's ``dot`` (``graphviz=None``: when it is on PATH), else ``layered_svg``."""
    return _svg(picture(result), graphviz)


# -- HTML ----------------------------------------------------------------------------------------------------------

def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"


STYLE = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:2em}"
         "td,th{border:1px solid #d1d5db;padding:2px 8px;text-align:left;vertical-align:top;font-family:monospace}"
         ".picture{overflow:auto;border:1px solid #d1d5db;margin-bottom:2em}td{white-space:pre}")


def to_html(result: PipelineResult, graphviz: bool | None = None) -> str:
    """One self-contained HTML page (nothing fetched): the SVG of ``to_svg``, the kernels and the memory plan."""
    p = picture(result)
    svg = _svg(p, graphviz)
    svg = svg[svg.index("<svg"):]  # no XML declaration or DOCTYPE inside HTML
    kernels = _table(("kernel", "members", "origins", "buffers"),
                     [(g.name, "\n".join(g.nodes), "\n".join(g.origins), "\n".join(g.buffers)) for g in p.groups])
    memory = _table(("buffer", "offset", "bytes", "live"),
                    [(r.buffer, str(r.offset), str(r.nbytes), r.live) for r in p.memory])
    title = html.escape(p.title)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{title}</h1>\n"
            f'<div class="picture">{svg}</div>\n<h2>Kernels ({len(p.groups)})</h2>\n{kernels}\n'
            f"<h2>Memory plan: arena of {p.arena_size} bytes</h2>\n{memory}\n</body></html>\n")


def render(result: PipelineResult, fmt: str, graphviz: bool | None = None) -> str:
    """The picture of ``result`` as text in ``fmt``: ``dot``, ``svg`` or ``html``."""
    if fmt == "dot":
        return to_dot(result).to_string()
    return to_svg(result, graphviz) if fmt == "svg" else to_html(result, graphviz)
