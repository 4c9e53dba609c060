"""Parse loop IR text (see ``printer``) back into a ``Program``: print -> parse -> print is the identity.

The text is line oriented: a statement per line, blocks by indentation
(two spaces per level, as the printer writes them). Each line is tokenized
on its own and read by the graph parser's token helpers (``ir.parser``), so
names, attributes and ``dense<...>`` constants read exactly as in the graph
IR. Whole-line ``//`` comments and blank lines are skipped (pipeline dumps
parse as they are). The parser checks names (undefined buffers, loop
variables and locals, duplicates) and that a ``let`` declares its
initialiser's dtype; everything else is the verifier's job. Every error is a
``ParseError`` whose message starts with ``line L:C:``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.parser import Token, _error, _Parser, _unquote
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.ir import (Assign, Binary, BinaryOp, Buffer, Cast, Const, Expr, If, Kernel, Load,
                                       Local, LocalRef, Loop, LoopKind, Program, Select, Source, Stmt, Storage,
                                       StorageKind, Store, Unary, UnaryOp, Var)
from needlec.compiler.loops.printer import INDENT, INFIX, PREFIX, SELECT_PRECEDENCE
from needlec.errors import ParseError

_STRING = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_TOKEN = re.compile(
    r"(?P<skip>[ \t]+)"
    rf"|(?P<value>%(?:[A-Za-z0-9_.]+|{_STRING}))"
    rf"|(?P<global>@(?:[A-Za-z0-9_.]+|{_STRING}))"
    rf"|(?P<string>{_STRING})"
    r"|(?P<number>[-+]?(?:\d+\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+|inf|nan)(?![A-Za-z0-9_]))"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<punct>\.\.|>>>|<<|>>|<=|>=|==|!=|//|[-+*/&|^!?:=<>(){}\[\],])"
)
_INFIX_BY_SYMBOL = {symbol: (BinaryOp(op), prec) for op, (symbol, prec) in INFIX.items()}
_PREFIX_BY_SYMBOL = {symbol: UnaryOp(op) for op, symbol in PREFIX.items()}
_STORAGE_WORDS = {k.value: k for k in StorageKind}


def _tokenize(text: str, line: int) -> list[Token]:
    """The tokens of one line (ending with an ``eof`` token)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ParseError(f"line {line}:{pos + 1}: unexpected character {text[pos]!r}")
        kind, lexeme = match.lastgroup or "", match.group()
        if kind != "skip":
            tok = Token(kind, lexeme, lexeme, line, pos + 1)
            if kind in ("value", "global"):
                tok = Token(kind, lexeme, _unquote(lexeme[1:], tok) if lexeme[1] == '"' else lexeme[1:], line, pos + 1)
            elif kind == "string":
                tok = Token(kind, lexeme, _unquote(lexeme, tok), line, pos + 1)
            tokens.append(tok)
        pos = match.end()
    tokens.append(Token("eof", "", "", line, len(text) + 1))
    return tokens


@dataclass(frozen=True)
class _Line:
    """One non-blank source line: its number, indentation depth and text."""

    number: int
    depth: int
    text: str


def _lines(text: str) -> list[_Line]:
    lines = []
    for number, raw in enumerate(text.split("\n"), 1):
        stripped = raw.lstrip(" ")
        if not stripped.strip() or stripped.startswith("//"):
            continue
        indent = len(raw) - len(stripped)
        if indent % len(INDENT):
            raise ParseError(f"line {number}:1: expected indentation by {len(INDENT)} spaces, found {indent}")
        lines.append(_Line(number, indent // len(INDENT), stripped.rstrip()))
    return lines


class _LineParser(_Parser):
    """The graph parser's token helpers over the tokens of one line, plus loop-IR expressions."""

    def __init__(self, line: _Line, names: dict[str, DType | None], buffers: dict[str, Buffer]) -> None:
        self.tokens = _tokenize(INDENT * line.depth + line.text, line.number)
        self.pos = 0
        self.names = names  # loop variables (None) and locals (their dtype) declared so far
        self.buffers = buffers

    def end(self) -> None:
        self.expect("eof", what="the end of the line")

    def name(self) -> str:
        return str(self.expect("ident", what="a name").text)

    def new_name(self) -> str:
        tok = self.peek()
        name = self.name()
        if name in self.names:
            raise _error(tok, f"{name} is declared twice")
        return name

    def buffer(self) -> Buffer:
        tok = self.expect("value", what="a buffer (%name)")
        if tok.value not in self.buffers:
            raise _error(tok, f"undefined buffer %{tok.value}")
        return self.buffers[tok.value]

    def access(self) -> tuple[Buffer, Expr]:
        """``%name[index]``, or ``%name:dtype[index]`` reading the buffer's memory as ``dtype``."""
        buffer = self.buffer()
        if self.accept("punct", ":"):
            buffer = replace(buffer, dtype=self.dtype())
        self.expect("punct", "[")
        index = self.expr()
        self.expect("punct", "]")
        return buffer, index

    def buffer_decl(self) -> Buffer:
        """``%name: dtype[size]``."""
        tok = self.expect("value", what="a buffer (%name)")
        self.expect("punct", ":")
        dtype = self.dtype()
        self.expect("punct", "[")
        size = self.integer()
        self.expect("punct", "]")
        return Buffer(tok.value, dtype, size)

    # -- expressions (precedence climbing, mirroring printer._format) --------------
    def expr(self) -> Expr:
        cond = self.binary(SELECT_PRECEDENCE + 1)
        if not self.accept("punct", "?"):
            return cond
        a = self.binary(SELECT_PRECEDENCE + 1)
        self.expect("punct", ":")
        return Select(cond, a, self.expr())

    def binary(self, min_precedence: int) -> Expr:
        left = self.unary()
        while True:
            tok = self.peek()
            found = _INFIX_BY_SYMBOL.get(tok.text) if tok.kind == "punct" else None
            if found is None or found[1] < min_precedence:
                return left
            self.next()
            left = Binary(found[0], left, self.binary(found[1] + 1))

    def unary(self) -> Expr:
        tok = self.peek()
        if tok.kind == "punct" and tok.text in _PREFIX_BY_SYMBOL:
            self.next()
            return Unary(_PREFIX_BY_SYMBOL[tok.text], self.unary())
        return self.atom()

    def literal_const(self, dtype: DType | None) -> Const:
        """A number or ``true``/``false`` as a constant of ``dtype`` (None: the literal's default dtype)."""
        tok = self.next()
        is_float = tok.kind == "number" and not re.fullmatch(r"[-+]?\d+", tok.text)
        if tok.kind == "ident" and tok.text in ("true", "false"):
            dtype = dtype or DType.BOOL
        elif tok.kind == "number":
            dtype = dtype or (DType.F32 if is_float else DType.I64)
        else:
            raise _error(tok, f"expected a constant, found {tok.describe()}")
        if dtype is DType.BOOL:
            if tok.kind != "ident":
                raise _error(tok, f"expected true or false, found {tok.describe()}")
            return Const(tok.text == "true", dtype)
        if tok.kind != "number" or is_float and not dtype.is_float_format:
            raise _error(tok, f"expected {'a number' if dtype.is_float_format else 'an integer'} "
                              f"({dtype.value} constant), found {tok.describe()}")
        return Const(float(tok.text) if dtype.is_float_format else int(tok.text), dtype)

    def atom(self) -> Expr:
        tok = self.peek()
        if tok.kind == "number" or tok.kind == "ident" and tok.text in ("true", "false"):
            return self.literal_const(None)
        if tok.kind == "value":
            return Load(*self.access())
        if self.accept("punct", "("):
            inner = self.expr()
            self.expect("punct", ")")
            return inner
        if tok.kind != "ident":
            raise _error(tok, f"expected an expression, found {tok.describe()}")
        self.next()
        if self.at("punct", "("):
            return self.call(tok)
        if tok.text not in self.names:
            raise _error(tok, f"undefined name {tok.text}")
        dtype = self.names[tok.text]
        return Var(tok.text) if dtype is None else LocalRef(tok.text, dtype)

    def call(self, tok: Token) -> Expr:
        """``dtype(...)`` (a constant or a cast) or ``op(...)`` (a unary or binary op)."""
        self.expect("punct", "(")
        dtype = next((d for d in DType if d.value == tok.text), None)
        if dtype is not None:
            after = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else self.peek()
            literal = self.peek().kind == "number" or self.peek().text in ("true", "false")
            result: Expr = (self.literal_const(dtype) if literal and after.text == ")"
                            else Cast(dtype, self.expr()))
        elif tok.text in UnaryOp._value2member_map_:
            result = Unary(tok.text, self.expr())
        elif tok.text in BinaryOp._value2member_map_:
            a = self.expr()
            self.expect("punct", ",")
            result = Binary(tok.text, a, self.expr())
        else:
            raise _error(tok, f"expected a dtype or an op before '(', found {tok.describe()}")
        self.expect("punct", ")")
        return result


class _ProgramParser:
    """Reads the lines of a program: header, signature, buffers, constants, arena, kernels."""

    def __init__(self, text: str) -> None:
        self.lines = _lines(text)
        self.pos = 0
        self.buffers: dict[str, Buffer] = {}

    def line(self, names: dict[str, DType | None] | None = None,
             buffers: dict[str, Buffer] | None = None) -> _LineParser:
        """A parser for the next line, resolving ``names`` and ``buffers`` (default: the program's buffers)."""
        if self.pos >= len(self.lines):
            last = self.lines[-1].number if self.lines else 0
            raise ParseError(f"line {last + 1}:1: expected more of the program, found end of input")
        line = self.lines[self.pos]
        self.pos += 1
        return _LineParser(line, {} if names is None else names, self.buffers if buffers is None else buffers)

    def peek(self, depth: int, word: str | None = None) -> bool:
        """Whether the next line is at ``depth`` (and starts with ``word``)."""
        if self.pos >= len(self.lines) or self.lines[self.pos].depth != depth:
            return False
        return word is None or re.match(rf"{re.escape(word)}\b", self.lines[self.pos].text) is not None

    def parse(self) -> Program:
        if not self.lines:
            raise ParseError("line 1:1: expected 'program', found end of input")
        p = self.line()
        p.expect("ident", "program")
        name = str(p.expect("global", what="a program name (@name)").value)
        p.end()
        signature: dict[str, list[tuple[str, tuple[int, ...], DType]]] = {"input": [], "output": [], "variable": []}
        while any(self.peek(1, kind) for kind in signature):
            self.signature_entry(signature)
        storage = self.buffer_section()
        constants = self.constant_section()
        p = self.line()
        p.expect("ident", "arena")
        p.expect("punct", ":")
        arena_size = p.integer()
        p.expect("ident", "bytes")
        p.end()
        kernels = []
        while self.pos < len(self.lines):
            kernels.append(self.kernel())
        return Program(name, kernels, self.buffers, storage, constants, signature["input"], signature["output"],
                       signature["variable"], arena_size)

    def signature_entry(self, signature: dict[str, list[tuple[str, tuple[int, ...], DType]]]) -> None:
        """``input 0 %x: f32[3, 4] [in buffer %b]`` (the buffer is derived from storage, so it is only read)."""
        p = self.line()
        kind = p.name()
        slot_tok = p.peek()
        if p.integer() != len(signature[kind]):
            raise _error(slot_tok, f"expected {kind} slot {len(signature[kind])}, found {slot_tok.text}")
        value = p.expect("value", what="a value (%name)").value
        p.expect("punct", ":")
        dtype = p.dtype()
        p.expect("punct", "[")
        shape = tuple(p.comma_list("]", p.integer))
        if p.accept("ident", "in"):
            p.expect("ident", "buffer")
            p.expect("value", what="a buffer (%name)")
        p.end()
        signature[kind].append((value, shape, dtype))

    def buffer_section(self) -> dict[str, Storage]:
        p = self.line()
        p.expect("ident", "buffers")
        p.expect("punct", ":")
        p.end()
        storage: dict[str, Storage] = {}
        while self.peek(2):
            p = self.line()
            start = p.peek()
            buffer = p.buffer_decl()
            if buffer.name in self.buffers:
                raise _error(start, f"buffer %{buffer.name} is declared twice")
            self.buffers[buffer.name] = buffer
            where = self.storage(p)
            if where is not None:
                storage[buffer.name] = where
            p.end()
        return storage

    def storage(self, p: _LineParser) -> Storage | None:
        """``input slot N``, ``output slot N``, ``constant``, ``variable``, ``arena offset N``,
        ``arena (not yet placed)`` or ``no storage`` (None)."""
        tok = p.expect("ident", what="a storage kind")
        if tok.text == "no":
            p.expect("ident", "storage")
            return None
        if tok.text not in _STORAGE_WORDS:
            raise _error(tok, f"expected a storage kind ({', '.join(_STORAGE_WORDS)} or no storage), "
                              f"found {tok.describe()}")
        kind = _STORAGE_WORDS[tok.text]
        if kind in (StorageKind.INPUT, StorageKind.OUTPUT):
            p.expect("ident", "slot")
            return Storage(kind, p.integer())
        if kind is StorageKind.ARENA:
            if p.accept("ident", "offset"):
                return Storage(kind, offset=p.integer())
            for word in ("(", "not", "yet", "placed", ")"):
                p.expect("punct" if word in "()" else "ident", word)
        return Storage(kind)

    def constant_section(self) -> dict[str, object]:
        constants: dict[str, object] = {}
        if not self.peek(1, "constants"):
            return constants
        p = self.line()
        p.expect("ident", "constants")
        p.expect("punct", ":")
        p.end()
        while self.peek(2):
            p = self.line()
            start = p.peek()
            buffer = p.buffer()
            if buffer.name in constants:
                raise _error(start, f"constant %{buffer.name} is given twice")
            p.expect("punct", "=")
            constants[buffer.name] = p.dense(buffer.name, TensorType((buffer.size,), buffer.dtype))
            p.end()
        return constants

    def kernel(self) -> Kernel:
        depth = self.lines[self.pos].depth
        p = self.line()
        if depth != 0:
            raise _error(p.peek(), "expected a kernel at the start of a line, found an indented line")
        p.expect("ident", "kernel")
        tok = p.next()
        if tok.kind not in ("ident", "string"):
            raise _error(tok, f"expected a kernel name, found {tok.describe()}")
        p.expect("punct", "(")
        params: list[Buffer] = p.comma_list(")", lambda: self.parameter(p))
        sources: list[Source] = []
        if p.accept("punct", "//"):
            p.expect("ident", "from")
            sources = [self.source(p)]
            while p.accept("punct", ","):
                sources.append(self.source(p))
        p.end()
        names: dict[str, DType | None] = {}
        body = self.block(1, names, {b.name: b for b in params})
        return Kernel(str(tok.value), tuple(params), body, tuple(sources))

    def parameter(self, p: _LineParser) -> Buffer:
        start = p.peek()
        buffer = p.buffer_decl()
        if self.buffers.get(buffer.name) != buffer:
            declared = self.buffers.get(buffer.name)
            raise _error(start, f"parameter %{buffer.name}: expected the program's buffer "
                                f"{'none' if declared is None else f'{declared.dtype.value}[{declared.size}]'}, "
                                f"found {buffer.dtype.value}[{buffer.size}]")
        return buffer

    @staticmethod
    def source(p: _LineParser) -> Source:
        """``%node (op {k=v, ...})``, then ``origin="..."`` where the node has one."""
        node = p.expect("value", what="a source node (%name)").value
        p.expect("punct", "(")
        op = p.name()
        attrs = p.attributes()
        p.expect("punct", ")")
        origin = None
        if p.accept("ident", "origin"):
            p.expect("punct", "=")
            origin = p.expect("string", what="a quoted origin").value
        return Source(node, op, tuple(sorted(attrs.items())), origin)

    def block(self, depth: int, names: dict[str, DType | None], buffers: dict[str, Buffer]) -> tuple[Stmt, ...]:
        stmts: list[Stmt] = []
        while self.pos < len(self.lines) and self.lines[self.pos].depth >= depth:
            if self.lines[self.pos].depth > depth:
                line = self.lines[self.pos]
                raise ParseError(f"line {line.number}:1: unexpected indentation (expected depth {depth})")
            stmts.append(self.statement(depth, names, buffers))
        return tuple(stmts)

    def statement(self, depth: int, names: dict[str, DType | None], buffers: dict[str, Buffer]) -> Stmt:
        p = self.line(names, buffers)
        tok = p.peek()
        if tok.kind == "value":
            buffer, index = p.access()
            p.expect("punct", "=")
            value = p.expr()
            p.end()
            return Store(buffer, index, value)
        word = p.name()
        if word == "let":
            name = p.new_name()
            p.expect("punct", ":")
            dtype = p.dtype()
            p.expect("punct", "=")
            init_tok = p.peek()
            init = p.expr()
            p.end()
            if init.dtype is not dtype:
                raise _error(init_tok, f"let {name}: declared {dtype.value}, found a {init.dtype.value} value")
            names[name] = dtype
            return Local(name, init)
        if word == "if":
            cond = p.expr()
            p.expect("punct", ":")
            p.end()
            then = self.block(depth + 1, names, buffers)
            orelse: tuple[Stmt, ...] = ()
            if self.peek(depth, "else"):
                q = self.line(names, buffers)
                q.expect("ident", "else")
                q.expect("punct", ":")
                q.end()
                orelse = self.block(depth + 1, names, buffers)
            return If(cond, then, orelse)
        kind = LoopKind.SERIAL
        if word in LoopKind._value2member_map_ and p.at("ident", "for"):
            kind = LoopKind(word)
            word = p.name()
        if word == "for":
            var = p.new_name()
            p.expect("ident", "in")
            start = p.integer()
            p.expect("punct", "..")
            stop_tok = p.peek()
            stop = p.integer()
            if stop < start:
                raise _error(stop_tok, f"expected a loop end of at least {start}, found {stop}")
            p.expect("punct", ":")
            p.end()
            names[var] = None
            return Loop(var, stop - start, self.block(depth + 1, names, buffers), kind, start)
        if word not in names or names[word] is None:
            raise _error(tok, f"expected a statement (for, let, if, a store or an assignment to a local), "
                              f"found {tok.describe()}")
        p.expect("punct", "=")
        value = p.expr()
        p.end()
        return Assign(word, value)


def parse_program(text: str) -> Program:
    """The ``Program`` that ``text`` (as ``printer.print_program`` writes it) describes."""
    return _ProgramParser(text).parse()
