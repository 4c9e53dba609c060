"""Loading a needlec shared library: its signature is read (data only) before any model code can run."""
from __future__ import annotations

import ctypes
import os

from needlec.abi import ENTRY, SIGNATURE, VARIABLE
from needlec.errors import ArtifactError
from needlec.runtime.cpu_check import check_cpu_features
from needlec.runtime.native import EntryFn, NativeModel, VariableFn
from needlec.runtime.signature import Signature


def load(path: str) -> NativeModel:
    """Load a needlec shared library; the result validates inputs and returns NumPy arrays.

    ArtifactError when ``path`` is not a needlec library or was built for CPU
    features this host lacks.
    """
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
