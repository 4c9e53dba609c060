"""``random_uniform``: a counter-based generator (SplitMix64), identical in NumPy and native code.

Element ``i`` (row-major) of ``random_uniform(shape, seed, dtype, offset)`` is a
pure function of ``(seed, offset + i)``: output number ``offset + i`` of the
SplitMix64 generator (Steele, Lea & Flood, "Fast splittable pseudorandom
number generators", 2014; Java's ``SplittableRandom``) whose state starts at
``mix64(seed)``::

    z = mix64(mix64(seed) + (offset + i + 1) * 0x9E3779B97F4A7C15)   (mod 2**64)

The seed is mixed first because SplitMix64 streams of nearby states are
shifted copies of one sequence; mixing places seeds 0, 1, 2, ... far apart.
The float is the top ``b`` bits of ``z`` times ``2**-b`` with ``b`` = 11 (f16),
8 (bf16), 24 (f32) or 53 (f64): exactly representable, uniform in ``[0, 1)``, so the
NumPy reference (``uint64`` arithmetic wraps) and compiled code agree bit for
bit. Being counter-based, no state is threaded through the graph: dropout at
step ``t`` uses ``offset = t * size``, and any slice of the stream can be
computed independently (e.g. by each GPU thread).

An optional input, an i64 scalar, is added to ``offset`` at run time, so a
compiled training step can draw a fresh stream every step from a step-counter
variable.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np

from needlec.compiler.ir.dtypes import FLOAT_DTYPES, DType
from needlec.compiler.ir.types import TensorType, contiguous_strides
from needlec.compiler.loops.builder import BufferOperand, KernelBuilder, Operand, binary, cast, const, linear_index
from needlec.compiler.loops.ir import Assign, Const, Expr, Local, LocalRef, Stmt
from needlec.compiler.ops.data import check_shape
from needlec.compiler.ops.registry import NO_GRAD, Attr, OpDef, check, register

GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
MIX_SHIFTS = (30, 27, 31)
MASK64 = 2**64 - 1
# float dtype -> random bits per element (the dtype's significand width)
MANTISSA_BITS = {DType.F16: 11, DType.BF16: 8, DType.F32: 24, DType.F64: 53}


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on ``uint64`` arrays (wrapping arithmetic)."""
    (m1, m2), (s1, s2, s3) = MIX_MULTIPLIERS, MIX_SHIFTS
    z = (z ^ (z >> np.uint64(s1))) * np.uint64(m1)
    z = (z ^ (z >> np.uint64(s2))) * np.uint64(m2)
    return z ^ (z >> np.uint64(s3))


def _mix64_loop_ir(kb: KernelBuilder, state: Expr) -> tuple[list[Stmt], Expr]:
    """``mix64(state)`` in loop IR on an i64 local (add/mul wrap, ``lshr`` is the unsigned shift).

    Returns the statements updating the local and the final output expression.
    """
    name = kb.name("z")
    z = LocalRef(name, DType.I64)
    stmts: list[Stmt] = [Local(name, state)]
    for multiplier, shift in zip(MIX_MULTIPLIERS, MIX_SHIFTS):
        stmts.append(Assign(name, binary("mul", binary("xor", z, binary("lshr", z, Const(shift))),
                                         Const(_as_i64(multiplier)))))
    return stmts, binary("xor", z, binary("lshr", z, Const(MIX_SHIFTS[-1])))


def _as_i64(value: int) -> int:
    """The two's-complement i64 holding the 64-bit pattern ``value``."""
    value &= MASK64
    return value - 2**64 if value >= 2**63 else value


def stream_base(seed: int, offset: int) -> int:
    """SplitMix64 state (before mixing) of element 0: ``mix64(seed) + (offset + 1) * gamma``."""
    key = int(mix64(np.array([seed & MASK64], np.uint64))[0])
    return (key + (offset + 1) * GOLDEN_GAMMA) & MASK64


def _random_infer(types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    check(len(types) <= 1, f"random_uniform takes 0 or 1 input (a run-time offset), found {len(types)}")
    check(all(t.shape == () and t.dtype is DType.I64 for t in types),
          f"random_uniform: the run-time offset must be an i64 scalar, found {', '.join(map(str, types))}")
    dtype = attrs["dtype"]
    check(dtype in FLOAT_DTYPES, f"random_uniform: dtype {dtype.value} is not a float dtype (f16, bf16, f32, f64)")
    return [TensorType(check_shape("random_uniform", attrs["shape"]), dtype)]


def _random_reference(args: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    shape, dtype = tuple(attrs["shape"]), attrs["dtype"]
    bits = MANTISSA_BITS[dtype]
    counters = np.arange(int(np.prod(shape)), dtype=np.uint64)
    offset = attrs["offset"] + (int(args[0]) if args else 0)
    z = mix64(np.uint64(stream_base(attrs["seed"], offset)) + counters * np.uint64(GOLDEN_GAMMA))
    top = z >> np.uint64(64 - bits)
    return [(top.astype(dtype.np) * dtype.np.type(2.0 ** -bits)).reshape(shape)]


def _random_lower(kb: KernelBuilder, ins: Sequence[Operand], outs: Sequence[BufferOperand],
                  attrs: Mapping[str, Any]) -> list[Stmt]:
    (out,) = outs
    bits = MANTISSA_BITS[out.dtype]
    base: Expr = Const(_as_i64(stream_base(attrs["seed"], attrs["offset"])))
    if ins:  # run-time offset: advancing the counter by n adds n * gamma to the state
        base = binary("add", base, binary("mul", ins[0].load([]), Const(_as_i64(GOLDEN_GAMMA))))

    def body(idx: list) -> list[Stmt]:
        counter = linear_index(list(zip(idx, contiguous_strides(out.shape))))
        mixing, z = _mix64_loop_ir(kb, binary("add", base, binary("mul", counter, Const(_as_i64(GOLDEN_GAMMA)))))
        top = binary("lshr", z, Const(64 - bits))
        return [*mixing, out.store(idx, binary("mul", cast(top, out.dtype), const(2.0 ** -bits, out.dtype)))]

    return kb.loop_nest(out.shape, body)


register(OpDef(
    "random_uniform", None, _random_infer, _random_reference, _random_lower,
    attrs={"shape": Attr("ints"), "seed": Attr("int"), "dtype": Attr("dtype", DType.F32),
           "offset": Attr("int", 0)}, grad=NO_GRAD,
    doc="uniform floats in [0, 1): element i is SplitMix64 output offset + i of the stream keyed by seed "
        "(counter-based, bit-identical in NumPy and native code)"))
