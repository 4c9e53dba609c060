"""The system C compiler (``$CC``, else ``cc``): assembles data, compiles the C support code, links artifacts."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from needlec.errors import ArtifactError


def c_compiler() -> str:
    """The C compiler command; ArtifactError when it is not installed."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise ArtifactError(f"no C compiler {cc!r} found: needlec needs one to assemble, compile and link "
                            "native artifacts (install gcc or clang, or set CC)")
    return cc


def run_cc(args: Sequence[str], what: str, cwd: str | None = None) -> None:
    """Run the C compiler with ``args``; ArtifactError naming ``what`` and the compiler's first error line."""
    result = subprocess.run([c_compiler(), *args], capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()]
        raise ArtifactError(f"{what} failed (cc exited with {result.returncode}): "
                            f"{(errors or lines or ['no message'])[0].strip()}")


def output_path(path: str) -> str:
    """``path`` made absolute, after checking that its folder exists (ArtifactError otherwise)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ArtifactError(f"cannot write {path}: the folder {folder} does not exist")
    return os.path.abspath(path)
