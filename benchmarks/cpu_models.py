"""The models of ``bench_cpu.py``: full-size PyTorch architectures with random weights, exported to ONNX once.

Written here with ``torch.nn`` in torchvision's and Hugging Face's layouts
(torchvision and transformers are not needed): ResNet-50 (v1.5, stride on the
3x3 convolution), MobileNetV2, SqueezeNet 1.0, DenseNet-121, a BERT-base-shaped
encoder (post-norm, erf GELU, seq 128), a GPT-2-small-shaped decoder (pre-norm,
tanh GELU, causal mask, tied LM head, seq 128) and a 2-layer LSTM language model
(PyTorch's word-language-model example sizes: 200 embedding and hidden units,
35 steps, a 10000-word vocabulary). The small models of
``tests/onnx_models.py`` are here too (``test-*``). Every model is seeded; its
BatchNorm layers get random running statistics, so folding them wrongly shows.

Exports (TorchScript exporter, opset 17, fixed batch 1) are cached under
``benchmarks/.cache`` (git ignores it through ``.git/info/exclude``), named by a
digest of this file, the configuration and the torch version.
"""
from __future__ import annotations

import hashlib
import math
import os
import pathlib
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test models live with the tests

from tests.onnx_models import MODELS as TEST_MODELS  # noqa: E402
from tests.onnx_models import OPSET, randomize_batchnorm  # noqa: E402

CACHE = pathlib.Path(__file__).resolve().parent / ".cache"
SEQ = 128  # tokens of the transformer inputs


def conv_bn_act(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    """A bias-free convolution with "same" padding, BatchNorm, then ``act`` (none when None)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups,
                                         bias=False), nn.BatchNorm2d(out_channels)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# ----- CNNs (input 1x3x224x224, 1000 classes) -----

class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck: 1x1, 3x3 (``stride``), 1x1 (x4 channels), projection when shapes change."""

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * 4
        self.body = nn.Sequential(conv_bn_act(in_channels, width, 1), conv_bn_act(width, width, 3, stride),
                                  conv_bn_act(width, out_channels, 1, act=None))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv_bn_act(in_channels, out_channels, 1, stride, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet50(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
        channels = 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(channels, width, stride if i == 0 else 1))
                channels = width * 4
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 projection, residual if it fits."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_channels * expand
        layers: list[nn.Module] = [conv_bn_act(in_channels, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   conv_bn_act(hidden, out_channels, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(3, 32, 3, 2, act=nn.ReLU6)]
        channels = 32
        for expand, out_channels, blocks, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                                     (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
            for i in range(blocks):
                layers.append(InvertedResidual(channels, out_channels, stride if i == 0 else 1, expand))
                channels = out_channels
        layers.append(conv_bn_act(channels, 1280, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class Fire(nn.Module):
    """SqueezeNet's fire module: 1x1 squeeze (ReLU), then 1x1 and 3x3 expansions (ReLU) concatenated."""

    def __init__(self, in_channels: int, squeeze: int, expand1: int, expand3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(in_channels, squeeze, 1), nn.ReLU())
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, expand1, 1), nn.ReLU())
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, expand3, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.expand1(x), self.expand3(x)], 1)


class SqueezeNet10(nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def pool() -> nn.Module:
            return nn.MaxPool2d(3, 2, ceil_mode=True)

        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 7, 2), nn.ReLU(), pool(), Fire(96, 16, 64, 64), Fire(128, 16, 64, 64),
            Fire(128, 32, 128, 128), pool(), Fire(256, 32, 128, 128), Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), pool(), Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Conv2d(512, 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


class DenseLayer(nn.Module):
    """DenseNet layer: BN-ReLU-1x1 conv (4 x growth), BN-ReLU-3x3 conv (growth), concatenated to its input."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, 4 * growth, 1,
                                                                                       bias=False),
                                  nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, padding=1,
                                                                                   bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


class DenseNet121(nn.Module):
    def __init__(self, growth: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
        channels = 64
        for i, count in enumerate((6, 12, 24, 16)):
            for _ in range(count):
                layers.append(DenseLayer(channels, growth))
                channels += growth
            if i < 3:
                layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels // 2, 1, bias=False),
                           nn.AvgPool2d(2)]
                channels //= 2
        layers += [nn.BatchNorm2d(channels), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


# ----- sequence models (input: int64 token ids, batch 1) -----

class SelfAttention(nn.Module):
    """Multi-head self-attention with separate Q, K, V projections; ``causal`` masks later positions with -inf."""

    def __init__(self, hidden: int, heads: int, seq: int, causal: bool) -> None:
        super().__init__()
        self.heads, self.head_size, self.seq, self.causal = heads, hidden // heads, seq, causal
        self.query, self.key, self.value, self.out = (nn.Linear(hidden, hidden) for _ in range(4))
        self.register_buffer("mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def heads(t: torch.Tensor) -> torch.Tensor:  # (1, seq, hidden) -> (1, heads, seq, head_size)
            return t.reshape(1, self.seq, self.heads, self.head_size).transpose(1, 2)

        scores = heads(self.query(x)) @ heads(self.key(x)).transpose(-1, -2) / math.sqrt(self.head_size)
        if self.causal:
            scores = scores.masked_fill(self.mask, float("-inf"))
        context = torch.softmax(scores, -1) @ heads(self.value(x))
        return self.out(context.transpose(1, 2).reshape(1, self.seq, self.heads * self.head_size))


class TransformerBlock(nn.Module):
    """BERT's post-norm layer (``pre_norm=False``, erf GELU) or GPT-2's pre-norm block (tanh GELU, causal)."""

    def __init__(self, hidden: int, heads: int, seq: int, pre_norm: bool) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        eps = 1e-5 if pre_norm else 1e-12
        self.attention = SelfAttention(hidden, heads, seq, causal=pre_norm)
        self.norm1, self.norm2 = nn.LayerNorm(hidden, eps=eps), nn.LayerNorm(hidden, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(approximate="tanh" if pre_norm else "none"),
                                 nn.Linear(4 * hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.attention(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attention(x))
        return self.norm2(x + self.mlp(x))


class BertEncoder(nn.Module):
    """Word, position and token-type (type 0) embeddings, LayerNorm, ``layers`` post-norm blocks; hidden states."""

    def __init__(self, layers: int, hidden: int = 768, heads: int = 12, vocab: int = 30522, seq: int = SEQ) -> None:
        super().__init__()
        self.words, self.positions = nn.Embedding(vocab, hidden), nn.Parameter(torch.randn(1, seq, hidden) * 0.02)
        self.token_type = nn.Parameter(torch.randn(hidden) * 0.02)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.blocks = nn.Sequential(*(TransformerBlock(hidden, heads, seq, pre_norm=False) for _ in range(layers)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.norm(self.words(ids) + self.positions + self.token_type))


class Gpt2Decoder(nn.Module):
    """Token and position embeddings, ``layers`` pre-norm causal blocks, final LayerNorm, LM head tied to the tokens."""

    def __init__(self, layers: int, hidden: int = 768, heads: int = 12, vocab: int = 50257, seq: int = SEQ) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, hidden), nn.Parameter(torch.randn(1, seq, hidden) * 0.01)
        self.blocks = nn.Sequential(*(TransformerBlock(hidden, heads, seq, pre_norm=True) for _ in range(layers)))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.norm(self.blocks(self.tokens(ids) + self.positions))
        return hidden @ self.tokens.weight.t()


class LstmLanguageModel(nn.Module):
    """Embedding, 2-layer LSTM (batch first, zero initial state), linear decoder to the vocabulary."""

    def __init__(self, vocab: int = 10000, hidden: int = 200, layers: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.lstm(self.embedding(ids))[0])


# ----- the registry -----

@dataclass(frozen=True)
class BenchModel:
    """A model of the benchmark: how to build it (``small`` picks the short configuration), and its input."""

    key: str
    title: str
    build: Callable[[bool], nn.Module]
    input_shape: tuple[int, ...]
    vocab: int = 0  # >0: int64 token ids below this; 0: a float32 image
    small_title: str = ""  # the title with small=True, where the configuration differs

    def label(self, small: bool) -> str:
        return self.small_title if small and self.small_title else self.title

    def example_input(self, seed: int = 1) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if self.vocab:
            return rng.integers(0, self.vocab, self.input_shape, dtype=np.int64)
        return rng.standard_normal(self.input_shape).astype(np.float32)

    def onnx_path(self, small: bool, directory: pathlib.Path | None = None) -> pathlib.Path:
        """The exported model, written on first use to ``directory`` (default ``CACHE``), named by a digest of
        this file, the configuration and torch's version."""
        directory = CACHE if directory is None else directory
        tag = "small" if small and self.small_title else "full"
        digest = hashlib.sha256(pathlib.Path(__file__).read_bytes() + f"{tag} {torch.__version__}".encode())
        path = directory / f"{self.key}-{tag}-{digest.hexdigest()[:12]}.onnx"
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            export(self.module(small), self.example_input(), temporary)
            os.replace(temporary, path)
        return path

    def module(self, small: bool) -> nn.Module:
        torch.manual_seed(0)
        model = self.build(small)
        with torch.no_grad():
            randomize_batchnorm(model, torch.Generator().manual_seed(1))
        return model.eval()


def export(module: nn.Module, example: np.ndarray, path: pathlib.Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(module, (torch.from_numpy(example),), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["output"],
                          training=torch.onnx.TrainingMode.PRESERVE)


def _test_model(name: str) -> BenchModel:
    """A model of ``tests/onnx_models.py`` at batch 1 (its own seeds and BatchNorm statistics)."""
    spec = TEST_MODELS[name]
    return BenchModel(f"test-{name}", f"test {name} (tests/onnx_models.py)", lambda small: spec.module(),
                      (1, *spec.sample_shape), spec.token_vocab)


IMAGE = (1, 3, 224, 224)
MODELS: dict[str, BenchModel] = {model.key: model for model in (
    BenchModel("resnet50", "ResNet-50", lambda small: ResNet50(), IMAGE),
    BenchModel("mobilenetv2", "MobileNetV2", lambda small: MobileNetV2(), IMAGE),
    BenchModel("squeezenet", "SqueezeNet 1.0", lambda small: SqueezeNet10(), IMAGE),
    BenchModel("bert", "BERT-base seq 128", lambda small: BertEncoder(4 if small else 12), (1, SEQ), 30522,
               "BERT-base seq 128, 4 layers"),
    BenchModel("gpt2", "GPT-2-small seq 128", lambda small: Gpt2Decoder(4 if small else 12), (1, SEQ), 50257,
               "GPT-2-small seq 128, 4 layers"),
    BenchModel("lstm", "2-layer LSTM LM", lambda small: LstmLanguageModel(), (1, 35), 10000),
    BenchModel("densenet121", "DenseNet-121", lambda small: DenseNet121(), IMAGE),
    *(_test_model(name) for name in TEST_MODELS),
)}
