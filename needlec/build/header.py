"""C headers for needlec shared libraries: entry points plus every tensor's name, shape and dtype.

``c_header(signature, library, prefix)`` renders the header of a library
whose signature is ``signature`` (inference models and training steps alike)
and whose symbols start with ``prefix`` (``needlec`` unless ``--name`` chose
another; every per-model identifier below starts with it, macros with it
upper-cased, so headers of models with different prefixes can be included
together). A C program includes it, links the ``.so`` and sizes its buffers
with the macros (default prefix)::

    #include "model.h"
    static float x[NEEDLEC_INPUT_X_SIZE];
    float y[NEEDLEC_OUTPUT_Y_SIZE];
    void *in[NEEDLEC_NUM_INPUTS] = {x}, *out[NEEDLEC_NUM_OUTPUTS] = {y};
    if (needlec_run(in, out) != 0) { ... }

Each tensor gets macros ``NEEDLEC_<KIND>_<NAME>`` (its slot), ``..._RANK``,
``..._SIZE`` (elements), ``..._CTYPE`` (element type) and ``..._DTYPE`` (NumPy
name); ``<NAME>`` is the tensor name upper-cased with every character that is
not a letter or digit replaced by ``_`` (``0.weight`` -> ``0_WEIGHT``), and a
name whose macros would repeat an earlier tensor's gets its slot appended. Tables
``needlec_inputs`` / ``needlec_outputs`` / ``needlec_variables`` describe the
same tensors at run time.

The header's first comment gives the link command for the file actually
written (``link_recipe``): ``-L. -lNAME`` for ``libNAME.so``, the path itself
(``./model.so``) for any other name, ``model.o -fopenmp -lm`` for an object.

The types shared by every model (``needlec_tensor``, ``needlec_tensor_info``,
the ``NEEDLEC_DTYPE_*`` and status codes) are defined once under the include
guard ``NEEDLEC_TYPES_DEFINED``.

Libraries, objects and executables written by needlec also define the
shape-checked entry ``needlec_run_checked`` (``build/checked.py``): it takes
``needlec_tensor`` descriptions (data, dtype code, rank, shape), validates
them against the signature and returns ``NEEDLEC_OK`` or an error code with
a one-line message from ``needlec_last_error()``. Dtype codes are ONNX's
``TensorProto.DataType`` values (``NEEDLEC_DTYPE_FLOAT32`` is 1).
"""
from __future__ import annotations

import math
import re

import numpy as np

from needlec import abi
from needlec.errors import ArtifactError
from needlec.runtime.signature import Signature, TensorSpec

C_TYPES = {
    "float32": "float",
    "float64": "double",
    "float16": "uint16_t",  # IEEE 754 half-precision bits
    "int8": "int8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "uint8": "uint8_t",
    "uint16": "uint16_t",
    "uint32": "uint32_t",
    "uint64": "uint64_t",
    "bfloat16": "uint16_t",  # the upper 16 bits of an IEEE 754 float
    "bool": "uint8_t",  # one byte, 0 or 1
}
# narrow float and integer formats: one element per byte, as ml_dtypes stores them
C_TYPES.update(dict.fromkeys(("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn",
                              "int4", "uint4", "int2", "uint2"), "uint8_t"))

# element type codes: ONNX TensorProto.DataType values, so C callers can reuse ONNX's numbering
DTYPE_CODES = {"float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7, "bool": 9,
               "float16": 10, "float64": 11, "uint32": 12, "uint64": 13, "bfloat16": 16, "float8_e4m3fn": 17,
               "float8_e4m3fnuz": 18, "float8_e5m2": 19, "float8_e5m2fnuz": 20, "uint4": 21, "int4": 22,
               "float4_e2m1fn": 23, "uint2": 25, "int2": 26}
CHECKED_ENTRY = abi.run_checked()  # the default prefix's names
LAST_ERROR = abi.last_error()

_KINDS = (("input", "inputs"), ("output", "outputs"), ("variable", "variables"))
_SUFFIXES = ("", "_RANK", "_SIZE", "_CTYPE", "_DTYPE", "_DTYPE_CODE")  # the macros defined for each tensor


def c_identifier(name: str) -> str:
    """``name`` upper-cased, with every character other than a letter, digit or ``_`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def _c_string(text: str) -> str:
    """``text`` as a C string literal (printable ASCII kept, everything else escaped)."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        if char in '"\\?':  # '?' too: "??/" would be a trigraph under -std=c99
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    """``text`` made safe inside a C block comment (escaped like a string literal, no ``*/``)."""
    return _c_string(text)[1:-1].replace("*/", "* /")


def _c_type(spec: TensorSpec) -> str:
    """The C element type of ``spec``'s dtype."""
    try:
        return C_TYPES[np.dtype(spec.dtype).name]
    except KeyError:
        raise ArtifactError(f"tensor {spec.name!r}: dtype {np.dtype(spec.dtype).name} has no C type") from None


def dtype_code(dtype: np.dtype) -> int:
    """The ``NEEDLEC_DTYPE_*`` code (ONNX ``TensorProto.DataType``) of ``dtype``."""
    try:
        return DTYPE_CODES[np.dtype(dtype).name]
    except KeyError:
        raise ArtifactError(f"dtype {np.dtype(dtype).name} has no C type") from None


def _macro_names(specs: tuple[TensorSpec, ...], kind: str, macro: str = "NEEDLEC") -> list[str]:
    """``<MACRO>_<KIND>_<NAME>`` per spec; where it or a derived macro is taken, the slot is appended."""
    names: list[str] = []
    taken: set[str] = set()
    for slot, spec in enumerate(specs):
        name = f"{macro}_{kind.upper()}_{c_identifier(spec.name)}"
        while any(name + suffix in taken for suffix in _SUFFIXES):
            name = f"{name}_{slot}"
        names.append(name)
        taken.update(name + suffix for suffix in _SUFFIXES)
    return names


def _size(spec: TensorSpec) -> int:
    """Number of elements."""
    return math.prod(spec.shape)


def _describe(spec: TensorSpec) -> str:
    return f"{np.dtype(spec.dtype).name}[{', '.join(map(str, spec.shape))}]"


def _listing(signature: Signature) -> list[str]:
    """The comment lines listing every tensor: slot, name, dtype and shape."""
    lines = []
    for _, plural in _KINDS:
        specs = getattr(signature, plural)
        lines.append(f" * {plural.capitalize()} ({len(specs)}):")
        width = max((len(_comment(s.name)) for s in specs), default=0)
        lines += [f" *   {slot:<3} {_comment(spec.name):<{width}}  {_describe(spec)}"
                  for slot, spec in enumerate(specs)]
    return lines


def _macros(specs: tuple[TensorSpec, ...], kind: str, prefix: str) -> list[str]:
    lines = []
    for slot, (spec, macro) in enumerate(zip(specs, _macro_names(specs, kind, abi.macro_prefix(prefix)))):
        lines += [f"/* {kind} {slot}: {_comment(spec.name)} {_describe(spec)} */",
                  f"#define {macro} {slot}",
                  f"#define {macro}_RANK {len(spec.shape)}",
                  f"#define {macro}_SIZE {_size(spec)}",
                  f"#define {macro}_CTYPE {_c_type(spec)}",
                  f"#define {macro}_DTYPE {_c_string(np.dtype(spec.dtype).name)}",
                  f"#define {macro}_DTYPE_CODE {dtype_code(spec.dtype)}",
                  ""]
    return lines


def _table(specs: tuple[TensorSpec, ...], kind: str, plural: str, prefix: str) -> list[str]:
    """Shape arrays and one ``needlec_tensor_info`` table ``<prefix>_<plural>`` for ``specs`` (nothing when none)."""
    if not specs:
        return []
    lines = []
    for slot, spec in enumerate(specs):
        if spec.shape:
            lines.append(f"static const int64_t {prefix}_{kind}{slot}_shape[{len(spec.shape)}] = "
                         f"{{{', '.join(map(str, spec.shape))}}};")
    count = f"{abi.macro_prefix(prefix)}_NUM_{plural.upper()}"
    lines.append(f"static const needlec_tensor_info {prefix}_{plural}[{count}] = {{")
    for slot, spec in enumerate(specs):
        shape = f"{prefix}_{kind}{slot}_shape" if spec.shape else "NULL"
        lines.append(f"    {{{_c_string(spec.name)}, {_c_string(np.dtype(spec.dtype).name)}, "
                     f"{np.dtype(spec.dtype).itemsize}, {len(spec.shape)}, {shape}, "
                     f"{_size(spec)}, {dtype_code(spec.dtype)}}},")
    return lines + ["};", ""]


_TYPES = [
    "#ifndef NEEDLEC_TYPES_DEFINED",
    "#define NEEDLEC_TYPES_DEFINED",
    "/* Element type codes (ONNX TensorProto.DataType values). */",
    *[f"#define NEEDLEC_DTYPE_{name.upper()} {code}" for name, code in DTYPE_CODES.items()],
    "",
    "/* Status codes of <prefix>_run_checked. */",
    "#define NEEDLEC_OK 0",
    "#define NEEDLEC_ERROR_INVALID_ARGUMENT 1",
    "#define NEEDLEC_ERROR_RUN 2",
    "#define NEEDLEC_ERROR_UNSUPPORTED_CPU 3",
    "",
    "/* One tensor of the signature: shape is NULL for a scalar (rank 0); size counts elements. */",
    "typedef struct needlec_tensor_info {",
    "    const char *name;",
    "    const char *dtype;",
    "    int32_t itemsize;",
    "    int32_t rank;",
    "    const int64_t *shape;",
    "    int64_t size;",
    "    int32_t dtype_code;",
    "} needlec_tensor_info;",
    "",
    "/* A caller's tensor for <prefix>_run_checked: contiguous row-major data, a NEEDLEC_DTYPE_* code,",
    " * and rank extents in shape (which may be NULL when rank is 0). */",
    "typedef struct needlec_tensor {",
    "    void *data;",
    "    int32_t dtype;",
    "    int32_t rank;",
    "    const int64_t *shape;",
    "} needlec_tensor;",
    "#endif",
    "",
]


def link_recipe(library: str) -> str:
    """The command that links ``main.c`` with the file ``library`` (a base name) in the current folder.

    ``libNAME.so`` -> ``-L. -lNAME``; any other ``.so`` name is given as a path
    (``./model.so``); both run from anywhere through ``-Wl,-rpath,'$ORIGIN'``
    when the program sits next to the library, which is named by its SONAME.
    An object file (``.o``) is linked in with the OpenMP runtime its parallel
    loops use (``-fopenmp``) and ``-lm``.
    """
    if library.endswith(".o"):
        return f"cc main.c {library} -fopenmp -lm"
    stem = library[3:-3] if library.startswith("lib") and library.endswith(".so") else ""
    if stem and re.fullmatch(r"[A-Za-z0-9_.+-]+", stem):
        return f"cc main.c -L. -l{stem} -Wl,-rpath,'$ORIGIN'"
    return f"cc main.c ./{library} -Wl,-rpath,'$ORIGIN'"


def c_header(signature: Signature, library: str | None = None, prefix: str = abi.DEFAULT_PREFIX) -> str:
    """The C header text for a needlec shared library with ``signature`` (``library``: its file name) whose
    symbols start with ``prefix``."""
    abi.check_prefix(prefix)
    p, m = prefix, abi.macro_prefix(prefix)
    entry, checked, last_error = abi.entry(p), abi.run_checked(p), abi.last_error(p)
    guard = f"{m}_{c_identifier(signature.name)}_H"
    lib = library or f"lib{signature.name}.so"
    indent = " " * len(f"int32_t {checked}(")
    lines = [
        f"/* C interface of the needlec library {_comment(signature.name)} ({_comment(lib)});"
        f" generated by needlec, do not edit.",
        " *",
        " * Link with it from the folder that holds it (the program then runs from that folder too):",
        f" *   {_comment(link_recipe(lib))}",
        " * and call (the object file from `needlec compile --emit obj` links as `cc main.c model.o -fopenmp -lm`):",
        " *",
        f" *   int32_t {entry}(void **inputs, void **outputs);",
        " *       Runs the compiled graph once. inputs[i] and outputs[i] point to caller-owned, contiguous,",
        f" *       row-major buffers of {m}_<KIND>_<NAME>_SIZE elements of {m}_<KIND>_<NAME>_CTYPE,",
        f" *       in slot order ({m}_<KIND>_<NAME> is the slot). Returns 0 on success. Nothing is",
        " *       checked: the buffers must have exactly these sizes. Calls share one static work area:",
        " *       never run two calls at the same time.",
        f" *   int32_t {checked}(const needlec_tensor *inputs, int32_t num_inputs,",
        f" *   {indent}const needlec_tensor *outputs, int32_t num_outputs);",
        f" *       Like {entry}, but first checks the counts and each tensor's dtype code (NEEDLEC_DTYPE_*),",
        " *       rank, shape and data pointer against the signature. Returns NEEDLEC_OK (0), or",
        " *       NEEDLEC_ERROR_INVALID_ARGUMENT (nothing ran), NEEDLEC_ERROR_UNSUPPORTED_CPU (this CPU lacks",
        " *       features the code needs; nothing ran) or NEEDLEC_ERROR_RUN, with a one-line message",
        f" *       from {last_error}().",
        f" *   const char *{last_error}(void);",
        f" *       The message of the last failed {checked} call (\"\" after a success); static storage.",
        f" *   const char *{abi.signature(p)}(void);",
        " *       The inputs, outputs and variables (name, shape, dtype) as JSON.",
        f" *   void *{abi.variable(p)}(int32_t i);",
        f" *       The storage of variable i ({m}_VARIABLE_<NAME>), or NULL when i is out of range.",
        " *       Variables are state kept from call to call (such as trained parameters and optimizer",
        " *       state); read or overwrite them between calls.",
        f" *   int32_t {abi.set_profiling(p)}(int32_t on);",
        f" *   int64_t *{abi.profile_counters(p)}(void);",
        f" *   const char *{abi.profile_info(p)}(void);",
        " *       Per-kernel profiling, off until switched on (returns the previous setting): each run then",
        " *       adds every kernel's time to its counters (total ns, calls, last start ns, last ns; CLOCK_MONOTONIC);",
        " *       the info JSON names each kernel, its graph nodes and its static flops and bytes per call.",
        " *",
        " * <NAME> is the tensor's name upper-cased with characters other than letters and digits",
        " * replaced by '_' (the slot is appended where two names would collide). The tables",
        f" * {p}_inputs, {p}_outputs and {p}_variables give the same facts at run time.",
        " *",
        *_listing(signature),
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        *_TYPES,
        f"int32_t {entry}(void **inputs, void **outputs);",
        f"int32_t {checked}(const needlec_tensor *inputs, int32_t num_inputs,",
        f"{indent}const needlec_tensor *outputs, int32_t num_outputs);",
        f"const char *{last_error}(void);",
        f"const char *{abi.signature(p)}(void);",
        f"void *{abi.variable(p)}(int32_t i);",
        f"int32_t {abi.set_profiling(p)}(int32_t on);",
        f"int64_t *{abi.profile_counters(p)}(void);",
        f"const char *{abi.profile_info(p)}(void);",
        "",
        f"#define {m}_MODEL_NAME {_c_string(signature.name)}",
        f"#define {m}_NUM_INPUTS {len(signature.inputs)}",
        f"#define {m}_NUM_OUTPUTS {len(signature.outputs)}",
        f"#define {m}_NUM_VARIABLES {len(signature.variables)}",
        "",
    ]
    for kind, plural in _KINDS:
        lines += _macros(getattr(signature, plural), kind, p)
    for kind, plural in _KINDS:
        lines += _table(getattr(signature, plural), kind, plural, p)
    lines += [
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        f"#endif /* {guard} */",
        "",
    ]
    return "\n".join(lines)
