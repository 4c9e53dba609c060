"""Targets: what a backend can do, from the API/CLI through the pipeline into codegen.

A ``Target`` names the backend (``cpu``), the CPU it is for (``CpuTarget``),
its widest vector, its cores, whether it has shared memory (GPUs), its math
functions (op -> symbol per dtype: what the renderer may call) and the loop
kinds its code generator can emit. ``Target.named(name, cpu=...)`` builds one;
the loop passes and codegen read it, so nothing below the API asks the host
directly.

CPUs: which CPU the code is tuned for and exactly which instruction-set features it may use.

``CpuTarget.named(name)`` resolves what a user asks for (``cpu=`` in the API,
``--cpu`` on the command line):

``host`` (default)
    this machine: its CPU name *and* the feature set it reports (virtual
    machines may report a CPU name, e.g. ``znver4``, whose features they hide,
    so the name alone could emit instructions the machine lacks);
``x86-64``, ``x86-64-v2``, ``x86-64-v3``, ``x86-64-v4``
    the x86-64 psABI levels, for portable artifacts (``x86-64-v3``: AVX2 and
    FMA, no AVX-512);
any other CPU name (``skylake``, ``znver3``, ...)
    resolved through the system C compiler (``cc -march=NAME -dM -E``), whose
    feature macros give the set.

Whatever the name, LLVM is held to the resolved set, restricted to the
extensions code generation uses (``CODEGEN_FEATURES``): every feature LLVM
knows is passed explicitly, on (``+``) when in the set and off (``-``) otherwise.
So ``features`` is exactly what the emitted code may use; artifacts record it
and the runtime refuses them on a host that lacks any (never SIGILL).
"""
from __future__ import annotations

import ctypes.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import llvmlite.binding as llvm

from needlec.compiler.codegen import vector_math
from needlec.errors import CodegenError

_V1 = ("64bit", "cmov", "cx8", "fxsr", "mmx", "sse", "sse2", "x87")
_V2 = _V1 + ("cx16", "sahf", "popcnt", "sse3", "sse4.1", "sse4.2", "ssse3")
_V3 = _V2 + ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")
_V4 = _V3 + ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")
# the x86-64 psABI microarchitecture levels (LLVM feature names)
PSABI_LEVELS: dict[str, tuple[str, ...]] = {"x86-64": _V1, "x86-64-v2": _V2, "x86-64-v3": _V3, "x86-64-v4": _V4}
# the instruction-set extensions code may be generated with; the others (system instructions such as sgx,
# xsaves, clwb) are only reachable through intrinsics, which needlec never emits, so they are always off
CODEGEN_FEATURES = frozenset(_V4) | {
    "aes", "pclmul", "sha", "adx", "rdrnd", "rdseed", "fsgsbase", "sse4a", "prfchw", "xop", "fma4",
    "gfni", "vaes", "vpclmulqdq", "avxvnni", "avx512ifma", "avx512vbmi", "avx512vbmi2", "avx512vnni",
    "avx512bitalg", "avx512vpopcntdq", "avx512vp2intersect", "avx512fp16", "avx512bf16"}
# gcc feature macros whose LLVM feature name is not the macro's name lower-cased
_MACRO_FEATURES = {"SSE4_1": "sse4.1", "SSE4_2": "sse4.2", "LAHF_SAHF": "sahf"}


@lru_cache(maxsize=1)
def host_features() -> dict[str, bool]:
    """Every feature LLVM knows for this host's architecture, and whether this host has it."""
    return dict(llvm.get_host_cpu_features())


@dataclass(frozen=True)
class CpuTarget:
    """A CPU to generate code for: ``name`` as asked, the LLVM ``cpu`` it tunes for, the ``features`` it may use."""

    name: str
    cpu: str
    features: tuple[str, ...]

    @staticmethod
    def named(name: str = "host") -> CpuTarget:
        """Resolve ``host``, a psABI level or a CPU name the C compiler knows; CodegenError otherwise."""
        if not isinstance(name, str) or not name:
            raise CodegenError(f"cpu must be a CPU name such as 'host' or 'x86-64-v3', found {name!r}")
        if name == "host":
            return CpuTarget("host", llvm.get_host_cpu_name(),
                             tuple(sorted(f for f, on in host_features().items() if on and f in CODEGEN_FEATURES)))
        if name in PSABI_LEVELS:
            return CpuTarget(name, name, tuple(sorted(PSABI_LEVELS[name])))
        return CpuTarget(name, name, _compiler_features(name))

    def feature_string(self) -> str:
        """LLVM's feature string: every known feature, on when in ``features``, off otherwise."""
        wanted = set(self.features)
        known = sorted(set(host_features()) | wanted)
        return ",".join(("+" if f in wanted else "-") + f for f in known)


def _compiler_features(name: str) -> tuple[str, ...]:
    """The features of CPU ``name`` from the C compiler's predefined macros (``cc -march=NAME``)."""
    cc = shutil.which("cc")
    choices = f"'host' or one of {', '.join(PSABI_LEVELS)}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise CodegenError(f"unknown CPU {name!r}: expected {choices}, or a CPU name such as 'skylake'")
    if cc is None:
        raise CodegenError(f"CPU {name!r}: resolving a named CPU's features needs a C compiler (cc); use {choices}")
    result = subprocess.run([cc, f"-march={name}", "-dM", "-E", "-"], input="", capture_output=True, text=True)
    if result.returncode != 0:
        raise CodegenError(f"unknown CPU {name!r} (the C compiler does not know it): use {choices}, "
                           "or a CPU name such as 'skylake' or 'znver3'")
    known = host_features()
    features = set(_V1)
    for macro in re.findall(r"#define __([A-Z0-9_]+)__ 1", result.stdout):
        feature = _MACRO_FEATURES.get(macro, macro.lower())
        if feature in known and feature in CODEGEN_FEATURES:
            features.add(feature)
    return tuple(sorted(features))


TARGET_NAMES = ("cpu",)
_CPU_LOOP_KINDS = frozenset({"serial", "vectorize"})  # and "parallel" where an OpenMP runtime is installed
# math functions LLVM lowers itself (intrinsics ``llvm.<name>.<type>``): the CPU backend calls these
_LLVM_MATH = ("exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
              "floor", "ceil", "roundeven", "fabs", "pow", "maximum", "minimum")
# functions LLVM has no intrinsic for: libm symbols, resolved in-process by MCJIT and by -lm in a shared library
_LIBM_MATH = ("erf", "asinh", "acosh", "atanh")


def cpu_math_table() -> dict[str, dict[str, str]]:
    """The CPU backend's math functions: function name -> {dtype name: symbol to call}.

    f32 ``exp``, ``log``, ``tanh`` and ``erf`` are needlec's own vectorisable
    bodies (``codegen/vector_math.py``), which codegen defines in the module.
    """
    table = {name: {t: f"llvm.{name}.{t}" for t in ("f16", "f32", "f64")} for name in _LLVM_MATH}
    table.update({name: {"f32": name + "f", "f64": name} for name in _LIBM_MATH})
    for name, symbol in vector_math.SYMBOLS.items():
        table[name]["f32"] = symbol
    return table


def _vector_bits(features: tuple[str, ...]) -> int:
    """The widest vector register the features give (SSE 128, AVX 256, AVX-512 512 bits)."""
    return 512 if "avx512f" in features else 256 if "avx" in features else 128


@lru_cache(maxsize=1)
def openmp_runtime() -> str | None:
    """The OpenMP runtime this host can load (``libgomp.so.1``, else LLVM's ``libomp``), or None.

    Parallel loops call its ``GOMP_parallel`` (``codegen/parallel.py``); a
    target on a host without one emits no parallel loops.
    """
    return ctypes.util.find_library("gomp") or ctypes.util.find_library("omp")


def _host_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Target:
    """What one backend can do: the pipeline picks loop passes by ``name``, codegen renders for it.

    ``cpu`` is the CPU the code is for (host or a named baseline);
    ``vector_bits`` its widest vector register; ``cores`` how many cores code
    may use; ``shared_memory`` whether threads share a fast scratch memory
    (GPU blocks); ``alignment`` the byte alignment of buffers; ``math`` maps a
    math function (``exp``, ``erf``, ``roundeven``, ...) and a dtype name to the
    symbol codegen calls; ``loop_kinds`` are the loop schedules codegen can
    emit (a loop of another kind is refused, never run serially).
    """

    name: str
    cpu: CpuTarget
    vector_bits: int
    cores: int
    shared_memory: bool
    alignment: int
    loop_kinds: frozenset[str]
    math: Mapping[str, Mapping[str, str]] = field(compare=False, hash=False, repr=False)

    @staticmethod
    def named(name: str = "cpu", cpu: str = "host") -> Target:
        """The target ``name`` (``cpu``) for CPU ``cpu``; CodegenError naming the choices otherwise."""
        if name not in TARGET_NAMES:
            raise CodegenError(f"unknown target {name!r}; available: {', '.join(TARGET_NAMES)}")
        resolved = CpuTarget.named(cpu)
        return Target(name, resolved, _vector_bits(resolved.features), _host_cores(), shared_memory=False,
                      alignment=64, loop_kinds=_CPU_LOOP_KINDS | ({"parallel"} if openmp_runtime() else set()),
                      math=cpu_math_table())

    def math_symbol(self, function: str, dtype: str) -> str:
        """The symbol implementing math ``function`` on ``dtype`` values; CodegenError if the target has none."""
        symbols = self.math.get(function, {})
        if dtype not in symbols:
            raise CodegenError(f"target {self.name} has no {dtype} {function}"
                               + (f" (it has {', '.join(sorted(symbols))})" if symbols else ""))
        return symbols[dtype]
