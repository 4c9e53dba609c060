"""Compile PyTorch modules with needlec and check them against PyTorch.

    python examples/torch_models.py

``needlec.compile`` accepts a ``torch.nn.Module`` with example inputs: the
module goes through PyTorch's own ONNX export (``needlec.from_torch``) and is
compiled like any ONNX model. Two models, written inline with ``torch.nn``
(torchvision is not needed):

- a torchvision-style ResNet: conv-bn-relu stem, ``BasicBlock``s (identity
  and strided with a 1x1 projection shortcut), global average pool, linear head;
- a transformer encoder: a 2-layer batch-first ``nn.TransformerEncoder``
  (4 heads, GELU) with a linear head on the mean-pooled sequence.

Each prints the largest absolute difference from PyTorch and asserts it is
below ``TOLERANCE``. Needs torch.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

import needlec

TOLERANCE = 1e-4


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block: conv3x3-bn-relu-conv3x3-bn, plus the (projected) input, relu."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class SmallResNet(nn.Module):
    """Stem 3->16, blocks 16->16, 16->32 (stride 2), global average pool, linear head to ``classes``."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.layers = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 32, stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(images))), 1))


class Encoder(nn.Module):
    """A 2-layer batch-first transformer encoder (d_model 32, 4 heads, GELU), mean pool, linear head."""

    def __init__(self, d_model: int = 32, classes: int = 10) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=64, dropout=0.0, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(tokens).mean(dim=1))


def randomize_batchnorm(module: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, so folding BatchNorm wrongly would show."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                assert layer.running_mean is not None and layer.running_var is not None
                layer.running_mean.normal_(0.0, 0.1)
                layer.running_var.uniform_(0.5, 1.5)
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.normal_(0.0, 0.1)


def check(name: str, module: nn.Module, x: np.ndarray) -> float:
    """Compile ``module`` (eval mode) at ``x``'s shape, run both, print and return the largest difference."""
    module.eval()
    start = time.perf_counter()
    compiled = needlec.compile(module, [x])
    seconds = time.perf_counter() - start
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    difference = float(np.max(np.abs(compiled(x) - expected)))
    print(f"{name}: output {list(expected.shape)}, compiled in {seconds:.1f} s, "
          f"max abs difference from PyTorch {difference:.2e}")
    assert difference < TOLERANCE, f"{name}: difference {difference} exceeds {TOLERANCE}"
    return difference


def main() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    resnet = SmallResNet()
    randomize_batchnorm(resnet)
    check("resnet", resnet, rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    check("transformer encoder", Encoder(), rng.standard_normal((2, 16, 32)).astype(np.float32))


if __name__ == "__main__":
    main()
