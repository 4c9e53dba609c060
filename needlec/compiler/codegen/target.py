"""CPU targets: which CPU the code is tuned for and exactly which instruction-set features it may use.

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

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import llvmlite.binding as llvm

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
    def named(name: str = "host") -> "CpuTarget":
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

    def target_machine(self, pic: bool = True) -> llvm.TargetMachine:
        """A new target machine for this CPU at O3 (position-independent by default).

        Not cached: an MCJIT engine takes ownership of the target machine it is given.
        """
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        target = llvm.Target.from_default_triple()
        return target.create_target_machine(cpu=self.cpu, features=self.feature_string(), opt=3,
                                            reloc="pic" if pic else "default",
                                            codemodel="default" if pic else "jitdefault")


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


def optimize(module: llvm.ModuleRef, target_machine: llvm.TargetMachine) -> None:
    """Run LLVM's O3 module pipeline (vectorizers on) over ``module`` in place."""
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    options.loop_vectorization = True
    options.slp_vectorization = True
    builder = llvm.create_pass_builder(target_machine, options)
    builder.getModulePassManager().run(module, builder)
