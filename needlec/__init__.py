"""needlec: a compiler from traced models and ONNX graphs to native code.

Public surface: ``trace``, ``compile``, ``load``, ``from_onnx``, ``from_torch``, ``grad``, ``value_and_grad``,
``Graph``, ``nn``, ``ops``, ``losses`` and the ``NeedlecError`` hierarchy (see
docs/ARCHITECTURE.md).
"""
from needlec import (  # noqa: E402  (after trace: both build on the frontend)
           nn,
           ops,
           optim,  # noqa: E402  (builds on nn)
)
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
from needlec.training import TrainingStep, compile_training_step  # noqa: E402  (builds on optim)

__all__ = ["Compiled", "compile", "load", "from_onnx", "from_torch", "DType", "Graph", "TensorType", "NeedlecError",
           "trace", "grad", "value_and_grad", "nn", "ops", "losses", "optim", "compile_training_step", "TrainingStep"]
__version__ = "0.1.0"
