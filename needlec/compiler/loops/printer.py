"""Readable pseudo-code for loop IR: programs, kernels, statements and expressions.

Example::

    program @mlp
      input 0 %x: f32[3, 4]
      output 0 %1: f32[3, 4]
      buffers:
        %x: f32[12]  input slot 0
        %w: f32[4]   constant
        %1: f32[12]  output slot 0
      arena: 0 bytes

    kernel k0_add(%x: f32[12], %w: f32[4], %1: f32[12])  // from %1
      for i0 in 0..3:
        for i1 in 0..4:
          %1[i0*4 + i1] = %x[i0*4 + i1] + %w[i1]

Buffers print with the ``%`` of the graph values they hold (loop variables
and locals are bare names); a signature entry names its buffer when the
buffer's name differs from the graph value's.

Loops show their schedule before ``for`` when it is not serial (``parallel
for``, ``vectorize for``, ``gpu_block for``). Constants whose
dtype is not the default for their kind (i64, f32, bool) print as a
conversion (``i32(3)``), like casts; ops without a C operator (``mod`` is
floor-mod, ``pow``, ``max``, ``min``) print as calls. The text is for people; it does not
parse back.
"""
from __future__ import annotations

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.loops.ir import (Assign, Binary, Buffer, Cast, Const, Expr, If, Kernel, Load, Local,
                                       LocalRef, Loop, Program, Select, Stmt, Storage, Store, Unary, Var)

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


def _const(expr: Const) -> str:
    if expr.dtype is DType.BOOL:
        text = "true" if expr.value else "false"
    elif expr.dtype.is_float_format:
        text = repr(float(expr.value))
    else:
        text = str(int(expr.value))
    return text if expr.dtype in DEFAULT_CONST_DTYPES else f"{expr.dtype.value}({text})"


def _format(expr: Expr) -> tuple[str, int]:
    """(text, precedence of its outermost operator)."""
    if isinstance(expr, Const):
        text = _const(expr)
        return text, ATOM if not text.startswith("-") else UNARY_PRECEDENCE
    if isinstance(expr, Var):
        return expr.name, ATOM
    if isinstance(expr, LocalRef):
        return expr.name, ATOM
    if isinstance(expr, Load):
        return f"%{expr.buffer.name}[{print_expr(expr.index)}]", ATOM
    if isinstance(expr, Cast):
        return f"{expr.dtype.value}({print_expr(expr.x)})", ATOM
    if isinstance(expr, Unary):
        if expr.op in PREFIX:
            return PREFIX[expr.op] + _operand(expr.x, UNARY_PRECEDENCE), UNARY_PRECEDENCE
        return f"{expr.op}({print_expr(expr.x)})", ATOM
    if isinstance(expr, Binary):
        if expr.op not in INFIX:
            return f"{expr.op}({print_expr(expr.a)}, {print_expr(expr.b)})", ATOM
        symbol, prec = INFIX[expr.op]
        left = _operand(expr.a, prec)
        right = _operand(expr.b, prec + 1)  # left-associative: a right operand of equal precedence needs ()
        tight = symbol == "*" and all(isinstance(x, (Var, Const)) for x in (expr.a, expr.b))
        return (f"{left}{symbol}{right}" if tight else f"{left} {symbol} {right}"), prec
    if isinstance(expr, Select):
        cond = _operand(expr.cond, SELECT_PRECEDENCE + 1)
        a = _operand(expr.a, SELECT_PRECEDENCE + 1)
        return f"{cond} ? {a} : {_operand(expr.b, SELECT_PRECEDENCE)}", SELECT_PRECEDENCE
    raise TypeError(f"unknown loop-IR expression {expr!r}")


def _operand(expr: Expr, min_precedence: int) -> str:
    text, prec = _format(expr)
    return text if prec >= min_precedence else f"({text})"


def print_expr(expr: Expr) -> str:
    """One expression in C-like infix form with minimal parentheses."""
    return _format(expr)[0]


def _loop_header(loop: Loop) -> str:
    schedule = "" if loop.kind == "serial" else f"{loop.kind} "
    return f"{schedule}for {loop.var} in {loop.start}..{loop.start + loop.extent}:"


def print_stmts(stmts: tuple[Stmt, ...] | list[Stmt], depth: int = 0) -> list[str]:
    """Lines for ``stmts`` indented ``depth`` levels."""
    pad = INDENT * depth
    lines: list[str] = []
    for stmt in stmts:
        if isinstance(stmt, Loop):
            lines.append(pad + _loop_header(stmt))
            lines.extend(print_stmts(stmt.body, depth + 1))
        elif isinstance(stmt, Store):
            lines.append(f"{pad}%{stmt.buffer.name}[{print_expr(stmt.index)}] = {print_expr(stmt.value)}")
        elif isinstance(stmt, Local):
            lines.append(f"{pad}let {stmt.name}: {stmt.init.dtype.value} = {print_expr(stmt.init)}")
        elif isinstance(stmt, Assign):
            lines.append(f"{pad}{stmt.name} = {print_expr(stmt.value)}")
        elif isinstance(stmt, If):
            lines.append(f"{pad}if {print_expr(stmt.cond)}:")
            lines.extend(print_stmts(stmt.then, depth + 1))
            if stmt.orelse:
                lines.append(f"{pad}else:")
                lines.extend(print_stmts(stmt.orelse, depth + 1))
        else:
            raise TypeError(f"unknown loop-IR statement {stmt!r}")
    return lines


def _buffer(buf: Buffer) -> str:
    return f"%{buf.name}: {buf.dtype.value}[{buf.size}]"


def print_kernel(kernel: Kernel) -> str:
    """A kernel: its signature (buffers), the graph node it came from, and its body."""
    header = f"kernel {kernel.name}({', '.join(_buffer(b) for b in kernel.buffers)})"
    if kernel.sources:
        header += "  // from " + ", ".join(f"%{s.node} ({s.op})" for s in kernel.sources)
    return "\n".join([header, *print_stmts(kernel.body, 1)]) + "\n"


def _storage(where: Storage) -> str:
    if where.kind in ("input", "output"):
        return f"{where.kind} slot {where.slot}"
    if where.kind == "arena":
        return f"arena offset {where.offset}" if where.offset >= 0 else "arena (not yet placed)"
    return where.kind


def print_program(program: Program) -> str:
    """A program: its signature, every buffer with its storage, the arena size, then each kernel."""
    lines = [f"program @{program.name}"]
    by_slot = {(w.kind, w.slot): name for name, w in program.storage.items() if w.kind in ("input", "output")}
    for kind, signature in (("input", program.inputs), ("output", program.outputs)):
        for slot, (name, shape, dtype) in enumerate(signature):
            buffer = by_slot.get((kind, slot), "?")
            held_in = "" if buffer == name else f" in buffer %{buffer}"
            lines.append(f"{INDENT}{kind} {slot} %{name}: {dtype.value}[{', '.join(map(str, shape))}]{held_in}")
    lines.append(f"{INDENT}buffers:")
    width = max((len(_buffer(b)) for b in program.buffers.values()), default=0)
    for name, buf in program.buffers.items():
        where = program.storage.get(name)
        lines.append(f"{INDENT * 2}{_buffer(buf):<{width}}  {_storage(where) if where else 'no storage'}")
    lines.append(f"{INDENT}arena: {program.arena_size} bytes")
    return "\n".join([*lines, *("\n" + print_kernel(k).rstrip("\n") for k in program.kernels)]) + "\n"
