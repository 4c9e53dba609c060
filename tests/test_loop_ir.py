"""The checkable loop IR: enums, verifier, reference interpreter, text round trip and loop-pass goldens.

Goldens live in tests/golden/loops: a ``// pass: NAME`` line, the input (graph
IR text for ``lower_to_loops``, loop IR text otherwise), ``// expect`` and the
expected loop IR. ``NEEDLEC_REGENERATE_GOLDEN=1 python -m pytest -q
tests/test_loop_ir.py -k golden`` rewrites the expected parts from the
current passes (review the diff before committing it).
"""
from __future__ import annotations

import copy
import functools
import os
import pathlib
from dataclasses import replace

import numpy as np
import pytest

from needlec import DType, Graph, TensorType
from needlec.compiler.interpreter import interpret
from needlec.compiler.ir.parser import parse_graph
from needlec.compiler.loops.interpreter import run_program
from needlec.compiler.loops.ir import (Binary, BinaryOp, Buffer, Const, Kernel, Load, Loop, LoopKind, Program,
                                       Storage, StorageKind, Store, Unary, Var)
from needlec.compiler.loops.parser import parse_program
from needlec.compiler.loops.printer import print_program
from needlec.compiler.loops.verifier import verify_program
from needlec.compiler.passes import PASSES
from needlec.compiler.passes.lower_to_loops import lower_to_loops
from needlec.compiler.passes.precompute_constants import precompute_constants
from needlec.compiler.passes.plan_memory import plan_memory
from needlec.compiler.passes.schedule import schedule
from needlec.errors import IRError, ParseError, VerificationError
from tests.opcases import OpCase, all_cases, build_case
from tests.test_ops import assert_matches

GOLDEN = sorted((pathlib.Path(__file__).parent / "golden" / "loops").glob("*.txt"))
LOOP_PASSES = {"lower_to_loops": lower_to_loops, "schedule": schedule,
               "precompute_constants": precompute_constants, "plan_memory": plan_memory}
CASES = all_cases()


# -- goldens -------------------------------------------------------------------------------------
def _split(path: pathlib.Path) -> tuple[str, str, str]:
    header, rest = path.read_text().split("\n", 1)
    assert header.startswith("// pass: "), f"{path.name}: first line must name the pass"
    source, expected = rest.split("// expect\n")
    return header.removeprefix("// pass: ").strip(), source, expected


def _run_golden(name: str, source: str) -> Program:
    if name == "lower_to_loops":
        return lower_to_loops(parse_graph(source))
    return LOOP_PASSES[name](parse_program(source))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_loop_pass_output_matches_golden(path: pathlib.Path) -> None:
    name, source, expected = _split(path)
    program = _run_golden(name, source)
    verify_program(program)
    text = print_program(program)
    if os.environ.get("NEEDLEC_REGENERATE_GOLDEN"):
        path.write_text(f"// pass: {name}\n{source}// expect\n{text}")
        expected = text
    assert text == expected
    assert print_program(parse_program(expected)) == expected


def test_every_loop_pass_has_a_golden_file() -> None:
    assert {_split(p)[0] for p in GOLDEN} == set(LOOP_PASSES)
    assert {p.name for p in PASSES if p.kind in ("lower", "loops")} == set(LOOP_PASSES)


# -- every op case, after every loop pass --------------------------------------------------------
@functools.cache
def _stages(case_id: str) -> tuple[tuple[str, Program], ...]:
    """The case's program after each loop pass (snapshots: ``plan_memory`` updates its input in place)."""
    graph, _ = build_case(CASES_BY_ID[case_id])
    ir, stages = graph, []
    for p in PASSES:
        ir = p.run(ir)
        if p.kind != "graph":
            stages.append((p.name, copy.copy(ir)))
    return tuple(stages)


CASES_BY_ID = {c.id: c for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_case_text_round_trips_after_every_loop_pass(case: OpCase) -> None:
    for name, program in _stages(case.id):
        text = print_program(program)
        assert print_program(parse_program(text)) == text, f"{case.id} after {name}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_case_verifies_after_every_loop_pass(case: OpCase) -> None:
    for _, program in _stages(case.id):
        verify_program(program)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_case_interprets_like_its_reference_after_every_loop_pass(case: OpCase) -> None:
    graph, arrays = build_case(case)
    want = interpret(graph, arrays)
    for name, program in _stages(case.id):
        got, _ = run_program(program, arrays)
        assert len(got) == len(want), f"{case.id} after {name}"
        for g, w in zip(got, want):
            assert_matches(g, w, case)


# -- a small program to break ----------------------------------------------------------------------
SMALL = """\
program @p
  input 0 %x: f32[2, 3]
  output 0 %y: f32[2, 3]
  buffers:
    %x: f32[6]  input slot 0
    %w: f32[3]  constant
    %t: f32[6]  arena (not yet placed)
    %y: f32[6]  output slot 0
  constants:
    %w = dense<[1.0, 2.0, 3.0]>
  arena: 0 bytes

kernel k0_add(%x: f32[6], %w: f32[3], %t: f32[6])  // from %t (add)
  for i0 in 0..2:
    for i1 in 0..3:
      %t[i0*3 + i1] = %x[i0*3 + i1] + %w[i1]

kernel k1_sum(%t: f32[6], %y: f32[6])  // from %y (cumulative {axis=1, exclusive=false, reverse=false})
  for i0 in 0..2:
    let acc: f32 = 0.0
    for i1 in 0..3:
      acc = acc + %t[i0*3 + i1]
      if acc > 4.0:
        %y[i0*3 + i1] = acc
      else:
        %y[i0*3 + i1] = -acc
"""


def test_small_program_round_trips_and_runs() -> None:
    program = parse_program(SMALL)
    assert print_program(program) == SMALL
    verify_program(program)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (y,), variables = run_program(program, [x])
    t = x + np.array([1, 2, 3], np.float32)
    acc = np.cumsum(t, axis=1)
    np.testing.assert_array_equal(y, np.where(acc > 4, acc, -acc))
    assert variables == {}


def test_variables_come_back_by_name_after_their_updates() -> None:
    g = Graph("step")
    x = g.add_input("x", TensorType((3,), DType.F32))
    v = g.add_variable(np.array([1.0, 2.0, 3.0], np.float32), "state.v")
    total = g.add("add", v, x)
    g.set_update(v, total)
    g.set_outputs([g.add("mul", total, total)])
    program = plan_memory(schedule(lower_to_loops(g)))
    verify_program(program)
    (y,), variables = run_program(program, [np.array([1.0, 1.0, -3.0], np.float32)])
    np.testing.assert_array_equal(y, [4.0, 9.0, 0.0])
    assert list(variables) == ["state.v"]
    np.testing.assert_array_equal(variables["state.v"], [2.0, 3.0, 0.0])
    np.testing.assert_array_equal(program.constants["state_v"], [1.0, 2.0, 3.0])  # the program is not changed


def test_planned_arena_buffers_share_memory_so_a_wrong_plan_gives_wrong_numbers() -> None:
    """%u lives from k0 to k1 like %t; placed over %t, its store in k0 clobbers what k1 reads."""
    output = "    %y: f32[6]  output slot 0"
    text = SMALL.replace(output, "    %u: f32[6]  arena (not yet placed)\n" + output)
    text = text.replace("(%x: f32[6], %w: f32[3], %t: f32[6])", "(%x: f32[6], %w: f32[3], %t: f32[6], %u: f32[6])")
    text = text.replace("(%t: f32[6], %y: f32[6])", "(%t: f32[6], %u: f32[6], %y: f32[6])")
    text = text.replace("+ %w[i1]\n", "+ %w[i1]\n      %u[i0*3 + i1] = 9.0\n")
    program = plan_memory(parse_program(text))
    verify_program(program)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (good,), _ = run_program(program, [x])
    (unplanned,), _ = run_program(parse_program(text), [x])
    np.testing.assert_array_equal(good, unplanned)
    assert program.storage["t"].offset != program.storage["u"].offset
    program.storage["u"] = replace(program.storage["u"], offset=program.storage["t"].offset)
    (bad,), _ = run_program(program, [x])
    assert not np.array_equal(good, bad)


IN_PLACE = """\
program @p
  input 0 %x: f32[2, 3]
  output 0 %y: f32[3, 2]
  buffers:
    %x: f32[6]  input slot 0
    %t: f32[6]  arena (not yet placed)
    %u: f32[6]  arena (not yet placed)
    %v: f32[6]  arena (not yet placed)
    %y: f32[6]  output slot 0
  arena: 0 bytes

kernel k0_exp(%x: f32[6], %t: f32[6])  // from %t (exp)
  for i0 in 0..6:
    %t[i0] = exp(%x[i0])

kernel k1_mul(%t: f32[6], %u: f32[6])  // from %u (mul)
  for i0 in 0..6:
    %u[i0] = %t[i0] * %t[i0] + 1.0

kernel k2_transpose(%u: f32[6], %v: f32[6])  // from %v (transpose)
  for i0 in 0..3:
    for i1 in 0..2:
      %v[i0*2 + i1] = %u[i1*3 + i0]

kernel k3_neg(%v: f32[6], %y: f32[6])  // from %y (neg)
  for i0 in 0..6:
    %y[i0] = -%v[i0]
"""


def test_an_elementwise_output_takes_the_place_of_its_dying_input_and_a_transpose_does_not() -> None:
    program = plan_memory(parse_program(IN_PLACE))
    verify_program(program)
    offsets = {name: program.storage[name].offset for name in "tuv"}
    assert offsets["u"] == offsets["t"]  # k1 reads each t[e] only to write u[e]
    assert offsets["v"] != offsets["u"]  # k2 reads u[e] for v at another position
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    (y,), _ = run_program(program, [x])
    np.testing.assert_allclose(y, -(np.exp(x) ** 2 + 1).T, rtol=1e-6)


def _break(program: Program, kernel: int, **changes: object) -> Program:
    kernels = list(program.kernels)
    kernels[kernel] = replace(kernels[kernel], **changes)
    return replace(program, kernels=kernels)


def _broken_kernel(body_text: str) -> Program:
    """SMALL with kernel k0's body replaced (indented 2 spaces per level, as printed)."""
    head = SMALL.split("kernel k0_add")[0]
    tail = "kernel k1_sum" + SMALL.split("kernel k1_sum")[1]
    k0 = "kernel k0_add(%x: f32[6], %w: f32[3], %t: f32[6])  // from %t (add)\n" + body_text + "\n"
    return parse_program(head + k0 + tail)


@pytest.mark.parametrize("body, message", [
    ("  for i0 in 0..6:\n    %t[i0] = f64(%x[i0])",
     r"^kernel k0_add, statement 1\.1: store to %t: value is f64, buffer holds f32$"),
    ("  for i0 in 0..6:\n    %t[i0] = %x[i0] + f64(1.0)", r"statement 1\.1: add operands differ: f32 and f64"),
    ("  for i0 in 0..6:\n    %t[i32(i0)] = %x[i0]", r"statement 1\.1: store to %t: index is i32, expected i64"),
    ("  for i0 in 0..6:\n    if %x[i0]:\n      %t[i0] = %x[i0]", r"statement 1\.1: if condition is f32, expected bool"),
    ("  for i0 in 0..6:\n    %t[i0] = %x[i0] > 0.0 ? %x[i0] : 1",
     r"statement 1\.1: select branches differ: f32 and i64"),
    ("  %t[6] = 0.0", r"statement 1: store to %t: index 6 is outside the buffer \(size 6\)"),
    ("  for i0 in 0..6:\n    %t[i0] = %x[i0] << %x[i0]", r"shl is not defined on f32"),
    ("  for i0 in 0..6:\n    %t[i0] = exp(%x[i0])\n  let a: i64 = 1\n  %t[0] = f32(a)\n  a = 0.0",
     r"statement 4: assignment to a: value is f32, local is i64"),
])
def test_verifier_names_kernel_and_statement(body: str, message: str) -> None:
    program = _broken_kernel(body)
    with pytest.raises(VerificationError, match=message):
        verify_program(program)


def test_verifier_refuses_uses_outside_scope_and_foreign_buffers() -> None:
    program = parse_program(SMALL)
    loop = program.kernels[0].body[0]
    assert isinstance(loop, Loop)
    outside = Store(Buffer("t", DType.F32, 6), Var("i0"), Const(0.0, DType.F32))
    with pytest.raises(VerificationError, match=r"statement 2: loop variable i0 is used outside its loop"):
        verify_program(_break(program, 0, body=(loop, outside)))
    foreign = Store(Buffer("y", DType.F32, 6), Const(0), Const(0.0, DType.F32))
    with pytest.raises(VerificationError, match=r"kernel k0_add, statement 1: store to %y: not a parameter"):
        verify_program(_break(program, 0, body=(foreign,)))
    with pytest.raises(VerificationError, match=r"loop i0: extent -1 is negative"):
        verify_program(_break(program, 0, body=(replace(loop, extent=-1),)))
    shadowing = Loop("i0", 6, (Loop("i0", 1, (outside,)),))
    with pytest.raises(VerificationError, match=r"statement 1\.1: i0 is declared again while an outer i0 is in scope"):
        verify_program(_break(program, 0, body=(shadowing,)))


def test_verifier_checks_storage_signature_data_and_arena() -> None:
    program = parse_program(SMALL)
    cases = [
        (replace(program, storage={**program.storage, "x": Storage("input", 1)}),
         r"input slot 1 is not in the signature"),
        (replace(program, storage={k: v for k, v in program.storage.items() if k != "t"}), r"buffer %t has no storage"),
        (replace(program, inputs=[("x", (2, 3), DType.F64)]), r"input 0 \(%x\) is f64\[6\], its buffer %x is f32\[6\]"),
        (replace(program, constants={"w": np.zeros(4, np.float32)}),
         r"constant %w: data is float32\[4\], buffer is f32\[3\]"),
        (replace(program, constants={}), r"constant buffer %w has no data"),
    ]
    planned = plan_memory(parse_program(SMALL))
    cases.append((replace(planned, arena_size=8),
                  r"arena buffer %t at offset 0 \(24 bytes\) is outside the arena \(8 bytes\)"))
    for broken, message in cases:
        with pytest.raises(VerificationError, match=r"^program @p: .*" + message):
            verify_program(broken)


# -- enums -------------------------------------------------------------------------------------
def test_op_and_kind_strings_become_enums_and_unknown_ones_fail_at_construction() -> None:
    b = Binary("lt", Const(1), Const(2))
    assert b.op is BinaryOp.LT and b.op.is_comparison and b.dtype is DType.BOOL
    assert not BinaryOp.ADD.is_comparison and f"{BinaryOp.ADD}" == "add" == BinaryOp.ADD
    assert Loop("i", 2, (), kind="parallel").kind is LoopKind.PARALLEL
    assert Storage("arena").kind is StorageKind.ARENA
    with pytest.raises(IRError, match=r"unknown BinaryOp 'plus' \(expected one of add, sub"):
        Binary("plus", Const(1), Const(2))
    with pytest.raises(IRError, match=r"unknown UnaryOp 'expp'"):
        Unary("expp", Const(1.0, DType.F32))
    with pytest.raises(IRError, match=r"loop i: unknown LoopKind 'fast'"):
        Loop("i", 2, (), kind="fast")
    with pytest.raises(IRError, match=r"unknown StorageKind 'heap'"):
        Storage("heap")


# -- parser ------------------------------------------------------------------------------------
@pytest.mark.parametrize("old, new, message", [
    ("%t[i0*3 + i1] = %x", "%t[i0*3 + i1] = %z", r"^line 16:23: undefined buffer %z$"),
    ("+ %w[i1]", "+ %w[i9]", r"^line 16:42: undefined name i9$"),
    ("let acc: f32 = 0.0", "let acc: f64 = 0.0", r"^line 20:20: let acc: declared f64, found a f32 value$"),
    ("    let acc", "   let acc", r"^line 20:1: expected indentation by 2 spaces, found 3$"),
    ("%w = dense<[1.0, 2.0, 3.0]>", "%w = dense<elided: 3 elements>", r"^line 10:16: constant %w was printed elided"),
    ("%w = dense<[1.0, 2.0, 3.0]>", "%w = dense<[1.0, 2.0]>", r"^line 10:16: expected a list of 3 entries"),
    ("exclusive=false", "exclusive=?", r"^line 18:82: expected an attribute value"),
    ("%x[i0*3 + i1] + %w[i1]", "foo(%x[i0*3 + i1])",
     r"^line 16:23: expected a dtype or an op before '\(', found 'foo'$"),
    ("for i1 in 0..3:\n      %t", "fast for i1 in 0..3:\n      %t", r"^line 15:5: expected a statement"),
    ("for i0 in 0..2:\n    for i1", "for i0 in 2..0:\n    for i1",
     r"^line 14:16: expected a loop end of at least 2, found 0$"),
    ("%t: f32[6]  arena", "%x: f32[6]  arena", r"^line 7:5: buffer %x is declared twice$"),
    ("kernel k0_add(%x: f32[6]", "kernel k0_add(%x: f32[7]", r"^line 13:15: parameter %x: expected the program's"),
    ("for i1 in 0..3:\n      %t", "for i0 in 0..3:\n      %t", r"^line 15:9: i0 is declared twice$"),
    ("acc = acc + %t", "acc = acc + $t", r"^line 22:19: unexpected character '\$'$"),
])
def test_parser_refuses_bad_text_with_line_and_column(old: str, new: str, message: str) -> None:
    assert old in SMALL
    with pytest.raises(ParseError, match=message):
        parse_program(SMALL.replace(old, new, 1))


def test_parser_refuses_a_truncated_program() -> None:
    with pytest.raises(ParseError, match=r"^line 9:1: expected more of the program, found end of input$"):
        parse_program(SMALL.split("  constants:")[0])


def test_printer_text_carries_constants_casts_reinterpretations_and_quoted_names() -> None:
    odd = Buffer("a b", DType.U32, 2)
    as_float = Buffer("a b", DType.F32, 2)
    body = (Loop("i", 2, (Store(as_float, Var("i"), Unary("neg", Const(2.0, DType.F32))),), kind="vectorize"),
            Store(odd, Const(1), Binary("add", Load(odd, Const(0)), Const(7, DType.U32))))
    program = Program("odd name", [Kernel("k0", (odd,), body)], {"a b": odd}, {"a b": Storage("output", 0)}, {},
                      [], [("a b", (2,), DType.U32)])
    text = print_program(program)
    assert 'program @"odd name"\n' in text
    assert '  vectorize for i in 0..2:\n    %"a b":f32[i] = -(2.0)\n' in text
    assert '  %"a b"[1] = %"a b"[0] + u32(7)\n' in text
    assert print_program(parse_program(text)) == text
    verify_program(parse_program(text))
    (out,), _ = run_program(parse_program(text), [])
    assert out.view(np.float32)[0] == -2.0 and out[1] == out[0] + 7


def test_elided_dump_is_shorter_and_refused_by_the_parser() -> None:
    program = parse_program(SMALL.replace("dense<[1.0, 2.0, 3.0]>", 'dense<"AACAPwAAAEAAAEBA">'))
    assert "dense<[1.0, 2.0, 3.0]>" in print_program(program)  # 3 elements print as an exact literal
    elided = print_program(program, elide_constants=2)
    assert "%w = dense<elided: 3 elements>" in elided
    with pytest.raises(ParseError, match="printed elided"):
        parse_program(elided)


# -- interpreter semantics (as codegen/llvm_emit.py states them) ---------------------------------
def _scalar_kernel(dtype: DType, expr_text: str, inputs: int = 2) -> Program:
    names = ", ".join(f"%x{i}: {dtype.value}[4]" for i in range(inputs))
    buffers = "\n".join(f"    %x{i}: {dtype.value}[4]  input slot {i}" for i in range(inputs))
    signature = "\n".join(f"  input {i} %x{i}: {dtype.value}[4]" for i in range(inputs))
    return parse_program(f"""program @s
{signature}
  output 0 %y: {dtype.value}[4]
  buffers:
{buffers}
    %y: {dtype.value}[4]  output slot 0
  arena: 0 bytes

kernel k0({names}, %y: {dtype.value}[4])
  for i in 0..4:
    %y[i] = {expr_text}
""")


@pytest.mark.parametrize("dtype, expr_text, a, b, want", [
    (DType.I32, "%x0[i] / %x1[i]", [7, -7, 5, -2**31], [2, 2, 0, -1], [3, -3, 0, -2**31]),
    (DType.I32, "mod(%x0[i], %x1[i])", [7, -7, 5, -2**31], [-2, 2, 0, -1], [-1, 1, 0, 0]),
    (DType.I32, "fmod(%x0[i], %x1[i])", [7, -7, 5, 3], [-2, 2, 0, 3], [1, -1, 0, 0]),
    (DType.U8, "%x0[i] / %x1[i]", [200, 7, 9, 0], [3, 0, 9, 1], [66, 0, 1, 0]),
    (DType.I8, "%x0[i] << %x1[i]", [1, 3, 1, -1], [7, 8, -56, 1], [-128, 0, 0, -2]),
    (DType.I8, "%x0[i] >> %x1[i]", [-128, -128, 64, 64], [1, 9, 6, 8], [-64, -1, 1, 0]),
    (DType.I8, "%x0[i] >>> %x1[i]", [-128, -1, 64, 64], [1, 4, 6, 8], [64, 15, 1, 0]),
    (DType.I16, "%x0[i] * %x1[i] + %x0[i]", [32767, 256, -3, 2], [2, 256, 5, 3], [32765, 256, -18, 8]),
    (DType.F32, "max(%x0[i], %x1[i])", [1.0, np.nan, -1.0, 2.0], [2.0, 1.0, np.nan, -3.0], [2.0, np.nan, np.nan, 2.0]),
    (DType.F32, "mod(%x0[i], %x1[i])", [5.5, -5.5, 5.5, 1.0], [2.0, 2.0, -2.0, 1.0], [1.5, 0.5, -0.5, 0.0]),
])
def test_interpreter_integer_and_float_edge_cases(dtype: DType, expr_text: str, a: list, b: list, want: list) -> None:
    program = _scalar_kernel(dtype, expr_text)
    verify_program(program)
    (got,), _ = run_program(program, [np.array(a, dtype.np), np.array(b, dtype.np)])
    np.testing.assert_array_equal(got, np.array(want, dtype.np))


def test_interpreter_casts_saturate_and_round_once() -> None:
    program = _scalar_kernel(DType.I8, "i8(f32(%x0[i]) * 100.0)", inputs=1)
    (got,), _ = run_program(program, [np.array([1, -2, 0, 3], np.int8)])
    np.testing.assert_array_equal(got, [100, -128, 0, 127])
    nan_to_int = _scalar_kernel(DType.F32, "f32(i32(%x0[i]))", inputs=1)
    (got,), _ = run_program(nan_to_int, [np.array([np.nan, 1e10, -1e10, -2.7], np.float32)])
    np.testing.assert_array_equal(got, np.array([0, 2**31 - 1, -2**31, -2], np.float32))
    to_bf16 = _scalar_kernel(DType.F64, "f64(bf16(%x0[i]))", inputs=1)
    x = 1 + 2.0**-8 + 2.0**-30  # via f32 it would tie and round to 1.0
    (got,), _ = run_program(to_bf16, [np.array([x, 1.0, 3.0, -x])])
    np.testing.assert_array_equal(got, [1.0078125, 1.0, 3.0, -1.0078125])


def test_interpreter_refuses_an_access_outside_its_buffer() -> None:
    program = _scalar_kernel(DType.F32, "%x0[i + 1]", inputs=1)
    with pytest.raises(VerificationError, match=r"kernel k0: load from %x0: index 4 is outside the buffer \(size 4\)"):
        run_program(program, [np.zeros(4, np.float32)])


def test_interpreter_runs_dependent_iterations_in_order() -> None:
    """A prefix sum in place: each iteration reads the previous one's store, so the loop cannot run at once."""
    program = _scalar_kernel(DType.I64, "%x0[i]", inputs=1)
    carried = Loop("i", 3, (Store(program.buffers["y"], Binary("add", Var("i"), Const(1)),
                                  Binary("add", Load(program.buffers["y"], Var("i")),
                                         Load(program.buffers["y"], Binary("add", Var("i"), Const(1))))),),
                   start=0)
    program = _break(program, 0, body=program.kernels[0].body + (carried,))
    verify_program(program)
    (got,), _ = run_program(program, [np.array([1, 2, 3, 4], np.int64)])
    np.testing.assert_array_equal(got, np.cumsum([1, 2, 3, 4]))
