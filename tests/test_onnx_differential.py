"""Differential test: random small valid ONNX graphs give the same outputs in needlec and ONNX Runtime.

Each graph is built from its seed (``random.Random(seed)``, the test id):
a chain of 2-6 float32 nodes (unary, binary with broadcasting, reductions,
MatMul, Transpose, Reshape, Concat, Softmax) over random shapes with size-1
dimensions, whose other operands are new graph inputs or initializers.
``NEEDLEC_DIFF_GRAPHS`` (default 150) sets how many seeds run.
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import needlec

GRAPHS = int(os.environ.get("NEEDLEC_DIFF_GRAPHS", "150"))
OPSET = 17
UNARY = ("Relu", "Neg", "Abs", "Tanh", "Sigmoid", "Exp", "Sqrt", "Floor", "Reciprocal", "Softplus")
BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min")


class Builder:
    """A graph under construction: nodes, graph inputs with their feeds, initializers and every value's shape."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.data = np.random.default_rng(rng.randrange(2**32))
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.feeds: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}

    def operand(self, shape: tuple[int, ...]) -> str:
        """A new graph input or initializer of ``shape`` with random values."""
        name = f"v{len(self.shapes)}"
        value = self.data.standard_normal(shape).astype(np.float32)
        if self.rng.random() < 0.5:
            self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
            self.feeds[name] = value
        else:
            self.initializers.append(numpy_helper.from_array(value, name))
        self.shapes[name] = shape
        return name

    def constant(self, value: np.ndarray) -> str:
        """An initializer holding ``value`` (an int64 shape or axes operand)."""
        name = f"c{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...], **attributes: object) -> str:
        name = f"v{len(self.shapes)}"
        self.nodes.append(helper.make_node(op, inputs, [name], name=f"n{len(self.nodes)}_{op}", **attributes))
        self.shapes[name] = shape
        return name

    def model(self, outputs: list[str]) -> onnx.ModelProto:
        infos = [helper.make_tensor_value_info(o, TensorProto.FLOAT, self.shapes[o]) for o in outputs]
        graph = helper.make_graph(self.nodes, "differential", self.inputs, infos, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        onnx.checker.check_model(model, full_check=True)
        return model


def random_shape(rng: random.Random, rank: int | None = None) -> tuple[int, ...]:
    rank = rng.randint(1, 4) if rank is None else rank
    return tuple(rng.choice((1, 1, 2, 3, 4, 5)) for _ in range(rank))


def broadcastable(rng: random.Random, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape``: some dims become 1, leading dims may go or come."""
    other = [1 if rng.random() < 0.3 else d for d in shape]
    if other and rng.random() < 0.3:
        other = other[rng.randint(1, len(other)):]
    elif len(other) < 4 and rng.random() < 0.2:
        other = [rng.choice((1, 2))] + other
    return tuple(other)


def unary(b: Builder, x: str) -> str:
    op = b.rng.choice(UNARY)
    if op == "Sqrt":  # of |x|: NaN would test NaN propagation, where ONNX Runtime's reductions differ from NumPy's
        x = b.node("Abs", [x], b.shapes[x])
    return b.node(op, [x], b.shapes[x])


def binary(b: Builder, x: str) -> str:
    other = b.operand(broadcastable(b.rng, b.shapes[x]))
    operands = [x, other] if b.rng.random() < 0.5 else [other, x]
    shape = tuple(np.broadcast_shapes(b.shapes[x], b.shapes[other]))
    return b.node(b.rng.choice(BINARY), operands, shape)


def reduce(b: Builder, x: str) -> str:
    shape = b.shapes[x]
    axes = sorted(b.rng.sample(range(len(shape)), b.rng.randint(1, len(shape))))
    keep = b.rng.choice((0, 1))
    out = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keep else \
        tuple(d for i, d in enumerate(shape) if i not in axes)
    signed = [a - len(shape) if b.rng.random() < 0.3 else a for a in axes]
    op = b.rng.choice(("ReduceSum", "ReduceMean", "ReduceMax"))
    if op == "ReduceSum":
        return b.node(op, [x, b.constant(np.array(signed, np.int64))], out, keepdims=keep)
    return b.node(op, [x], out, axes=signed, keepdims=keep)


def matmul(b: Builder, x: str) -> str:
    shape = b.shapes[x]
    n = b.rng.choice((1, 2, 3, 4))
    if len(shape) == 1:
        return b.node("MatMul", [x, b.operand((shape[0], n))], (n,))
    batch = broadcastable(b.rng, shape[:-2]) if b.rng.random() < 0.3 else ()
    other = b.operand((*batch, shape[-1], n))
    out = (*np.broadcast_shapes(shape[:-2], batch), shape[-2], n)
    return b.node("MatMul", [x, other], tuple(out))


def transpose(b: Builder, x: str) -> str:
    shape = b.shapes[x]
    perm = list(range(len(shape)))
    b.rng.shuffle(perm)
    return b.node("Transpose", [x], tuple(shape[p] for p in perm), perm=perm)


def reshape(b: Builder, x: str) -> str:
    shape = b.shapes[x]
    size = int(np.prod(shape))
    factors = [f for f in range(1, size + 1) if size % f == 0]
    first = b.rng.choice(factors)
    target = [first, size // first] if b.rng.random() < 0.7 else [size]
    if b.rng.random() < 0.3:
        target.insert(b.rng.randrange(len(target) + 1), 1)
    spec = list(target)
    if b.rng.random() < 0.4:
        spec[b.rng.randrange(len(spec))] = -1
    return b.node("Reshape", [x, b.constant(np.array(spec, np.int64))], tuple(target))


def concat(b: Builder, x: str) -> str:
    shape = b.shapes[x]
    axis = b.rng.randrange(len(shape))
    other_shape = tuple(b.rng.randint(1, 3) if i == axis else d for i, d in enumerate(shape))
    other = b.operand(other_shape)
    operands = [x, other] if b.rng.random() < 0.5 else [other, x]
    out = tuple(d + other_shape[axis] if i == axis else d for i, d in enumerate(shape))
    return b.node("Concat", operands, out, axis=axis - len(shape) if b.rng.random() < 0.3 else axis)


def softmax(b: Builder, x: str) -> str:
    rank = len(b.shapes[x])
    return b.node("Softmax", [x], b.shapes[x], axis=b.rng.randrange(-rank, rank))


STEPS: tuple[Callable[[Builder, str], str], ...] = (unary, unary, binary, binary, reduce, matmul, transpose, reshape,
                                                    concat, softmax)


def random_graph(seed: int) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The random valid graph of ``seed`` and its feeds."""
    rng = random.Random(seed)
    b = Builder(rng)
    x = b.operand(random_shape(rng))
    if not b.feeds:  # at least one graph input
        b.inputs.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, b.shapes[x]))
        b.feeds[x] = numpy_helper.to_array(b.initializers.pop())
    outputs = []
    for _ in range(rng.randint(2, 6)):
        step = rng.choice(STEPS)
        if step in (reduce, softmax, transpose, concat, matmul) and not b.shapes[x]:
            step = unary
        x = step(b, x)
        if rng.random() < 0.15:
            outputs.append(x)
    return b.model([*outputs, x] if x not in outputs else outputs), b.feeds


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("seed", range(GRAPHS))
def test_random_graph_matches_onnx_runtime(seed: int) -> None:
    model, feeds = random_graph(seed)
    expected = run_ort(model, feeds)
    with np.errstate(all="ignore"):
        got = needlec.compile(model, progress=False)(**feeds)
    got = got if isinstance(got, tuple) else (got,)
    ops = " -> ".join(n.op_type for n in model.graph.node)
    assert len(got) == len(expected), ops
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape and g.dtype == e.dtype, (ops, i, g.shape, e.shape)
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5, equal_nan=True, err_msg=f"{ops}: output {i}")


def test_the_generator_covers_every_step() -> None:
    ops = {n.op_type for seed in range(GRAPHS) for n in random_graph(seed)[0].graph.node}
    assert {"MatMul", "Transpose", "Reshape", "Concat", "Softmax", "ReduceSum", "ReduceMax", "Add"} <= ops, ops
