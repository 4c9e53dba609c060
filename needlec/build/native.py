"""Native artifacts of a rendered program: shared library, relocatable object, executable.

Every artifact is linked from the same objects, built in a temporary folder
by ``_build_objects``:

* the model: LLVM's position-independent object code for the artifact's
  module (``build/llvm.py``), whose external data is only declared;
* the data object holding that external data (``build/data_object.py``);
* the shape-checked C entry ``<prefix>_run_checked`` (``build/checked.py``),
  compiled against the model's generated header.

Every exported symbol starts with the artifact's ``symbol_prefix``
(``needlec/abi.py``).

``export_shared`` links them into a self-contained ``.so`` (weights inside)
whose SONAME is the file's base name;
``emit_object`` merges them into one relocatable object (``ld -r``) that a C
program links with ``-lm``; ``export_executable`` links them with a
generated ``main`` (``build/executable.py``). Loading a library is the
runtime's (``runtime/library.py``).
"""
from __future__ import annotations

import os
import tempfile

from needlec import abi
from needlec.build.checked import HEADER_NAME, checked_entry_c
from needlec.build.data_object import assemble_data_object
from needlec.build.executable import main_source
from needlec.build.header import c_header
from needlec.build.llvm import optimized_module
from needlec.build.toolchain import output_path, run_cc
from needlec.compiler.codegen.cpu import CpuArtifact
from needlec.compiler.codegen.parallel import GOMP_PARALLEL
from needlec.compiler.instrument import Stage, no_stage
from needlec.runtime.signature import Signature

C_FLAGS = ("-std=c99", "-O2", "-fPIC")


def _build_objects(artifact: CpuArtifact, directory: str, stage: Stage) -> list[str]:
    """Write the model, data and checked-entry objects of ``artifact`` (plus its header) into ``directory``."""
    module, machine = optimized_module(artifact, pic=True, stage=stage)
    objects = [os.path.join(directory, "model.o")]
    with stage("llvm: object code"):
        with open(objects[0], "wb") as f:
            f.write(machine.emit_object(module))
    externals = list(artifact.external_data)
    if externals:
        megabytes = sum(e.nbytes for e in externals) / 1e6
        with stage(f"weights: {len(externals)} tensors, {megabytes:.1f} MB"):
            objects.append(assemble_data_object(externals, directory))
    with stage("checked entry"):
        signature = Signature.from_json(artifact.signature)
        with open(os.path.join(directory, HEADER_NAME), "w") as f:
            f.write(c_header(signature, prefix=artifact.symbol_prefix))
        with open(os.path.join(directory, "checked.c"), "w") as f:
            f.write(checked_entry_c(signature, artifact.symbol_prefix))
        run_cc([*C_FLAGS, "-c", "checked.c", "-o", "checked.o"],
               f"compiling {abi.run_checked(artifact.symbol_prefix)}", cwd=directory)
    objects.append(os.path.join(directory, "checked.o"))
    return objects


def _runtime_libraries(artifact: CpuArtifact) -> list[str]:
    """What the linked code needs at run time: libm, and the OpenMP runtime when it has parallel loops."""
    return ["-fopenmp", "-lm"] if GOMP_PARALLEL in artifact.llvm_ir else ["-lm"]


def export_shared(artifact: CpuArtifact, path: str, stage: Stage = no_stage) -> None:
    """Write ``artifact`` as a self-contained shared library (weights inside) at ``path``, SONAME its base name."""
    out = output_path(path)
    with tempfile.TemporaryDirectory(prefix="needlec-") as tmp:
        objects = _build_objects(artifact, tmp, stage)
        with stage(f"link {os.path.basename(path)}"):
            run_cc(["-shared", f"-Wl,-soname,{os.path.basename(out)}", "-o", out, *objects,
                    *_runtime_libraries(artifact)], f"linking {path}")


def emit_object(artifact: CpuArtifact, stage: Stage = no_stage) -> bytes:
    """One relocatable object holding ``artifact``'s code, weights and checked entry (link it with ``-fopenmp -lm``)."""
    with tempfile.TemporaryDirectory(prefix="needlec-") as tmp:
        objects = _build_objects(artifact, tmp, stage)
        merged = os.path.join(tmp, "merged.o")
        with stage("merge objects"):
            run_cc(["-r", "-nostdlib", "-o", merged, *objects], "merging the object files")
        with open(merged, "rb") as f:
            return f.read()


def export_executable(artifact: CpuArtifact, path: str, stage: Stage = no_stage) -> None:
    """Write ``artifact`` as a standalone executable that runs it on ``.npy`` files (see ``build/executable.py``)."""
    out = output_path(path)
    with tempfile.TemporaryDirectory(prefix="needlec-") as tmp:
        objects = _build_objects(artifact, tmp, stage)
        with stage(f"link {os.path.basename(path)}"):
            with open(os.path.join(tmp, "main.c"), "w") as f:
                f.write(main_source(Signature.from_json(artifact.signature), artifact.symbol_prefix))
            run_cc([*C_FLAGS, "-o", out, "main.c", *objects, *_runtime_libraries(artifact)], f"linking {path}", cwd=tmp)
