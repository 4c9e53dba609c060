"""Helpers for comparing needlec modules, losses and gradients with PyTorch (CPU, float32).

Importing this module skips the importing test module when PyTorch is not
installed. Weights always travel from the torch module to the needlec one
through ``state_dict`` (converted to NumPy), so both compute with identical
parameters.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

import needlec
from needlec import nn

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the test machines are small and shared; one thread is also deterministic


def numpy_state(module: Any) -> dict[str, np.ndarray]:
    """A torch module's ``state_dict`` as NumPy arrays (copies)."""
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in module.state_dict().items()}


def load_from_torch(ours: nn.Module, theirs: Any) -> nn.Module:
    """Copy every parameter and buffer of ``theirs`` into ``ours`` (strict: the names must agree); returns ours."""
    assert list(ours.state_dict()) == list(theirs.state_dict()), "state_dict keys or their order differ"
    ours.load_state_dict(numpy_state(theirs))
    return ours


def flat_outputs(result: Any) -> list[Any]:
    """A module's result as a flat list: nested tuples and lists unpacked, ``None`` entries dropped."""
    if result is None:
        return []
    if isinstance(result, (tuple, list)):
        return [leaf for item in result for leaf in flat_outputs(item)]
    return [result]


def run_needlec(call: Callable[..., Any], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``call(*inputs)`` traced, compiled and run by needlec; the outputs as a flat list of arrays."""
    compiled = needlec.compile(lambda *xs: flat_outputs(call(*xs)), list(inputs))
    result = compiled(*inputs)
    return list(result) if isinstance(result, tuple) else [result]


def run_torch(call: Callable[..., Any], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``call(*inputs)`` on torch tensors (no autograd); the outputs as a flat list of arrays."""
    with torch.no_grad():
        result = call(*[torch.from_numpy(np.array(x)) for x in inputs])
    return [t.detach().numpy() for t in flat_outputs(result)]


def torch_gradients(loss_of: Callable[..., Any], module: Any, inputs: Sequence[np.ndarray],
                    argnums: Sequence[int]) -> tuple[np.ndarray, list[np.ndarray], dict[str, np.ndarray]]:
    """PyTorch autograd: the loss, d loss / d inputs[argnums], and d loss / d each of ``module``'s parameters.

    ``module`` may be None (no parameter gradients).
    """
    tensors = [torch.from_numpy(np.array(x)) for x in inputs]
    for i in argnums:
        tensors[i].requires_grad_(True)
    if module is not None:
        module.zero_grad()
    loss = loss_of(*tensors)
    loss.backward()
    named = module.named_parameters() if module is not None else []
    params = {name: (p.grad.numpy().copy() if p.grad is not None else np.zeros(tuple(p.shape), np.float32))
              for name, p in named}
    return loss.detach().numpy(), [tensors[i].grad.numpy().copy() for i in argnums], params


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6, what: str = "") -> None:
    """Same shape and dtype, values within ``rtol`` / ``atol`` (integers and bools exactly)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)
