"""Generate docs/ONNX_OPS.md, the table of ONNX ops needlec imports, from the converter registry.

    python tools/onnx_ops_table.py [--write] [--check]

Without flags the table is printed; ``--write`` rewrites docs/ONNX_OPS.md and
``--check`` exits 1 when that file is out of date (tests/test_docs.py does the
same in memory). Sources, all read, nothing hand-maintained except NOTES:

- ``frontend/onnx/context.CONVERTERS``: which op types (and domains) convert;
- ``onnx.defs``: each op's schema versions, and the opset where it was removed;
- the converters' source: the inputs they require at compile time
  (``ctx.require_const``, ``const_ints``, ``const_int`` calls, one helper deep);
- ``tests/onnx_expected_failures.txt``: the conformance cases that do not pass yet.
"""
from __future__ import annotations

import argparse
import ast
import collections
import inspect
import pathlib
import re
import sys

import onnx
import onnx.defs

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import needlec.frontend.onnx.converters as converters_pkg  # noqa: E402
from needlec.frontend.onnx.context import CONVERTERS  # noqa: E402
from needlec.frontend.onnx.loader import MIN_OPSET  # noqa: E402
from tests.onnx_conformance import expected_failures  # noqa: E402

DOC = ROOT / "docs" / "ONNX_OPS.md"
DEFAULT_DOMAIN = "ai.onnx"
CONST_HELPERS = {"require_const", "const_ints", "const_int"}

# Limits the source scan cannot see (keyed by op type).
NOTES = {
    "If": "the condition must fold to a constant; only the taken branch is compiled",
    "Loop": "unrolled at compile time: a constant trip count, or a condition that folds to false "
            "within 10,000 steps; size budget / 2048 steps in all",
    "Scan": "unrolled at compile time (size budget / 2048 steps in all)",
    "Dropout": "training mode draws from needlec's own generator (not NumPy's)",
    "DequantizeLinear": "quantized input u8, i8, u16, i16 or i32 (no 2/4-bit, no float8/float4)",
    "QuantizeLinear": "output u8, i8, u16, i16 or i32 (no 2/4-bit, no float8/float4)",
    "Cast": "no FLOAT8E8M0, no STRING; out-of-range float -> int4/int2 saturates (as ONNX Runtime)",
    "CastLike": "as Cast",
    "NonZero": "the input must be a compile-time constant (the output shape depends on its values)",
    "Unique": "the input must be a compile-time constant (the output shape depends on its values)",
    "Equal": "no STRING inputs",
    "Range": "start, limit and delta must be compile-time constants (the output is a constant)",
}

# Conformance case names whose prefix is not the op's name.
CASE_ALIASES = {"trainingdropout": "Dropout", "strnormalizer": "StringNormalizer"}


def split_key(key: str) -> tuple[str, str]:
    """``(domain, op_type)`` of a CONVERTERS key (``"Conv"`` or ``"ai.onnx.preview::FlexAttention"``)."""
    domain, sep, op = key.rpartition("::")
    return (domain if sep else DEFAULT_DOMAIN), op


def schemas() -> dict[tuple[str, str], list[tuple[int, bool]]]:
    """``(domain, op) -> [(since_version, deprecated), ...]`` sorted, from the installed onnx."""
    table: dict[tuple[str, str], list[tuple[int, bool]]] = collections.defaultdict(list)
    for schema in onnx.defs.get_all_schemas_with_history():
        table[(schema.domain or DEFAULT_DOMAIN, schema.name)].append((schema.since_version, schema.deprecated))
    return {key: sorted(versions) for key, versions in table.items()}


def domain_versions() -> dict[str, int]:
    """The newest opset of every domain the installed onnx knows."""
    result: dict[str, int] = {}
    for (domain, _), versions in schemas().items():
        result[domain] = max(result.get(domain, 0), max(v for v, _ in versions))
    result[DEFAULT_DOMAIN] = onnx.defs.onnx_opset_version()
    return result


def opset_columns(domain: str, versions: list[tuple[int, bool]], newest: int) -> tuple[str, str]:
    """(model opsets the op exists in, schema versions a converter can be asked to convert)."""
    if not versions:
        return "not in onnx " + onnx.__version__, "-"
    live = [v for v, deprecated in versions if not deprecated]
    removed = [v for v, deprecated in versions if deprecated]
    first, last = live[0], (removed[0] - 1 if removed else newest)
    opsets = f"{first}-{last}" if last > first else f"{first}"
    if removed:
        opsets += f" (removed in {removed[0]})"
    if domain == DEFAULT_DOMAIN:  # models below MIN_OPSET are upgraded first: older schemas never reach a converter
        seen = [v for v in live if v > MIN_OPSET]
        older = [v for v in live if v <= MIN_OPSET]
        live = ([older[-1]] if older else []) + seen
    return opsets, ", ".join(str(v) for v in live)


def _what(node: ast.expr | None) -> str:
    """The description argument of a compile-time-constant helper call, shortened."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr):
        text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    else:
        return ""
    return re.split(r":| \(", text, maxsplit=1)[0].strip()


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _const_calls(fn: ast.FunctionDef) -> list[tuple[str, str, list[str]]]:
    """``(callee, what, string arguments)`` of every call in ``fn``; ``what`` is set for constant-helper calls."""
    found: list[tuple[str, str, list[str]]] = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            strings = [_what(arg) for arg in node.args if _what(arg)]
            if name in CONST_HELPERS:
                found.append((name, _what(node.args[-1]) if node.args else "", strings))
            else:
                found.append((name, "", strings))
    return found


def constant_inputs() -> dict[str, list[str]]:
    """CONVERTERS key -> the inputs its converter requires at compile time, following helper calls (by name,
    across the converter modules) three deep; a helper's non-literal description takes the caller's strings."""
    functions: dict[str, ast.FunctionDef] = {}
    registered: list[tuple[list[str], ast.FunctionDef]] = []
    for path in sorted(pathlib.Path(inspect.getfile(converters_pkg)).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        module_consts: dict[str, object] = {}  # module-level string / tuple constants (f"{DOMAIN}::Adam", *OPS)
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                try:
                    module_consts[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                except ValueError:
                    pass
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef):
                functions.setdefault(stmt.name, stmt)
                keys = _registered_keys(stmt, module_consts)
                if keys:
                    registered.append((keys, stmt))
    calls = {name: _const_calls(fn) for name, fn in functions.items()}

    def whats(fn_calls: list[tuple[str, str, list[str]]], caller_strings: list[str], depth: int) -> list[str]:
        result: list[str] = []
        for callee, what, strings in fn_calls:
            if callee in CONST_HELPERS:
                result += [what] if what and what not in ("what", "name") else caller_strings
            elif depth and callee in calls:
                result += whats(calls[callee], strings, depth - 1)
        return result

    result: dict[str, list[str]] = {}
    for keys, fn in registered:
        found = whats(_const_calls(fn), [], 3)
        for key in keys:
            result[key] = sorted(set(found), key=found.index)
    return result


def _registered_keys(fn: ast.FunctionDef, module_consts: dict[str, object]) -> list[str]:
    """The CONVERTERS keys ``fn``'s ``@converter(...)`` decorators register."""
    keys: list[str] = []
    for decorator in fn.decorator_list:
        if not (isinstance(decorator, ast.Call) and _call_name(decorator) == "converter"):
            continue
        for arg in decorator.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                keys.append(arg.value)
            elif isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Name):
                names = module_consts.get(arg.value.id, ())
                keys += [str(k) for k in names] if isinstance(names, (tuple, list)) else []
            elif isinstance(arg, ast.JoinedStr):
                keys.append("".join(str(v.value) if isinstance(v, ast.Constant) else
                                    str(module_consts.get(getattr(getattr(v, "value", None), "id", ""), "?"))
                                    for v in arg.values))
    return keys


def case_op(case: str, known: dict[tuple[str, str], object]) -> tuple[str, str]:
    """``(domain, op)`` a conformance case tests, from its name (``test_<op in snake case>_<variant>``)."""
    name = case.removeprefix("test_")
    domains = [DEFAULT_DOMAIN]
    if name.startswith("ai_onnx_ml_"):
        name, domains = name.removeprefix("ai_onnx_ml_"), ["ai.onnx.ml"]
    flat = name.replace("_", "").lower()
    for alias, op in CASE_ALIASES.items():
        if flat.startswith(alias):
            return domains[0], op
    candidates = [(len(op), domain, op) for domain, op in known if domain in domains and flat.startswith(op.lower())]
    if not candidates:
        raise ValueError(f"conformance case {case}: no ONNX op matches its name; add it to CASE_ALIASES")
    _, domain, op = max(candidates)
    return domain, op


def failures_by_op(known: dict[tuple[str, str], object]) -> dict[tuple[str, str], collections.Counter[str]]:
    result: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for case, reason in expected_failures().items():
        result[case_op(case, known)][reason] += 1
    return result


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """docs/ONNX_OPS.md's text."""
    all_schemas = schemas()
    newest = domain_versions()
    consts = constant_inputs()
    failures = failures_by_op(all_schemas)  # type: ignore[arg-type]
    keys = sorted(CONVERTERS, key=lambda k: (split_key(k)[0] != DEFAULT_DOMAIN, split_key(k)))
    domains = collections.Counter(split_key(k)[0] for k in keys)
    lines = [
        "# Supported ONNX ops",
        "",
        "<!-- Generated by tools/onnx_ops_table.py from the converter registry; do not edit by hand.",
        "     Regenerate: python tools/onnx_ops_table.py --write (tests/test_docs.py fails when it is stale). -->",
        "",
        f"needlec converts **{len(keys)} ONNX op types** "
        f"({', '.join(f'{n} in `{d}`' for d, n in sorted(domains.items()))}). "
        f"Schema versions are those of onnx {onnx.__version__}, which knows default-domain opsets 1 to "
        f"{newest[DEFAULT_DOMAIN]}.",
        "",
        "How to read the table:",
        "",
        f"- **Opsets**: the default-domain opsets in which the op exists (removed ops end earlier). A model "
        f"may import any opset from 1 to {newest[DEFAULT_DOMAIN]}; one below {MIN_OPSET} is first upgraded to "
        f"opset {MIN_OPSET} with onnx's version converter, so converters never see older schemas. A newer opset "
        "than the installed onnx knows is refused.",
        "- **Schema versions**: the versions of the op's schema a converter is given (the newest one at or below "
        f"opset {MIN_OPSET}, and every later one). The registry has no per-op version bounds: every schema "
        "version dispatches to the same converter, which branches on the opset where semantics changed "
        "(e.g. Reduce* axes as an input, Resize's coordinate modes, BatchNormalization's training outputs).",
        "- **Compile-time inputs**: inputs the converter requires to be known when compiling (initializers, "
        "Constant nodes, or values folded from them). A value computed from a graph input raises "
        "`DynamicValueError` (see [LIMITATIONS.md](LIMITATIONS.md)); `--input-shape` fixes dynamic dimensions.",
        "- **Expected failures**: ONNX node conformance cases of this op listed in "
        "`tests/onnx_expected_failures.txt` (strict xfail); reasons are under the table.",
        "",
        "Every op accepts the element types needlec has (no STRING, no FLOAT8E8M0; 2/4-bit integers and "
        "float8 only where noted), and every tensor is bounded by the size budget.",
        "",
        "| Op | Domain | Opsets | Schema versions | Compile-time inputs | Expected failures | Notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in keys:
        domain, op = split_key(key)
        opsets, versions = opset_columns(domain, all_schemas.get((domain, op), []), newest.get(domain, 0))
        failed = sum(failures.get((domain, op), collections.Counter()).values())
        lines.append(f"| {op} | `{domain}` | {opsets} | {versions} | "
                     f"{_cell(', '.join(consts.get(key, [])))} | {failed or ''} | {_cell(NOTES.get(op, ''))} |")
    lines += ["", "## Expected conformance failures by op", "",
              f"{sum(sum(c.values()) for c in failures.values())} of the onnx {onnx.__version__} node "
              "conformance cases are expected to fail (`tests/onnx_expected_failures.txt`, regenerated by "
              "`python tools/onnx_conformance_report.py --write`). Ops marked *no converter* are not "
              "supported at all.", ""]
    converted = {split_key(k) for k in keys}
    for domain, op in sorted(failures, key=lambda k: (k[1], k[0])):
        reasons = failures[(domain, op)]
        status = "" if (domain, op) in converted else ", *no converter*"
        lines.append(f"- **{op}** (`{domain}`{status}): {sum(reasons.values())} case"
                     f"{'s' if sum(reasons.values()) != 1 else ''}")
        for reason, count in sorted(reasons.items(), key=lambda r: (-r[1], r[0])):
            lines.append(f"  - {count} x {reason}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/ONNX_OPS.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/ONNX_OPS.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.relative_to(ROOT)} is out of date: run python tools/onnx_ops_table.py --write")
            return 1
        return 0
    if args.write:
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)} ({len(CONVERTERS)} ops)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
