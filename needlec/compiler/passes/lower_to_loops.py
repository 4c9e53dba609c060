"""Pass ``lower_to_loops``: graph -> loop-IR ``Program``.

Every value gets a storage: graph inputs and outputs are caller-owned slots,
constants and variables are module globals, other node outputs are arena
buffers (placed later by ``plan_memory``), and view outputs alias the buffer
of their source. A node marked ``inline`` (``fuse_elementwise``) gets neither:
every kernel reading its value computes it in place, through an
``InlineOperand`` over its own inputs' operands. Each other non-view node
becomes one kernel whose body is its op's lowering, which reads its inputs
through ``Operand``s; its sources list the inline nodes it folds in, then the
node. Variable updates become copy kernels after all others, so every read of
a variable sees its value from the start of the call.
Requires ``materialize_outputs`` to have run (outputs are fresh, contiguous
buffers).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from needlec.compiler.ir.graph import Graph, Node, Value
from needlec.compiler.loops.builder import BufferOperand, InlineOperand, KernelBuilder, Operand
from needlec.compiler.loops.ir import Buffer, Kernel, Program, Source, Storage
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
    inline: dict[int, InlineOperand] = {}

    def read(value: Value) -> Operand:
        """How a kernel reads ``value``: computed in place if its node is inline, else from its buffer."""
        if id(value) in inline:
            return inline[id(value)]
        return BufferOperand(base[id(value)], value.type)

    kernels: list[Kernel] = []
    for node in graph.nodes:
        opdef = get_op(node.op)
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
    the nodes folded into its inputs (``InlineOperand``), producers first, then ``source``."""
    body = lower(KernelBuilder(), ins, outs, attrs)
    used = dict.fromkeys(b for o in [*ins, *outs] for b in o.buffers)
    folded = dict.fromkeys(s for x in ins for s in x.sources)  # (an input read twice folds its nodes in once)
    return Kernel(name, tuple(used), tuple(body), sources=(*folded, source))
