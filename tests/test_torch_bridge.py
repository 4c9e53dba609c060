"""``needlec.from_torch`` and ``needlec.compile`` on ``torch.nn.Module``s, checked against PyTorch."""
from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest

import needlec
from needlec.compiler.interpreter import evaluate
from needlec.errors import NeedlecError
from needlec.torch_bridge import is_torch_module

pytest.importorskip("torch")
import torch  # noqa: E402
from torch import nn  # noqa: E402

from tests.onnx_models import randomize_batchnorm  # noqa: E402


class Block(nn.Module):
    """A torchvision-style strided ResNet basic block with a 1x1 projection shortcut, then pool and head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.downsample = nn.Sequential(nn.Conv2d(3, 8, 1, 2, bias=False), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(images)))
        out = torch.relu(self.bn2(self.conv2(out)) + self.downsample(images))
        return self.fc(out.mean(dim=(2, 3)))


def block() -> nn.Module:
    torch.manual_seed(0)
    model = Block()
    with torch.no_grad():
        randomize_batchnorm(model, torch.Generator().manual_seed(1))
    return model.eval()


def encoder() -> nn.Module:
    torch.manual_seed(1)
    layer = nn.TransformerEncoderLayer(16, nhead=2, dim_feedforward=32, dropout=0.0, activation="gelu",
                                       batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False).eval()


def reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def test_from_torch_gives_a_graph_named_after_the_module() -> None:
    x = rand(2, 3, 8, 8)
    model = block()
    graph = needlec.from_torch(model, [x])
    assert isinstance(graph, needlec.Graph) and graph.name == "Block"
    assert [v.name for v in graph.inputs] == ["images"] and graph.inputs[0].shape == (2, 3, 8, 8)
    np.testing.assert_allclose(evaluate(graph, [x])[0][0], reference(model, x), atol=1e-5)
    assert needlec.from_torch(model, torch.from_numpy(x)).inputs[0].shape == (2, 3, 8, 8)  # one tensor alone


@pytest.mark.parametrize("make, shape", [(block, (2, 3, 8, 8)), (encoder, (2, 4, 16))], ids=["resnet", "encoder"])
def test_compile_a_torch_module(make: Callable[[], nn.Module], shape: tuple[int, ...]) -> None:
    model = make()
    x = rand(*shape)
    compiled = needlec.compile(model, [x], progress=False)
    np.testing.assert_allclose(compiled(x), reference(model, x), atol=1e-4, rtol=1e-4)
    other = rand(3, *shape[1:])  # another batch: a new specialisation, exported from PyTorch again
    np.testing.assert_allclose(compiled(other), reference(model, other), atol=1e-4, rtol=1e-4)
    lazy = needlec.compile(model, progress=False)  # compiled at its first call
    np.testing.assert_allclose(lazy(x), reference(model, x), atol=1e-4, rtol=1e-4)


def test_torch_module_errors() -> None:
    model = block()
    lazy = needlec.compile(model, progress=False)  # compiled at its first call, from that call's inputs
    with pytest.raises(NeedlecError, match="input 0 must be a numpy array, found Tensor"):
        lazy(torch.rand(2, 3, 8, 8))
    with pytest.raises(NeedlecError, match="expected a torch.nn.Module"):
        needlec.from_torch(lambda x: x, [rand(2)])

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("no export")

    with pytest.raises(NeedlecError, match="ONNX export of Broken failed: ValueError: no export"):
        needlec.from_torch(Broken(), [rand(2)])


def test_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    model = block()
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert not is_torch_module(model)
    with pytest.raises(NeedlecError, match="needs PyTorch, which is not installed"):
        needlec.from_torch(model, [rand(2, 3, 8, 8)])
