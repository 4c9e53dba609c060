"""Pass ``lower_to_loops``: graph -> loop-IR ``Program``.

Every value gets a storage: graph inputs and outputs are caller-owned slots,
constants and variables are module globals, other node outputs are arena
buffers (placed later by ``plan_memory``), and view outputs alias the buffer
of their source. A node marked ``inline`` (``fuse_elementwise``) gets neither:
every kernel reading its value computes it in place, through an
``InlineOperand`` over its own inputs' operands. Each other non-view node
becomes one kernel whose body is its op's lowering, which reads its inputs
through ``Operand``s; its sources list the inline nodes it folds in, then the
node. A matmul or conv2d whose value only an elementwise chain reads
(``epilogue_roots``: bias, BatchNorm's shift, residual add, activation) has
no buffer either: its kernel runs where the chain ends and stores the
chain's result through a ``FusedOutput`` (an epilogue; its sources list the
chain after the product). Variable updates become copy kernels after all
others, so every read of a variable sees its value from the start of the
call.
Requires ``materialize_outputs`` to have run (outputs are fresh, contiguous
buffers).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from needlec.compiler.ir.graph import Graph, Node, Value
from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import (BufferOperand, FusedOutput, InlineOperand, KernelBuilder, Operand, cast,
                                            elementwise_value)
from needlec.compiler.loops.ir import Buffer, Expr, Kernel, LocalRef, Program, Source, Storage
from needlec.compiler.loops.transforms import map_exprs
from needlec.compiler.ops.registry import LowerFn, get_op
from needlec.errors import CodegenError


def _buffer_name(value: Value, taken: dict[str, Buffer]) -> str:
    """A buffer name for ``value``: its name with ``.`` as ``_``, made unique (``a.b`` and ``a_b`` both exist)."""
    name = stem = value.name.replace(".", "_")
    suffix = 1
    while name in taken:
        name, suffix = f"{stem}_{suffix}", suffix + 1
    return name


def lower_to_loops(graph: Graph) -> Program:
    """Lower every node of ``graph`` to a kernel over flat buffers."""
    buffers: dict[str, Buffer] = {}
    storage: dict[str, Storage] = {}
    constants: dict[str, object] = {}
    base: dict[int, Buffer] = {}

    def new_buffer(value: Value, where: Storage, size: int) -> Buffer:
        buf = Buffer(_buffer_name(value, buffers), value.dtype, size)
        buffers[buf.name] = buf
        storage[buf.name] = where
        base[id(value)] = buf
        return buf

    for slot, value in enumerate(graph.inputs):
        new_buffer(value, Storage("input", slot), value.type.size)
    for kind, values in (("constant", graph.constants), ("variable", graph.variables)):
        for value in values:
            buf = new_buffer(value, Storage(kind), value.type.size)
            constants[buf.name] = value.data
    output_slots = {id(v): slot for slot, v in enumerate(graph.outputs)}
    inline: dict[int, Operand] = {}
    epilogues = epilogue_roots(graph)  # id(root) -> the product its chain finishes
    stored = {id(product): StoredValue(product.outputs[0].type, product.outputs[0].name)
              for product in epilogues.values()}
    for product in epilogues.values():  # read by its epilogue chain only, as the value being stored
        inline[id(product.outputs[0])] = stored[id(product)]

    def read(value: Value) -> Operand:
        """How a kernel reads ``value``: computed in place if its node is inline, else from its buffer."""
        if id(value) in inline:
            return inline[id(value)]
        return BufferOperand(base[id(value)], value.type)

    kernels: list[Kernel] = []
    for node in graph.nodes:
        opdef = get_op(node.op)
        if id(node) in stored:
            continue  # lowered with its epilogue, at the chain's root
        if node.inline:
            (value,) = node.outputs
            inline[id(value)] = InlineOperand(opdef, node.attrs, tuple(read(v) for v in node.inputs), value.type,
                                              node_source(node))
            continue
        if opdef.is_view:
            if id(node.inputs[0]) in inline:
                raise CodegenError(f"node %{node.name} ({node.op}): its input %{node.inputs[0].name} is inline, "
                                   "but a view needs a buffer")
            base[id(node.outputs[0])] = base[id(node.inputs[0])]
            continue
        for value in node.outputs:
            out_slot = output_slots.get(id(value))
            new_buffer(value, Storage("output", out_slot) if out_slot is not None else Storage("arena"),
                       value.type.size)
        if opdef.lower is None:
            raise CodegenError(f"node %{node.name} ({node.op}): op has no lowering")
        ins = [read(v) for v in node.inputs]
        outs = [BufferOperand(base[id(v)], v.type) for v in node.outputs]
        if id(node) in epilogues:  # the product's kernel, storing through this elementwise chain
            product = epilogues[id(node)]
            fused = fused_output(node, ins, outs[0].buffer, stored[id(product)])
            kernels.append(make_kernel(kernel_name(len(kernels), product.op, product.origin),
                                       get_lowering(product), [read(v) for v in product.inputs], [fused],
                                       product.attrs, node_source(product)))
            continue
        kernels.append(make_kernel(kernel_name(len(kernels), node.op, node.origin), opdef.lower, ins, outs, node.attrs,
                                   node_source(node)))

    copy = get_op("copy").lower
    assert copy is not None
    for variable, value in graph.updates:
        if value is not variable:
            kernels.append(make_kernel(f"k{len(kernels)}_update_{base[id(variable)].name}", copy,
                                       [read(value)],
                                       [BufferOperand(base[id(variable)], variable.type)], {},
                                       Source(variable.name, "update")))

    return Program(graph.name, kernels, buffers, storage, constants,
                   [(v.name, v.shape, v.dtype) for v in graph.inputs],
                   [(v.name, v.shape, v.dtype) for v in graph.outputs],
                   [(v.name, v.shape, v.dtype) for v in graph.variables])


def node_source(node: Node) -> Source:
    """The ``Source`` naming ``node`` in a kernel: its name, op, attributes and origin (kept for profiles and dumps;
    passes that fold a node into another's kernel name it with this too)."""
    return Source(node.name, node.op, tuple(sorted(node.attrs.items())), node.origin)


def kernel_name(index: int, op: str, origin: str | None) -> str:
    """``k<index>_<op>``, then the node's provenance (its ``origin``, e.g. the ONNX node ``/0/Conv``) made an
    identifier: ``k0_conv2d__0_Conv``."""
    name = f"k{index}_{op}"
    if origin:
        name += "_" + re.sub(r"[^A-Za-z0-9_]", "_", origin)[:48]
    return name


def make_kernel(name: str, lower: LowerFn, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                attrs: Mapping[str, Any], source: Source) -> Kernel:
    """The kernel of ``lower`` over ``ins`` and ``outs``: its buffers are those the operands touch, its sources
    the nodes folded into its inputs (``InlineOperand``), producers first, then ``source``, then the epilogue
    nodes its outputs store through (``FusedOutput``)."""
    body = lower(KernelBuilder(), ins, outs, attrs)
    used = dict.fromkeys(b for o in [*ins, *outs] for b in o.buffers)
    folded = dict.fromkeys(s for x in ins for s in x.sources)  # (an input read twice folds its nodes in once)
    after = dict.fromkeys(s for x in outs for s in x.sources)
    return Kernel(name, tuple(used), tuple(body), sources=(*folded, source, *after))


# -- epilogues ------------------------------------------------------------------
EPILOGUE_PRODUCERS = frozenset({"matmul", "conv2d"})  # their lowerings store each output element once, at the end


def epilogue_roots(graph: Graph) -> dict[int, Node]:
    """Products whose value only an elementwise chain reads, by the id of the chain's last (non-inline) node.

    Why: the chain (bias, folded BatchNorm's shift, residual add, activation)
    is then applied as each element of the product is stored, so the product
    never makes a round trip through memory. The chain's nodes read the
    product at its own index (same shape, no broadcast of it), each link has
    one reader, and the product is no output; one product per root.
    """
    readers: dict[int, set[int]] = {}
    nodes = {id(n): n for n in graph.nodes}
    for node in graph.nodes:
        for value in node.inputs:
            readers.setdefault(id(value), set()).add(id(node))
    kept = {id(v) for v in graph.outputs} | {id(v) for _, v in graph.updates}
    roots: dict[int, Node] = {}
    for node in graph.nodes:
        if node.op not in EPILOGUE_PRODUCERS or node.inline or len(node.outputs) != 1:
            continue
        value = current = node.outputs[0]
        while id(current) not in kept and len(readers.get(id(current), ())) == 1:
            (user_id,) = readers[id(current)]
            user = nodes[user_id]
            if not get_op(user.op).is_elementwise or user.outputs[0].shape != value.shape:
                break
            if not user.inline:
                if user_id not in roots:
                    roots[user_id] = node
                break
            current = user.outputs[0]
    return roots


class StoredValue(Operand):
    """A product's value as its epilogue chain reads it: a placeholder that ``fused_output`` replaces by the
    value being stored."""

    def __init__(self, type: TensorType, name: str) -> None:
        self.type = type
        self.marker = LocalRef(f"%stored:{name}", type.dtype)

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        return ()

    @property
    def sources(self) -> tuple[Source, ...]:
        return ()

    def load(self, idx: Sequence[Expr]) -> Expr:
        return self.marker

    def as_dtype(self, dtype: DType) -> Operand:
        raise CodegenError(f"a product stored through an epilogue cannot be read as {dtype.value} (bitcast)")


def fused_output(root: Node, ins: Sequence[Operand], buffer: Buffer, product: StoredValue) -> FusedOutput:
    """The output of ``product``'s kernel that stores the elementwise ``root`` (with its inline chain) of it."""
    opdef = get_op(root.op)
    scalar = opdef.scalar
    assert scalar is not None
    shape = root.outputs[0].shape

    def finish(idx: Sequence[Expr], value: Expr) -> Expr:
        expr = elementwise_value(scalar, opdef.promote, [x.load_broadcast(idx, shape) for x in ins], root.attrs)
        return map_exprs(cast(expr, root.outputs[0].dtype), lambda e: value if e == product.marker else e)

    return FusedOutput(buffer, product.type, finish, tuple(ins), (node_source(root),))


def get_lowering(node: Node) -> LowerFn:
    lower = get_op(node.op).lower
    if lower is None:
        raise CodegenError(f"node %{node.name} ({node.op}): op has no lowering")
    return lower
