"""needlec: a compiler from traced models and ONNX graphs to native code.

Public surface: ``trace``, ``compile``, ``load``, ``from_onnx``, ``from_torch``, ``grad``, ``value_and_grad``,
``Graph``, ``nn``, ``ops``, ``losses``, ``optim``, ``compile_training_step`` and the ``NeedlecError``
hierarchy (see docs/ARCHITECTURE.md). Each name is loaded on first use, so ``import needlec`` and
``needlec --help`` stay fast.
"""
from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())  # a library logs only where the application asks

# public name -> the module defining it (modules themselves: the module's own path)
_PUBLIC: dict[str, str] = {
    "Compiled": "needlec.api", "compile": "needlec.api", "load": "needlec.api",
    "grad": "needlec.autodiff", "value_and_grad": "needlec.autodiff",
    "DType": "needlec.compiler.ir.dtypes", "Graph": "needlec.compiler.ir.graph",
    "TensorType": "needlec.compiler.ir.types", "NeedlecError": "needlec.errors",
    "from_onnx": "needlec.frontend.onnx", "trace": "needlec.frontend.trace", "from_torch": "needlec.torch_bridge",
    "TrainingStep": "needlec.training", "compile_training_step": "needlec.training",
}
_MODULES: dict[str, str] = {"nn": "needlec.nn", "ops": "needlec.ops", "optim": "needlec.optim",
                            "losses": "needlec.frontend.losses"}

__all__ = ["Compiled", "compile", "load", "grad", "value_and_grad", "DType", "Graph", "TensorType", "NeedlecError",
           "from_onnx", "trace", "from_torch", "TrainingStep", "compile_training_step", "nn", "ops", "optim", "losses"]


def __getattr__(name: str) -> Any:
    """Load public name ``name`` on first use (PEP 562) and keep it."""
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    else:
        raise AttributeError(f"module 'needlec' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from needlec import nn, ops, optim
    from needlec.api import Compiled, compile, load
    from needlec.autodiff import grad, value_and_grad
    from needlec.compiler.ir.dtypes import DType
    from needlec.compiler.ir.graph import Graph
    from needlec.compiler.ir.types import TensorType
    from needlec.errors import NeedlecError
    from needlec.frontend import losses
    from needlec.frontend.onnx import from_onnx
    from needlec.frontend.trace import trace
    from needlec.torch_bridge import from_torch
    from needlec.training import TrainingStep, compile_training_step
