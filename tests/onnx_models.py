"""Small but real PyTorch architectures exported to ONNX, shared by the model tests and benchmarks.

Each ``OnnxModel`` builds a seeded ``torch.nn.Module`` in eval mode (BatchNorm
layers get random running statistics and affine parameters, so folding them
wrongly shows), exports it with the TorchScript exporter at a fixed input
shape (BatchNormalization nodes kept, not folded into the convolutions), and
makes seeded example inputs:

- ``resnet``: conv-bn-relu stem, residual basic blocks (an identity block, then
  stride-2 blocks with 1x1 projection shortcuts), global average pool, linear head;
- ``mobilenet``: depthwise-separable blocks (depthwise conv with groups=C,
  pointwise 1x1 conv, BatchNorm, ReLU6, which exports as Clip), pool, a
  1x1 conv with bias and HardSwish, linear head;
- ``transformer``: token and position embeddings, a 2-layer batch-first
  ``nn.TransformerEncoder`` with 4 heads and GELU, mean pooling, linear head.

PyTorch is a test-only dependency: import this module only where torch is installed.
"""
from __future__ import annotations

import pathlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
NUM_CLASSES = 10


def randomize_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm in ``module`` non-trivial running statistics and affine parameters."""
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            channels = layer.num_features
            layer.running_mean.copy_(torch.randn(channels, generator=generator) * 0.1)
            layer.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            layer.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            layer.bias.data.copy_(torch.randn(channels, generator=generator) * 0.1)


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """A bias-free convolution with "same" padding followed by BatchNorm."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-bn, the first with ``stride``; 1x1 projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(in_channels, out_channels, 3, stride), nn.ReLU(),
                                  conv_bn(out_channels, out_channels, 3))
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = conv_bn(in_channels, out_channels, 1, stride) if changes_shape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem 3->16, blocks 16->16, 16->32 (stride 2), 32->64 (stride 2), global average pool, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 16, 3), nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(64, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def separable(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """MobileNet depthwise-separable block: depthwise 3x3 (groups=C)-bn-relu6, pointwise 1x1-bn-relu6."""
    return nn.Sequential(conv_bn(in_channels, in_channels, 3, stride, groups=in_channels), nn.ReLU6(),
                         conv_bn(in_channels, out_channels, 1), nn.ReLU6())


class MobileNet(nn.Module):
    """Stem 3->16 (stride 2), separable blocks to 32, 64 (stride 2), 64, 128 (stride 2), pool, then a
    MobileNetV3-style head: 1x1 conv with bias (128->256), Hardswish, linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 16, 3, 2), nn.ReLU6())
        self.blocks = nn.Sequential(separable(16, 32, 1), separable(32, 64, 2), separable(64, 64, 1),
                                    separable(64, 128, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Sequential(nn.Conv2d(128, 256, 1), nn.Hardswish())
        self.head = nn.Linear(256, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.conv_head(self.pool(self.blocks(self.stem(x)))), 1))


class TransformerClassifier(nn.Module):
    """Token + learned position embeddings, 2 encoder layers (d_model 32, 4 heads, GELU), mean pool, head."""

    def __init__(self, vocab: int = 100, seq_len: int = 16, d_model: int = 32) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Parameter(torch.randn(1, seq_len, d_model) * 0.1)
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=64, dropout=0.0, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, NUM_CLASSES)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.tokens(ids) + self.positions).mean(dim=1))


@dataclass(frozen=True)
class OnnxModel:
    """A named architecture: how to build it, and its input shape (after the batch axis) and kind."""

    name: str
    build: Callable[[], nn.Module]
    sample_shape: tuple[int, ...]
    token_vocab: int = 0  # >0: the input is int64 token ids below this; 0: a float32 image

    def module(self, seed: int = 0) -> nn.Module:
        """The seeded model in eval mode."""
        torch.manual_seed(seed)
        model = self.build()
        with torch.no_grad():
            randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
        return model.eval()

    def example_input(self, batch: int, seed: int = 0) -> np.ndarray:
        """A seeded input of shape (batch, *sample_shape)."""
        rng = np.random.default_rng(seed)
        shape = (batch, *self.sample_shape)
        if self.token_vocab:
            return rng.integers(0, self.token_vocab, shape, dtype=np.int64)
        return rng.standard_normal(shape).astype(np.float32)

    def export(self, path: pathlib.Path | str, batch: int, seed: int = 0, dynamic_batch: bool = False
               ) -> pathlib.Path:
        """Write the seeded model as ONNX (opset ``OPSET``) to ``path``, traced at ``batch``.

        The batch axis of the input and output is fixed to ``batch``, or left
        symbolic (``"batch"``) with ``dynamic_batch``.
        """
        path = pathlib.Path(path)
        example = torch.from_numpy(self.example_input(batch, seed))
        dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
            # PRESERVE keeps the eval-mode BatchNormalization nodes (EVAL would fold them into the convs)
            torch.onnx.export(self.module(seed), (example,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              training=torch.onnx.TrainingMode.PRESERVE, dynamic_axes=dynamic_axes)
        return path


MODELS: dict[str, OnnxModel] = {
    "resnet": OnnxModel("resnet", ResNet, (3, 32, 32)),
    "mobilenet": OnnxModel("mobilenet", MobileNet, (3, 32, 32)),
    "transformer": OnnxModel("transformer", TransformerClassifier, (16,), token_vocab=100),
}


def onnxruntime_session(path: pathlib.Path | str, threads: int = 1):  # type: ignore[no-untyped-def]
    """An ONNX Runtime CPU session for ``path`` with ``threads`` intra-op threads (sequential execution)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
