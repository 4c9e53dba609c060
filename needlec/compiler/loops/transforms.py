"""Schedule transformations on loop IR, and the generic walkers they are built from.

Every transformation is a pure function ``Kernel -> Kernel`` that addresses a
loop by its variable name (names are unique within a kernel) and raises
``CodegenError`` naming the kernel and the loop when a request is illegal:

* ``split(kernel, var, factor)``: ``var`` becomes ``var_o * factor + var_i``;
* ``reorder(kernel, outer, inner)``: interchange two directly nested loops;
* ``unroll(kernel, var)``: replace a small loop by copies of its body;
* ``vectorize(kernel, var)`` / ``parallel(kernel, var)``: set the loop's kind.

Kinds are set last: split, reorder and unroll only accept ``serial`` loops,
so a transformation never silently drops or misplaces a schedule.

Legality. Loop bounds are constants, so restructuring never changes which
iterations run; what can change is their order. Split and unroll keep the
order, so they are legal on any serial loop. ``reorder`` and ``parallel``
prove that every element is still accessed in the same order: each buffer
the nest writes must be accessed at one affine index that pins down one of
the loops involved (``_separated_by``, which also understands the guards a
split leaves), and no local declared outside the nest may be assigned in it.

The walkers (``walk``, ``map_exprs``, ``map_stmts``, ``substitute``,
``rename``) treat any dataclass field holding an ``Expr`` or a tuple of
``Stmt`` as a child, so they work unchanged on node types added later.
"""
from __future__ import annotations

from dataclasses import fields, replace
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.loops.builder import add, const, mul
from needlec.compiler.loops.ir import (Assign, Binary, Const, Expr, If, Kernel, Load, Local, LocalRef, Loop,
                                       LoopKind, Stmt, Store, Var)
from needlec.errors import CodegenError

Node = Expr | Stmt
T = TypeVar("T", Expr, Stmt, Kernel, tuple)
KernelOrBody = TypeVar("KernelOrBody", Kernel, tuple)

MAX_UNROLL = 64
"""The largest extent ``unroll`` accepts: full unrolling multiplies code size by the extent."""

SPLIT_TAILS = ("guard", "peel")


# -- generic walkers ------------------------------------------------------------
def _is_body(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(s, Stmt) for s in value)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(node: object) -> tuple[str, ...]:
    """``node``'s dataclass field names, cached per class (why: ``dataclasses.fields`` per node dominated walks and
    rewrites of whole kernels)."""
    names = _FIELD_NAMES.get(type(node))
    if names is None:
        names = _FIELD_NAMES[type(node)] = tuple(f.name for f in fields(node))  # type: ignore[arg-type]
    return names


def children(node: Node | Kernel) -> Iterator[Node]:
    """The direct child expressions and statements of ``node``, in field order."""
    for name in _field_names(node):
        value = getattr(node, name)
        if isinstance(value, Expr):
            yield value
        elif isinstance(value, tuple):
            yield from (stmt for stmt in value if isinstance(stmt, Stmt))


def walk(node: Node | Kernel | Sequence[Stmt]) -> Iterator[Node]:
    """Every statement and expression under ``node`` (itself included), pre-order."""
    stack: list[Node | Kernel] = [node] if isinstance(node, (Expr, Stmt, Kernel)) else list(reversed(node))
    while stack:
        current = stack.pop()
        if not isinstance(current, Kernel):
            yield current
        stack.extend(reversed(tuple(children(current))))


def statements(stmts: Sequence[Stmt]) -> Iterator[Stmt]:
    """Every statement under ``stmts`` (loop and ``if`` bodies included), pre-order, without walking expressions:
    cheaper than ``walk`` where only statements matter (stores are never inside expressions)."""
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, Loop):
            yield from statements(stmt.body)
        elif isinstance(stmt, If):
            yield from statements(stmt.then + stmt.orelse)


def _map(node: T, on_expr: Callable[[Expr], Expr], on_stmt: Callable[[Stmt], Sequence[Stmt]]) -> T:
    """Rebuild ``node`` bottom-up: children first, then ``on_expr``/``on_stmt`` on the rebuilt node.

    Unchanged subtrees are returned as the same objects.
    """
    if isinstance(node, tuple):
        body = tuple(out for stmt in node for out in on_stmt(_map(stmt, on_expr, on_stmt)))
        same = len(body) == len(node) and all(a is b for a, b in zip(body, node))
        return node if same else body  # type: ignore[return-value]
    changes: dict[str, object] = {}
    for name in _field_names(node):
        value = getattr(node, name)
        if isinstance(value, Expr):
            new = on_expr(_map(value, on_expr, on_stmt))
        elif _is_body(value) and value:
            new = _map(value, on_expr, on_stmt)
        else:
            continue
        if new is not value:
            changes[name] = new
    return replace(node, **changes) if changes else node  # type: ignore[type-var,arg-type]


def _keep(stmt: Stmt) -> Sequence[Stmt]:
    return (stmt,)


def _same(expr: Expr) -> Expr:
    return expr


def _map_one_to_one(node: T, on_expr: Callable[[Expr], Expr], on_stmt: Callable[[Stmt], Sequence[Stmt]]) -> T:
    """``_map`` that also applies the callbacks to ``node`` itself (one statement must stay one)."""
    if isinstance(node, Expr):
        return on_expr(_map(node, on_expr, on_stmt))  # type: ignore[return-value]
    if isinstance(node, Stmt):
        (result,) = _map((node,), on_expr, on_stmt)
        return result
    return _map(node, on_expr, on_stmt)


def map_exprs(node: T, fn: Callable[[Expr], Expr]) -> T:
    """``node`` with every expression rewritten bottom-up by ``fn`` (``fn`` sees rebuilt children)."""
    return _map_one_to_one(node, fn, _keep)


def map_stmts(node: KernelOrBody, fn: Callable[[Stmt], Sequence[Stmt]]) -> KernelOrBody:
    """A kernel or body with every statement replaced, bottom-up, by the statements ``fn`` returns for it."""
    return _map(node, _same, fn)


def fold(expr: Expr) -> Expr:
    """Fold ``expr`` if it is i64 add/sub/mul of constants or adds 0 / multiplies by 0 or 1.

    Why: substituting constants into index expressions (unroll, peeling)
    should leave short indices in the IR that dumps show.
    """
    if not (isinstance(expr, Binary) and expr.dtype is DType.I64 and expr.op in ("add", "sub", "mul")):
        return expr
    a, b = expr.a, expr.b
    if isinstance(a, Const) and isinstance(b, Const):
        value = {"add": a.value + b.value, "sub": a.value - b.value, "mul": a.value * b.value}[expr.op]
        return Const((value + 2**63) % 2**64 - 2**63)  # wrap like the i64 arithmetic LLVM emits
    identity = 1 if expr.op == "mul" else 0
    if isinstance(b, Const) and b.value == identity:
        return a
    if isinstance(a, Const) and a.value == identity and expr.op != "sub":
        return b
    if expr.op == "mul" and any(isinstance(x, Const) and x.value == 0 for x in (a, b)):
        return Const(0)
    return expr


def substitute(node: T, mapping: Mapping[str, Expr]) -> T:
    """``node`` with each loop variable named in ``mapping`` replaced by its expression (then folded)."""
    def replace_var(expr: Expr) -> Expr:
        if isinstance(expr, Var) and expr.name in mapping:
            return mapping[expr.name]
        return fold(expr)

    return map_exprs(node, replace_var)


def declared_names(node: Node | Kernel | Sequence[Stmt]) -> set[str]:
    """Loop variables and locals declared under ``node``."""
    return {n.var if isinstance(n, Loop) else n.name for n in walk(node) if isinstance(n, (Loop, Local))}


def rename(node: T, mapping: Mapping[str, str]) -> T:
    """``node`` with loop variables and locals renamed (declarations and uses)."""
    def on_expr(expr: Expr) -> Expr:
        if isinstance(expr, Var) and expr.name in mapping:
            return Var(mapping[expr.name])
        if isinstance(expr, LocalRef) and expr.name in mapping:
            return LocalRef(mapping[expr.name], expr.dtype)
        return expr

    def on_stmt(stmt: Stmt) -> Sequence[Stmt]:
        if isinstance(stmt, Loop) and stmt.var in mapping:
            return (replace(stmt, var=mapping[stmt.var]),)
        if isinstance(stmt, (Local, Assign)) and stmt.name in mapping:
            return (replace(stmt, name=mapping[stmt.name]),)
        return (stmt,)

    return _map_one_to_one(node, on_expr, on_stmt)


def fresh_name(hint: str, taken: set[str]) -> str:
    """``hint`` (or ``hint_2``, ``hint_3``...) not in ``taken``; the result is added to ``taken``."""
    name, n = hint, 1
    while name in taken:
        n += 1
        name = f"{hint}_{n}"
    taken.add(name)
    return name


def _fresh_copy(body: tuple[Stmt, ...], suffix: str, taken: set[str]) -> tuple[Stmt, ...]:
    """``body`` with every name it declares renamed to an unused ``name_suffix``."""
    return rename(body, {name: fresh_name(f"{name}_{suffix}", taken) for name in sorted(declared_names(body))})


# -- addressing loops -----------------------------------------------------------
def find_loop(kernel: Kernel, var: str) -> Loop:
    """The loop of ``kernel`` whose variable is ``var``."""
    found = [n for n in walk(kernel) if isinstance(n, Loop) and n.var == var]
    if not found:
        names = ", ".join(n.var for n in walk(kernel) if isinstance(n, Loop)) or "none"
        raise CodegenError(f"kernel {kernel.name}: no loop {var} (loops: {names})")
    if len(found) > 1:
        raise CodegenError(f"kernel {kernel.name}: {len(found)} loops are named {var}; names must be unique")
    return found[0]


def replace_loop(kernel: Kernel, var: str, fn: Callable[[Loop], Sequence[Stmt]]) -> Kernel:
    """``kernel`` with loop ``var`` replaced by the statements ``fn(loop)`` returns."""
    find_loop(kernel, var)
    return map_stmts(kernel, lambda s: fn(s) if isinstance(s, Loop) and s.var == var else (s,))


def _error(kernel: Kernel, what: str, var: str, why: str) -> CodegenError:
    return CodegenError(f"kernel {kernel.name}: cannot {what} loop {var}: {why}")


def _require_serial(kernel: Kernel, loop: Loop, what: str) -> None:
    if loop.kind is not LoopKind.SERIAL:
        raise _error(kernel, what, loop.var, f"it is already {loop.kind}; set kinds after restructuring")


# -- legality -------------------------------------------------------------------
def affine(expr: Expr) -> dict[str, int] | None:
    """``expr`` as ``{var: coefficient, "": constant}`` if it is affine in loop variables, else None."""
    if isinstance(expr, Const) and expr.dtype is DType.I64:
        return {"": int(expr.value)}
    if isinstance(expr, Var):
        return {expr.name: 1}
    if not (isinstance(expr, Binary) and expr.op in ("add", "sub", "mul")):
        return None
    a, b = affine(expr.a), affine(expr.b)
    if a is None or b is None:
        return None
    if expr.op == "mul":
        if set(a) == {""}:
            return {k: v * a[""] for k, v in b.items()}
        if set(b) == {""}:
            return {k: v * b[""] for k, v in a.items()}
        return None
    sign = -1 if expr.op == "sub" else 1
    return {k: a.get(k, 0) + sign * b.get(k, 0) for k in set(a) | set(b)}


Bound = tuple[dict[str, int], int]
"""A guard ``affine < limit`` from an enclosing ``If``: (affine form, limit)."""


def _accesses(body: tuple[Stmt, ...], guards: tuple[Expr, ...]) -> Iterator[tuple[Load | Store, tuple[Expr, ...]]]:
    """Every load and store under ``body`` with the ``If`` conditions known to hold where it runs."""
    for stmt in body:
        for name in _field_names(stmt):
            value = getattr(stmt, name)
            if isinstance(value, Expr):
                yield from ((n, guards) for n in walk(value) if isinstance(n, Load))
            elif _is_body(value):
                inside = guards + (stmt.cond,) if isinstance(stmt, If) and name == "then" else guards
                yield from _accesses(value, inside)
        if isinstance(stmt, Store):
            yield stmt, guards


def _bound(cond: Expr) -> Bound | None:
    if isinstance(cond, Binary) and cond.op == "lt" and isinstance(cond.b, Const):
        form = affine(cond.a)
        if form is not None:
            return form, int(cond.b.value)
    return None


def _span(terms: Mapping[str, int], loops: Mapping[str, Loop], bounds: Sequence[Bound]) -> int:
    """An upper bound on ``max - min`` of ``sum(terms[v] * v)`` over ``loops``, within ``bounds``.

    A guard ``L < limit`` (from a guarded ``split``) caps a group of terms
    that is a multiple ``k*L`` of its form at ``|k| * (limit - 1 - min L)``.
    """
    terms = {v: c for v, c in terms.items() if c}
    width = 0
    for form, limit in bounds:
        vs = [v for v in form if v and form[v]]
        if not vs or any(v not in loops for v in vs) or terms.get(vs[0], 0) % form[vs[0]]:
            continue
        k = terms.get(vs[0], 0) // form[vs[0]]
        if k == 0 or any(terms.get(v, 0) != k * form[v] for v in vs):
            continue
        ends = [(form[v] * loops[v].start, form[v] * (loops[v].start + loops[v].extent - 1)) for v in vs]
        low = sum(min(e) for e in ends) + form.get("", 0)
        high = min(sum(max(e) for e in ends) + form.get("", 0), limit - 1)
        width += abs(k) * max(high - low, 0)
        for v in vs:
            del terms[v]
    return width + sum(abs(c) * max(loops[v].extent - 1, 0) for v, c in terms.items() if v in loops)


def _separated_by(var: str, index: Mapping[str, int], loops: Mapping[str, Loop], bounds: Sequence[Bound]) -> bool:
    """True if two iterations of the nest ``loops`` that reach the same ``index`` have equal ``var``.

    ``index = a*var + S``; equal indices need ``|a| * |var1 - var2| = |S2 - S1|
    <= span(S)``, so ``|a| > span(S)`` forces ``var1 == var2``.
    """
    rest = {v: c for v, c in index.items() if v in loops and v != var}
    return loops[var].extent <= 1 or abs(index.get(var, 0)) > _span(rest, loops, bounds)


def independence_problem(nest: Loop, second: Loop | None = None) -> str | None:
    """Why interchanging ``nest`` with ``second`` (or running ``nest``'s iterations in parallel) is unsafe, or None.

    Safe means the accesses to every element keep their order: for each
    buffer the nest writes, all accesses use one affine index, and two
    iterations reaching the same element share ``nest``'s variable (or, for
    an interchange, ``second``'s); locals declared outside are never assigned.
    """
    declared = declared_names(nest)
    for n in walk(nest):
        if isinstance(n, Assign) and n.name not in declared:
            return f"it assigns local {n.name} declared outside the loop"
    loops = {n.var: n for n in walk(nest) if isinstance(n, Loop)}
    pinned = [nest.var] if second is None else [nest.var, second.var]
    accesses = list(_accesses((nest,), ()))
    for name in sorted({n.buffer.name for n, _ in accesses if isinstance(n, Store)}):
        mine = [(n, guards) for n, guards in accesses if n.buffer.name == name]
        indices = {n.index for n, _ in mine}
        if len(indices) > 1:
            return f"buffer {name} is written and accessed at different indices"
        index = affine(indices.pop())
        common = set.intersection(*(set(guards) for _, guards in mine))
        bounds = [b for b in map(_bound, common) if b is not None]
        if index is None or not any(_separated_by(v, index, loops, bounds) for v in pinned):
            return f"iterations may reach the same element of buffer {name}"
    return None


def iterations_disjoint(loop: Loop) -> bool:
    """Whether ``loop``'s iterations may run at once, each statement for all iterations before the next.

    True when no local declared outside is assigned and no two different
    iterations touch a common element of a buffer the loop writes: every
    access to such a buffer is affine, with the same coefficient ``c`` of
    ``loop``'s variable and the same coefficients of enclosing loops'
    variables, and the rest (constants and nested loops' terms) ranges over
    an interval narrower than ``|c|``. Unlike ``independence_problem`` it
    allows several indices per buffer (as unrolling and separate nests leave
    them) and ignores ``if`` guards.
    """
    declared = declared_names(loop)
    if any(isinstance(n, Assign) and n.name not in declared for n in walk(loop)):
        return False
    inner = {n.var: n for n in walk(loop.body) if isinstance(n, Loop)}
    accesses = [n for n, _ in _accesses((loop,), ())]
    for name in {n.buffer.name for n in accesses if isinstance(n, Store)}:
        forms = [affine(n.index) for n in accesses if n.buffer.name == name]
        if any(f is None for f in forms):
            return False
        fixed = [{v: c for v, c in f.items() if v and v not in inner and c} for f in forms]  # type: ignore[union-attr]
        if any(t != fixed[0] for t in fixed):
            return False
        low = high = None
        for form in forms:
            ends = [(c * inner[v].start, c * (inner[v].start + inner[v].extent - 1))
                    for v, c in form.items() if v in inner]  # type: ignore[union-attr]
            lo = form.get("", 0) + sum(min(e) for e in ends)  # type: ignore[union-attr]
            hi = form.get("", 0) + sum(max(e) for e in ends)  # type: ignore[union-attr]
            low, high = lo if low is None else min(low, lo), hi if high is None else max(high, hi)
        if loop.extent > 1 and abs(fixed[0].get(loop.var, 0)) <= high - low:  # type: ignore[operator]
            return False
    return True


def _check_independent(kernel: Kernel, what: str, nest: Loop, second: Loop | None) -> None:
    """Raise ``CodegenError`` naming ``kernel`` when ``independence_problem`` finds one."""
    problem = independence_problem(nest, second)
    if problem is not None:
        raise _error(kernel, what, nest.var, problem)


# -- transformations ------------------------------------------------------------
def _sink_guard(body: tuple[Stmt, ...], cond: Expr) -> tuple[Stmt, ...]:
    """``if cond: body`` with the ``if`` pushed inside ``body``'s loops.

    Why: ``cond`` depends only on enclosing loop variables and bounds are
    constants, so ``if c: for j: S`` equals ``for j: if c: S``; keeping loops
    outside the ``if`` keeps nests perfect (LLVM unswitches the invariant
    test). A local keeps its declaration outside the ``if`` (initialised to
    zero) and gets its initial value by an assignment inside it, so later
    statements still see it and an out-of-range load never runs.
    """
    out: list[Stmt] = []
    run: list[Stmt] = []
    for stmt in body:
        if isinstance(stmt, Loop):
            if run:
                out.append(If(cond, tuple(run)))
                run = []
            out.append(replace(stmt, body=_sink_guard(stmt.body, cond)))
        elif isinstance(stmt, Local):
            out.append(Local(stmt.name, const(0, stmt.init.dtype)))
            run.append(Assign(stmt.name, stmt.init))
        else:
            run.append(stmt)
    if run:
        out.append(If(cond, tuple(run)))
    return tuple(out)


def split(kernel: Kernel, var: str, factor: int, tail: str = "guard") -> Kernel:
    """Split loop ``var`` into ``var_o`` (outer) and ``var_i`` (inner, ``factor`` iterations).

    When ``factor`` does not divide the extent, ``tail`` chooses how the
    remainder runs: ``guard`` (default) keeps one nest of ``ceil(extent /
    factor)`` outer iterations and puts ``if var_o*factor + var_i < extent``
    around the body's statements, sunk below the body's loops (see
    ``_sink_guard``), so perfect nests stay perfect and ``reorder`` can tile;
    ``peel`` runs ``floor(extent / factor)`` full tiles and then a loop
    ``var_t`` over the remainder (a renamed copy of the body), so the inner
    loop has no branch to hinder vectorization.
    """
    loop = find_loop(kernel, var)
    _require_serial(kernel, loop, "split")
    if tail not in SPLIT_TAILS:
        raise _error(kernel, "split", var, f"unknown tail {tail!r}; expected one of {', '.join(SPLIT_TAILS)}")
    if not 1 <= factor <= loop.extent:
        raise _error(kernel, "split", var, f"factor {factor} is not in [1, {loop.extent}]")
    taken = declared_names(kernel)
    outer, inner = fresh_name(f"{var}_o", taken), fresh_name(f"{var}_i", taken)
    full, remainder = divmod(loop.extent, factor)
    position = add(mul(Var(outer), Const(factor)), Var(inner))
    body = substitute(loop.body, {var: add(position, Const(loop.start))})
    stmts: tuple[Stmt, ...]
    if remainder == 0:
        stmts = (Loop(outer, full, (Loop(inner, factor, body),)),)
    elif tail == "guard":
        guarded = _sink_guard(body, Binary("lt", position, Const(loop.extent)))
        stmts = (Loop(outer, full + 1, (Loop(inner, factor, guarded),)),)
    else:
        rest = fresh_name(f"{var}_t", taken)
        copy = _fresh_copy(loop.body, "t", taken)
        peeled = substitute(copy, {var: add(Var(rest), Const(loop.start + full * factor))})
        stmts = (Loop(outer, full, (Loop(inner, factor, body),)), Loop(rest, remainder, peeled))
    return replace_loop(kernel, var, lambda _: stmts)


def reorder(kernel: Kernel, outer_var: str, inner_var: str) -> Kernel:
    """Interchange loop ``outer_var`` with loop ``inner_var``, which must be its whole body."""
    outer = find_loop(kernel, outer_var)
    inner = find_loop(kernel, inner_var)
    if len(outer.body) != 1 or outer.body[0] is not inner:
        raise _error(kernel, "reorder", outer_var,
                     f"its body is not exactly loop {inner_var} (the loops must be perfectly nested)")
    _require_serial(kernel, outer, "reorder")
    _require_serial(kernel, inner, "reorder")
    _check_independent(kernel, "reorder", outer, inner)
    swapped = replace(inner, body=(replace(outer, body=inner.body),))
    return replace_loop(kernel, outer_var, lambda _: (swapped,))


def unroll(kernel: Kernel, var: str) -> Kernel:
    """Replace loop ``var`` by one copy of its body per iteration, with ``var`` a constant in each.

    Names declared in the body are renamed in every copy after the first so
    they stay unique in the kernel.
    """
    loop = find_loop(kernel, var)
    _require_serial(kernel, loop, "unroll")
    if loop.extent > MAX_UNROLL:
        raise _error(kernel, "unroll", var, f"extent {loop.extent} exceeds the unroll limit {MAX_UNROLL}")
    taken = declared_names(kernel)
    copies: list[Stmt] = []
    for step in range(loop.extent):
        body = loop.body if step == 0 else _fresh_copy(loop.body, str(step), taken)
        copies.extend(substitute(body, {var: Const(loop.start + step)}))
    return replace_loop(kernel, var, lambda _: tuple(copies))


def is_innermost(loop: Loop) -> bool:
    """True if no loop is nested in ``loop``."""
    return not any(isinstance(n, Loop) for n in walk(loop.body))


def _set_kind(kernel: Kernel, loop: Loop, kind: LoopKind) -> Kernel:
    if loop.kind not in (LoopKind.SERIAL, kind):
        raise _error(kernel, f"mark {kind}", loop.var, f"it is already {loop.kind}")
    return replace_loop(kernel, loop.var, lambda old: (replace(old, kind=kind),))


def vectorize(kernel: Kernel, var: str) -> Kernel:
    """Mark innermost loop ``var`` for SIMD execution (the CPU backend leaves it to LLVM's vectorizer)."""
    loop = find_loop(kernel, var)
    if not is_innermost(loop):
        raise _error(kernel, "vectorize", var, "it contains loops (only innermost loops vectorize)")
    return _set_kind(kernel, loop, LoopKind.VECTORIZE)


def parallel(kernel: Kernel, var: str) -> Kernel:
    """Mark outermost loop ``var`` as parallel: its iterations must touch disjoint memory and locals
    (``iterations_disjoint``; a refusal says why, from ``independence_problem`` where it finds the reason)."""
    loop = find_loop(kernel, var)
    if not any(s is loop for s in kernel.body):
        raise _error(kernel, "parallelize", var, "it is not an outermost loop of the kernel")
    if not iterations_disjoint(loop):
        _check_independent(kernel, "parallelize", loop, None)
        raise _error(kernel, "parallelize", var, "two iterations may touch one element of a buffer it writes")
    return _set_kind(kernel, loop, LoopKind.PARALLEL)
