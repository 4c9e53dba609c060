"""CPU backend: render a lowered ``Program`` as one LLVM module with one entry point, as a ``CpuArtifact``.

The module holds every kernel (internal functions), small weights as private
constants, small variables (persistent state such as trained parameters) as
private mutable globals initialised with their first value, a static arena
for intermediates and the exported symbols of ``needlec/abi.py``
(``<prefix>_run``, ``<prefix>_signature``, ``<prefix>_variable`` and the
profiling ones; the prefix is the artifact's ``symbol_prefix``, ``needlec``
by default). The entry calls the kernels in order, timing each call when
profiling is switched on (``codegen/profiling.py``); kernels with the same
code (``code_key``) share one function.

Constants and variables over ``INLINE_LIMIT`` bytes are *external data*: the
module only declares them (``external hidden`` globals named by
``external_data``) and their bytes never pass through LLVM IR text, which
would cost seconds and gigabytes for a 100 MB model. The artifact carries
them; whoever turns it into machine code (``needlec/build``) supplies the
bytes: the JIT maps each symbol to a NumPy buffer, shared libraries, objects
and executables link a data object that holds them.

This module only renders: parsing, optimising and object code are the build
step's (``needlec/build/llvm.py``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import llvmlite.ir as ir
import numpy as np

from needlec import abi
from needlec.compiler.codegen.half_libcalls import define_half_libcalls
from needlec.compiler.codegen.parallel import define_thread_setter
from needlec.compiler.codegen.llvm_emit import I8, I32, I64, PTR, KernelEmitter, llvm_name
from needlec.compiler.codegen.profiling import emit_kernel_calls
from needlec.compiler.ir.printer import format_name
from needlec.compiler.loops.ir import Kernel, Program
from needlec.compiler.loops.printer import print_stmts
from needlec.compiler.target import Target

INLINE_LIMIT = 4096  # bytes: larger constants and variables are external data; smaller ones stay in the
#                     module, where LLVM folds loads from them (scalars, small index tables)


@dataclass(frozen=True)
class ExternalData:
    """A constant or variable whose bytes live outside the LLVM module, under ``symbol``.

    ``data`` is the (initial) value as a contiguous array; ``writable`` is set
    for variables, which the entry point updates in place; ``alignment`` is
    the byte boundary its storage must start on.
    """

    symbol: str
    buffer: str
    data: np.ndarray
    writable: bool
    alignment: int

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


def external_data(program: Program, alignment: int, prefix: str = abi.DEFAULT_PREFIX) -> list[ExternalData]:
    """The constants and variables of ``program`` larger than ``INLINE_LIMIT`` bytes, with their symbols
    (``<prefix>_data_<i>``)."""
    found: list[ExternalData] = []
    for name, data in program.constants.items():
        array = np.ascontiguousarray(data)
        if array.nbytes > INLINE_LIMIT:
            writable = program.storage[name].kind == "variable"
            found.append(ExternalData(abi.data_symbol(prefix, len(found)), name, array, writable, alignment))
    return found


@dataclass(frozen=True)
class CpuArtifact:
    """What the CPU backend renders for one program: LLVM IR text, its signature JSON and its external data.

    ``llvm_ir`` is unoptimised and has no triple or data layout: the build
    step sets both from ``target`` and optimises it. ``symbol_prefix`` starts
    every exported symbol's name (``needlec/abi.py``).
    """

    name: str
    llvm_ir: str
    signature: str
    external_data: tuple[ExternalData, ...]
    target: Target
    symbol_prefix: str = abi.DEFAULT_PREFIX


def render(program: Program, target: Target, prefix: str = abi.DEFAULT_PREFIX) -> CpuArtifact:
    """Render ``program`` for the CPU ``target`` as a ``CpuArtifact`` whose symbols start with ``prefix``."""
    abi.check_prefix(prefix)
    return CpuArtifact(program.name, str(emit_module(program, target, prefix)), signature_json(program, target),
                       tuple(external_data(program, target.alignment, prefix)), target, prefix)


def signature_json(program: Program, target: Target) -> str:
    """The JSON text ``<prefix>_signature`` returns, with the CPU features the code may use."""
    def entries(items: list) -> list[dict]:
        return [{"name": n, "shape": list(s), "dtype": d.np.name} for n, s, d in items]

    return json.dumps({"name": program.name, "inputs": entries(program.inputs),
                       "outputs": entries(program.outputs), "variables": entries(program.variables),
                       "cpu": target.cpu.name, "cpu_features": list(target.cpu.features)})


def _byte_global(module: ir.Module, name: str, data: bytes, constant: bool, align: int) -> ir.GlobalVariable:
    ty = ir.ArrayType(I8, max(len(data), 1))
    var = ir.GlobalVariable(module, ty, name=name)
    var.initializer = ir.Constant(ty, bytearray(data or b"\0"))
    var.global_constant = constant
    var.linkage = "private"
    var.align = align
    return var


def code_key(kernel: Kernel) -> str:
    """What ``kernel``'s code depends on: its body with each buffer named by its position among the kernel's
    parameters, and their dtypes. Kernels with one key share one function (repeated blocks of ResNet, the
    layers of a transformer): LLVM optimises and compiles it once, and the entry calls it with each kernel's
    buffers."""
    params = {b.name: b for b in kernel.buffers}
    position = {f"%{format_name(b.name)}": f"%p{i}" for i, b in enumerate(kernel.buffers)}
    # why rename in the text: every access prints as ``%name[`` or ``%name:dtype[`` and buffer names are unique,
    # so replacing those is exact and much cheaper than rebuilding the kernel with renamed buffers
    accesses = re.compile("(" + "|".join(map(re.escape, sorted(position, key=len, reverse=True))) + ")(?=[:\\[])")
    text = "\n".join(print_stmts(kernel.body, params=params))
    return " ".join(b.dtype.value for b in kernel.buffers) + "\n" + accesses.sub(lambda m: position[m[1]], text)


def emit_module(program: Program, target: Target, prefix: str = abi.DEFAULT_PREFIX) -> ir.Module:
    """Render ``program`` as an LLVM IR module for ``target`` whose exported symbols start with ``prefix``."""
    module = ir.Module(name=llvm_name(program.name))
    align = target.alignment
    pointers: dict[str, ir.Value] = {}
    for external in external_data(program, align, prefix):
        ty = ir.ArrayType(I8, external.nbytes)
        var = ir.GlobalVariable(module, ty, name=external.symbol)  # no initializer: a declaration
        var.global_constant = not external.writable
        var.align = align
        pointers[external.buffer] = var
    for i, (name, data) in enumerate(program.constants.items()):
        if name in pointers:
            continue
        constant = program.storage[name].kind == "constant"
        kind = "const" if constant else "var"
        pointers[name] = _byte_global(module, f"{kind}.{i}.{llvm_name(name)}", np.ascontiguousarray(data).tobytes(),
                                      constant, align)
    arena = None
    if program.arena_size:
        ty = ir.ArrayType(I8, program.arena_size)
        arena = ir.GlobalVariable(module, ty, name="needlec.arena")
        arena.initializer = ir.Constant(ty, None)
        arena.linkage = "internal"
        arena.align = align

    define_half_libcalls(module)
    functions: dict[str, ir.Function] = {}
    kernels = []
    for kernel in program.kernels:
        key = code_key(kernel)
        if key not in functions:
            functions[key] = KernelEmitter(module, kernel, target).emit()
            # why: inlining every kernel into the entry makes O3 superlinear (17 s -> 3 s measured)
            functions[key].attributes.add("noinline")
        kernels.append(functions[key])

    entry = ir.Function(module, ir.FunctionType(I32, [PTR, PTR]), name=abi.entry(prefix))
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
    emit_kernel_calls(b, [(fn, [pointers[buf.name] for buf in kernel.buffers])
                          for kernel, fn in zip(program.kernels, kernels)], program, prefix)
    b.ret(ir.Constant(I32, 0))

    text = signature_json(program, target).encode() + b"\0"
    sig = _byte_global(module, "signature.text", text, True, 1)
    getter = ir.Function(module, ir.FunctionType(PTR, []), name=abi.signature(prefix))
    ir.IRBuilder(getter.append_basic_block("entry")).ret(sig)
    variables = [pointers[n] for n, where in program.storage.items() if where.kind == "variable"]
    _emit_variable_accessor(module, prefix, variables)
    define_thread_setter(module, abi.set_num_threads(prefix))
    return module


def _emit_variable_accessor(module: ir.Module, prefix: str, variables: list[ir.Value]) -> None:
    """``<prefix>_variable(i)``: a switch over the variables' globals, NULL when out of range."""
    fn = ir.Function(module, ir.FunctionType(PTR, [I32]), name=abi.variable(prefix))
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    null = fn.append_basic_block("null")
    switch = b.switch(fn.args[0], null)
    for i, var in enumerate(variables):
        block = fn.append_basic_block(f"v{i}")
        switch.add_case(ir.Constant(I32, i), block)
        ir.IRBuilder(block).ret(var)
    ir.IRBuilder(null).ret(ir.Constant(PTR, None))
