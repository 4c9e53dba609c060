"""LLVM IR text of an artifact -> a verified, O3-optimised LLVM module for its target."""
from __future__ import annotations

import llvmlite.binding as llvm

from needlec.compiler.codegen.cpu import CpuArtifact
from needlec.compiler.codegen.llvm_target import optimize, target_machine
from needlec.compiler.instrument import Stage, no_stage
from needlec.errors import CodegenError


def optimized_module(artifact: CpuArtifact, pic: bool,
                     stage: Stage = no_stage) -> tuple[llvm.ModuleRef, llvm.TargetMachine]:
    """Parse, verify and O3-optimise ``artifact`` for its CPU; the module and the target machine it was made for.

    External data is declared with hidden visibility: a shared library
    resolves it inside itself (PC-relative, no GOT entry, not exported). The
    compiler-runtime helpers the module defines (``__extendhfsf2`` and the
    like, ``codegen/half_libcalls.py``) become hidden ``weak_odr``: never
    exported, and two models' objects link into one program without clashing.
    ``stage(name)`` wraps each step (progress reporting).
    """
    machine = target_machine(artifact.target.cpu, pic)
    with stage("llvm: parse"):
        try:
            module = llvm.parse_assembly(artifact.llvm_ir)
            module.triple = machine.triple
            module.data_layout = str(machine.target_data)
            for external in artifact.external_data:
                module.get_global_variable(external.symbol).visibility = "hidden"
            for fn in module.functions:
                if fn.name.startswith("__") and not fn.is_declaration and fn.linkage.name == "external":
                    fn.linkage = "weak_odr"
                    fn.visibility = "hidden"
            module.verify()
        except RuntimeError as exc:
            raise CodegenError(f"LLVM rejected the module for {artifact.name}: {exc}") from None
    with stage("llvm: optimize (O3)"):
        optimize(module, machine)
    return module, machine


def llvm_text(artifact: CpuArtifact) -> str:
    """The optimised LLVM IR of ``artifact`` as text (external data appears as declarations)."""
    return str(optimized_module(artifact, pic=True)[0])
