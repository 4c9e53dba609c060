"""Loop IR text: programs, kernels, statements and expressions; ``parser.parse_program`` reads it back.

Example::

    program @mlp
      input 0 %x: f32[3, 4]
      output 0 %1: f32[3, 4]
      buffers:
        %x: f32[12]  input slot 0
        %w: f32[4]   constant
        %1: f32[12]  output slot 0
      constants:
        %w = dense<[0.0, 1.0, 2.0, 3.0]>
      arena: 0 bytes

    kernel k0_add(%x: f32[12], %w: f32[4], %1: f32[12])  // from %1 (add)
      for i0 in 0..3:
        for i1 in 0..4:
          %1[i0*4 + i1] = %x[i0*4 + i1] + %w[i1]

Buffers print with the ``%`` of the graph values they hold (loop variables
and locals are bare names); a signature entry names its buffer when the
buffer's name differs from the graph value's. Names that are not plain are
quoted, as in the graph IR. A kernel's sources print after ``// from``:
each graph node with its op and attributes (``%y (transpose {perm=[1, 0]})``)
and its origin where it has one (``%h (conv2d {...}) origin="/0/Conv"``).
Constant and variable data print flat, as the graph IR prints constants
(exact literals up to 16 elements, else base64); ``elide_constants=N``
shortens larger ones for dumps (those do not parse back).

Loops show their schedule before ``for`` when it is not serial (``parallel
for``, ``vectorize for``, ``gpu_block for``). Constants whose dtype is not
the default for their kind (i64, f32, bool) print as a conversion
(``i32(3)``); a cast of a constant always names the constant's dtype
(``f32(i64(3))``), and a negated constant is parenthesised (``-(3)``), so
the text reads back to the same tree. An access that reads or writes a
buffer as another dtype of the same size (``bitcast``) names that dtype
(``%x:u32[i]``). Ops without a C operator (``mod`` is
floor-mod, ``pow``, ``max``, ``min``) print as calls.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.printer import format_attr, format_dense, format_name, quote_string
from needlec.compiler.loops.ir import (Assign, Binary, Buffer, Cast, Const, Expr, If, Kernel, Load, Local,
                                       LocalRef, Loop, LoopKind, Program, Select, Source, Stmt, Storage,
                                       StorageKind, Store, Unary, Var)

INDENT = "  "
# binary op -> (symbol, precedence); higher binds tighter (C precedence)
INFIX: dict[str, tuple[str, int]] = {
    "mul": ("*", 10), "div": ("/", 10),
    "add": ("+", 9), "sub": ("-", 9),
    "shl": ("<<", 8), "lshr": (">>>", 8), "shr": (">>", 8),
    "lt": ("<", 7), "le": ("<=", 7), "gt": (">", 7), "ge": (">=", 7),
    "eq": ("==", 6), "ne": ("!=", 6),
    "and": ("&", 5), "xor": ("^", 4), "or": ("|", 3),
}
PREFIX = {"neg": "-", "not": "!"}
ATOM = 12
UNARY_PRECEDENCE = 11
SELECT_PRECEDENCE = 1
DEFAULT_CONST_DTYPES = frozenset({DType.I64, DType.F32, DType.BOOL})
Params = Mapping[str, Buffer] | None


def _const(expr: Const, explicit: bool = False) -> str:
    """A constant's literal; wrapped in its dtype (``i32(3)``) when that is not the default or ``explicit``."""
    if expr.dtype is DType.BOOL:
        text = "true" if expr.value else "false"
    elif expr.dtype.is_float_format:
        text = repr(float(expr.value))
    else:
        text = str(int(expr.value))
    return text if expr.dtype in DEFAULT_CONST_DTYPES and not explicit else f"{expr.dtype.value}({text})"


def _format(expr: Expr, params: Params) -> tuple[str, int]:
    """(text, precedence of its outermost operator)."""
    if isinstance(expr, Const):
        text = _const(expr)
        return text, ATOM if not text.startswith("-") else UNARY_PRECEDENCE
    if isinstance(expr, Var):
        return expr.name, ATOM
    if isinstance(expr, LocalRef):
        return expr.name, ATOM
    if isinstance(expr, Load):
        return _access(expr.buffer, expr.index, params), ATOM
    if isinstance(expr, Cast):
        inner = _const(expr.x, explicit=True) if isinstance(expr.x, Const) else print_expr(expr.x, params)
        return f"{expr.dtype.value}({inner})", ATOM
    if isinstance(expr, Unary):
        if expr.op in PREFIX:
            operand = (f"({print_expr(expr.x, params)})" if isinstance(expr.x, Const)
                       else _operand(expr.x, UNARY_PRECEDENCE, params))
            return PREFIX[expr.op] + operand, UNARY_PRECEDENCE
        return f"{expr.op}({print_expr(expr.x, params)})", ATOM
    if isinstance(expr, Binary):
        if expr.op not in INFIX:
            return f"{expr.op}({print_expr(expr.a, params)}, {print_expr(expr.b, params)})", ATOM
        symbol, prec = INFIX[expr.op]
        left = _operand(expr.a, prec, params)
        right = _operand(expr.b, prec + 1, params)  # left-associative: a right operand of equal precedence needs ()
        tight = symbol == "*" and all(isinstance(x, (Var, Const)) for x in (expr.a, expr.b))
        return (f"{left}{symbol}{right}" if tight else f"{left} {symbol} {right}"), prec
    if isinstance(expr, Select):
        cond = _operand(expr.cond, SELECT_PRECEDENCE + 1, params)
        a = _operand(expr.a, SELECT_PRECEDENCE + 1, params)
        return f"{cond} ? {a} : {_operand(expr.b, SELECT_PRECEDENCE, params)}", SELECT_PRECEDENCE
    raise TypeError(f"unknown loop-IR expression {expr!r}")


def _operand(expr: Expr, min_precedence: int, params: Params) -> str:
    text, prec = _format(expr, params)
    return text if prec >= min_precedence else f"({text})"


def print_expr(expr: Expr, params: Params = None) -> str:
    """One expression in C-like infix form with minimal parentheses.

    ``params`` are the kernel's buffers by name: an access whose buffer has
    another dtype than the parameter reinterprets its memory and prints it
    (``%x:u32[i]``).
    """
    return _format(expr, params)[0]


def _access(buffer: Buffer, index: Expr, params: Params) -> str:
    param = params.get(buffer.name) if params is not None else None
    retyped = f":{buffer.dtype.value}" if param is not None and param.dtype is not buffer.dtype else ""
    return f"%{format_name(buffer.name)}{retyped}[{print_expr(index, params)}]"


def _loop_header(loop: Loop) -> str:
    schedule = "" if loop.kind is LoopKind.SERIAL else f"{loop.kind} "
    return f"{schedule}for {loop.var} in {loop.start}..{loop.start + loop.extent}:"


def print_stmts(stmts: tuple[Stmt, ...] | list[Stmt], depth: int = 0, params: Params = None) -> list[str]:
    """Lines for ``stmts`` indented ``depth`` levels (``params``: see ``print_expr``)."""
    pad = INDENT * depth
    lines: list[str] = []
    for stmt in stmts:
        if isinstance(stmt, Loop):
            lines.append(pad + _loop_header(stmt))
            lines.extend(print_stmts(stmt.body, depth + 1, params))
        elif isinstance(stmt, Store):
            lines.append(f"{pad}{_access(stmt.buffer, stmt.index, params)} = {print_expr(stmt.value, params)}")
        elif isinstance(stmt, Local):
            lines.append(f"{pad}let {stmt.name}: {stmt.init.dtype.value} = {print_expr(stmt.init, params)}")
        elif isinstance(stmt, Assign):
            lines.append(f"{pad}{stmt.name} = {print_expr(stmt.value, params)}")
        elif isinstance(stmt, If):
            lines.append(f"{pad}if {print_expr(stmt.cond, params)}:")
            lines.extend(print_stmts(stmt.then, depth + 1, params))
            if stmt.orelse:
                lines.append(f"{pad}else:")
                lines.extend(print_stmts(stmt.orelse, depth + 1, params))
        else:
            raise TypeError(f"unknown loop-IR statement {stmt!r}")
    return lines


def _buffer(buf: Buffer) -> str:
    return f"%{format_name(buf.name)}: {buf.dtype.value}[{buf.size}]"


def _source(source: Source) -> str:
    attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in source.attrs)
    origin = "" if source.origin is None else f" origin={quote_string(source.origin)}"
    return f"%{format_name(source.node)} ({source.op}{' {' + attrs + '}' if attrs else ''}){origin}"


def print_kernel(kernel: Kernel) -> str:
    """A kernel: its signature (buffers), the graph nodes it came from, and its body."""
    header = f"kernel {format_name(kernel.name)}({', '.join(_buffer(b) for b in kernel.buffers)})"
    if kernel.sources:
        header += "  // from " + ", ".join(_source(s) for s in kernel.sources)
    return "\n".join([header, *print_stmts(kernel.body, 1, {b.name: b for b in kernel.buffers})]) + "\n"


def _storage(where: Storage) -> str:
    if where.kind in (StorageKind.INPUT, StorageKind.OUTPUT):
        return f"{where.kind} slot {where.slot}"
    if where.kind is StorageKind.ARENA:
        return f"arena offset {where.offset}" if where.offset >= 0 else "arena (not yet placed)"
    return str(where.kind)


def print_program(program: Program, elide_constants: int | None = None) -> str:
    """A program: its signature, every buffer with its storage, constant data, the arena size, then each kernel.

    With ``elide_constants=N``, constants of more than N elements print as
    ``dense<elided: M elements>`` (for dumps; such text does not parse back).
    """
    lines = [f"program @{format_name(program.name)}"]
    by_slot: dict[tuple[StorageKind, int], str] = {(w.kind, w.slot): name for name, w in program.storage.items()
               if w.kind in (StorageKind.INPUT, StorageKind.OUTPUT)}
    for kind, signature in ((StorageKind.INPUT, program.inputs), (StorageKind.OUTPUT, program.outputs),
                            (StorageKind.VARIABLE, program.variables)):
        for slot, (name, shape, dtype) in enumerate(signature):
            buffer = by_slot.get((kind, slot), name)
            held_in = "" if buffer == name else f" in buffer %{format_name(buffer)}"
            shape_text = ", ".join(map(str, shape))
            lines.append(f"{INDENT}{kind} {slot} %{format_name(name)}: {dtype.value}[{shape_text}]{held_in}")
    lines.append(f"{INDENT}buffers:")
    width = max((len(_buffer(b)) for b in program.buffers.values()), default=0)
    for name, buf in program.buffers.items():
        where = program.storage.get(name)
        lines.append(f"{INDENT * 2}{_buffer(buf):<{width}}  {_storage(where) if where else 'no storage'}")
    if program.constants:
        lines.append(f"{INDENT}constants:")
        for name, data in program.constants.items():
            flat = np.asarray(data).reshape(-1)
            dtype = program.buffers[name].dtype if name in program.buffers else DType.from_numpy(flat.dtype)
            lines.append(f"{INDENT * 2}%{format_name(name)} = {format_dense(flat, dtype, elide_constants)}")
    lines.append(f"{INDENT}arena: {program.arena_size} bytes")
    return "\n".join([*lines, *("\n" + print_kernel(k).rstrip("\n") for k in program.kernels)]) + "\n"
