"""``from_torch``: a ``torch.nn.Module`` as a needlec graph, through PyTorch's own ONNX export.

The module is exported in memory with the TorchScript exporter
(``torch.onnx.export(..., dynamo=False)``, opset ``OPSET``) at the shapes
and dtypes of the example inputs, in its current mode (call ``.eval()``
first for inference: eval-mode BatchNorm and Dropout), and the ONNX model is
imported by ``needlec.frontend.onnx.from_onnx``. Graph inputs are named
after ``forward``'s parameters.

PyTorch is an optional dependency: it is imported only when a module is
converted, and ``is_torch_module`` answers without importing it (a
``torch.nn.Module`` exists only once torch is loaded).
"""
from __future__ import annotations

import inspect
import io
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from needlec.compiler.ir.graph import Graph
from needlec.errors import NeedlecError
from needlec.frontend.onnx import from_onnx

OPSET = 17


def is_torch_module(model: Any) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (torch is loaded already if it is one)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise NeedlecError("needlec.from_torch needs PyTorch, which is not installed (pip install torch)") from None
    return torch


def _input_names(module: Any, count: int) -> list[str]:
    """``forward``'s positional parameter names for ``count`` inputs (``input{i}`` beyond them)."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params
             if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    return [names[i] if i < len(names) else f"input{i}" for i in range(count)]


def from_torch(module: Any, example_inputs: Sequence[Any] | Any, *, opset: int = OPSET,
               size_budget: int | None = None) -> Graph:
    """The graph of ``module`` (a ``torch.nn.Module``) applied to inputs shaped like ``example_inputs``.

    ``example_inputs`` is a sequence of NumPy arrays or torch tensors (one
    array or tensor alone is one input); their values are only used to
    run the export. ``size_budget`` is ``from_onnx``'s.
    """
    torch = _import_torch()
    if not isinstance(module, torch.nn.Module):
        raise NeedlecError(f"from_torch: expected a torch.nn.Module, found {type(module).__name__}")
    if example_inputs is None:
        raise NeedlecError("from_torch: compiling a torch.nn.Module needs example_inputs")
    if isinstance(example_inputs, (np.ndarray, torch.Tensor)):
        example_inputs = [example_inputs]
    tensors = tuple(x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, order="C"))
                    for x in example_inputs)
    name = type(module).__name__
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
            # PRESERVE exports the module in its own mode (EVAL would fold eval-mode BatchNorm into convs)
            torch.onnx.export(module, tensors, buffer, dynamo=False, opset_version=opset,
                              input_names=_input_names(module, len(tensors)),
                              training=torch.onnx.TrainingMode.PRESERVE)
    except NeedlecError:
        raise
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise NeedlecError(f"from_torch: PyTorch's ONNX export of {name} failed: {type(exc).__name__}: "
                           f"{message}") from exc
    graph = from_onnx(buffer.getvalue(), size_budget=size_budget)
    graph.name = re.sub(r"[^A-Za-z0-9_]", "", name) or "main"
    return graph
