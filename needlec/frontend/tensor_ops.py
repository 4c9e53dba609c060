"""The op API (``needlec.ops``): every primitive with a friendly, NumPy/PyTorch-like signature.

Each function takes Tensors (or Parameters, NumPy arrays and Python scalars,
which become constants; see ``tensor.promote`` for the dtype rules), appends
nodes to the graph being traced and returns a Tensor. Composite ops
decompose into primitives, so the compiler only ever sees primitives: those
shared with the ONNX importer (softmax, log_softmax, ...) are built by
``compiler/ops/composites.py`` into the graph being traced (``composite``),
the frontend-only ones (linear, pooling with averaging, stack) here.

Axes may be negative; ``axis=None`` in a reduction means every axis.
"""
from __future__ import annotations

import builtins
import math
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ops import composites as C
from needlec.errors import ShapeError, TraceError
from needlec.frontend.tensor import (DTypeLike, Tensor, active_context, as_tensor, graph_of, promote,
                                     to_dtype)

__all__ = [
    "add", "sub", "mul", "div", "true_divide", "floor_divide", "pow", "maximum", "minimum", "mod",
    "neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid", "relu", "erf", "sin", "cos",
    "floor", "ceil", "round", "sign", "logical_not", "logical_and", "logical_or", "logical_xor",
    "eq", "ne", "lt", "le", "gt", "ge", "where", "cast",
    "sum", "max", "min", "prod", "mean", "argmax", "argmin", "matmul",
    "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose", "broadcast_to", "slice", "copy",
    "pad", "concat", "stack", "gather", "scatter",
    "iota", "full", "fill", "zeros", "ones", "rand",
    "conv2d", "max_pool2d", "avg_pool2d", "linear", "softmax", "log_softmax",
]

Axes = int | Sequence[int] | None
IntPair = int | Sequence[int]


def _apply(op: str, *inputs: Tensor, **attrs: Any) -> Tensor:
    """Append one ``op`` node reading ``inputs`` (Tensors of one graph) and return its output."""
    graph = inputs[0].graph
    return Tensor(graph.add(op, *[t.value for t in inputs], **attrs), graph)


def composite(fn: Callable[..., Value], x: Tensor, *args: Any, **attrs: Any) -> Tensor:
    """The composite ``fn`` of ``compiler/ops/composites.py`` built into ``x``'s graph, wrapped as a Tensor.

    ``args`` may hold further Tensors (passed as their values) and attributes.
    """
    values = [a.value if isinstance(a, Tensor) else a for a in args]
    return Tensor(fn(x.graph, x.value, *values, **attrs), x.graph)


def _tensor(x: Any, what: str) -> Tensor:
    """``x`` as a Tensor of the graph being traced (constants for non-Tensors)."""
    return as_tensor(x, graph_of(x, what=what), what)


def _normalize_axis(axis: int, rank: int, what: str) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"{what}: axis {axis} out of range for rank {rank}")
    return axis % rank


def _axes(axis: Axes, rank: int, what: str) -> tuple[int, ...]:
    """Sorted, non-negative, unique axes (every axis for ``None``)."""
    if axis is None:
        return tuple(range(rank))
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    normalized = sorted({_normalize_axis(int(a), rank, what) for a in axes})
    if len(normalized) != len(axes):
        raise ShapeError(f"{what}: repeated axis in {tuple(axes)}")
    return tuple(normalized)


def _pair(value: IntPair, name: str, what: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ShapeError(f"{what}: {name} must be an int or a pair, found {value!r}")
    return pair


# -- elementwise ------------------------------------------------------------------
def _binary(op: str, a: Any, b: Any) -> Tensor:
    a, b = promote([a, b], op)
    return _apply(op, a, b)


def _float_input(x: Any, what: str) -> Tensor:
    """``x`` as a Tensor, integer and bool tensors converted to f32 (as PyTorch's float math does)."""
    t = _tensor(x, what)
    return t if t.dtype.is_float else t.astype(DType.F32)


def add(a: Any, b: Any) -> Tensor:
    """a + b."""
    return _binary("add", a, b)


def sub(a: Any, b: Any) -> Tensor:
    """a - b."""
    return _binary("sub", a, b)


def mul(a: Any, b: Any) -> Tensor:
    """a * b."""
    return _binary("mul", a, b)


def div(a: Any, b: Any) -> Tensor:
    """The ``div`` primitive: true division for floats, truncating (C-style) for integers."""
    return _binary("div", a, b)


def true_divide(a: Any, b: Any) -> Tensor:
    """a / b as Python's ``/``: integer and bool operands are divided in f32."""
    a, b = promote([a, b], "true_divide")
    if not a.dtype.is_float:
        a, b = a.astype(DType.F32), b.astype(DType.F32)
    return _apply("div", a, b)


def floor_divide(a: Any, b: Any) -> Tensor:
    """a // b as Python's ``//`` (rounds towards minus infinity)."""
    a, b = promote([a, b], "floor_divide")
    if a.dtype.is_float:
        return floor(_apply("div", a, b))
    return _apply("div", _apply("sub", a, _apply("mod", a, b)), b)  # a - a mod b is a multiple of b


def pow(a: Any, b: Any) -> Tensor:
    """a ** b (float dtypes)."""
    return _binary("pow", a, b)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum."""
    return _binary("max", a, b)


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum."""
    return _binary("min", a, b)


def mod(a: Any, b: Any) -> Tensor:
    """Floor modulo (the sign of ``b``, as Python's ``%``)."""
    return _binary("mod", a, b)


def eq(a: Any, b: Any) -> Tensor:
    """a == b (bool)."""
    return _binary("eq", a, b)


def ne(a: Any, b: Any) -> Tensor:
    """a != b (bool)."""
    return _binary("ne", a, b)


def lt(a: Any, b: Any) -> Tensor:
    """a < b (bool)."""
    return _binary("lt", a, b)


def le(a: Any, b: Any) -> Tensor:
    """a <= b (bool)."""
    return _binary("le", a, b)


def gt(a: Any, b: Any) -> Tensor:
    """a > b (bool)."""
    return _binary("gt", a, b)


def ge(a: Any, b: Any) -> Tensor:
    """a >= b (bool)."""
    return _binary("ge", a, b)


def _logical(op: str, a: Any, b: Any) -> Tensor:
    a, b = promote([a, b], op)
    if not a.dtype.is_bool:
        raise TraceError(f"{op}: needs bool tensors, found {a.dtype.value}")
    return _apply(op, a, b)


def logical_and(a: Any, b: Any) -> Tensor:
    """a & b on bool tensors."""
    return _logical("logical_and", a, b)


def logical_or(a: Any, b: Any) -> Tensor:
    """a | b on bool tensors."""
    return _logical("logical_or", a, b)


def logical_xor(a: Any, b: Any) -> Tensor:
    """a ^ b on bool tensors."""
    return _logical("logical_xor", a, b)


def logical_not(x: Any) -> Tensor:
    """~x on a bool tensor."""
    t = _tensor(x, "logical_not")
    if not t.dtype.is_bool:
        raise TraceError(f"logical_not: needs a bool tensor, found {t.dtype.value}")
    return _apply("logical_not", t)


def neg(x: Any) -> Tensor:
    """-x."""
    return _apply("neg", _tensor(x, "neg"))


def abs(x: Any) -> Tensor:
    """|x|."""
    return _apply("abs", _tensor(x, "abs"))


def relu(x: Any) -> Tensor:
    """max(x, 0)."""
    return _apply("relu", _tensor(x, "relu"))


def sign(x: Any) -> Tensor:
    """-1, 0 or 1."""
    return _apply("sign", _tensor(x, "sign"))


def exp(x: Any) -> Tensor:
    """e ** x."""
    return _apply("exp", _float_input(x, "exp"))


def log(x: Any) -> Tensor:
    """Natural logarithm."""
    return _apply("log", _float_input(x, "log"))


def sqrt(x: Any) -> Tensor:
    """Square root."""
    return _apply("sqrt", _float_input(x, "sqrt"))


def rsqrt(x: Any) -> Tensor:
    """1 / sqrt(x)."""
    return _apply("rsqrt", _float_input(x, "rsqrt"))


def reciprocal(x: Any) -> Tensor:
    """1 / x."""
    return _apply("reciprocal", _float_input(x, "reciprocal"))


def tanh(x: Any) -> Tensor:
    """Hyperbolic tangent."""
    return _apply("tanh", _float_input(x, "tanh"))


def sigmoid(x: Any) -> Tensor:
    """1 / (1 + e ** -x)."""
    return _apply("sigmoid", _float_input(x, "sigmoid"))


def erf(x: Any) -> Tensor:
    """Gauss error function."""
    return _apply("erf", _float_input(x, "erf"))


def sin(x: Any) -> Tensor:
    """Sine."""
    return _apply("sin", _float_input(x, "sin"))


def cos(x: Any) -> Tensor:
    """Cosine."""
    return _apply("cos", _float_input(x, "cos"))


def _rounding(op: str, x: Any) -> Tensor:
    t = _tensor(x, op)
    return _apply(op, t) if t.dtype.is_float else t  # integers are already whole


def floor(x: Any) -> Tensor:
    """Round down (integers unchanged)."""
    return _rounding("floor", x)


def ceil(x: Any) -> Tensor:
    """Round up (integers unchanged)."""
    return _rounding("ceil", x)


def round(x: Any) -> Tensor:
    """Round half to even (integers unchanged)."""
    return _rounding("round", x)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` holds, else ``b`` (NumPy broadcasting; ``cond`` must be bool)."""
    graph = graph_of(cond, a, b, what="where")
    c = as_tensor(cond, graph, "where")
    if not c.dtype.is_bool:
        raise TraceError(f"where: the condition must be a bool tensor, found {c.dtype.value}; "
                         f"compare it first (e.g. x > 0)")
    a, b = promote([a, b], "where")
    return _apply("where", c, a, b)


def cast(x: Any, dtype: DTypeLike) -> Tensor:
    """Convert to ``dtype`` (float to int truncates); no node if ``x`` already has it."""
    t = _tensor(x, "cast")
    target = to_dtype(dtype)
    return t if t.dtype is target else _apply("cast", t, dtype=target)


# -- reductions ---------------------------------------------------------------------
def _reduce(op: str, x: Any, axis: Axes, keepdims: bool) -> Tensor:
    t = _tensor(x, op)
    if t.dtype.is_bool and op in ("reduce_sum", "reduce_prod"):
        t = t.astype(DType.I64)  # NumPy sums booleans as integers
    axes = _axes(axis, t.ndim, op)
    if not axes:
        return t
    return _apply(op, t, axes=axes, keepdims=keepdims)


def sum(x: Any, axis: Axes = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis``."""
    return _reduce("reduce_sum", x, axis, keepdims)


def max(x: Any, axis: Axes = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis`` (see ``maximum`` for the elementwise one)."""
    return _reduce("reduce_max", x, axis, keepdims)


def min(x: Any, axis: Axes = None, keepdims: bool = False) -> Tensor:
    """Minimum over ``axis`` (see ``minimum`` for the elementwise one)."""
    return _reduce("reduce_min", x, axis, keepdims)


def prod(x: Any, axis: Axes = None, keepdims: bool = False) -> Tensor:
    """Product over ``axis``."""
    return _reduce("reduce_prod", x, axis, keepdims)


def mean(x: Any, axis: Axes = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (``composites.mean``: the sum divided by the count); integers are averaged in f32."""
    t = _float_input(x, "mean")
    axes = _axes(axis, t.ndim, "mean")
    kept = composite(C.mean, t, list(axes))
    return kept if keepdims else reshape(kept, tuple(d for a, d in enumerate(t.shape) if a not in axes))


def _arg_reduce(op: str, x: Any, axis: int | None, keepdims: bool, select_last_index: bool) -> Tensor:
    t = _tensor(x, op)
    if axis is None:
        flat = reshape(t, (-1,))
        result = _apply(op, flat, axis=0, keepdims=False, select_last_index=select_last_index)
        return reshape(result, (1,) * t.ndim) if keepdims else result
    return _apply(op, t, axis=_normalize_axis(axis, t.ndim, op), keepdims=keepdims,
                  select_last_index=select_last_index)


def argmax(x: Any, axis: int | None = None, keepdims: bool = False, select_last_index: bool = False) -> Tensor:
    """Index (i64) of the maximum along ``axis`` (of the flattened tensor when None); first one by default."""
    return _arg_reduce("argmax", x, axis, keepdims, select_last_index)


def argmin(x: Any, axis: int | None = None, keepdims: bool = False, select_last_index: bool = False) -> Tensor:
    """Index (i64) of the minimum along ``axis`` (of the flattened tensor when None); first one by default."""
    return _arg_reduce("argmin", x, axis, keepdims, select_last_index)


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with ``np.matmul`` semantics (batch broadcasting, 1-D operands)."""
    a, b = promote([a, b], "matmul")
    return _apply("matmul", a, b)


# -- views and data movement ------------------------------------------------------------
def copy(x: Any) -> Tensor:
    """A contiguous copy of ``x`` (views become their own buffer)."""
    return _apply("copy", _tensor(x, "copy"))


def reshape(x: Any, shape: Sequence[int]) -> Tensor:
    """Same elements in a new shape; one dimension may be -1. A non-dense input is copied first."""
    t = _tensor(x, "reshape")
    dims = [int(d) for d in shape]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise ShapeError(f"reshape: invalid target shape {tuple(dims)} (at most one -1, no other negatives)")
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if known == 0 or t.size % known:
            raise ShapeError(f"reshape: cannot reshape {t.shape} ({t.size} elements) to {tuple(dims)}")
        dims[dims.index(-1)] = t.size // known
    if math.prod(dims) != t.size:
        raise ShapeError(f"reshape: cannot reshape {t.shape} ({t.size} elements) to {tuple(dims)}")
    if tuple(dims) == t.shape:
        return t
    if not t.value.type.is_dense:
        t = copy(t)  # as torch.reshape: a strided view cannot be re-shaped in place
    return _apply("reshape", t, shape=dims)


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` (inclusive) into one; a 0-d tensor becomes shape (1,)."""
    t = _tensor(x, "flatten")
    if t.ndim == 0:
        return reshape(t, (1,))
    start = _normalize_axis(start_dim, t.ndim, "flatten")
    end = _normalize_axis(end_dim, t.ndim, "flatten")
    if start > end:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(t, t.shape[:start] + (math.prod(t.shape[start:end + 1]),) + t.shape[end + 1:])


def unsqueeze(x: Any, axis: int) -> Tensor:
    """Insert a size-1 axis at ``axis`` (in the output's numbering)."""
    t = _tensor(x, "unsqueeze")
    at = _normalize_axis(axis, t.ndim + 1, "unsqueeze")
    return reshape(t, t.shape[:at] + (1,) + t.shape[at:])


def squeeze(x: Any, axis: Axes = None) -> Tensor:
    """Remove the size-1 axes ``axis`` (every size-1 axis when None)."""
    t = _tensor(x, "squeeze")
    axes = [a for a in range(t.ndim) if t.shape[a] == 1] if axis is None else _axes(axis, t.ndim, "squeeze")
    for a in axes:
        if t.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} of shape {t.shape} has size {t.shape[a]}, expected 1")
    return reshape(t, tuple(d for a, d in enumerate(t.shape) if a not in axes))


def permute(x: Any, perm: Sequence[int]) -> Tensor:
    """Reorder axes: output axis i is input axis ``perm[i]`` (a view)."""
    t = _tensor(x, "permute")
    order = tuple(_normalize_axis(int(p), t.ndim, "permute") for p in perm)
    if sorted(order) != list(range(t.ndim)):
        raise ShapeError(f"permute: {tuple(perm)} is not a permutation of the {t.ndim} axes of {t.shape}")
    return t if order == tuple(range(t.ndim)) else _apply("permute", t, perm=order)


def transpose(x: Any, dim0: int, dim1: int) -> Tensor:
    """Swap axes ``dim0`` and ``dim1`` (a view)."""
    t = _tensor(x, "transpose")
    order = list(range(t.ndim))
    a, b = _normalize_axis(dim0, t.ndim, "transpose"), _normalize_axis(dim1, t.ndim, "transpose")
    order[a], order[b] = order[b], order[a]
    return permute(t, order)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """NumPy broadcast to ``shape`` (a stride-0 view)."""
    t = _tensor(x, "broadcast_to")
    target = tuple(int(d) for d in shape)
    return t if target == t.shape else _apply("broadcast_to", t, shape=target)


def slice(x: Any, starts: Sequence[int], stops: Sequence[int], steps: Sequence[int] | None = None,
          axes: Sequence[int] | None = None) -> Tensor:
    """``x[start:stop:step]`` on ``axes`` (default: the leading ones) with Python semantics (a view)."""
    t = _tensor(x, "slice")
    steps = [1] * len(starts) if steps is None else steps
    axes = list(range(len(starts))) if axes is None else axes
    return _apply("slice", t, starts=starts, stops=stops, steps=steps, axes=axes)


def pad(x: Any, pads: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad with ``pads`` in ONNX order (all begins, then all ends); mode constant, reflect or edge."""
    return _apply("pad", _tensor(x, "pad"), pads=pads, mode=mode, value=value)


def concat(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing ``axis`` (dtypes promoted)."""
    if not tensors:
        raise TraceError("concat: needs at least one tensor")
    parts = promote(list(tensors), "concat")
    return _apply("concat", *parts, axis=_normalize_axis(axis, parts[0].ndim, "concat"))


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new ``axis``."""
    if not tensors:
        raise TraceError("stack: needs at least one tensor")
    parts = promote(list(tensors), "stack")
    at = _normalize_axis(axis, parts[0].ndim + 1, "stack")
    return concat([unsqueeze(p, at) for p in parts], at)


def _indices(indices: Any, graph_source: Tensor, what: str) -> Tensor:
    if isinstance(indices, (list, tuple)):
        indices = np.asarray(indices, dtype=np.int64)
    return as_tensor(indices, graph_source.graph, what)


def gather(data: Any, indices: Any, axis: int = 0) -> Tensor:
    """``np.take(data, indices, axis)``: index ``axis`` with an integer tensor (negatives count from the end)."""
    d = _tensor(data, "gather")
    return _apply("gather", d, _indices(indices, d, "gather"), axis=_normalize_axis(axis, d.ndim, "gather"))


def scatter(data: Any, indices: Any, updates: Any, axis: int = 0, reduction: str = "none") -> Tensor:
    """ONNX ScatterElements: a copy of ``data`` with ``updates`` written (or reduced) at ``indices`` along ``axis``."""
    d, u = promote([data, updates], "scatter")
    return _apply("scatter", d, _indices(indices, d, "scatter"), u,
                  axis=_normalize_axis(axis, d.ndim, "scatter"), reduction=reduction)


# -- creation (these need an active trace) -------------------------------------------------
def _created(name: str, op: str, **attrs: Any) -> Tensor:
    """A node of the creation primitive ``op`` (no inputs) for ``needlec.ops.<name>``."""
    graph = active_context(f"needlec.ops.{name}").graph
    return Tensor(graph.add(op, **attrs), graph)


def iota(shape: Sequence[int], axis: int = 0, dtype: DTypeLike = DType.I64) -> Tensor:
    """A tensor of ``shape`` whose value is its index along ``axis``."""
    return _created("iota", "iota", shape=shape, axis=axis, dtype=to_dtype(dtype))


def full(shape: Sequence[int], value: bool | int | float, dtype: DTypeLike | None = None) -> Tensor:
    """A tensor of ``shape`` filled with ``value`` (dtype from the value: bool, i64 or f32, unless given)."""
    if dtype is None:
        dtype = DType.BOOL if isinstance(value, bool) else DType.I64 if isinstance(value, int) else DType.F32
    return _created("full", "fill", shape=shape, value=float(value), dtype=to_dtype(dtype))


fill = full  # the primitive's name


def zeros(shape: Sequence[int], dtype: DTypeLike = DType.F32) -> Tensor:
    """A tensor of zeros."""
    return full(shape, 0, dtype)


def ones(shape: Sequence[int], dtype: DTypeLike = DType.F32) -> Tensor:
    """A tensor of ones."""
    return full(shape, 1, dtype)


def rand(shape: Sequence[int], seed: int = 0, dtype: DTypeLike = DType.F32, offset: int = 0,
         run_offset: Tensor | None = None) -> Tensor:
    """Uniform random values in [0, 1), a pure function of (seed, offset, element index).

    ``run_offset``, an i64 scalar tensor, is added to ``offset`` at run time.
    """
    attrs = {"shape": shape, "seed": seed, "dtype": to_dtype(dtype), "offset": offset}
    if run_offset is None:
        return _created("rand", "random_uniform", **attrs)
    return _apply("random_uniform", run_offset, **attrs)


# -- neural-network ops ----------------------------------------------------------------
def conv2d(x: Any, weight: Any, bias: Any = None, stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) of NCHW ``x`` with OIHW ``weight``, plus ``bias`` per channel."""
    x, weight = promote([x, weight], "conv2d")
    ph, pw = _pair(padding, "padding", "conv2d")
    out = _apply("conv2d", x, weight, strides=_pair(stride, "stride", "conv2d"), pads=(ph, pw, ph, pw),
                 dilations=_pair(dilation, "dilation", "conv2d"), groups=groups)
    return out if bias is None else out + reshape(bias, (-1, 1, 1))


def _pool_geometry(kernel_size: IntPair, stride: IntPair | None, padding: IntPair,
                   what: str) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    kernel = _pair(kernel_size, "kernel_size", what)
    strides = kernel if stride is None else _pair(stride, "stride", what)
    return kernel, strides, _pair(padding, "padding", what)


def max_pool2d(x: Any, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               dilation: IntPair = 1, ceil_mode: bool = False) -> Tensor:
    """Max over ``kernel_size`` windows of the last two axes (stride defaults to the kernel, as in PyTorch)."""
    t = _tensor(x, "max_pool2d")
    kernel, strides, (ph, pw) = _pool_geometry(kernel_size, stride, padding, "max_pool2d")
    return _apply("window_reduce", t, kind="max", kernel=kernel, strides=strides, pads=(ph, pw, ph, pw),
                  dilations=_pair(dilation, "dilation", "max_pool2d"), ceil_mode=ceil_mode)


def _window_counts(size: int, out: int, kernel: int, stride: int, pad: int, include_pad: bool) -> list[int]:
    """Per output position, how many inputs PyTorch's avg_pool divides by along one axis."""
    counts = []
    for i in range(out):
        start = i * stride - pad
        end = builtins.min(start + kernel, size + pad)
        counts.append(end - start if include_pad else builtins.min(end, size) - builtins.max(start, 0))
    return counts


def avg_pool2d(x: Any, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Mean over windows of the last two axes: a windowed sum divided by the window's element count.

    As in PyTorch, padding counts towards the divisor when ``count_include_pad``
    (the default); windows reaching past the padding (``ceil_mode``) never do.
    The divisors depend only on static shapes, so they are computed here.
    """
    t = _float_input(x, "avg_pool2d")
    kernel, strides, (ph, pw) = _pool_geometry(kernel_size, stride, padding, "avg_pool2d")
    total = _apply("window_reduce", t, kind="sum", kernel=kernel, strides=strides, pads=(ph, pw, ph, pw),
                   ceil_mode=ceil_mode)
    rows = _window_counts(t.shape[-2], total.shape[-2], kernel[0], strides[0], ph, count_include_pad)
    cols = _window_counts(t.shape[-1], total.shape[-1], kernel[1], strides[1], pw, count_include_pad)
    divisor = np.outer(rows, cols)
    if divisor.size and (divisor == divisor.flat[0]).all():
        return total / float(divisor.flat[0])
    return total / divisor.astype(t.dtype.np)


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """x @ weight.T + bias, with ``weight`` of shape (out_features, in_features) as in PyTorch."""
    out = matmul(x, transpose(weight, 0, 1))
    return out if bias is None else out + bias


def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, computed stably (``composites.softmax``; a row of only -inf gives
    NaN, as in PyTorch)."""
    return composite(C.softmax, _float_input(x, "softmax"), axis)


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - log(sum(exp(x))) along ``axis``, computed stably (``composites.log_softmax``)."""
    return composite(C.log_softmax, _float_input(x, "log_softmax"), axis)
