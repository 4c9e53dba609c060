"""In-process JIT: an artifact's optimised module loaded with MCJIT, returned as a runtime ``NativeModel``.

External data (constants and variables over ``INLINE_LIMIT`` bytes, see
``compiler/codegen/cpu.py``) is mapped into the engine: each declared symbol
points to an aligned NumPy copy of its bytes, kept alive by the returned
model. Variables are updated in those copies in place.
"""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np

from needlec import abi
from needlec.build.llvm import optimized_module
from needlec.compiler.codegen.cpu import CpuArtifact
from needlec.compiler.instrument import Stage, no_stage
from needlec.runtime.cpu_check import check_cpu_features
from needlec.runtime.native import EntryFn, NativeModel, VariableFn
from needlec.runtime.profile import Profiler
from needlec.runtime.signature import Signature


def aligned_bytes(data: np.ndarray, alignment: int) -> np.ndarray:
    """A writable copy of ``data``'s bytes whose first byte lies on an ``alignment`` boundary."""
    raw = np.empty(data.nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    copy = raw[start:start + data.nbytes]
    copy[...] = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return copy


def jit_load(artifact: CpuArtifact, stage: Stage = no_stage) -> NativeModel:
    """Build ``artifact`` into this process and return a callable bound to it.

    ArtifactError when this host lacks features the artifact's code may use:
    code built for another CPU can be exported, not run here.
    """
    cpu = artifact.target.cpu
    check_cpu_features(cpu.name, cpu.features, "the compiled code")
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
    return NativeModel(signature, entry, variable, keepalive=(engine, module, buffers),
                       profiler=profiler)
