"""Loading a needlec shared library: its signature is read (data only) before any model code can run.

A library's symbols start with the prefix it was compiled with (``needlec``
unless ``needlec compile --name`` / ``Compiled.export(name=)`` chose another,
``needlec/abi.py``). ``load(path, name=...)`` takes it; without ``name`` the
default names are tried first, then the prefix is read from the file's ELF
dynamic symbol table: the one ``P`` for which ``P_signature``, ``P_run`` and
``P_variable`` are all exported functions (an error names the candidates when
there are several).
"""
from __future__ import annotations

import ctypes
import os
import struct

from needlec import abi
from needlec.errors import ArtifactError
from needlec.runtime.cpu_check import check_cpu_features
from needlec.runtime.native import EntryFn, NativeModel, ThreadsFn, VariableFn
from needlec.runtime.profile import Profiler
from needlec.runtime.signature import Signature

_SHT_DYNSYM = 11
_STT_FUNC = 2


def exported_functions(path: str) -> set[str]:
    """The names of the functions an ELF file exports (its dynamic symbol table); empty for anything else."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            return set()
        wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
        if wide:
            shoff, = struct.unpack_from(order + "Q", ident, 0x28)
            shentsize, shnum = struct.unpack_from(order + "HH", ident, 0x3A)
        else:
            shoff, = struct.unpack_from(order + "I", ident, 0x20)
            shentsize, shnum = struct.unpack_from(order + "HH", ident, 0x2E)
        section = order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")

        def header(i: int) -> tuple[int, ...]:
            f.seek(shoff + i * shentsize)
            return struct.unpack(section, f.read(struct.calcsize(section)))

        def read(offset: int, size: int) -> bytes:
            f.seek(offset)
            return f.read(size)

        names: set[str] = set()
        for i in range(shnum):
            _, kind, _, _, offset, size, link, _, _, entsize = header(i)
            if kind != _SHT_DYNSYM or not entsize:
                continue
            _, _, _, _, str_offset, str_size, _, _, _, _ = header(link)
            strings, table = read(str_offset, str_size), read(offset, size)
            for at in range(0, len(table) - entsize + 1, entsize):
                if wide:
                    name, info, other, shndx = struct.unpack_from(order + "IBBH", table, at)
                else:
                    name, _, _, info, other, shndx = struct.unpack_from(order + "IIIBBH", table, at)
                if shndx != 0 and info & 0xF == _STT_FUNC and info >> 4 in (1, 2) and other & 3 == 0:
                    names.add(strings[name:strings.index(b"\0", name)].decode(errors="replace"))
        return names


def library_prefixes(path: str) -> list[str]:
    """The symbol prefixes of the needlec models an ELF shared library exports, sorted."""
    names = exported_functions(path)
    suffix = abi.signature("")
    return sorted(p for p in (n[:-len(suffix)] for n in names if n.endswith(suffix))
                  if p and abi.entry(p) in names and abi.variable(p) in names)


def _prefix(path: str, lib: ctypes.CDLL) -> str:
    """The symbol prefix of the loaded library ``lib`` at ``path``: the default, else the one its ELF exports."""
    if hasattr(lib, abi.signature(abi.DEFAULT_PREFIX)):
        return abi.DEFAULT_PREFIX
    try:
        found = library_prefixes(path)
    except (OSError, struct.error, ValueError):
        found = []
    if len(found) > 1:
        raise ArtifactError(f"cannot load {path}: it holds several needlec models ({', '.join(found)}); "
                            "choose one with name=")
    if not found:
        raise ArtifactError(f"cannot load {path}: not a needlec shared library (no {abi.signature('<name>')} "
                            "symbol; give the --name it was compiled with as name=)")
    return found[0]


def load(path: str, name: str | None = None) -> NativeModel:
    """Load a needlec shared library; the result validates inputs and returns NumPy arrays.

    ``name`` is the symbol prefix it was compiled with (``--name``); by
    default it is found in the library. ArtifactError when ``path`` is not a
    needlec library or was built for CPU features this host lacks.
    """
    if name is not None:
        abi.check_prefix(name)
    if not os.path.exists(path):
        raise ArtifactError(f"cannot load {path}: no such file")
    try:
        lib = ctypes.CDLL(os.path.abspath(path))
    except OSError as exc:
        raise ArtifactError(f"cannot load {path}: not a needlec shared library ({exc})") from None
    prefix = name if name is not None else _prefix(path, lib)
    try:
        entry = EntryFn((abi.entry(prefix), lib))
        sig_fn = ctypes.CFUNCTYPE(ctypes.c_char_p)((abi.signature(prefix), lib))
        variable = VariableFn((abi.variable(prefix), lib))
    except AttributeError as exc:
        raise ArtifactError(f"cannot load {path}: not a needlec shared library with symbol prefix "
                            f"{prefix!r} ({exc})") from None
    signature = Signature.from_json(sig_fn().decode())  # data only: runs no model code
    check_cpu_features(signature.cpu, signature.cpu_features, path)
    profiler = Profiler.from_library(lib, prefix)  # None for a library built before profiling existed
    threads = ThreadsFn((abi.set_num_threads(prefix), lib)) if hasattr(lib, abi.set_num_threads(prefix)) else None
    return NativeModel(signature, entry, variable, keepalive=lib, profiler=profiler, set_threads=threads)
