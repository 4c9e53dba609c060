"""Pass ``fuse_elementwise``: which elementwise nodes are computed inside the kernels that read them.

The pass marks nodes ``inline`` (``Node.inline``; the graph text prints
``inline`` before the op). ``lower_to_loops`` gives an inline node no kernel
and no buffer: every kernel that reads its value computes it in place from
the node's own inputs (``loops/builder.InlineOperand``, which gives the bits
of the stored value, f16/bf16 rounding included). Inlining is transitive: an
inline node's inputs may be inline too, so a chain of elementwise ops
becomes part of the one kernel that consumes the chain's result.

The policy is analytic: it counts work, not timings. A node's *evaluations* are
how many times each of its elements is computed per call once it is inline:
the sum over its reads of how many times the reading kernel loads each
element (``_loads_per_element``, from each op's lowering), times the reader's
own evaluations when the reader is inline too. Reading a value twice counts
twice: the loop IR repeats the expression, so evaluations also bound its
size. Stored, a node is computed once, then written and loaded once per
reader: a few bytes of memory traffic per element, which cost about what a
few vector arithmetic instructions do, but less than a math function call
(exp, tanh, ...: tens of vector instructions per vector; softmax's ``exp``
computed in both its sum and its division was 10% slower than stored on a
2-core AVX2 host). A node is inline when (``_Plan.inline``, one ``why``
comment per rule):

* it is elementwise, not a graph output, and read by someone;
* every reader can compute it in place: elementwise ops, reductions,
  concat, pad, gather, scatter (``LOADS``); never a view or ``bitcast``
  (which need a buffer), nor ``matmul``, ``conv2d`` or a window op (which
  load each element many times);
* its evaluations are at most ``MAX_EVALUATIONS`` (4) for plain arithmetic,
  ``MAX_EVALUATIONS_MATH`` (1) when it calls a math function;
* it is nested at most ``MAX_DEPTH`` inline nodes deep in a kernel;
* it reads no variable when an update's copy kernel computes it (the copies
  run one after another and may already have overwritten that variable).

Nodes are decided from the last to the first, so each reader is decided
before the values it reads; a node that stays in a buffer starts a new
kernel, and its producers' evaluations count from it.
"""
from __future__ import annotations

from collections.abc import Callable

from needlec.compiler.ir.graph import Graph, Node, Value
from needlec.compiler.loops.builder import elementwise_value
from needlec.compiler.loops.ir import Binary, Cast, Expr, LocalRef, Select, Unary
from needlec.compiler.ops.registry import get_op

MAX_EVALUATIONS = 4
"""The most evaluations per element of an inline node of plain arithmetic (no math call)."""

MAX_EVALUATIONS_MATH = 1
"""The most evaluations per element of an inline node that calls a math function (exp, tanh, pow, ...)."""

MAX_DEPTH = 16
"""The most inline nodes nested in one kernel's expression (tanh-GELU nests 7)."""

_INSTRUCTION_UNARY = frozenset({"neg", "abs", "sqrt", "floor", "ceil", "round", "not"})
_CALL_BINARY = frozenset({"pow", "fmod"})


def _input_size(node: Node, index: int) -> int:
    return node.inputs[index].type.size


def _output_size(node: Node, index: int) -> int:
    return node.outputs[0].type.size


def _scatter_loads(node: Node, index: int) -> int:
    return node.inputs[0 if index == 0 else 1].type.size


LOADS: dict[str, Callable[[Node, int], int]] = {
    # one load per element, in the loop over the reduced axes
    "reduce_sum": _input_size, "reduce_prod": _input_size, "reduce_max": _input_size, "reduce_min": _input_size,
    # element 0 starts the running best, the loop from 1 reads the rest
    "argmax": _input_size, "argmin": _input_size,
    # one running total along each row
    "cumulative": _input_size,
    # each input copied once into its part of the output
    "concat": _input_size,
    # one clamped load per output element (padding positions load a border element again)
    "pad": _output_size,
    # one index load and one data load per output element
    "gather": _output_size, "gather_elements": _output_size,
    # data copied once, then one index and one update load per position of ``indices``
    "scatter": _scatter_loads,
}
"""Loads per call of input ``index`` by a non-elementwise reader, read off its lowering. An op not listed (views,
``bitcast``, ``matmul``, ``conv2d``, window ops, ``topk``, ``random_uniform``) never reads an inline value."""


def fuse_elementwise(graph: Graph) -> Graph:
    """Mark the elementwise nodes that every reader computes in place (``inline``) instead of storing them.

    Every node's mark is decided afresh, from the last node to the first (see
    the module docstring for the policy and ``_inline`` for its rules).
    """
    readers: dict[int, list[tuple[Node, int]]] = {}
    for node in graph.nodes:
        for index, value in enumerate(node.inputs):
            readers.setdefault(id(value), []).append((node, index))
    outputs = {id(v) for v in graph.outputs}
    updates: dict[int, int] = {}
    for _, value in graph.updates:
        updates[id(value)] = updates.get(id(value), 0) + 1
    plan = _Plan(readers, outputs, updates)
    for node in reversed(graph.nodes):
        node.inline = plan.inline(node)
    return graph


class _Plan:
    """The decisions so far: each inline node's evaluations per element and depth, and which feed an update."""

    def __init__(self, readers: dict[int, list[tuple[Node, int]]], outputs: set[int], updates: dict[int, int]) -> None:
        self.readers = readers
        self.outputs = outputs
        self.updates = updates
        self.evaluations: dict[int, float] = {}
        self.depth: dict[int, int] = {}
        self.in_update: set[int] = set()

    def inline(self, node: Node) -> bool:
        """Whether ``node`` is inline; records its evaluations and depth when it is."""
        opdef = get_op(node.op)
        # why: only a scalar function of its inputs can be computed at any index (InlineOperand)
        if opdef.scalar is None or len(node.outputs) != 1:
            return False
        (value,) = node.outputs
        # why: an output is written to the caller's buffer anyway
        if id(value) in self.outputs:
            return False
        reads = self.readers.get(id(value), [])
        update_reads = self.updates.get(id(value), 0)
        # why: a value nobody reads is dead code, dce's business
        if not reads and not update_reads:
            return False
        evaluations, depth, in_update = float(update_reads), 1, update_reads > 0
        for reader, index in reads:
            per_element = _loads_per_element(reader, index)
            # why: views alias a buffer, bitcast reinterprets one, and matmul, conv2d and window ops load each
            # element many times (the naive matmul reads A[i, k] N times): these readers need the value stored
            if per_element is None:
                return False
            if reader.inline:
                evaluations += per_element * self.evaluations[id(reader)]
                depth = max(depth, self.depth[id(reader)] + 1)
                in_update = in_update or id(reader) in self.in_update
            else:
                evaluations += per_element
        # why: the update copies run after every other kernel, one variable after another, so a variable read
        # in place there may already hold its new value
        if in_update and any(_views_variable(v) for v in node.inputs):
            return False
        # why: the loop IR is a tree that the printer, verifier, interpreters and codegen walk recursively
        if depth > MAX_DEPTH:
            return False
        # why: recomputing costs less than a store and a load per reader only while it stays cheap: a few
        # evaluations of plain arithmetic, but a math call costs more than the memory traffic it would save
        if evaluations > (MAX_EVALUATIONS_MATH if _calls_math(node) else MAX_EVALUATIONS):
            return False
        self.evaluations[id(node)] = evaluations
        self.depth[id(node)] = depth
        if in_update:
            self.in_update.add(id(node))
        return True


def _loads_per_element(reader: Node, index: int) -> float | None:
    """How many times ``reader``'s kernel loads each element of its input ``index`` (at least once), or None
    when the reader cannot or should not compute that input in place."""
    if get_op(reader.op).scalar is not None:
        loads = reader.outputs[0].type.size  # one load per output element, broadcast or not
    elif reader.op in LOADS:
        loads = LOADS[reader.op](reader, index)
    else:
        return None
    return max(1.0, loads / max(1, reader.inputs[index].type.size))


def _views_variable(value: Value) -> bool:
    """Whether ``value`` is a variable or a view of one (its elements live in the variable's storage)."""
    while value.producer is not None and get_op(value.producer.op).is_view:
        value = value.producer.inputs[0]
    return value.is_variable


def _calls_math(node: Node) -> bool:
    """Whether ``node``'s scalar expression, built over placeholder arguments, calls a math function (exp, tanh,
    pow, ...; not an instruction such as sqrt)."""
    opdef = get_op(node.op)
    assert opdef.scalar is not None
    args = [LocalRef(f"a{i}", v.dtype) for i, v in enumerate(node.inputs)]
    return _has_call(elementwise_value(opdef.scalar, opdef.promote, args, node.attrs))


def _has_call(expr: Expr) -> bool:
    if isinstance(expr, Unary):
        return expr.op.value not in _INSTRUCTION_UNARY or _has_call(expr.x)
    if isinstance(expr, Binary):
        return expr.op.value in _CALL_BINARY or _has_call(expr.a) or _has_call(expr.b)
    if isinstance(expr, Select):
        return _has_call(expr.cond) or _has_call(expr.a) or _has_call(expr.b)
    if isinstance(expr, Cast):
        return _has_call(expr.x)
    return False
