"""CPU backend: a lowered ``Program`` -> one LLVM module with one entry point.

The module holds every kernel (internal functions, inlined by O3 where it
pays), small weights as private constants, small variables (persistent state
such as trained parameters) as private mutable globals initialised with their
first value, a static arena for intermediates and three exported symbols:

``int32_t needlec_run(void **inputs, void **outputs)``
    runs the graph on caller-owned, contiguous input and output buffers;
    returns 0 on success.
``const char *needlec_signature(void)``
    a JSON description of inputs, outputs and variables (name, shape, dtype)
    used by the loaders to validate every call before it reaches native code.
``void *needlec_variable(int32_t i)``
    the storage of variable ``i`` (signature order), or NULL when out of range:
    read or overwrite parameters and optimizer state between calls.

Constants and variables over ``INLINE_LIMIT`` bytes are *external data*: the
module only declares them (``external hidden`` globals named by
``external_data``) and their bytes never pass through LLVM IR text, which
would cost seconds and gigabytes for a 100 MB model. Whoever turns the module
into machine code supplies the bytes: the JIT maps each symbol to a NumPy
buffer (``runtime/jit.py``), shared libraries, objects and executables link a
data object that holds them (``runtime/data_object.py``).
"""
from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np

from needlec.compiler.codegen.half_libcalls import define_half_libcalls
from needlec.compiler.codegen.llvm_emit import I8, I32, I64, PTR, KernelEmitter, llvm_name
from needlec.compiler.codegen.target import CpuTarget, optimize
from needlec.compiler.loops.ir import Program
from needlec.errors import CodegenError

ENTRY = "needlec_run"
SIGNATURE = "needlec_signature"
VARIABLE = "needlec_variable"
ALIGN = 64
INLINE_LIMIT = 4096  # bytes: larger constants and variables are external data; smaller ones stay in the
#                     module, where LLVM folds loads from them (scalars, small index tables)

Stage = Callable[[str], AbstractContextManager]  # reports a named step of code generation (see runtime/progress.py)


@dataclass(frozen=True)
class ExternalData:
    """A constant or variable whose bytes live outside the LLVM module, under ``symbol``.

    ``data`` is the (initial) value as a contiguous array; ``writable`` is set
    for variables, which the entry point updates in place.
    """

    symbol: str
    buffer: str
    data: np.ndarray
    writable: bool

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


def external_data(program: Program) -> list[ExternalData]:
    """The constants and variables of ``program`` larger than ``INLINE_LIMIT`` bytes, with their symbols."""
    found = []
    for name, data in program.constants.items():
        array = np.ascontiguousarray(data)
        if array.nbytes > INLINE_LIMIT:
            writable = program.storage[name].kind == "variable"
            found.append(ExternalData(f"needlec_data_{len(found)}", name, array, writable))
    return found


def signature_json(program: Program, target: CpuTarget) -> str:
    """The JSON text ``needlec_signature`` returns, with the CPU features the code may use."""
    def entries(items: list) -> list[dict]:
        return [{"name": n, "shape": list(s), "dtype": d.np.name} for n, s, d in items]

    return json.dumps({"name": program.name, "inputs": entries(program.inputs),
                       "outputs": entries(program.outputs), "variables": entries(program.variables),
                       "cpu": target.name, "cpu_features": list(target.features)})


def _byte_global(module: ir.Module, name: str, data: bytes, constant: bool) -> ir.GlobalVariable:
    ty = ir.ArrayType(I8, max(len(data), 1))
    var = ir.GlobalVariable(module, ty, name=name)
    var.initializer = ir.Constant(ty, bytearray(data or b"\0"))
    var.global_constant = constant
    var.linkage = "private"
    var.align = ALIGN
    return var


def emit_module(program: Program, target: CpuTarget, triple: str = "", data_layout: str = "") -> ir.Module:
    """Render ``program`` as an LLVM IR module for ``target``."""
    module = ir.Module(name=llvm_name(program.name))
    module.triple = triple
    module.data_layout = data_layout

    pointers: dict[str, ir.Value] = {}
    for external in external_data(program):
        ty = ir.ArrayType(I8, external.nbytes)
        var = ir.GlobalVariable(module, ty, name=external.symbol)  # no initializer: a declaration
        var.global_constant = not external.writable
        var.align = ALIGN
        pointers[external.buffer] = var
    for i, (name, data) in enumerate(program.constants.items()):
        if name in pointers:
            continue
        constant = program.storage[name].kind == "constant"
        prefix = "const" if constant else "var"
        pointers[name] = _byte_global(module, f"{prefix}.{i}.{llvm_name(name)}", np.ascontiguousarray(data).tobytes(),
                                      constant)
    arena = None
    if program.arena_size:
        ty = ir.ArrayType(I8, program.arena_size)
        arena = ir.GlobalVariable(module, ty, name="needlec.arena")
        arena.initializer = ir.Constant(ty, None)
        arena.linkage = "internal"
        arena.align = ALIGN

    define_half_libcalls(module)
    kernels = [KernelEmitter(module, k).emit() for k in program.kernels]
    for fn in kernels:  # why: inlining every kernel into the entry makes O3 superlinear (17 s -> 3 s measured)
        fn.attributes.add("noinline")

    entry = ir.Function(module, ir.FunctionType(I32, [PTR, PTR]), name=ENTRY)
    inputs, outputs = entry.args
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    for name, where in program.storage.items():
        if where.kind in ("input", "output"):
            table = inputs if where.kind == "input" else outputs
            slot = b.gep(table, [ir.Constant(I64, where.slot)], inbounds=True, source_etype=PTR)
            pointers[name] = b.load(slot, typ=PTR, name=llvm_name(name))
        elif where.kind == "arena":
            assert arena is not None
            pointers[name] = b.gep(arena, [ir.Constant(I64, 0), ir.Constant(I64, where.offset)],
                                   inbounds=True, name=llvm_name(name))
    for kernel, fn in zip(program.kernels, kernels):
        b.call(fn, [pointers[buf.name] for buf in kernel.buffers])
    b.ret(ir.Constant(I32, 0))

    text = signature_json(program, target).encode() + b"\0"
    sig = _byte_global(module, "signature.text", text, True)
    getter = ir.Function(module, ir.FunctionType(PTR, []), name=SIGNATURE)
    ir.IRBuilder(getter.append_basic_block("entry")).ret(sig)
    _emit_variable_accessor(module, [pointers[n] for n, where in program.storage.items() if where.kind == "variable"])
    return module


def _emit_variable_accessor(module: ir.Module, variables: list[ir.Value]) -> None:
    """``needlec_variable(i)``: a switch over the variables' globals, NULL when out of range."""
    fn = ir.Function(module, ir.FunctionType(PTR, [I32]), name=VARIABLE)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    null = fn.append_basic_block("null")
    switch = b.switch(fn.args[0], null)
    for i, var in enumerate(variables):
        block = fn.append_basic_block(f"v{i}")
        switch.add_case(ir.Constant(I32, i), block)
        ir.IRBuilder(block).ret(var)
    ir.IRBuilder(null).ret(ir.Constant(PTR, None))


def no_stage(name: str) -> AbstractContextManager:
    """A ``Stage`` that reports nothing."""
    return nullcontext()


def compile_module(program: Program, target: CpuTarget, target_machine: "llvm.TargetMachine",
                   stage: Stage = no_stage) -> "llvm.ModuleRef":
    """Render, parse, verify and O3-optimise ``program`` for ``target`` (``target_machine`` is made from it).

    External data is declared with hidden visibility: a shared library
    resolves it inside itself (PC-relative, no GOT entry, not exported).
    ``stage(name)`` wraps each step (progress reporting).
    """
    with stage("llvm: render and parse"):
        module = emit_module(program, target, target_machine.triple, str(target_machine.target_data))
        try:
            ref = llvm.parse_assembly(str(module))
            for external in external_data(program):
                ref.get_global_variable(external.symbol).visibility = "hidden"
            ref.verify()
        except RuntimeError as exc:
            raise CodegenError(f"LLVM rejected the module for {program.name}: {exc}") from None
    with stage("llvm: optimize (O3)"):
        optimize(ref, target_machine)
    return ref
