"""Native artifacts of a compiled program: shared library, object file, executable; and loading a library.

Every artifact is linked from the same objects, built in a temporary folder
by ``_build_objects``:

* the model: LLVM's position-independent object code for the module
  (``compiler/codegen/cpu.py``), whose external data is only declared;
* the data object holding that external data (``runtime/data_object.py``);
* the shape-checked C entry ``needlec_run_checked`` (``runtime/checked.py``),
  compiled against the model's generated header.

``export_shared`` links them into a self-contained ``.so`` (weights inside);
``emit_object`` merges them into one relocatable object (``ld -r``) that a C
program links with ``-lm``; ``export_executable`` links them with a
generated ``main`` (``runtime/executable.py``). ``load`` opens a ``.so`` and
reads its signature so every call is validated in Python before it reaches
native code.
"""
from __future__ import annotations

import ctypes
import os
import tempfile

from needlec.compiler.codegen.cpu import ENTRY, SIGNATURE, VARIABLE, Stage, compile_module, external_data, \
    no_stage, signature_json
from needlec.compiler.codegen.target import CpuTarget
from needlec.compiler.loops.ir import Program
from needlec.errors import ArtifactError
from needlec.runtime.checked import HEADER_NAME, checked_entry_c
from needlec.runtime.cpu_check import check_cpu_features
from needlec.runtime.data_object import assemble_data_object
from needlec.runtime.executable import main_source
from needlec.runtime.header import c_header
from needlec.runtime.native import EntryFn, NativeModel, VariableFn
from needlec.runtime.signature import Signature
from needlec.runtime.toolchain import output_path, run_cc

C_FLAGS = ("-std=c99", "-O2", "-fPIC")


def llvm_text(program: Program, target: CpuTarget) -> str:
    """The optimised LLVM IR of ``program`` for ``target`` as text (external data appears as declarations)."""
    return str(compile_module(program, target, target.target_machine(pic=True)))


def program_signature(program: Program, target: CpuTarget) -> Signature:
    """The signature ``needlec_signature`` of ``program``'s module for ``target`` returns."""
    return Signature.from_json(signature_json(program, target))


def _build_objects(program: Program, target: CpuTarget, directory: str, stage: Stage) -> list[str]:
    """Write the model, data and checked-entry objects of ``program`` (plus its header) into ``directory``."""
    target_machine = target.target_machine(pic=True)
    module = compile_module(program, target, target_machine, stage)
    objects = [os.path.join(directory, "model.o")]
    with stage("llvm: object code"):
        with open(objects[0], "wb") as f:
            f.write(target_machine.emit_object(module))
    externals = external_data(program)
    if externals:
        megabytes = sum(e.nbytes for e in externals) / 1e6
        with stage(f"weights: {len(externals)} tensors, {megabytes:.1f} MB"):
            objects.append(assemble_data_object(externals, directory))
    with stage("checked entry"):
        signature = program_signature(program, target)
        with open(os.path.join(directory, HEADER_NAME), "w") as f:
            f.write(c_header(signature))
        with open(os.path.join(directory, "checked.c"), "w") as f:
            f.write(checked_entry_c(signature))
        run_cc([*C_FLAGS, "-c", "checked.c", "-o", "checked.o"], "compiling needlec_run_checked", cwd=directory)
    objects.append(os.path.join(directory, "checked.o"))
    return objects


def export_shared(program: Program, target: CpuTarget, path: str, stage: Stage = no_stage) -> None:
    """Write ``program`` as a self-contained shared library (weights inside) at ``path``."""
    out = output_path(path)
    with tempfile.TemporaryDirectory(prefix="needlec-") as tmp:
        objects = _build_objects(program, target, tmp, stage)
        with stage(f"link {os.path.basename(path)}"):
            run_cc(["-shared", "-o", out, *objects, "-lm"], f"linking {path}")


def emit_object(program: Program, target: CpuTarget, stage: Stage = no_stage) -> bytes:
    """One relocatable object holding ``program``'s code, weights and checked entry (link it with ``-lm``)."""
    with tempfile.TemporaryDirectory(prefix="needlec-") as tmp:
        objects = _build_objects(program, target, tmp, stage)
        merged = os.path.join(tmp, "merged.o")
        with stage("merge objects"):
            run_cc(["-r", "-nostdlib", "-o", merged, *objects], "merging the object files")
        with open(merged, "rb") as f:
            return f.read()


def export_executable(program: Program, target: CpuTarget, path: str, stage: Stage = no_stage) -> None:
    """Write ``program`` as a standalone executable that runs it on ``.npy`` files (see ``runtime/executable.py``)."""
    out = output_path(path)
    with tempfile.TemporaryDirectory(prefix="needlec-") as tmp:
        objects = _build_objects(program, target, tmp, stage)
        with stage(f"link {os.path.basename(path)}"):
            with open(os.path.join(tmp, "main.c"), "w") as f:
                f.write(main_source(program_signature(program, target)))
            run_cc([*C_FLAGS, "-o", out, "main.c", *objects, "-lm"], f"linking {path}", cwd=tmp)


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
    signature = Signature.from_json(sig_fn().decode())  # data only: runs no model code
    check_cpu_features(signature.cpu, signature.cpu_features, path)
    return NativeModel(signature, entry, variable, keepalive=lib)
