"""Loading models named on the command line: Python model files and IR text files.

A Python model file defines two module-level names: ``model`` (an
``nn.Module`` or a function) and ``example_inputs`` (a tuple of NumPy
arrays); it is traced with them. A ``.nir`` file holds graph IR text.
"""
from __future__ import annotations

import os
import runpy
from typing import Any

from needlec.compiler.ir.graph import Graph
from needlec.errors import NeedlecError

MODEL_SUFFIXES = (".py", ".nir")


def load_model_file(path: str) -> Graph:
    """The graph a model file describes (traced or parsed)."""
    if not os.path.exists(path):
        raise NeedlecError(f"model file {path} does not exist")
    if os.path.isdir(path):
        raise NeedlecError(f"model path {path} is a directory, expected a file")
    suffix = os.path.splitext(path)[1]
    if suffix == ".nir":
        from needlec.compiler.ir.parser import parse_graph

        with open(path, encoding="utf-8") as f:
            return parse_graph(f.read())
    if suffix == ".py":
        return _trace_python_model(path)
    raise NeedlecError(f"cannot read model {path}: unsupported file type {suffix or '(none)'}; "
                       f"expected one of {', '.join(MODEL_SUFFIXES)}")


def _trace_python_model(path: str) -> Graph:
    from needlec.api import to_graph

    try:
        namespace: dict[str, Any] = runpy.run_path(path, run_name="needlec_model")
    except NeedlecError:
        raise
    except Exception as exc:
        raise NeedlecError(f"running model file {path} failed: {type(exc).__name__}: {exc}") from exc
    missing = [n for n in ("model", "example_inputs") if n not in namespace]
    if missing:
        raise NeedlecError(f"model file {path} must define {' and '.join(missing)} "
                           "(a Module or function, and a tuple of example NumPy arrays)")
    graph = to_graph(namespace["model"], tuple(namespace["example_inputs"]))
    graph.name = os.path.splitext(os.path.basename(path))[0]
    return graph
