"""Parse the graph IR text format (see ``printer``) back into a ``Graph``.

The parser builds the graph through the Graph API (``add_input``,
``add_constant``, ``add_node``), so attributes are normalised against each
op's schema and output types are re-inferred; a printed type that differs
from the inferred one is an error. Omitted attributes take their schema
defaults, ``//`` comments are skipped (pipeline dumps parse as they are), and
``inline`` before an op marks the node inline (``Node.inline``).
Every error is a ``ParseError`` whose message starts with ``line L:C:`` and
says what was expected and what was found.
"""
from __future__ import annotations

import base64
import binascii
import bisect
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Graph, Value
from needlec.compiler.ir.printer import literal_array
from needlec.compiler.ir.types import TensorType
from needlec.errors import NeedlecError, ParseError

_STRING = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'  # linear time, even on unterminated strings
_TOKEN = re.compile(
    r"(?P<skip>\s+|//[^\n]*)"
    rf"|(?P<value>%(?:[A-Za-z0-9_.]+|{_STRING}))"
    rf"|(?P<global>@(?:[A-Za-z0-9_.]+|{_STRING}))"
    rf"|(?P<string>{_STRING})"
    r"|(?P<number>[-+]?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+|inf|nan)(?![A-Za-z0-9_.]))"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<punct>[(){}\[\],:=<>-])"
)
_INT = re.compile(r"[-+]?\d+")
_SIMPLE_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]{1,6}\}|.)")


@dataclass(frozen=True)
class Token:
    """One lexeme: ``kind`` is a group name of ``_TOKEN`` or ``eof``; ``value`` is decoded."""

    kind: str
    text: str
    value: Any
    line: int
    column: int

    def describe(self) -> str:
        return "end of input" if self.kind == "eof" else repr(self.text)


def _error(token: Token, message: str) -> ParseError:
    return ParseError(f"line {token.line}:{token.column}: {message}")


def _unquote(text: str, token: Token) -> str:
    """Decode a quoted string literal (``text`` includes the quotes)."""

    def escape(match: re.Match[str]) -> str:
        code = match.group(1)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if code.startswith("u{") and int(code[2:-1], 16) <= 0x10FFFF:
            return chr(int(code[2:-1], 16))
        raise _error(token, f"expected an escape (\\\\, \\\", \\n, \\t, \\r, \\u{{hex}}), found '\\{code}'")

    return _ESCAPE.sub(escape, text[1:-1])


def tokenize(text: str) -> list[Token]:
    """Split IR text into tokens (ending with an ``eof`` token); ParseError on a stray character."""
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    tokens: list[Token] = []
    pos = 0

    def located(kind: str, lexeme: str, start: int, value: Any = None) -> Token:
        line = bisect.bisect_right(line_starts, start)
        return Token(kind, lexeme, value, line, start - line_starts[line - 1] + 1)

    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            where = located("char", text[pos], pos)
            if text[pos] == '"' or text[pos:pos + 2] in ('%"', '@"'):
                raise _error(where, "expected a closing '\"' before the end of the line")
            raise _error(where, f"unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        lexeme = match.group()
        if kind != "skip":
            tok = located(kind, lexeme, pos, lexeme)
            if kind in ("value", "global"):
                tok = located(kind, lexeme, pos, _unquote(lexeme[1:], tok) if lexeme[1] == '"' else lexeme[1:])
            elif kind == "string":
                tok = located(kind, lexeme, pos, _unquote(lexeme, tok))
            tokens.append(tok)
        pos = match.end()
    tokens.append(located("eof", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over the token list; builds the graph as it goes."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.graph = Graph()
        self.scope: dict[str, Value] = {}

    # -- token helpers ------------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[min(self.pos, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.pos += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (text is None or tok.text == text)

    def expect(self, kind: str, text: str | None = None, what: str | None = None) -> Token:
        if not self.at(kind, text):
            wanted = what or (repr(text) if text is not None else f"a {kind}")
            raise _error(self.peek(), f"expected {wanted}, found {self.peek().describe()}")
        return self.next()

    def accept(self, kind: str, text: str) -> bool:
        if self.at(kind, text):
            self.pos += 1
            return True
        return False

    def comma_list(self, close: str, item: Any) -> list[Any]:
        """Items separated by ``,`` up to (and consuming) the ``close`` punctuation."""
        items: list[Any] = []
        if self.accept("punct", close):
            return items
        while True:
            items.append(item())
            if self.accept("punct", close):
                return items
            if not self.accept("punct", ","):
                raise _error(self.peek(), f"expected ',' or {close!r}, found {self.peek().describe()}")

    def integer(self) -> int:
        tok = self.expect("number", what="an integer")
        if not _INT.fullmatch(tok.text):
            raise _error(tok, f"expected an integer, found {tok.describe()}")
        return int(tok.text)

    # -- types and values -------------------------------------------------------
    def dtype(self) -> DType:
        tok = self.expect("ident", what="a dtype")
        for dtype in DType:
            if dtype.value == tok.text:
                return dtype
        raise _error(tok, f"expected a dtype ({', '.join(d.value for d in DType)}), found {tok.describe()}")

    def tensor_type(self) -> TensorType:
        dtype = self.dtype()
        self.expect("punct", "[")
        shape_token = self.peek()
        shape = self.comma_list("]", self.integer)
        if any(d < 0 for d in shape):
            raise _error(shape_token, f"expected non-negative dimensions, found {shape}")
        strides, offset = None, 0
        if self.accept("punct", "{"):
            self.expect("ident", "strides")
            self.expect("punct", "=")
            self.expect("punct", "[")
            strides_token = self.peek()
            strides = self.comma_list("]", self.integer)
            if len(strides) != len(shape):
                raise _error(strides_token, f"expected {len(shape)} strides for shape {shape}, found {len(strides)}")
            if self.accept("punct", ","):
                self.expect("ident", "offset")
                self.expect("punct", "=")
                offset = self.integer()
            self.expect("punct", "}")
        return TensorType(tuple(shape), dtype, None if strides is None else tuple(strides), offset)

    def define(self) -> tuple[Token, str, TensorType]:
        """``%name: type`` (the name must be new)."""
        tok = self.expect("value", what="a value (%name)")
        if not tok.value:
            raise _error(tok, "expected a value name, found an empty one")
        if tok.value in self.scope:
            raise _error(tok, f"value %{tok.value} is defined twice")
        self.expect("punct", ":")
        return tok, tok.value, self.tensor_type()

    def use(self) -> Value:
        tok = self.expect("value", what="a value (%name)")
        if tok.value not in self.scope:
            raise _error(tok, f"undefined value %{tok.value}")
        return self.scope[tok.value]

    def bind(self, tok: Token, declared: TensorType, value: Value, source: str) -> None:
        if value.name != tok.value:
            raise _error(tok, f"value %{tok.value} is defined twice")
        if value.type != declared:
            raise _error(tok, f"type of %{value.name}: expected {value.type} ({source}), found {declared}")
        self.scope[value.name] = value

    # -- attributes ---------------------------------------------------------------
    def attr_value(self) -> Any:
        tok = self.peek()
        if tok.kind == "number":
            self.next()
            return int(tok.text) if _INT.fullmatch(tok.text) else float(tok.text)
        if tok.kind == "string":
            self.next()
            return tok.value
        if self.accept("punct", "["):
            return tuple(self.comma_list("]", self.attr_value))
        if tok.kind == "ident":
            self.next()
            if tok.text in ("true", "false"):
                return tok.text == "true"
            for dtype in DType:
                if dtype.value == tok.text:
                    return dtype
        raise _error(tok, f"expected an attribute value (number, true/false, string, list or dtype), "
                          f"found {tok.describe()}")

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if not self.accept("punct", "{"):
            return attrs

        def item() -> None:
            key = self.expect("ident", what="an attribute name")
            if key.text in attrs:
                raise _error(key, f"attribute {key.text} is given twice")
            self.expect("punct", "=")
            attrs[key.text] = self.attr_value()

        self.comma_list("}", item)
        return attrs

    # -- constants ------------------------------------------------------------------
    def literal(self, dtype: DType) -> Any:
        """A scalar or a nested list of scalars, as tokens."""
        if self.accept("punct", "["):
            return self.comma_list("]", lambda: self.literal(dtype))
        tok = self.next()
        if dtype is DType.BOOL:
            ok = tok.kind == "ident" and tok.text in ("true", "false")
        else:
            ok = tok.kind == "number" and (dtype.is_float_format or bool(_INT.fullmatch(tok.text)))
        if not ok:
            kind = ("true or false" if dtype is DType.BOOL
                    else "a number" if dtype.is_float_format else "an integer")
            raise _error(tok, f"expected {kind} ({dtype.value} element), found {tok.describe()}")
        return tok

    def flatten(self, nested: Any, shape: tuple[int, ...], where: Token) -> list[Token]:
        if not shape:
            if isinstance(nested, list):
                raise _error(where, "expected a scalar element, found a list")
            return [nested]
        if not isinstance(nested, list) or len(nested) != shape[0]:
            found = f"{len(nested)} entries" if isinstance(nested, list) else "a scalar"
            raise _error(where, f"expected a list of {shape[0]} entries (shape {list(shape)}), found {found}")
        return [tok for item in nested for tok in self.flatten(item, shape[1:], where)]

    def dense(self, name: str, declared: TensorType) -> np.ndarray:
        self.expect("ident", "dense")
        self.expect("punct", "<")
        start = self.peek()
        dtype, shape = declared.dtype, declared.shape
        if self.accept("ident", "elided"):
            self.expect("punct", ":")
            count = self.integer()
            raise _error(start, f"constant %{name} was printed elided ({count} elements); "
                                "print the graph without elide_constants to parse it back")
        if start.kind == "string":
            self.next()
            try:
                raw = base64.b64decode(start.value, validate=True)
            except binascii.Error as exc:
                raise _error(start, f"expected base64 data, found invalid text ({exc})") from None
            if len(raw) != declared.nbytes:
                raise _error(start, f"expected {declared.nbytes} bytes for {declared}, found {len(raw)}")
            data = np.frombuffer(raw, dtype.np.newbyteorder("<")).astype(dtype.np).reshape(shape)
            if dtype is DType.BOOL and raw.translate(None, b"\x00\x01"):
                raise _error(start, "expected bool bytes 0 or 1, found other bytes")
        else:
            tokens = self.flatten(self.literal(dtype), shape, start)
            try:
                data = literal_array([t.text for t in tokens], dtype).reshape(shape)
            except (OverflowError, ValueError) as exc:
                raise _error(start, f"expected {dtype.value} elements, found out-of-range values ({exc})") from None
        self.expect("punct", ">")
        return data

    # -- statements -----------------------------------------------------------------
    def statement(self) -> None:
        results = [self.define()]
        while self.accept("punct", ","):
            results.append(self.define())
        self.expect("punct", "=")
        op = self.expect("ident", what="an op name or 'constant'")
        inline = op.text == "inline" and self.at("ident")
        if inline:
            op = self.next()
        if not inline and not self.at("punct", "(") and op.text in ("constant", "variable"):
            if len(results) != 1:
                raise _error(op, f"expected one result for a {op.text}, found {len(results)}")
            tok, name, declared = results[0]
            if not declared.is_contiguous:
                raise _error(tok, f"{op.text} %{name}: expected a contiguous type, found {declared}")
            add = self.graph.add_constant if op.text == "constant" else self.graph.add_variable
            self.bind(tok, declared, add(self.dense(name, declared), name), "from its data")
            return
        self.expect("punct", "(", what=f"'(' after op {op.text}")
        inputs = self.comma_list(")", self.use)
        attrs = self.attributes()
        origin = None
        if self.accept("ident", "origin"):
            self.expect("punct", "=")
            origin = self.expect("string", what="a quoted origin").value
        try:
            node = self.graph.add_node(op.text, inputs, attrs, names=[r[1] for r in results], origin=origin)
        except NeedlecError as exc:
            raise _error(op, str(exc)) from None
        if len(node.outputs) != len(results):
            raise _error(op, f"op {op.text} produces {len(node.outputs)} result(s), found {len(results)}")
        node.inline = inline
        for (tok, _, declared), value in zip(results, node.outputs):
            self.bind(tok, declared, value, f"inferred by {op.text}")

    def update(self) -> None:
        self.expect("ident", "update")
        start = self.peek()
        variable = self.use()
        self.expect("punct", "<")
        self.expect("punct", "-", what="'<-' in an update")
        value = self.use()
        try:
            self.graph.set_update(variable, value)
        except NeedlecError as exc:
            raise _error(start, str(exc)) from None

    def parse(self) -> Graph:
        self.expect("ident", "graph")
        self.graph.name = self.expect("global", what="a graph name (@name)").value
        self.expect("punct", "(")

        def param() -> None:
            tok, name, declared = self.define()
            if not declared.is_contiguous:
                raise _error(tok, f"graph input %{name}: expected a contiguous type, found {declared}")
            self.bind(tok, declared, self.graph.add_input(name, declared), "graph input")

        self.comma_list(")", param)
        self.expect("punct", "{")
        while self.at("value"):
            self.statement()
        while self.at("ident", "update"):
            self.update()
        self.expect("ident", "return", what="a statement (%name: type = ...), 'update' or 'return'")
        outputs: list[Value] = []
        if self.at("value"):
            outputs.append(self.use())
            while self.accept("punct", ","):
                outputs.append(self.use())
        self.expect("punct", "}", what="'}' closing the graph")
        self.expect("eof", what="end of input after the graph")
        self.graph.set_outputs(outputs)
        return self.graph


def parse_graph(text: str) -> Graph:
    """Parse IR text (as ``print_graph`` writes it) into a typed ``Graph``; ParseError on bad text."""
    return _Parser(text).parse()
