"""The host CPU target: built from the CPU name *and* the reported feature set.

Virtual machines can report a CPU name (e.g. ``znver4``) while hiding some of
its features; building for the name alone can emit instructions the machine
does not have (SIGILL), so the feature string always comes along.
"""
from __future__ import annotations

import llvmlite.binding as llvm


def host_target_machine(pic: bool = True) -> llvm.TargetMachine:
    """A new target machine for this host at O3 (position-independent by default).

    Not cached: an MCJIT engine takes ownership of the target machine it is given.
    """
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(),
        features=llvm.get_host_cpu_features().flatten(),
        opt=3,
        reloc="pic" if pic else "default",
        codemodel="default" if pic else "jitdefault",
    )


def optimize(module: llvm.ModuleRef, target_machine: llvm.TargetMachine) -> None:
    """Run LLVM's O3 module pipeline (vectorizers on) over ``module`` in place."""
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    options.loop_vectorization = True
    options.slp_vectorization = True
    builder = llvm.create_pass_builder(target_machine, options)
    builder.getModulePassManager().run(module, builder)
