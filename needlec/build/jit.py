"""In-process JIT: an artifact's optimised module loaded with MCJIT, returned as a runtime ``NativeModel``.

External data (constants and variables over ``INLINE_LIMIT`` bytes, see
``compiler/codegen/cpu.py``) is mapped into the engine: each declared symbol
points to an aligned NumPy copy of its bytes, kept alive by the returned
model. Variables are updated in those copies in place.
"""
from __future__ import annotations

import ctypes
import os

import llvmlite.binding as llvm
import numpy as np

from needlec import abi
from needlec.build.llvm import optimized_module
from needlec.compiler.codegen.cpu import CpuArtifact
from needlec.compiler.codegen.parallel import GOMP_PARALLEL
from needlec.compiler.target import openmp_runtime
from needlec.errors import ArtifactError
from needlec.compiler.instrument import Stage, no_stage
from needlec.runtime.cpu_check import check_cpu_features
from needlec.runtime.native import EntryFn, NativeModel, ThreadsFn, VariableFn
from needlec.runtime.profile import Profiler
from needlec.runtime.signature import Signature


def aligned_bytes(data: np.ndarray, alignment: int) -> np.ndarray:
    """A writable copy of ``data``'s bytes whose first byte lies on an ``alignment`` boundary."""
    raw = np.empty(data.nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    copy = raw[start:start + data.nbytes]
    copy[...] = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return copy


def _load_openmp_runtime() -> None:
    """Make the OpenMP runtime's symbols (``GOMP_parallel``, ...) resolvable in this process for parallel loops.

    Unless the environment chooses a wait policy, the runtime is loaded with ``OMP_WAIT_POLICY=passive``
    (it reads the setting once, when loaded; the environment is restored afterwards). Why: with the default,
    idle team threads spin after every parallel loop; on a busy machine (ours are shared), or next to another
    OpenMP runtime in the process (PyTorch bundles one), the spinning takes the cores the work needs: a
    64^3 matmul took 8 ms on 2 threads instead of 0.09 ms passive (load average 5 on 2 cores).
    """
    runtime = openmp_runtime()
    if runtime is None:  # the target emits parallel loops only where one was found
        raise ArtifactError("the compiled code has parallel loops but this host has no OpenMP runtime "
                            "(libgomp or libomp)")
    chosen = any(name in os.environ for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"))
    if not chosen:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        llvm.load_library_permanently(runtime)
    finally:
        if not chosen:
            del os.environ["OMP_WAIT_POLICY"]


def jit_load(artifact: CpuArtifact, stage: Stage = no_stage) -> NativeModel:
    """Build ``artifact`` into this process and return a callable bound to it.

    ArtifactError when this host lacks features the artifact's code may use:
    code built for another CPU can be exported, not run here.
    """
    cpu = artifact.target.cpu
    check_cpu_features(cpu.name, cpu.features, "the compiled code")
    if GOMP_PARALLEL in artifact.llvm_ir:
        _load_openmp_runtime()
    module, machine = optimized_module(artifact, pic=False, stage=stage)
    with stage("jit: load"):
        engine = llvm.create_mcjit_compiler(module, machine)
        buffers = []
        for external in artifact.external_data:
            buffer = aligned_bytes(external.data, external.alignment)
            engine.add_global_mapping(module.get_global_variable(external.symbol), buffer.ctypes.data)
            buffers.append(buffer)
        engine.finalize_object()
    prefix = artifact.symbol_prefix
    entry = EntryFn(engine.get_function_address(abi.entry(prefix)))
    sig_fn = ctypes.CFUNCTYPE(ctypes.c_char_p)(engine.get_function_address(abi.signature(prefix)))
    signature = Signature.from_json(sig_fn().decode())
    variable = VariableFn(engine.get_function_address(abi.variable(prefix)))
    profiler = Profiler.bind(engine.get_function_address, prefix)
    threads = ThreadsFn(engine.get_function_address(abi.set_num_threads(prefix)))
    return NativeModel(signature, entry, variable, keepalive=(engine, module, buffers),
                       profiler=profiler, set_threads=threads)
