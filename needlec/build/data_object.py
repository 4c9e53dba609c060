"""The data object: external data (large constants and variables) as an ELF object, built without LLVM.

Each ``ExternalData`` is written raw to a file and pulled into an assembly
file with ``.incbin``; the system C compiler assembles it. Constants go to a
read-only section, variables to a writable one; every symbol is global and
hidden, aligned as the artifact asks (64 bytes on CPUs), sized and typed as an object, so the model's LLVM
object (which declares them ``external hidden``) links against it inside a
shared library, a relocatable object or an executable. Assembling is linear
in the bytes and takes well under a second per 100 MB.
"""
from __future__ import annotations

import os

from needlec.build.toolchain import run_cc
from needlec.compiler.codegen.cpu import ExternalData

_SECTIONS = {False: '.section .rodata.needlec,"a",%progbits', True: '.section .data.needlec,"aw",%progbits'}


def data_assembly(externals: list[ExternalData], files: list[str]) -> str:
    """Assembly defining each of ``externals`` with the bytes of the matching file in ``files``."""
    lines = ['.section .note.GNU-stack,"",%progbits']  # no executable stack for the linked artifact
    for external, path in zip(externals, files):
        lines += [_SECTIONS[external.writable],
                  f".p2align {external.alignment.bit_length() - 1}",
                  f".globl {external.symbol}",
                  f".hidden {external.symbol}",
                  f".type {external.symbol}, %object",
                  f".size {external.symbol}, {external.nbytes}",
                  f"{external.symbol}:",
                  f'.incbin "{path}"']
    return "\n".join(lines) + "\n"


def assemble_data_object(externals: list[ExternalData], directory: str) -> str:
    """Write the data object of ``externals`` into ``directory`` and return its path."""
    files = []
    for i, external in enumerate(externals):
        name = f"data{i}.bin"  # relative: the assembler runs in ``directory``
        external.data.tofile(os.path.join(directory, name))
        files.append(name)
    with open(os.path.join(directory, "data.s"), "w") as f:
        f.write(data_assembly(externals, files))
    run_cc(["-c", "data.s", "-o", "data.o"], "assembling the weights", cwd=directory)
    return os.path.join(directory, "data.o")
