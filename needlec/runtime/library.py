"""Shared libraries: write a compiled program as a ``.so`` and load one back.

The library exports ``needlec_run`` and ``needlec_signature`` (see
``compiler/codegen/cpu.py``); ``load`` reads the signature so every call is
validated in Python before it reaches native code.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile

from needlec.compiler.codegen.cpu import ENTRY, SIGNATURE, VARIABLE, compile_module
from needlec.compiler.codegen.target import host_target_machine
from needlec.compiler.loops.ir import Program
from needlec.errors import ArtifactError
from needlec.runtime.native import EntryFn, NativeModel, VariableFn
from needlec.runtime.signature import Signature


def emit_object(program: Program) -> bytes:
    """Position-independent object code for ``program``."""
    target_machine = host_target_machine(pic=True)
    return target_machine.emit_object(compile_module(program, target_machine))


def llvm_text(program: Program) -> str:
    """The optimised LLVM IR of ``program`` as text."""
    return str(compile_module(program, host_target_machine(pic=True)))


def link_shared(object_code: bytes, path: str) -> None:
    """Link object code into a shared library at ``path`` with the system C compiler."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise ArtifactError(f"cannot write {path}: no C compiler {cc!r} found to link the shared library")
    with tempfile.TemporaryDirectory() as tmp:
        obj = os.path.join(tmp, "model.o")
        with open(obj, "wb") as f:
            f.write(object_code)
        result = subprocess.run([cc, "-shared", "-o", path, obj, "-lm"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ArtifactError(f"linking {path} failed: {result.stderr.strip().splitlines()[-1:]}")


def export_shared(program: Program, path: str) -> None:
    """Write ``program`` as a self-contained shared library (weights inside)."""
    link_shared(emit_object(program), path)


def load(path: str) -> NativeModel:
    """Load a needlec shared library; the result validates inputs and returns NumPy arrays."""
    if not os.path.exists(path):
        raise ArtifactError(f"cannot load {path}: no such file")
    try:
        lib = ctypes.CDLL(os.path.abspath(path))
        entry = EntryFn((ENTRY, lib))
        sig_fn = ctypes.CFUNCTYPE(ctypes.c_char_p)((SIGNATURE, lib))
        variable = VariableFn((VARIABLE, lib))
    except (OSError, AttributeError) as exc:
        raise ArtifactError(f"cannot load {path}: not a needlec shared library ({exc})") from None
    return NativeModel(Signature.from_json(sig_fn().decode()), entry, variable, keepalive=lib)
