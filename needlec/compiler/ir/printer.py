"""The graph IR text format (printer side); ``parser.parse_graph`` reads it back.

Example::

    graph @mlp(%x: f32[4, 8]) {
      %w: f32[8, 16] = constant dense<"AACAPwAAAEA...">
      %b: f32[3] = constant dense<[1.0, 2.0, 3.0]>
      %0: f32[4, 16] = matmul(%x, %w)
      %1: f32[16, 4]{strides=[1, 16]} = permute(%0) {perm=[1, 0]}
      %s: f32[4, 16] = inline tanh(%0)
      %g: f32[4, 16] = add(%s, %b) origin="1"
      return %1, %g
    }

Rules that make print -> parse -> print the identity:

* names match ``[A-Za-z0-9_.]+`` or are quoted (``%"a b"``) with escapes;
* a node marked ``inline`` (``passes/fuse.py``) prints ``inline`` before its op;
* types print as ``str(TensorType)``; every attribute prints, sorted by key,
  each kind unambiguously (ints ``3``, floats always with ``.``, an exponent,
  ``inf`` or ``nan``, ``true``/``false``, quoted strings, lists ``[1, 2]``,
  dtypes by short name);
* constants with at most ``MAX_LITERAL_ELEMENTS`` elements print as nested
  literal lists when the literal reads back to the very same bytes, others as
  base64 of their little-endian bytes. ``elide_constants=N`` prints constants
  of more than N elements as ``dense<elided: M elements>`` (readable dumps
  that do not parse back).
"""
from __future__ import annotations

import base64
import re
from typing import Any

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Graph, Node, Value

MAX_LITERAL_ELEMENTS = 16
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.]+")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def quote_string(text: str) -> str:
    """``text`` as a double-quoted IR string literal (``\\u{hex}`` for other non-printables)."""
    parts = []
    for ch in text:
        if ch in _ESCAPES:
            parts.append(_ESCAPES[ch])
        elif ch.isprintable():
            parts.append(ch)
        else:
            parts.append(f"\\u{{{ord(ch):x}}}")
    return '"' + "".join(parts) + '"'


def format_name(name: str) -> str:
    """A value or graph name without its sigil: bare when plain, quoted otherwise."""
    return name if PLAIN_NAME.fullmatch(name) else quote_string(name)


def format_float(value: float) -> str:
    """A Python float, exactly (``repr``), always recognisable as a float."""
    text = repr(float(value))
    return text if any(c in text for c in ".en") else text + ".0"  # 'n' covers inf and nan


def format_attr(value: Any) -> str:
    """One normalised attribute value (see ``registry.Attr.coerce`` for the kinds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, DType):
        return value.value
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    raise TypeError(f"attribute value {value!r} of type {type(value).__name__} has no IR text form")


def format_scalar(value: Any, dtype: DType) -> str:
    """One element of a constant: shortest text that reads back as ``dtype`` (``str`` of the NumPy scalar)."""
    if dtype is DType.BOOL:
        return "true" if value else "false"
    return str(value)


def literal_array(elements: list[str], dtype: DType) -> np.ndarray:
    """The flat array that literal ``elements`` denote in ``dtype`` (the parser uses this too)."""
    if dtype is DType.BOOL:
        return np.array([e == "true" for e in elements], dtype=np.bool_)
    if dtype.is_float_format:
        return np.array([float(e) for e in elements], dtype=np.float64).astype(dtype.np)
    return np.array([int(e) for e in elements], dtype=dtype.np)


def little_endian_bytes(data: np.ndarray) -> bytes:
    """The raw row-major little-endian bytes of ``data``."""
    return np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False).tobytes()


def _nested(flat: list[str], shape: tuple[int, ...]) -> str:
    if not shape:
        return flat[0]
    if shape[0] == 0:
        return "[]"
    step = len(flat) // shape[0] if flat else 0
    rows = [_nested(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]
    return "[" + ", ".join(rows) + "]"


def format_constant(value: Value, elide_constants: int | None = None) -> str:
    """The ``dense<...>`` payload of a constant."""
    assert value.data is not None, f"%{value.name} is not a constant or variable"
    return format_dense(value.data, value.dtype, elide_constants)


def format_dense(data: np.ndarray, dtype: DType, elide_constants: int | None = None) -> str:
    """``dense<...>`` for ``data`` of ``dtype``: a nested literal, base64 bytes, or elided beyond N elements."""
    if elide_constants is not None and data.size > elide_constants:
        return f"dense<elided: {data.size} elements>"
    if data.size <= MAX_LITERAL_ELEMENTS:
        flat = [format_scalar(x, dtype) for x in data.reshape(-1)]
        if little_endian_bytes(literal_array(flat, dtype)) == little_endian_bytes(data):
            return f"dense<{_nested(flat, data.shape)}>"
    return f'dense<"{base64.b64encode(little_endian_bytes(data)).decode("ascii")}">'


def format_value(value: Value) -> str:
    """``%name: type``."""
    return f"%{format_name(value.name)}: {value.type}"


def format_node(node: Node) -> str:
    """One node line without indentation: results, ``inline`` if marked, op, operands, attributes, origin."""
    results = ", ".join(format_value(v) for v in node.outputs)
    operands = ", ".join(f"%{format_name(v.name)}" for v in node.inputs)
    text = f"{results} = {'inline ' if node.inline else ''}{node.op}({operands})"
    if node.attrs:
        text += " {" + ", ".join(f"{k}={format_attr(node.attrs[k])}" for k in sorted(node.attrs)) + "}"
    if node.origin is not None:
        text += f" origin={quote_string(node.origin)}"
    return text


def print_graph(graph: Graph, elide_constants: int | None = None) -> str:
    """The IR text of ``graph``; with ``elide_constants=N``, constants over N elements are elided."""
    params = ", ".join(format_value(v) for v in graph.inputs)
    lines = [f"graph @{format_name(graph.name)}({params}) {{"]
    for value in graph.constants:
        lines.append(f"  {format_value(value)} = constant {format_constant(value, elide_constants)}")
    for value in graph.variables:
        lines.append(f"  {format_value(value)} = variable {format_constant(value, elide_constants)}")
    for node in graph.nodes:
        lines.append(f"  {format_node(node)}")
    for variable, value in graph.updates:
        lines.append(f"  update %{format_name(variable.name)} <- %{format_name(value.name)}")
    outputs = ", ".join(f"%{format_name(v.name)}" for v in graph.outputs)
    lines.append(f"  return {outputs}" if outputs else "  return")
    lines.append("}")
    return "\n".join(lines) + "\n"
