"""In-process JIT: an optimised LLVM module loaded with MCJIT and called through ctypes."""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm

from needlec.compiler.codegen.cpu import ENTRY, SIGNATURE, VARIABLE, compile_module
from needlec.compiler.codegen.target import host_target_machine
from needlec.compiler.loops.ir import Program
from needlec.runtime.native import EntryFn, NativeModel, VariableFn
from needlec.runtime.signature import Signature


def jit_compile(program: Program) -> NativeModel:
    """Compile ``program`` for the host and return a callable bound to it."""
    target_machine = host_target_machine(pic=False)
    module = compile_module(program, target_machine)
    engine = llvm.create_mcjit_compiler(module, target_machine)
    engine.finalize_object()
    entry = EntryFn(engine.get_function_address(ENTRY))
    sig_fn = ctypes.CFUNCTYPE(ctypes.c_char_p)(engine.get_function_address(SIGNATURE))
    signature = Signature.from_json(sig_fn().decode())
    variable = VariableFn(engine.get_function_address(VARIABLE))
    return NativeModel(signature, entry, variable, keepalive=(engine, module))
