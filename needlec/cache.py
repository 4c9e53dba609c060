"""The compile cache of ``needlec run``: a model file is compiled once, later runs load the library from disk.

Where: ``$NEEDLEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/needlec``, else
``~/.cache/needlec`` (created readable by its owner only: its libraries are
loaded into the process). How much: ``$NEEDLEC_CACHE_MAX_BYTES`` (default
2 GiB); after each write the least recently used entries (by modification
time, which a hit refreshes) are deleted until the total fits.

An entry is the shared library the build step writes
(``write_artifact(result, target, "so", path)``), named
``<key>-<digest>.so``. The key is the SHA-256 of everything that decides the
code: the model file's bytes and base name (a model is named after its file),
for ONNX the bytes of each external-data file it names, the input shapes and
size budget given to the importer, the target (name, CPU, LLVM CPU, features,
vector bits, cores, alignment, loop kinds), needlec's version, a hash of its
own source files (an edit to needlec invalidates every entry), and the
llvmlite, LLVM, NumPy and onnx versions. The digest is the start of the
library's own SHA-256, checked before each load: a truncated or corrupted
entry, or one that does not load, is deleted and rebuilt. A library is built
in a temporary folder inside the cache directory and moved into place with
``os.replace``, so concurrent runs never see half a library.

Only ``.onnx`` and ``.nir`` files are cached. A Python model file is not: the
graph it traces depends on more than its bytes (modules it imports, files it
reads, unseeded random weights), so a key over its bytes could run stale code.
Without a C compiler models compile in-process (JIT) as with ``--no-cache``;
so they do, with a warning, when the cache directory cannot be written. Within one process, loading
one entry twice gives models that share one library (dlopen returns the
loaded one), hence their variables.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from needlec.errors import ArtifactError, NeedlecError

if TYPE_CHECKING:  # the compiler and onnx load only when a model is compiled, so `needlec cache` starts fast
    import onnx

    from needlec.compiler.instrument import Stage
    from needlec.compiler.pipeline import PipelineResult
    from needlec.compiler.target import Target
    from needlec.progress import Progress
    from needlec.runtime.native import NativeModel

log = logging.getLogger(__name__)

CACHED_SUFFIXES = (".onnx", ".nir")
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
ENTRY = re.compile(r"(?P<key>[0-9a-f]{64})-(?P<digest>[0-9a-f]{16})\.so")
TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 24 * 3600  # a temporary folder this old was left by a run that died


def cache_dir() -> str:
    """The cache directory: ``$NEEDLEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/needlec``, else ``~/.cache/needlec``."""
    if os.environ.get("NEEDLEC_CACHE_DIR"):
        return os.path.abspath(os.environ["NEEDLEC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "needlec")


def max_bytes() -> int:
    """The cache's size cap: ``$NEEDLEC_CACHE_MAX_BYTES`` or 2 GiB; NeedlecError when the variable is no byte count."""
    text = os.environ.get("NEEDLEC_CACHE_MAX_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    if not re.fullmatch(r"[0-9]+", text):
        raise NeedlecError(f"NEEDLEC_CACHE_MAX_BYTES must be a byte count (an integer >= 0), found {text!r}")
    return int(text)


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 over needlec's own Python source files (path and bytes), computed once per process."""
    package = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, package).encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def _onnx_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of an ONNX graph and its subgraphs: initializers and node attributes."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sub in [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs:
                yield from _onnx_tensors(sub)


def _external_data(path: str, data: bytes) -> dict[str, str] | None:
    """SHA-256 of each external-data file of the ONNX model ``data`` (read from ``path``), by location; None when
    the model does not parse or a location is not a file inside the model's folder (the import reports it)."""
    if b"location" not in data:  # a tensor stored outside the model names its file under the key "location"
        return {}
    import onnx
    from google.protobuf.message import DecodeError

    from needlec.frontend.onnx.loader import safe_external_path

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):  # not an ONNX model, which the import will say
        return None
    locations = {entry.value for tensor in _onnx_tensors(model.graph) for entry in tensor.external_data
                 if entry.key == "location"}
    folder = os.path.dirname(os.path.abspath(path))
    try:
        return {location: _file_sha256(safe_external_path(folder, location, location))
                for location in sorted(locations)}
    except (NeedlecError, OSError):
        return None


def model_key(path: str, input_shapes: Mapping[str, Sequence[int]] | None, size_budget: int | None,
              target: Target) -> str | None:
    """The cache key of model file ``path`` compiled for ``target`` (see the module docstring), or None when it
    is not cached: not an existing ``.onnx`` or ``.nir`` file, or external data the import would refuse."""
    import llvmlite
    import llvmlite.binding as llvm
    import numpy as np

    from needlec import __version__

    suffix = os.path.splitext(path)[1]
    if suffix not in CACHED_SUFFIXES or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        data = f.read()
    material: dict[str, object] = {
        "needlec": __version__, "source": source_hash(), "llvmlite": llvmlite.__version__,
        "llvm": list(llvm.llvm_version_info), "numpy": np.__version__,
        "model": os.path.basename(path), "model_sha256": hashlib.sha256(data).hexdigest(),
        "input_shapes": sorted((name, [int(d) for d in shape]) for name, shape in (input_shapes or {}).items()),
        "size_budget": size_budget,
        "target": {"name": target.name, "cpu": target.cpu.name, "llvm_cpu": target.cpu.cpu,
                   "features": list(target.cpu.features), "vector_bits": target.vector_bits, "cores": target.cores,
                   "shared_memory": target.shared_memory, "alignment": target.alignment,
                   "loop_kinds": sorted(target.loop_kinds)},
    }
    if suffix == ".onnx":
        from importlib.metadata import version

        external = _external_data(path, data)
        if external is None:
            return None
        material.update(onnx=version("onnx"), external_data=external)
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One cached library: its path, key, digest (of its bytes), size in bytes and modification time (last use)."""

    path: str
    key: str
    digest: str
    size: int
    mtime: float


def entries() -> list[Entry]:
    """The cache's entries, least recently used first (none when the directory does not exist or cannot be read)."""
    found: list[Entry] = []
    try:
        with os.scandir(cache_dir()) as items:
            for item in items:
                match = ENTRY.fullmatch(item.name)
                if match is None or not item.is_file(follow_symlinks=False):
                    continue
                try:
                    info = item.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted by a concurrent run
                    continue
                found.append(Entry(item.path, match["key"], match["digest"], info.st_size, info.st_mtime))
    except OSError:  # no cache directory (yet), or none that can be read
        pass
    return sorted(found, key=lambda e: (e.mtime, e.path))


def _remove(path: str) -> None:
    """Delete ``path``; a concurrent run may have deleted it already."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def evict(limit: int) -> None:
    """Delete least recently used entries until the cache holds at most ``limit`` bytes, and temporary folders
    left by runs that died."""
    found = entries()
    total = sum(e.size for e in found)
    for entry in found:
        if total <= limit:
            break
        _remove(entry.path)
        total -= entry.size
    directory = cache_dir()
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        try:
            stale = name.startswith(TMP_PREFIX) and time.time() - os.path.getmtime(path) > STALE_TMP_SECONDS
        except FileNotFoundError:  # a concurrent run finished with it
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)


def clear() -> tuple[int, int]:
    """Delete every entry and temporary folder; returns the entries deleted and their bytes."""
    found = entries()
    for entry in found:
        _remove(entry.path)
    directory = cache_dir()
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.startswith(TMP_PREFIX):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    return len(found), sum(e.size for e in found)


def _load_entry(key: str, progress: Progress) -> NativeModel | None:
    """The model of ``key``'s newest intact entry, loaded as stage ``cache hit <path>``; entries that are
    corrupt or do not load are deleted. None when no entry is left."""
    from needlec.runtime.library import load

    for entry in reversed([e for e in entries() if e.key == key]):
        try:
            with progress.stage(f"cache hit {entry.path}"):
                if _file_sha256(entry.path)[:16] != entry.digest:
                    raise ArtifactError(f"cache entry {entry.path} is corrupt")
                model = load(entry.path)
        except (ArtifactError, OSError):
            _remove(entry.path)
            continue
        try:
            os.utime(entry.path)  # most recently used now
        except OSError:
            pass
        return model
    return None


def _store(key: str, result: PipelineResult, target: Target, stage: Stage) -> str:
    """Build ``result`` as ``key``'s shared library and move it into the cache atomically; its path."""
    from needlec.driver import write_artifact

    directory = cache_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=directory)
    try:
        built = os.path.join(folder, key + ".so")  # the library's SONAME is its file name
        write_artifact(result, target, "so", built, stage)
        path = os.path.join(directory, f"{key}-{_file_sha256(built)[:16]}.so")
        os.replace(built, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def _has_c_compiler() -> bool:
    from needlec.build.toolchain import c_compiler

    try:
        c_compiler()
    except ArtifactError:
        return False
    return True


def compile_model_file(path: str, input_shapes: Mapping[str, Sequence[int]] | None, size_budget: int | None,
                       target: Target, progress: Progress, use_cache: bool = True) -> NativeModel:
    """Model file ``path`` compiled for ``target`` and loaded, through the cache when ``use_cache`` and the file
    is cached (``.onnx``, ``.nir``); else imported, compiled and loaded in-process. Loading an entry is the
    progress stage ``cache hit <path>``."""
    from needlec.runtime.cpu_check import check_cpu_features
    from needlec.runtime.library import load

    key = model_key(path, input_shapes, size_budget, target) if use_cache and _has_c_compiler() else None
    if key is not None:
        limit = max_bytes()
        check_cpu_features(target.cpu.name, target.cpu.features, "the compiled code")  # before trusting a load
        model = _load_entry(key, progress)
        if model is not None:
            return model
    from needlec.driver import BUILD_STAGES, jit_compile, load_model_file, run_pipeline  # a miss only

    progress.expect(1 + BUILD_STAGES["jit" if key is None else "so"])
    with progress.stage(f"import {os.path.basename(path)}"):
        graph = load_model_file(path, input_shapes, size_budget)
    result = run_pipeline(graph, target, progress)
    if key is None:
        return jit_compile(result.program, target, progress.stage)
    try:
        entry = _store(key, result, target, progress.stage)
    except (OSError, ArtifactError) as exc:  # no cache to write, or no library to link: JIT, as without the cache
        log.warning("not caching %s: %s", os.path.basename(path), exc)
        return jit_compile(result.program, target, progress.stage)
    model = load(entry)
    evict(limit)
    return model
