"""Imports point one way: driver -> frontend / build -> compiler -> IR; the runtime knows only the IR's types.

Every import in the package is checked, lazy ones (inside functions) and
type-only ones included, against the layer rules of docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__import__("needlec").__file__).parent
# driver level: assembles the layers below it; nothing below may import it
DRIVER = ("needlec.driver", "needlec.api", "needlec.cli", "needlec.training", "needlec.autodiff",
          "needlec.onnx_backend", "needlec.progress", "needlec.torch_bridge", "needlec.optim", "needlec.nn",
          "needlec.ops", "needlec.draw", "needlec.cache")
ROOT = "needlec"  # the package itself: importing it imports the driver

# (importing modules, forbidden imports, why); a prefix matches the module and its submodules
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("needlec.compiler", (ROOT, *DRIVER, "needlec.frontend", "needlec.runtime", "needlec.build"),
     "the compiler knows no frontend, runtime, build step or driver"),
    ("needlec.frontend", (ROOT, *DRIVER, "needlec.runtime", "needlec.build"),
     "the frontend builds graphs; compiling and running them is the driver's"),
    ("needlec.build", (ROOT, *DRIVER, "needlec.frontend"),
     "the build step turns artifacts into machine code; it knows no frontend or driver"),
    ("needlec.compiler.ir", ("needlec.compiler.passes", "needlec.compiler.pipeline", "needlec.compiler.codegen"),
     "the IR (with its op registry) never imports passes or codegen"),
    ("needlec.compiler.ops", ("needlec.compiler.passes", "needlec.compiler.pipeline", "needlec.compiler.codegen"),
     "ops never import passes or codegen"),
    ("needlec.compiler.loops", ("needlec.compiler.passes", "needlec.compiler.pipeline", "needlec.compiler.codegen"),
     "the loop IR never imports passes or codegen"),
    ("needlec.compiler.codegen", ("needlec.compiler.passes", "needlec.compiler.pipeline"),
     "codegen renders what the passes produced; it never imports them"),
]
# the runtime loads, validates and runs artifacts: of needlec it may import only these
RUNTIME_ALLOWED = ("needlec.runtime", "needlec.errors", "needlec.abi", "needlec.compiler.ir.types",
                   "needlec.compiler.ir.dtypes")
LEAVES = ("needlec.errors", "needlec.abi")  # import nothing of needlec but errors


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every needlec import in ``path``; ``from a import b`` yields ``a.b`` (b may be a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, module) for line, module in found if module == ROOT or module.startswith(ROOT + ".")]


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _forbidden_by_prefix(module: str, prefix: str) -> bool:
    """``from needlec import nn`` names ``needlec.nn``; the bare package ``needlec`` matches only itself."""
    return module == prefix if prefix == ROOT else _matches(module, prefix)


def violations() -> list[str]:
    """Every import that breaks a layer rule, as ``module:line imports target (why)``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        for line, target in _imports(path):
            if _matches(target, importer):
                continue  # a package importing its own parts
            target_module = target
            for scope, forbidden, why in RULES:
                if _matches(importer, scope) and any(_forbidden_by_prefix(target_module, f) for f in forbidden):
                    found.append(f"{importer}:{line} imports {target} ({why})")
            if _matches(importer, "needlec.runtime") and \
                    not any(_matches(target_module, a) or a.startswith(target_module + ".") for a in RUNTIME_ALLOWED):
                found.append(f"{importer}:{line} imports {target} (the runtime imports only the IR's types)")
            if importer in LEAVES and not _matches(target_module, "needlec.errors"):
                found.append(f"{importer}:{line} imports {target} ({importer} is a leaf)")
    return found


def test_imports_point_one_way() -> None:
    assert violations() == []


@pytest.mark.parametrize("importer, source, expected", [
    ("needlec/compiler/passes/bad.py", "from needlec.frontend.trace import trace\n", "the compiler knows no"),
    ("needlec/compiler/ops/bad.py", "def f():\n    from needlec.compiler.passes import PASSES\n", "ops never"),
    ("needlec/runtime/bad.py", "from needlec.compiler.loops.ir import Program\n", "the runtime imports only"),
    ("needlec/frontend/bad.py", "import needlec.api\n", "the frontend builds graphs"),
    ("needlec/compiler/codegen/bad.py", "from needlec import cli\n", "the compiler knows no"),
])
def test_the_checker_catches_a_wrong_import(tmp_path, monkeypatch, importer: str, source: str,
                                            expected: str) -> None:
    """The rules bite: a planted wrong import (lazy ones too) is reported with its module, line and rule."""
    planted = PACKAGE / Path(importer).relative_to("needlec")
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: iter([planted]))
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    found = violations()
    assert len(found) == 1 and expected in found[0] and found[0].startswith(_module_name(planted))
