"""Pass ``constant_fold``: evaluate nodes whose inputs are all constants.

Why: weights are constants, so preprocessing of weights (transposes, casts,
reshapes, scalar arithmetic) moves from every run to compile time. Results
are computed with the reference interpreter; a node is folded only when its
result is no larger than its inputs (or tiny), so folding never bloats the
artifact. Generators without inputs (fill, iota, random_uniform) are left as
kernels: computing them costs no more than loading a constant.
"""
from __future__ import annotations

from needlec.compiler.ir.graph import Graph
from needlec.compiler.ops.registry import get_op

SMALL_BYTES = 4096


def constant_fold(graph: Graph) -> Graph:
    """Replace all-constant nodes by constants holding their results."""
    folded = []
    for node in graph.nodes:
        arrays = [v.data for v in node.inputs if v.is_constant and v.data is not None]
        if not node.inputs or len(arrays) != len(node.inputs):
            continue
        in_bytes = sum(v.type.nbytes for v in node.inputs)
        out_bytes = sum(v.type.nbytes for v in node.outputs)
        if out_bytes > max(in_bytes, SMALL_BYTES):
            continue
        results = get_op(node.op).reference(arrays, node.attrs)
        for value, result in zip(node.outputs, results):
            graph.replace_all_uses(value, graph.add_constant(result.astype(value.dtype.np), value.name + "_f"))
        folded.append(node)
    graph.remove_nodes(folded)
    graph.refresh_types()
    return graph
