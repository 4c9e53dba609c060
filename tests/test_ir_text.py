"""The graph IR text format (print -> parse -> print is the identity) and the loop-IR printer."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from needlec import DType, Graph, TensorType
from needlec.compiler.interpreter import interpret
from needlec.compiler.ir.parser import parse_graph
from needlec.compiler.ir.printer import MAX_LITERAL_ELEMENTS, print_graph
from needlec.compiler.ir.verifier import verify_graph
from needlec.compiler.loops.ir import (Assign, Binary, Buffer, Cast, Const, If, Kernel, Load, Local, LocalRef, Loop,
                                       Select, Source, Store, Unary, Var)
from needlec.compiler.loops.printer import print_expr, print_kernel, print_program
from needlec.compiler.ops import registry
from needlec.compiler.ops.registry import Attr, OpDef
from needlec.compiler.passes import PASSES
from needlec.compiler.pipeline import Pipeline, PipelineOptions, sample_inputs
from needlec.errors import ParseError
from tests.opcases import OpCase, all_cases, build_case

OP_CASES = all_cases()


def roundtrip(graph: Graph) -> Graph:
    """Print, parse and print again; the texts must be identical and the parsed graph valid."""
    text = print_graph(graph)
    parsed = parse_graph(text)
    assert print_graph(parsed) == text
    verify_graph(parsed)
    return parsed


def assert_same_results(a: Graph, b: Graph, inputs: Sequence[np.ndarray]) -> None:
    for got, want in zip(interpret(b, inputs), interpret(a, inputs), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        # bit for bit: NumPy's NaN-aware equality does not know the ml_dtypes formats (bf16, f8, i4)
        np.testing.assert_array_equal(np.ascontiguousarray(got).reshape(-1).view(np.uint8),
                                      np.ascontiguousarray(want).reshape(-1).view(np.uint8))


def assert_same_constants(a: Graph, b: Graph) -> None:
    assert [v.name for v in a.constants] == [v.name for v in b.constants]
    for x, y in zip(a.constants, b.constants):
        assert y.data is not None and x.data is not None
        assert y.data.dtype == x.data.dtype and y.data.shape == x.data.shape, x.name
        assert y.data.tobytes() == x.data.tobytes(), f"constant %{x.name} changed its bytes"


def mixed_graph() -> Graph:
    """A graph exercising many ops, layouts, attribute kinds, constants and an origin."""
    g = Graph("mixed")
    x = g.add_input("x", TensorType((3, 4), DType.F32))
    flags = g.add_input("flags", TensorType((4,), DType.BOOL))
    w = g.add_constant(np.linspace(-1, 1, 4, dtype=np.float32), "w")
    big = g.add_constant(np.arange(60, dtype=np.float32).reshape(3, 4, 5) / 7, "big")
    h = g.add_constant(np.array([0.5, -2.25], np.float16), "h")
    two = g.add_constant(np.array(2, np.int8), "two")
    empty = g.add_constant(np.zeros((0, 4), np.float32), "empty")
    t = g.add("permute", x, perm=[1, 0])
    s = g.add("slice", t, starts=[3], stops=[-100], steps=[-2], axes=[0])
    y = g.add("mul", g.add("add", x, w), g.add("exp", x))
    r = g.add("reshape", y, shape=[2, 6])
    b = g.add("broadcast_to", w, shape=[2, 3, 4])
    z = g.add("where", flags, x, g.add("neg", x))
    c = g.add("copy", s)
    i = g.add("cast", g.add("cast", x, dtype=DType.I8), dtype=DType.I8)
    k = g.add("mul", i, two)
    f16 = g.add("add", g.add("cast", h, dtype=DType.F16), h)
    grad = g.add_node("sub", [z, x], origin="3").outputs[0]
    tail = g.add("add", g.add("slice", big, starts=[0], stops=[1], steps=[1], axes=[2]),
                 g.add("slice", big, starts=[1], stops=[2], steps=[1], axes=[2]))
    e = g.add("abs", empty)
    g.set_outputs([c, r, b, k, f16, grad, tail, e, x])
    return g


def test_mixed_graph_round_trips_and_computes_the_same() -> None:
    g = mixed_graph()
    parsed = roundtrip(g)
    assert [n.origin for n in parsed.nodes] == [n.origin for n in g.nodes]
    assert [v.name for v in parsed.outputs] == [v.name for v in g.outputs]
    assert_same_constants(g, parsed)
    assert_same_results(g, parsed, sample_inputs(g))


def test_printed_form_is_the_documented_one() -> None:
    text = print_graph(mixed_graph())
    assert text.startswith("graph @mixed(%x: f32[3, 4], %flags: bool[4]) {\n")
    assert text.endswith("}\n")
    assert "  %w: f32[4] = constant dense<[-1.0, -0.33333334, 0.33333334, 1.0]>\n" in text
    assert "  %two: i8[] = constant dense<2>\n" in text
    assert "  %empty: f32[0, 4] = constant dense<[]>\n" in text
    assert re.search(r'  %big: f32\[3, 4, 5\] = constant dense<"[A-Za-z0-9+/=]+">\n', text)
    assert "= permute(%x) {perm=[1, 0]}\n" in text
    assert "{axes=[0], starts=[3], steps=[-2], stops=[-100]}" in text
    assert "f32[2, 3]{strides=[-2, 4], offset=3} = slice(" in text
    assert "= cast(%x) {dtype=i8}" in text
    assert re.search(r' = sub\(%\d+, %x\) origin="3"\n', text)
    assert "  return %" in text


@pytest.mark.parametrize("dtype", list(DType), ids=lambda d: d.value)
@pytest.mark.parametrize("size", [0, 1, 5, MAX_LITERAL_ELEMENTS + 1, 1000])
def test_constants_of_every_dtype_keep_their_bytes(dtype: DType, size: int) -> None:
    rng = np.random.default_rng(size)
    if dtype.is_float_format:
        data = (rng.standard_normal(size) * (3.0 if dtype.is_storage else 1e3)).astype(dtype.np)  # f8: no NaN
    elif dtype.is_bool:
        data = rng.integers(0, 2, size).astype(np.bool_)
    else:
        wide = np.int8 if dtype.is_storage else dtype.np  # rng draws no int4
        info = ml_dtypes.iinfo(dtype.np)
        data = rng.integers(int(info.min), int(info.max), size, endpoint=True, dtype=wide).astype(dtype.np)
    g = Graph("consts")
    vector = g.add_constant(data, "v")
    square = g.add_constant(data[: (size // 2) * 2].reshape(2, -1) if size >= 2 else data.reshape(1, size), "m")
    scalar = g.add_constant(data[:1].reshape(()) if size else np.zeros((), dtype.np), "s")
    g.set_outputs([vector, square, scalar])
    text = print_graph(g)
    literal = 'dense<"' not in text.splitlines()[1]
    assert literal == (size <= MAX_LITERAL_ELEMENTS)
    assert_same_constants(g, roundtrip(g))


def test_special_floats_round_trip_exactly() -> None:
    odd_nan = np.array([0x7FC00001, 0xFFC00000], np.uint32).view(np.float32)
    g = Graph("special")
    a = g.add_constant(np.array([np.inf, -np.inf, np.nan, -0.0, 1e-45, 3.4028235e38, 0.1], np.float32), "a")
    b = g.add_constant(odd_nan, "b")
    c = g.add_constant(np.array([6e-8, 65504.0, -0.0, np.nan, 0.1], np.float16), "c")
    d = g.add_constant(np.array([5e-324, 1.7976931348623157e308, 1 / 3], np.float64), "d")
    e = g.add_constant(np.array([-(2**63), 2**63 - 1], np.int64), "e")
    g.set_outputs([a, b, c, d, e])
    text = print_graph(g)
    assert "dense<[inf, -inf, nan, -0.0, 1e-45, 3.4028235e+38, 0.1]>" in text
    assert '%b: f32[2] = constant dense<"' in text  # NaN payloads survive only as raw bytes
    assert "dense<[-9223372036854775808, 9223372036854775807]>" in text
    assert_same_constants(g, roundtrip(g))


@pytest.mark.parametrize("name", ["a b", 'say "hi"', "back\\slash", "new\nline", "tab\there", "ünïcødé",
                                  "\x01ctl", "-dash", "%pct", "@at", "x.1", "_9"])
def test_value_and_graph_names_needing_quotes(name: str) -> None:
    g = Graph(name)
    x = g.add_input(name, TensorType((2,), DType.F32))
    c = g.add_constant(np.ones(2, np.float32), name + "c")
    y = g.add_node("add", [x, c], names=[name + "y"], origin=name).outputs[0]
    g.set_outputs([y])
    text = print_graph(g)
    plain = re.fullmatch(r"[A-Za-z0-9_.]+", name) is not None
    assert (f"%{name}:" in text) == plain
    assert "\n" not in text.splitlines()[0]
    parsed = roundtrip(g)
    assert parsed.name == name
    assert [v.name for v in parsed.values()] == [name, name + "c", name + "y"]
    assert parsed.nodes[0].origin == name


def _probe_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    return [types[0].contiguous()]


PROBE = OpDef("attr_probe", 1, _probe_infer, lambda args, attrs: [np.array(args[0])], None,
              attrs={"i": Attr("int"), "f": Attr("float"), "b": Attr("bool"), "s": Attr("str"),
                     "ii": Attr("ints"), "ff": Attr("floats"), "d": Attr("dtype"), "opt": Attr("int", 7)},
              doc="test-only op carrying one attribute of every kind")


TWO_OUTPUTS = OpDef("pair_probe", 1, lambda types, attrs: [types[0].contiguous(), TensorType((), DType.I64)],
                    lambda args, attrs: [np.array(args[0]), np.array(args[0].size, np.int64)], None,
                    doc="test-only op with two outputs: a copy of x and its size")


@pytest.fixture
def probe_op(monkeypatch: pytest.MonkeyPatch) -> OpDef:
    """Registers the test-only ops for one test (no registered op has every attribute kind or two outputs)."""
    registry.get_op("add")  # make sure the real ops are registered before patching the table
    monkeypatch.setitem(registry._REGISTRY, PROBE.name, PROBE)
    monkeypatch.setitem(registry._REGISTRY, TWO_OUTPUTS.name, TWO_OUTPUTS)
    return PROBE


@pytest.mark.parametrize("attrs, printed", [
    ({"i": -3, "f": 3.0, "b": True, "s": "plain", "ii": [], "ff": [], "d": DType.F16},
     '{b=true, d=f16, f=3.0, ff=[], i=-3, ii=[], opt=7, s="plain"}'),
    ({"i": 2**62, "f": 0.1, "b": False, "s": 'q"u\\o\nte\t', "ii": [1, -2], "ff": [1e300, -0.0, 5e-324],
      "d": DType.BOOL},
     '{b=false, d=bool, f=0.1, ff=[1e+300, -0.0, 5e-324], i=4611686018427387904, ii=[1, -2], opt=7, '
     's="q\\"u\\\\o\\nte\\t"}'),
    ({"i": 0, "f": float("inf"), "b": 1, "s": "", "ii": (3,), "ff": [float("-inf"), 2], "d": "u8", "opt": -1},
     '{b=true, d=u8, f=inf, ff=[-inf, 2.0], i=0, ii=[3], opt=-1, s=""}'),
])
def test_every_attribute_kind_round_trips(probe_op: OpDef, attrs: dict, printed: str) -> None:
    g = Graph("attrs")
    x = g.add_input("x", TensorType((2,), DType.F32))
    node = g.add_node("attr_probe", [x], attrs)
    g.set_outputs(node.outputs)
    text = print_graph(g)
    assert f"= attr_probe(%x) {printed}\n" in text
    parsed = roundtrip(g)
    assert parsed.nodes[0].attrs == node.attrs
    assert [type(v) for v in parsed.nodes[0].attrs.values()] == [type(v) for v in node.attrs.values()]


def test_nan_attribute_round_trips(probe_op: OpDef) -> None:
    g = Graph("nan")
    x = g.add_input("x", TensorType((), DType.F32))
    g.set_outputs(g.add_node("attr_probe", [x], {"i": 1, "f": float("nan"), "b": 0, "s": "", "ii": [],
                                                 "ff": [float("nan")], "d": "f32"}).outputs)
    parsed = roundtrip(g)
    assert np.isnan(parsed.nodes[0].attrs["f"]) and np.isnan(parsed.nodes[0].attrs["ff"][0])


def test_multi_output_nodes_round_trip(probe_op: OpDef) -> None:
    g = Graph("pairs")
    x = g.add_input("x", TensorType((2, 3), DType.F32))
    node = g.add_node("pair_probe", [g.add("permute", x, perm=[1, 0])], names=["copy", "n"])
    g.set_outputs([node.outputs[1], g.add("exp", node.outputs[0])])
    text = print_graph(g)
    assert "  %copy: f32[3, 2], %n: i64[] = pair_probe(%0)\n" in text
    assert_same_results(g, roundtrip(g), sample_inputs(g))
    with pytest.raises(ParseError, match=r"^line 2:\d+: op pair_probe produces 2 result\(s\), found 1$"):
        parse_graph(HEADER + "  %y: f32[4] = pair_probe(%x)\n  return %y\n}")


def test_parser_coerces_attributes_and_fills_defaults(probe_op: OpDef) -> None:
    text = """graph @g(%x: f32[2]) {
      %y: f32[2] = attr_probe(%x) {i=4, f=2, b=true, s="", ii=[1], ff=[1, 2.5], d=f64}
      return %y
    }"""
    attrs = parse_graph(text).nodes[0].attrs
    assert attrs == {"b": True, "d": DType.F64, "f": 2.0, "ff": (1.0, 2.5), "i": 4, "ii": (1,), "opt": 7,
                     "s": ""}
    assert isinstance(attrs["f"], float) and all(isinstance(v, float) for v in attrs["ff"])


def test_zero_input_graph_outputs_and_comments() -> None:
    text = """// ----- IR after cse -----
    graph @empty() {  // no inputs
      %c: i32[2, 2] = constant dense<[[1, 2], [3, 4]]>
      return %c, %c
    }
    // trailing comment"""
    g = parse_graph(text)
    assert g.inputs == [] and [v.name for v in g.outputs] == ["c", "c"]
    np.testing.assert_array_equal(g.constants[0].data, np.array([[1, 2], [3, 4]], np.int32))
    roundtrip(g)
    bare = Graph("nothing")
    assert print_graph(bare) == "graph @nothing() {\n  return\n}\n"
    roundtrip(bare)


@pytest.mark.parametrize("case", OP_CASES, ids=[c.id for c in OP_CASES])
def test_every_op_case_round_trips(case: OpCase) -> None:
    graph, arrays = build_case(case)
    parsed = roundtrip(graph)
    assert_same_constants(graph, parsed)
    assert_same_results(graph, parsed, arrays)


def test_elided_constants_print_but_refuse_to_parse() -> None:
    g = mixed_graph()
    text = print_graph(g, elide_constants=4)
    assert "%big: f32[3, 4, 5] = constant dense<elided: 60 elements>" in text
    assert "%w: f32[4] = constant dense<[-1.0" in text  # 4 elements: not over the limit
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "elided" in s)
    with pytest.raises(ParseError, match=rf"^line {line}:\d+: constant %big was printed elided \(60 elements\)"):
        parse_graph(text)
    assert print_graph(g, elide_constants=1000) == print_graph(g)


HEADER = "graph @g(%x: f32[4]) {\n"
BAD_TEXTS = [
    (HEADER + "  %y: f32[4] = frobnicate(%x)\n  return %y\n}", 2, r"unknown op 'frobnicate'"),
    (HEADER + "  %y: f32[4] = exp(%z)\n  return %y\n}", 2, r"undefined value %z"),
    (HEADER + "  %y: f32[5] = exp(%x)\n  return %y\n}", 2, r"type of %y: expected f32\[4\] .*found f32\[5\]"),
    (HEADER + "  %y: f32[4]{strides=[2], offset=1} = exp(%x)\n  return %y\n}", 2, r"expected f32\[4\]"),
    (HEADER + "  %y: f32[4] = exp(%x\n  return %y\n}", 3, r"expected ',' or '\)', found 'return'"),
    (HEADER + "  %y: q32[4] = exp(%x)\n  return %y\n}", 2, r"expected a dtype .*found 'q32'"),
    (HEADER + "  %x: f32[4] = exp(%x)\n  return %x\n}", 2, r"value %x is defined twice"),
    (HEADER + "  %y: f32[4] = permute(%x) {perm=\"a\"}\n  return %y\n}", 2, r"attribute perm: expected ints"),
    (HEADER + "  %y: f32[4] = exp(%x) {bogus=1}\n  return %y\n}", 2, r"unknown attribute\(s\) bogus"),
    (HEADER + "  %y: f32[4] = permute(%x) {perm=[0], perm=[0]}\n  return %y\n}", 2, r"perm is given twice"),
    (HEADER + "  %y: f32[4] = add(%x)\n  return %y\n}", 2, r"takes 2 input\(s\), found 1"),
    (HEADER + "  %c: f32[3] = constant dense<[1.0, 2.0]>\n  return %x\n}", 2, r"list of 3 entries .*found 2"),
    (HEADER + "  %c: f32[2, 2] = constant dense<[1.0, 2.0, 3.0, 4.0]>\n  return %x\n}", 2, r"list of 2 entries"),
    (HEADER + "  %c: u8[2] = constant dense<[1, 300]>\n  return %x\n}", 2, r"out-of-range"),
    (HEADER + "  %c: i32[2] = constant dense<[1, 2.5]>\n  return %x\n}", 2, r"expected an integer .*'2.5'"),
    (HEADER + "  %c: bool[1] = constant dense<[1]>\n  return %x\n}", 2, r"expected true or false"),
    (HEADER + '  %c: f32[2] = constant dense<"AAAA">\n  return %x\n}', 2, r"expected 8 bytes .*found 3"),
    (HEADER + '  %c: f32[1] = constant dense<"A!==">\n  return %x\n}', 2, r"expected base64"),
    (HEADER + '  %c: bool[1] = constant dense<"Ag==">\n  return %x\n}', 2, r"bool bytes 0 or 1"),
    (HEADER + "  %c: f32[1]{strides=[2]} = constant dense<[1.0]>\n  return %x\n}", 2, r"contiguous type"),
    (HEADER + "  return %nope\n}", 2, r"undefined value %nope"),
    (HEADER + "  return %x\n}\nextra", 4, r"expected end of input after the graph, found 'extra'"),
    (HEADER + "  return %x\n", 3, r"expected '}' closing the graph, found end of input"),
    (HEADER + "  %y: f32[4] = exp(%x) $\n  return %y\n}", 2, r"unexpected character '\$'"),
    (HEADER + '  %y: f32[4] = exp(%x) origin="a\\qb"\n  return %y\n}', 2, r"expected an escape"),
    (HEADER + '  %y: f32[4] = exp(%x) origin="\\u{110000}"\n  return %y\n}', 2, r"found '\\u\{110000\}'"),
    (HEADER + '  %y: f32[4] = exp(%x) origin="abc\n  return %y\n}', 2, r"expected a closing '\"'"),
    ('graph @"g(%x: f32[4]) {\n  return %x\n}', 1, r"expected a closing '\"'"),
    (HEADER + "  %y: f32[4] = exp(%x) garbage\n  return %y\n}", 2,
     r"expected a statement \(%name: type = \.\.\.\), 'update' or 'return', found 'garbage'"),
    ("graph @g(%x: f32[4]{strides=[2]}) {\n  return %x\n}", 1, r"graph input %x: expected a contiguous type"),
    ("graph @g(%x: f32[-1]) {\n  return %x\n}", 1, r"expected non-negative dimensions"),
    ("graph @g(%x: f32[2, 2]{strides=[1]}) {\n  return %x\n}", 1, r"expected 2 strides"),
    ("graf @g() {\n  return\n}", 1, r"expected 'graph', found 'graf'"),
]


@pytest.mark.parametrize("text, line, message", BAD_TEXTS, ids=[m for _, _, m in BAD_TEXTS])
def test_bad_text_raises_parse_error_naming_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_graph(text)
    assert re.match(rf"line {line}:\d+: ", str(info.value)), str(info.value)
    assert re.search(message, str(info.value)), str(info.value)


def test_parse_error_column_points_at_the_offending_token() -> None:
    with pytest.raises(ParseError, match=r"^line 2:20: undefined value %z$"):
        parse_graph(HEADER + "  %y: f32[4] = exp(%z)\n  return %y\n}")


# -- loop IR printer ----------------------------------------------------------------------


def test_program_dump_shows_storage_arena_and_kernels() -> None:
    g = Graph("mlp")
    x = g.add_input("x", TensorType((3, 4), DType.F32))
    w = g.add_constant(np.arange(4, dtype=np.float32), "w")
    y = g.add("exp", g.add("add", x, w))
    g.set_outputs([y])
    unscheduled = [p for p in PASSES if p.name != "schedule"]  # keep the plain loop nests
    program = Pipeline(PipelineOptions(fuse=False), passes=unscheduled).run(g).program  # unfused: add, then exp
    text = print_program(program)
    add_name = g.nodes[0].outputs[0].name
    out_name = y.name
    assert text.startswith("program @mlp\n  input 0 %x: f32[3, 4]\n")
    assert f"  output 0 %{out_name}: f32[3, 4]\n" in text
    assert re.search(r"\n    %x: f32\[12\] +input slot 0\n", text)
    assert re.search(r"\n    %w: f32\[4\] +constant\n", text)
    assert re.search(rf"\n    %{add_name}: f32\[12\] +arena offset 0\n", text)
    assert re.search(rf"\n    %{out_name}: f32\[12\] +output slot 0\n", text)
    assert f"  arena: {program.arena_size} bytes\n" in text and program.arena_size >= 48
    assert (f"kernel k0_add(%x: f32[12], %w: f32[4], %{add_name}: f32[12])  // from %{add_name} (add)\n"
            "  for i0 in 0..3:\n"
            "    for i1 in 0..4:\n"
            f"      %{add_name}[i0*4 + i1] = %x[i0*4 + i1] + %w[i1]\n") in text
    assert f"%{out_name}[i0*4 + i1] = exp(%{add_name}[i0*4 + i1])" in text


def test_kernel_shows_schedules_and_every_statement_kind() -> None:
    a = Buffer("a", DType.F32, 8)
    out = Buffer("out", DType.F32, 8)
    i, j = Var("i"), Var("j")
    index = Binary("add", Binary("mul", i, Const(4)), j)
    body = (
        Local("acc", Const(0.0, DType.F32)),
        Loop("j", 4, (Assign("acc", Binary("add", LocalRef("acc", DType.F32), Load(a, index))),),
             kind="vectorize"),
        If(Binary("gt", LocalRef("acc", DType.F32), Const(1.0, DType.F32)),
           (Store(out, i, LocalRef("acc", DType.F32)),),
           (Store(out, i, Const(0.0, DType.F32)),)),
    )
    kernel = Kernel("k_sum", (a, out), (Loop("i", 2, body, kind="parallel", start=1),
                                        Loop("u", 8, (), kind="gpu_thread")), sources=(Source("s", "reduce_sum"),))
    assert print_kernel(kernel) == (
        "kernel k_sum(%a: f32[8], %out: f32[8])  // from %s (reduce_sum)\n"
        "  parallel for i in 1..3:\n"
        "    let acc: f32 = 0.0\n"
        "    vectorize for j in 0..4:\n"
        "      acc = acc + %a[i*4 + j]\n"
        "    if acc > 1.0:\n"
        "      %out[i] = acc\n"
        "    else:\n"
        "      %out[i] = 0.0\n"
        "  gpu_thread for u in 0..8:\n")


@pytest.mark.parametrize("expr, text", [
    (Binary("mul", Binary("add", Var("a"), Var("b")), Var("c")), "(a + b) * c"),
    (Binary("sub", Var("a"), Binary("sub", Var("b"), Var("c"))), "a - (b - c)"),
    (Binary("sub", Binary("sub", Var("a"), Var("b")), Var("c")), "a - b - c"),
    (Binary("add", Var("a"), Binary("mul", Var("b"), Const(-2))), "a + b*-2"),
    (Binary("mod", Var("a"), Const(3)), "mod(a, 3)"),
    (Binary("max", Const(1.5, DType.F64), Const(2, DType.I32)), "max(f64(1.5), i32(2))"),
    (Unary("neg", Binary("add", Var("a"), Var("b"))), "-(a + b)"),
    (Unary("not", Binary("lt", Var("a"), Var("b"))), "!(a < b)"),
    (Unary("sqrt", Cast(DType.F32, Var("a"))), "sqrt(f32(a))"),
    (Select(Binary("eq", Var("a"), Const(0)), Const(True, DType.BOOL),
            Select(Const(False, DType.BOOL), Var("b"), Var("c"))), "a == 0 ? true : false ? b : c"),
    (Binary("add", Select(Var("a"), Var("b"), Var("c")), Const(1)), "(a ? b : c) + 1"),
    (Binary("or", Binary("and", Var("a"), Var("b")), Binary("xor", Var("c"), Var("d"))), "a & b | c ^ d"),
])
def test_expressions_print_with_minimal_parentheses(expr: Any, text: str) -> None:
    assert print_expr(expr) == text

