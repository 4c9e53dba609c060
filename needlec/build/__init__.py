"""The build step: turns a rendered artifact into machine code (JIT module, object, shared library, executable).

It sits between the compiler, whose code generators return artifacts
(``compiler/codegen``), and the runtime, which only loads, validates and runs
what is built (``needlec/runtime``).
"""
