"""Vectorisable f32 math: ``exp``, ``log``, ``tanh`` and ``erf`` as LLVM IR functions defined in each module.

LLVM lowers ``llvm.exp.f32`` and friends to one scalar libm call per
element, so a loop containing one never vectorises. These bodies are
straight-line code instead, as SLEEF and ONNX Runtime's MLAS write them:
selects (no branches), float arithmetic, integer bit manipulation (scaling
by powers of two through the exponent field) and polynomials evaluated with
``llvm.fma.f32``. Each is defined with internal linkage and ``alwaysinline``
on first use (``define``); after inlining, LLVM's loop vectoriser turns the
kernel loop into vector code. The CPU target's math table names them
(``compiler/target.py``); f64 keeps libm and LLVM's intrinsics.

Same bits everywhere: every rounding step is an IEEE operation (``fadd``,
``fmul``, ``fdiv``, ``fma``) with no fast-math flags, so LLVM may not
contract or reassociate, and the explicit ``fma`` rounds once on every CPU
(CPUs without FMA, ``x86-64`` and ``x86-64-v2``, get it from libm's exact
``fmaf``, slower). Results are identical for AVX2, AVX-512 and scalar code.

Special values as libm: NaN gives NaN; ``exp`` overflows to inf, underflows
through correctly scaled subnormals to 0; ``log(±0) = -inf``, ``log`` of a
negative number is NaN, ``log(inf) = inf``, subnormal inputs are exact;
``tanh`` and ``erf`` are odd (``-0`` gives ``-0``) and saturate to ±1.

Maximum error against the exact result, in units in the last place of the
f32 result, measured over every one of the 2**32 f32 inputs against a
float64 reference: ``exp`` 0.910 ulp, ``log`` 0.840, ``tanh`` 1.021 (just
above 0.9, where the polynomial hands over to the exp formula), ``erf``
1.018 (just above 1, likewise). ``ULP_BOUND`` states them rounded up;
``tests/test_vector_math.py`` checks them on a sweep of the whole range.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import llvmlite.ir as ir

F32 = ir.FloatType()
I32 = ir.IntType(32)
Body = Callable[[ir.IRBuilder, ir.Value], ir.Value]

# the largest error of each function over every f32 input, in ulps of the f32 result (module docstring)
ULP_BOUND: dict[str, float] = {"exp": 0.91, "log": 0.84, "tanh": 1.03, "erf": 1.02}


def _c(value: float | str) -> ir.Constant:
    """An f32 constant; a string is a C99 hex float (coefficients are written exactly as the f32 they are)."""
    return ir.Constant(F32, float.fromhex(value) if isinstance(value, str) else value)


def _i(value: int) -> ir.Constant:
    return ir.Constant(I32, value)


def _fma(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
    """``x * y + z`` rounded once: the same bits on every CPU."""
    return b.call(b.module.declare_intrinsic("llvm.fma", [F32, F32, F32]), [x, y, z])


def _unary_intrinsic(b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
    fn = b.module.declare_intrinsic(name, [F32], fnty=ir.FunctionType(F32, [F32] * len(args)))
    return b.call(fn, list(args))


def _horner(b: ir.IRBuilder, x: ir.Value, coefficients: Sequence[str]) -> ir.Value:
    """``c0 + c1 x + c2 x**2 + ...`` by Horner's rule with one fma per coefficient."""
    acc: ir.Value = _c(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = _fma(b, acc, x, _c(c))
    return acc


def _clamp_above(b: ir.IRBuilder, x: ir.Value, bound: float) -> ir.Value:
    """``min(x, bound)`` keeping NaN (an ordered compare is false for NaN)."""
    return b.select(b.fcmp_ordered(">", x, _c(bound)), _c(bound), x)


# exp: e**x = 2**n * e**r, n = round(x / ln2), r = x - n ln2 in [-ln2/2, ln2/2]
_LOG2E = 1.44269502162933349609375
# adding 1.5 * 2**23 (whose ulp is 1) rounds to an integer held in the low mantissa bits; the 1.5 keeps
# negative sums in the same binade
_SHIFT = 1.5 * 2.0 ** 23
_LN2_HI = "0x1.62e4p-1"  # Cody-Waite: ln2 in two parts, the first short so x - n * _LN2_HI is exact
_LN2_LO = "0x1.7f7d1cp-20"
# e**r = 1 + r + r**2 P(r): minimax for the relative error on [-ln2/2, ln2/2] (0.05 ulp), P = c2 + c3 r + ...
_EXP_P = ("0x1.fffffcp-2", "0x1.555492p-3", "0x1.5558f2p-5", "0x1.1239d4p-7", "0x1.6a244cp-10")


def exp(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """e**x; overflow gives inf, results below 2**-126 are subnormals rounded once, then 0."""
    # beyond [-104, 89] e**x is 0 or inf anyway; clamping keeps n small enough for the scaling below
    x = b.select(b.fcmp_ordered("<", x, _c(-104.0)), _c(-104.0), _clamp_above(b, x, 89.0))
    shifted = _fma(b, x, _c(_LOG2E), _c(_SHIFT))
    n_float = b.fsub(shifted, _c(_SHIFT))
    n = b.sub(b.bitcast(shifted, I32), b.bitcast(_c(_SHIFT), I32))
    r = _fma(b, n_float, b.fneg(_c(_LN2_HI)), x)
    r = _fma(b, n_float, b.fneg(_c(_LN2_LO)), r)
    e_r = _horner(b, r, ("0x1p0", "0x1p0", *_EXP_P))  # ending in fma(., r, 1): one rounding near the result
    # 2**n in two factors: each stays a normal float for n in [-150, 128], and the second multiply
    # rounds once, so results in the subnormal range come out correctly scaled (and overflow gives inf)
    half = b.ashr(n, _i(1))
    first = b.bitcast(b.shl(b.add(half, _i(127)), _i(23)), F32)
    second = b.bitcast(b.shl(b.add(b.sub(n, half), _i(127)), _i(23)), F32)
    return b.fmul(b.fmul(e_r, first), second)


# log: x = 2**k m with m in [sqrt(1/2), sqrt(2)); log(m) = log(1 + f) = 2 atanh(s), s = f / (2 + f)
_SQRT_HALF_BITS = 0x3F3504F3
_LN2_HI_LOG = "0x1.62e3p-1"  # fdlibm's split of ln2: k ln2 = k hi (exact in an fma) + k lo (tiny)
_LN2_LO_LOG = "0x1.2fefa4p-17"
# 2 atanh(s) = 2s + s z Q(z), z = s**2: minimax on z in [0, (3 - 2 sqrt2)**2]
_LOG_Q = ("0x1.555554p-1", "0x1.999a7ap-2", "0x1.2438d8p-2", "0x1.e2f664p-3")


def log(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Natural logarithm: -inf at ±0, NaN below 0, inf at inf; subnormal inputs as accurate as normal ones."""
    tiny = b.fcmp_ordered("<", x, _c(2.0 ** -126))  # subnormals: scale up so the exponent field is theirs
    scaled = b.select(tiny, b.fmul(x, _c(2.0 ** 23)), x)
    # subtracting sqrt(1/2)'s bits before splitting off the exponent puts m in [sqrt(1/2), sqrt(2))
    offset = b.sub(b.bitcast(scaled, I32), _i(_SQRT_HALF_BITS))
    k = b.add(b.ashr(offset, _i(23)), b.select(tiny, _i(-23), _i(0)))
    m = b.bitcast(b.add(b.and_(offset, _i(0x7FFFFF)), _i(_SQRT_HALF_BITS)), F32)
    f = b.fsub(m, _c(1.0))  # exact (Sterbenz)
    s = b.fdiv(f, b.fadd(f, _c(2.0)))
    z = b.fmul(s, s)
    r = b.fmul(z, _horner(b, z, _LOG_Q))
    half_f2 = b.fmul(_c(0.5), b.fmul(f, f))
    k_float = b.sitofp(k, F32)
    # fdlibm's order: log(1 + f) = f - (f**2/2 - s (f**2/2 + R)): the exact f carries most of the value
    low = _fma(b, s, b.fadd(half_f2, r), b.fmul(k_float, _c(_LN2_LO_LOG)))
    result = _fma(b, k_float, _c(_LN2_HI_LOG), b.fsub(f, b.fsub(half_f2, low)))
    result = b.select(b.fcmp_ordered("==", x, _c(float("inf"))), _c(float("inf")), result)
    result = b.select(b.fcmp_ordered("==", x, _c(0.0)), _c(float("-inf")), result)
    return b.select(b.fcmp_unordered("<", x, _c(0.0)), _c(float("nan")), result)  # x < 0 or NaN


# tanh: an odd polynomial near 0 (where 1 - 2/(e**2a + 1) would cancel), that formula beyond
_TANH_SMALL = 0.9
# tanh(a) = a + a**3 P(a**2): minimax for the relative error on [0, _TANH_SMALL]
_TANH_P = ("-0x1.55554ep-2", "0x1.110f34p-3", "-0x1.b9c9f2p-5", "0x1.62ef7cp-6", "-0x1.0ed006p-7",
           "0x1.5283fcp-9", "-0x1.dd95b2p-12")


def tanh(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Hyperbolic tangent; odd (tanh(-0) = -0), ±1 beyond ±9.01 (e**2a = inf gives exactly 1)."""
    a = _unary_intrinsic(b, "llvm.fabs", x)
    u = b.fmul(a, a)
    small = _fma(b, b.fmul(a, u), _horner(b, u, _TANH_P), a)
    large = b.fsub(_c(1.0), b.fdiv(_c(2.0), b.fadd(exp(b, b.fadd(a, a)), _c(1.0))))
    magnitude = b.select(b.fcmp_ordered("<", a, _c(_TANH_SMALL)), small, large)  # NaN: large, NaN
    return _unary_intrinsic(b, "llvm.copysign", magnitude, x)


# erf: a + a P(a**2) near 0, 1 - e**Q(a) beyond (Q approximates log(erfc(a)))
_ERF_SMALL = 1.0
# erf(a) = a + a P(a**2): minimax for the relative error on [0, _ERF_SMALL]
_ERF_P = ("0x1.06eba8p-3", "-0x1.81273ep-2", "0x1.ce2cf8p-4", "-0x1.b7f90ep-6", "0x1.5405b2p-8",
          "-0x1.a3f7p-11", "0x1.496a32p-14")
# log(erfc(a)) = Q(a - 1): minimax on [_ERF_SMALL, 4], weighted by erfc(a) / erf(a) (the error it causes in erf);
# in powers of a - 1 (exact) so rounding errors of the Horner steps are not amplified where the weight is large
_ERF_Q = ("-0x1.d97fcp+0", "-0x1.51c9bp+1", "-0x1.afabb4p-1", "-0x1.547f56p-5", "0x1.494ddp-7", "-0x1.084cdcp-9",
          "0x1.333fe6p-12", "-0x1.82d674p-16", "0x1.c75e98p-23")
_ERF_ONE = 4.0  # erfc(4) < 2**-25: erf rounds to ±1 beyond (clamping also keeps Q(inf) from inf - inf)


def erf(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Gauss error function; odd (erf(-0) = -0), exactly ±1 beyond ±3.92."""
    a = _unary_intrinsic(b, "llvm.fabs", x)
    small = _fma(b, a, _horner(b, b.fmul(a, a), _ERF_P), a)
    large = b.fsub(_c(1.0), exp(b, _horner(b, b.fsub(_clamp_above(b, a, _ERF_ONE), _c(1.0)), _ERF_Q)))
    magnitude = b.select(b.fcmp_ordered("<", a, _c(_ERF_SMALL)), small, large)  # NaN: large, NaN
    return _unary_intrinsic(b, "llvm.copysign", magnitude, x)


_BODIES: dict[str, Body] = {"exp": exp, "log": log, "tanh": tanh, "erf": erf}
# math function -> the symbol the CPU target's math table gives for f32
SYMBOLS: dict[str, str] = {name: f"needlec.{name}.f32" for name in _BODIES}
# symbol -> the body ``define`` writes
DEFINITIONS: dict[str, Body] = {SYMBOLS[name]: body for name, body in _BODIES.items()}


def define(module: ir.Module, symbol: str) -> ir.Function:
    """Define ``symbol`` (a key of ``DEFINITIONS``) in ``module``: internal, always inlined into its callers."""
    fn = ir.Function(module, ir.FunctionType(F32, [F32]), name=symbol)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(DEFINITIONS[symbol](b, fn.args[0]))
    return fn
