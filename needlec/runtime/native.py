"""Calling a compiled entry point: validated inputs in, freshly allocated outputs out."""
from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from needlec.errors import NeedlecError
from needlec.runtime.profile import Profile, Profiler
from needlec.runtime.signature import Signature

EntryFn = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)
VariableFn = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int32)
ThreadsFn = ctypes.CFUNCTYPE(None, ctypes.c_int32)


class NativeModel:
    """A native ``needlec_run`` entry with its signature; call it like a function.

    Returns one array for a single-output graph, else a tuple. Calls are
    serialised by the caller: the module's static arena is not reentrant.
    Variables (persistent state) live in the module and are read and written
    with ``get_variable`` / ``set_variable`` / ``variables``. ``profile`` times
    each kernel (``runtime/profile.py``; ``profiler`` is None for a library
    built without profiling support).
    """

    def __init__(self, signature: Signature, entry: Any, variable: Any, keepalive: Any = None,
                 profiler: Profiler | None = None,
                 set_threads: Any = None) -> None:
        self.signature = signature
        self._entry = entry
        self._variable = variable
        self._keepalive = keepalive
        self.profiler = profiler
        self._set_threads = set_threads

    def set_num_threads(self, count: int) -> None:
        """Run the model's parallel loops on ``count`` threads (0: the OpenMP runtime's default, every core)."""
        if not isinstance(count, int) or count < 0:
            raise NeedlecError(f"set_num_threads expects a count >= 0, found {count!r}")
        if self._set_threads is None:
            raise NeedlecError(f"{self.signature.name}: this library predates thread control (no set_num_threads)")
        self._set_threads(count)

    def _variable_view(self, name: str) -> np.ndarray:
        index = self.signature.variable_index(name)
        spec = self.signature.variables[index]
        address = self._variable(index)
        nbytes = int(np.prod(spec.shape, dtype=np.int64)) * spec.dtype.itemsize
        if nbytes == 0:
            return np.empty(spec.shape, spec.dtype)
        buffer = (ctypes.c_char * nbytes).from_address(address)
        return np.frombuffer(memoryview(buffer).cast("B"), dtype=spec.dtype).reshape(spec.shape)

    def get_variable(self, name: str) -> np.ndarray:
        """A copy of variable ``name``'s current value."""
        return self._variable_view(name).copy()

    def set_variable(self, name: str, value: np.ndarray) -> None:
        """Overwrite variable ``name`` (shape and dtype are checked)."""
        checked = self.signature.check_variable(name, value)
        self._variable_view(name)[...] = checked

    def variables(self) -> dict[str, np.ndarray]:
        """Copies of every variable, by name."""
        return {spec.name: self.get_variable(spec.name) for spec in self.signature.variables}

    def profile(self, *args: Any, repeat: int = 10, warmup: int = 1,
                trace: str | os.PathLike[str] | None = None, **kwargs: Any) -> Profile:
        """Run the model ``warmup`` times, then ``repeat`` times timing every kernel; their ``Profile``.

        ``str(profile)`` is a table of the kernels by time; ``trace`` is a path to write Chrome trace-event
        JSON to (Perfetto, chrome://tracing). The variables of a stateful model advance with every run.
        """
        if self.profiler is None:
            raise NeedlecError(f"{self.signature.name}: this library was built without profiling support "
                               "(compile it again with this needlec to profile it)")
        profile = self.profiler.run(self, args, kwargs, self.signature.name, repeat, warmup)
        if trace is not None:
            profile.write_trace(trace)
        return profile

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
