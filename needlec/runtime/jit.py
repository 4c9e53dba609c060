"""In-process JIT: an optimised LLVM module loaded with MCJIT and called through ctypes.

External data (constants and variables over ``INLINE_LIMIT`` bytes, see
``compiler/codegen/cpu.py``) is mapped into the engine: each declared symbol
points to a 64-byte aligned NumPy copy of its bytes, kept alive by the
returned model. Variables are updated in those copies in place.
"""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np

from needlec.compiler.codegen.cpu import (ALIGN, ENTRY, SIGNATURE, VARIABLE, Stage, no_stage, compile_module,
                                          external_data)
from needlec.compiler.codegen.target import CpuTarget
from needlec.compiler.loops.ir import Program
from needlec.runtime.cpu_check import check_cpu_features
from needlec.runtime.native import EntryFn, NativeModel, VariableFn
from needlec.runtime.signature import Signature


def aligned_bytes(data: np.ndarray, alignment: int = ALIGN) -> np.ndarray:
    """A writable copy of ``data``'s bytes whose first byte lies on an ``alignment`` boundary."""
    raw = np.empty(data.nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    copy = raw[start:start + data.nbytes]
    copy[...] = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return copy


def jit_compile(program: Program, target: CpuTarget, stage: Stage = no_stage) -> NativeModel:
    """Compile ``program`` for ``target`` and return a callable bound to it.

    ArtifactError when this host lacks features ``target``'s code may use:
    code built for another CPU can be exported, not run here.
    """
    check_cpu_features(target.name, target.features, "the compiled code")
    target_machine = target.target_machine(pic=False)
    module = compile_module(program, target, target_machine, stage)
    with stage("jit: load"):
        engine = llvm.create_mcjit_compiler(module, target_machine)
        buffers = []
        for external in external_data(program):
            buffer = aligned_bytes(external.data)
            engine.add_global_mapping(module.get_global_variable(external.symbol), buffer.ctypes.data)
            buffers.append(buffer)
        engine.finalize_object()
    entry = EntryFn(engine.get_function_address(ENTRY))
    sig_fn = ctypes.CFUNCTYPE(ctypes.c_char_p)(engine.get_function_address(SIGNATURE))
    signature = Signature.from_json(sig_fn().decode())
    variable = VariableFn(engine.get_function_address(VARIABLE))
    return NativeModel(signature, entry, variable, keepalive=(engine, module, buffers))
