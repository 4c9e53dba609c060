"""LLVM's view of a CPU target: target machines and the O3 pipeline."""
from __future__ import annotations

import llvmlite.binding as llvm

from needlec.compiler.target import CpuTarget


def target_machine(cpu: CpuTarget, pic: bool = True) -> llvm.TargetMachine:
    """A new target machine for ``cpu`` at O3, held to exactly its features (position-independent by default).

    Not cached: an MCJIT engine takes ownership of the target machine it is given.
    """
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=cpu.cpu, features=cpu.feature_string(), opt=3,
                                        reloc="pic" if pic else "default",
                                        codemodel="default" if pic else "jitdefault")


def optimize(module: llvm.ModuleRef, machine: llvm.TargetMachine) -> None:
    """Run LLVM's O3 module pipeline (vectorizers on) over ``module`` in place."""
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    options.loop_vectorization = True
    options.slp_vectorization = True
    builder = llvm.create_pass_builder(machine, options)
    builder.getModulePassManager().run(module, builder)
