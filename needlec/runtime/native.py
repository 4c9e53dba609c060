"""Calling a compiled entry point: validated inputs in, freshly allocated outputs out."""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from needlec.errors import NeedlecError
from needlec.runtime.signature import Signature

EntryFn = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)


class NativeModel:
    """A native ``needlec_run`` entry with its signature; call it like a function.

    Returns one array for a single-output graph, else a tuple. Calls are
    serialised by the caller: the module's static arena is not reentrant.
    """

    def __init__(self, signature: Signature, entry: Any, keepalive: Any = None) -> None:
        self.signature = signature
        self._entry = entry
        self._keepalive = keepalive

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs = self.signature.bind(args, kwargs)
        outputs = [np.empty(spec.shape, spec.dtype) for spec in self.signature.outputs]
        in_ptrs = (ctypes.c_void_p * max(len(inputs), 1))(*[a.ctypes.data for a in inputs])
        out_ptrs = (ctypes.c_void_p * max(len(outputs), 1))(*[a.ctypes.data for a in outputs])
        status = self._entry(ctypes.cast(in_ptrs, ctypes.c_void_p), ctypes.cast(out_ptrs, ctypes.c_void_p))
        if status != 0:
            raise NeedlecError(f"{self.signature.name}: native entry returned error code {status}")
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def __repr__(self) -> str:
        ins = ", ".join(s.describe() for s in self.signature.inputs)
        outs = ", ".join(s.describe() for s in self.signature.outputs)
        return f"<{type(self).__name__} {self.signature.name}({ins}) -> ({outs})>"
