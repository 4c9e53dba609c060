"""The contract between generated code and the runtime: the symbols every needlec module exports.

Every symbol starts with the module's *symbol prefix* (``DEFAULT_PREFIX``,
``needlec``, unless ``needlec compile --name`` / ``Compiled.export(name=)``
chose another), so two models can live in one C program. With prefix ``P``:

``int32_t P_run(void **inputs, void **outputs)``
    runs the graph on caller-owned, contiguous input and output buffers;
    returns 0 on success.
``const char *P_signature(void)``
    a JSON description of inputs, outputs and variables (name, shape, dtype)
    and of the CPU the code is for (``cpu``, ``cpu_features``), which the
    loaders read to validate every call before it reaches native code
    (``runtime/signature.py``).
``void *P_variable(int32_t i)``
    the storage of variable ``i`` (signature order), or NULL when out of range.
``void P_set_num_threads(int32_t n)``
    run parallel loops on ``n`` threads (``n <= 0``: the OpenMP runtime's
    default, ``OMP_NUM_THREADS`` or every core); until it is called,
    ``NEEDLEC_NUM_THREADS`` decides (``compiler/codegen/parallel.py``).

Per-kernel profiling (``compiler/codegen/profiling.py`` emits it,
``runtime/profile.py`` reads it), off until it is switched on:

``int32_t P_set_profiling(int32_t on)``
    time every kernel call of the following runs (``on`` nonzero) or stop;
    returns the previous setting.
``int64_t *P_profile_counters(void)``
    ``len(PROFILE_FIELDS)`` int64 counters per kernel, kernel after kernel,
    in ``CLOCK_MONOTONIC`` nanoseconds; writable (zero them to start afresh).
``const char *P_profile_info(void)``
    JSON: each kernel's name, the graph nodes it implements (``sources``:
    node, op, origin) and its static ``flops`` and ``bytes`` estimates per call
    (``compiler/loops/cost.py``).

Shared libraries, objects and executables also define ``P_run_checked`` and
``P_last_error`` (``build/checked.py``).

Code generation (``compiler/codegen``) emits these symbols, the build step
(``needlec/build``) links and loads them, the runtime calls them; none of
them imports another to learn the names.
"""
from __future__ import annotations

import re

from needlec.errors import NeedlecError

DEFAULT_PREFIX = "needlec"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_prefix(prefix: str) -> str:
    """``prefix`` when it is a valid C identifier; NeedlecError (one line) otherwise."""
    if not isinstance(prefix, str) or _IDENTIFIER.fullmatch(prefix) is None:
        raise NeedlecError(f"invalid symbol prefix {prefix!r}: --name must be a C identifier "
                           "(letters, digits and '_', not starting with a digit)")
    return prefix


def entry(prefix: str = DEFAULT_PREFIX) -> str:
    """The unchecked entry point, ``<prefix>_run``."""
    return f"{prefix}_run"


def signature(prefix: str = DEFAULT_PREFIX) -> str:
    """The signature getter, ``<prefix>_signature``."""
    return f"{prefix}_signature"


def variable(prefix: str = DEFAULT_PREFIX) -> str:
    """The variable accessor, ``<prefix>_variable``."""
    return f"{prefix}_variable"


def set_num_threads(prefix: str = DEFAULT_PREFIX) -> str:
    """The thread-count setter, ``<prefix>_set_num_threads``."""
    return f"{prefix}_set_num_threads"


def run_checked(prefix: str = DEFAULT_PREFIX) -> str:
    """The shape-checked entry of native artifacts, ``<prefix>_run_checked``."""
    return f"{prefix}_run_checked"


def last_error(prefix: str = DEFAULT_PREFIX) -> str:
    """The error message getter of native artifacts, ``<prefix>_last_error``."""
    return f"{prefix}_last_error"


def data_symbol(prefix: str, index: int) -> str:
    """The (hidden) symbol of external data ``index``: ``<prefix>_data_<index>``."""
    return f"{prefix}_data_{index}"


PROFILE_FIELDS = ("total_ns", "calls", "last_start_ns", "last_ns")  # per kernel, in P_profile_counters


def set_profiling(prefix: str = DEFAULT_PREFIX) -> str:
    """The profiling switch, ``<prefix>_set_profiling``."""
    return f"{prefix}_set_profiling"


def profile_counters(prefix: str = DEFAULT_PREFIX) -> str:
    """The per-kernel counters' getter, ``<prefix>_profile_counters``."""
    return f"{prefix}_profile_counters"


def profile_info(prefix: str = DEFAULT_PREFIX) -> str:
    """The per-kernel static information's getter, ``<prefix>_profile_info``."""
    return f"{prefix}_profile_info"


def macro_prefix(prefix: str) -> str:
    """The prefix of a header's per-model macros: ``prefix`` upper-cased (``NEEDLEC`` by default)."""
    return prefix.upper()
