"""Fusion-ready lowering: elementwise ops expose ``OpDef.scalar``, lowerings read inputs through ``Operand``.

Every elementwise op case is folded, as an ``InlineOperand``, into three
consumers (``copy``, ``reduce_sum``/``reduce_max`` over axis 0, and a second
elementwise op) of one hand-built Program per op. The fused ``copy`` must
give the bits of the stored producer and the fused elementwise op those of
the same op reading the stored producer (today's unfused kernels); every
consumer must match the NumPy references of the two ops composed (the
reduction within a tolerance: LLVM may reorder a float sum).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.compiler.interpreter import interpret
from needlec.compiler.ir.dtypes import NUMERIC_DTYPES
from needlec.compiler.ir.graph import Node, Value
from needlec.compiler.loops.builder import BufferOperand, InlineOperand, Operand
from needlec.compiler.loops.ir import Buffer, Expr, Kernel, Load, Loop, Program, Source, Storage, Store, Var
from needlec.compiler.ops.registry import _REGISTRY, get_op
from needlec.compiler.passes import PASSES
from needlec.compiler.passes.lower_to_loops import lower_to_loops, make_kernel
from needlec.compiler.passes.plan_memory import plan_memory
from needlec.compiler.passes.schedule import schedule, schedule_kernel
from needlec.compiler.target import Target
from needlec.driver import jit_compile
from needlec.errors import CodegenError
from tests.opcases import OpCase, build_case
from tests.test_ops import CASES, assert_matches

ELEMENTWISE_OPS = sorted({c.op for c in CASES if get_op(c.op).is_elementwise})
GRAPH_PASSES = [p for p in PASSES if p.kind == "graph"]


def _source(node: Node) -> Source:
    return Source(node.name, node.op, tuple(sorted(node.attrs.items())))


# -- which ops lower as one elementwise nest -----------------------------------------------------

def _reads_only(expr: Expr, allowed: set[tuple[DType, Expr]]) -> bool:
    """Whether ``expr`` reads loop variables only through loads at ``allowed`` (dtype, index) pairs."""
    if isinstance(expr, Load):
        return (expr.dtype, expr.index) in allowed
    if isinstance(expr, Var):
        return False
    return all(_reads_only(getattr(expr, f.name), allowed) for f in fields(expr)  # type: ignore[arg-type]
               if isinstance(getattr(expr, f.name), Expr))


def _is_elementwise_nest(kernel: Kernel, node: Node) -> bool:
    """Whether ``kernel`` is one nest over ``node``'s output storing a function of its inputs' broadcast loads."""
    stmts, loops = kernel.body, []
    while len(stmts) == 1 and isinstance(stmts[0], Loop):
        loops.append(stmts[0])
        stmts = stmts[0].body
    if len(node.outputs) != 1 or len(stmts) != 1 or not isinstance(stmts[0], Store):
        return False
    out, store = node.outputs[0], stmts[0]
    idx = [Var(loop.var) for loop in loops]
    if [loop.extent for loop in loops] != list(out.shape):
        return False
    if store.index != BufferOperand(store.buffer, out.type).index(idx):
        return False
    allowed = set()
    for x in node.inputs:
        load = BufferOperand(Buffer(x.name, x.dtype, x.type.size), x.type).load_broadcast(idx, out.shape)
        assert isinstance(load, Load)
        allowed.add((x.dtype, load.index))
    return _reads_only(store.value, allowed)


def _lowered(case: OpCase) -> tuple[Graph, Program]:
    graph, _ = build_case(case)
    for p in GRAPH_PASSES:
        graph = p.run(graph)
    return graph, lower_to_loops(graph)


def test_kernels_name_their_sources_and_elementwise_ops_have_scalar() -> None:
    """For every op case, each kernel's sources are its one node; an op has ``scalar`` exactly when every case
    of it lowers as one elementwise nest."""
    nests: dict[str, set[bool]] = defaultdict(set)
    for case in CASES:
        graph, program = _lowered(case)
        nodes = [n for n in graph.nodes if not get_op(n.op).is_view]
        assert [k.sources for k in program.kernels] == [(_source(n),) for n in nodes], case.id
        assert [k.ops for k in program.kernels] == [(n.op,) for n in nodes], case.id
        for kernel, node in zip(program.kernels, nodes):
            if node.op == case.op:
                nests[case.op].add(_is_elementwise_nest(kernel, node))
    for op, found in nests.items():  # (one case may degenerate to a copy: pad without pads, concat of one input)
        if get_op(op).is_elementwise:
            assert found == {True}, f"{op} has a scalar but does not always lower as one elementwise nest"
        else:
            assert found != {True}, f"{op} lowers as one elementwise nest in every case but has no scalar"


# -- fused versus unfused ------------------------------------------------------------------------

class _ProgramBuilder:
    """Buffers, storage and kernels of a hand-built Program whose inputs and outputs are caller slots."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.buffers: dict[str, Buffer] = {}
        self.storage: dict[str, Storage] = {}
        self.constants: dict[str, Any] = {}
        self.inputs: list[tuple[str, tuple[int, ...], DType]] = []
        self.outputs: list[tuple[str, tuple[int, ...], DType]] = []
        self.kernels: list[Kernel] = []

    def buffer(self, name: str, value: Value, where: Storage) -> BufferOperand:
        buf = Buffer(name, value.dtype, value.type.size)
        self.buffers[name], self.storage[name] = buf, where
        return BufferOperand(buf, value.type)

    def input(self, name: str, value: Value) -> BufferOperand:
        self.inputs.append((name, value.shape, value.dtype))
        return self.buffer(name, value, Storage("input", len(self.inputs) - 1))

    def constant(self, name: str, value: Value) -> BufferOperand:
        self.constants[name] = value.data
        return self.buffer(name, value, Storage("constant"))

    def kernel(self, name: str, node: Node, ins: list[Operand], value: Value) -> BufferOperand:
        """A kernel computing ``node`` (whose output is shaped like ``value``) into a new output slot."""
        self.outputs.append((name, value.shape, value.dtype))
        out = self.buffer(name, value, Storage("output", len(self.outputs) - 1))
        lower = get_op(node.op).lower
        assert lower is not None
        self.kernels.append(make_kernel(f"k{len(self.kernels)}_{node.op}", lower, ins, [out], node.attrs,
                                        _source(node)))
        return out

    def program(self) -> Program:
        program = Program(self.name, self.kernels, self.buffers, self.storage, self.constants, self.inputs,
                          self.outputs)
        return plan_memory(schedule(program))


@dataclass(frozen=True)
class Check:
    """One consumer of a case: its node, the output slot of its fused kernel, the slot whose bits the fused
    kernel must give (the stored producer for ``copy``, the unfused kernel for the elementwise op; none for the
    reduction, whose float sums LLVM may reorder), its reference and the tolerance to that reference."""

    node: Node
    fused: int
    same_as: int | None
    want: np.ndarray
    tolerance: OpCase


def _consumers(graph: Graph, p: Value) -> list[Node]:
    """``copy``, a reduction over axis 0 and a second elementwise op, each reading ``p``.

    The second op squares numbers (unlike doubling, squaring shows whether ``p`` was rounded to its dtype),
    negates bools and widens the storage formats.
    """
    nodes = [graph.add_node("copy", [p])]
    if p.type.rank and not p.dtype.is_storage:
        nodes.append(graph.add_node("reduce_sum" if p.dtype in NUMERIC_DTYPES else "reduce_max", [p], {"axes": [0]}))
    if p.dtype in NUMERIC_DTYPES:
        nodes.append(graph.add_node("mul", [p, p]))
    elif p.dtype.is_bool:
        nodes.append(graph.add_node("logical_not", [p]))
    else:
        nodes.append(graph.add_node("cast", [p], {"dtype": DType.F32}))
    return nodes


def _fold_case(builder: _ProgramBuilder, i: int, case: OpCase) -> tuple[list[np.ndarray], list[Check]]:
    """Add case ``i`` to ``builder``: its producer stored, each consumer reading it inline, and the elementwise
    consumer also reading it stored (as today's unfused kernels do)."""
    graph, arrays = build_case(case)
    (producer,) = [n for n in graph.nodes if n.op == case.op]
    operands: dict[int, Operand] = {}
    for slot, value in enumerate(graph.inputs):
        operands[id(value)] = builder.input(f"c{i}_in{slot}", value)
    for k, value in enumerate(graph.constants):
        operands[id(value)] = builder.constant(f"c{i}_k{k}", value)
    for node in graph.nodes[:graph.nodes.index(producer)]:  # the views that give the case its input layouts
        base = operands[id(node.inputs[0])]
        assert isinstance(base, BufferOperand)
        operands[id(node.outputs[0])] = BufferOperand(base.buffer, node.outputs[0].type)
    ins = [operands[id(v)] for v in producer.inputs]
    (p,) = producer.outputs
    stored = builder.kernel(f"c{i}_p", producer, ins, p)
    stored_slot = len(builder.outputs) - 1
    inline = InlineOperand(get_op(producer.op), producer.attrs, tuple(ins), p.type, _source(producer))
    consumers = _consumers(graph, p)
    graph.set_outputs([n.outputs[0] for n in consumers])
    checks = []
    for node, want in zip(consumers, interpret(graph, arrays)):
        fused = builder.kernel(f"c{i}_fused_{node.op}", node, [inline] * len(node.inputs), node.outputs[0])
        kernel = builder.kernels[-1]
        assert kernel.sources == (_source(producer), _source(node)), case.id
        assert kernel.ops == (case.op, node.op), case.id
        assert set(kernel.buffers) == {b for x in ins for b in x.buffers} | {fused.buffer}, case.id
        fused_slot = len(builder.outputs) - 1
        if node.op == "copy":
            checks.append(Check(node, fused_slot, stored_slot, want, case))
        elif node.op.startswith("reduce_"):  # a float sum of n elements: n roundings, in an order LLVM picks
            n = max(1, p.shape[0])
            checks.append(Check(node, fused_slot, None, want, replace(case, rtol=n * case.rtol, atol=n * case.atol)))
        else:  # squaring doubles the producer's relative error, then rounds once more
            builder.kernel(f"c{i}_unfused_{node.op}", node, [stored] * len(node.inputs), node.outputs[0])
            checks.append(Check(node, fused_slot, len(builder.outputs) - 1, want,
                                replace(case, rtol=3 * case.rtol, atol=3 * case.atol)))
    return arrays, checks


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit equality, every NaN counting as one: LLVM may fold a conversion round trip in registers (f32 -> f64
    -> f32, a narrow float's rounding) and so keep a NaN payload that a store would have quieted or encoded."""
    if not DType.from_numpy(a.dtype).is_float_format:
        return a.tobytes() == b.tobytes()
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and a[~nan].tobytes() == b[~nan].tobytes()


@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
def test_inlined_producer_gives_the_unfused_bits(op: str) -> None:
    """Every case of ``op`` inlined into copy, a reduction and an elementwise op gives the bits of the stored
    intermediate (f16/bf16 results round) and matches the references of the two ops composed."""
    cases = [c for c in CASES if c.op == op]
    builder = _ProgramBuilder(f"fused_{op}")
    per_case = [_fold_case(builder, i, case) for i, case in enumerate(cases)]
    got = jit_compile(builder.program(), Target.named())(*(a for arrays, _ in per_case for a in arrays))
    got = list(got) if isinstance(got, tuple) else [got]
    for case, (_, checks) in zip(cases, per_case):
        for check in checks:
            fused = got[check.fused]
            if check.same_as is not None:
                assert _same_bits(fused, got[check.same_as]), f"{case.id} -> {check.node.op}: fused and unfused differ"
            assert_matches(fused, check.want, check.tolerance)


# -- operands and schedule hooks -------------------------------------------------------------------

def _one_node(op: str, dtype: DType = DType.F32, **attrs: Any) -> tuple[Node, BufferOperand]:
    graph = Graph(op)
    x = graph.add_input("x", TensorType((4, 3), dtype))
    return graph.add_node(op, [x], attrs), BufferOperand(Buffer("x", dtype, 12), x.type)


def test_inline_operand_takes_elementwise_ops_only_and_is_no_bitcast_source() -> None:
    node, x = _one_node("reduce_sum", axes=[0])
    with pytest.raises(CodegenError, match="only elementwise ops"):
        InlineOperand(get_op("reduce_sum"), node.attrs, (x,), node.outputs[0].type, _source(node))
    node, x = _one_node("neg")
    inline = InlineOperand(get_op("neg"), node.attrs, (x,), node.outputs[0].type, _source(node))
    assert inline.buffers == (x.buffer,) and inline.sources == (_source(node),)
    with pytest.raises(CodegenError, match="bitcast"):
        inline.as_dtype(DType.I32)


def test_a_chain_of_inlined_producers_rounds_at_every_step() -> None:
    """f16 ``exp`` then ``mul`` folded into one ``copy`` kernel give the bits of three kernels storing f16."""
    graph = Graph("chain")
    x = graph.add_input("x", TensorType((64,), DType.F16))
    e = graph.add_node("exp", [x])
    m = graph.add_node("mul", [e.outputs[0], e.outputs[0]])
    c = graph.add_node("copy", [m.outputs[0]])
    graph.set_outputs(c.outputs)
    builder = _ProgramBuilder("chain")
    inner = InlineOperand(get_op("exp"), e.attrs, (builder.input("x", x),), e.outputs[0].type, _source(e))
    outer = InlineOperand(get_op("mul"), m.attrs, (inner, inner), m.outputs[0].type, _source(m))
    builder.kernel("y", c, [outer], c.outputs[0])
    assert builder.kernels[0].sources == (_source(e), _source(m), _source(c))
    data = np.linspace(-4.0, 4.0, 64).astype(np.float16)
    fused = jit_compile(builder.program(), Target.named())(data)
    assert fused.tobytes() == needlec.compile(graph)(data).tobytes()


def test_schedule_applies_the_op_hook_of_a_kernels_last_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel whose op has a ``schedule`` hook gets the hook (with its attributes and the target), others the
    default schedule."""
    calls = []

    def hook(kernel: Kernel, attrs: Mapping[str, Any], target: Target | None, invariant: frozenset[str]) -> Kernel:
        calls.append((kernel.name, dict(attrs), target))
        return replace(kernel, name=kernel.name + "_hooked")

    monkeypatch.setitem(_REGISTRY, "reduce_sum", replace(get_op("reduce_sum"), schedule=hook))
    graph = Graph("hooked")
    x = graph.add_input("x", TensorType((4, 16), DType.F32))
    r = graph.add("reduce_sum", graph.add("neg", x), axes=[0])
    graph.set_outputs([r])
    program = lower_to_loops(graph)
    target = Target.named()
    scheduled = schedule(program, target)
    neg, total = program.kernels
    assert calls == [(total.name, {"axes": (0,), "keepdims": False}, target)]
    assert [k.name for k in scheduled.kernels] == [neg.name, total.name + "_hooked"]
    assert scheduled.kernels[0] == schedule_kernel(neg)


def test_an_elementwise_ops_lowering_is_derived_from_its_scalar() -> None:
    neg = get_op("neg")
    assert replace(neg, doc="again").is_elementwise  # replace keeps the derived lowering
    with pytest.raises(ValueError, match="derived from its scalar"):
        replace(neg, lower=get_op("reduce_sum").lower)
