"""``needlec.nn`` against ``torch.nn`` (CPU, float32): forward outputs of every module, and gradients.

Each module is built from the same constructor call in both libraries
(``make(lib)`` with ``lib`` = ``torch.nn`` or ``needlec.nn``), its parameters
are perturbed on the torch side (so affine parameters are not trivially
ones and zeros) and copied over through ``state_dict``. The key acceptance
check is at the end: gradients with respect to inputs and every parameter,
through ``needlec.grad``, match PyTorch's autograd.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import numpy as np
import pytest

import needlec
from needlec import nn, ops
from needlec.errors import NeedlecError, ShapeError
from needlec.frontend.trace import record
from tests.torch_reference import (assert_close, load_from_torch, numpy_state, run_needlec, run_torch, torch,
                                   torch_gradients)

F_torch = torch.nn.functional


def normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def perturb(module: Any, rng: np.random.Generator) -> None:
    """Move every torch parameter off its init and give running statistics non-trivial values."""
    with torch.no_grad():
        for _, p in module.named_parameters():
            p.add_(torch.from_numpy(normal(rng, *p.shape, scale=0.1)))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.from_numpy(normal(rng, *b.shape, scale=0.5)))
            elif name.endswith("running_var"):
                b.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, b.shape).astype(np.float32)))


class TorchResidual(torch.nn.Module):
    """The PyTorch equivalent of ``nn.Residual``."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Any) -> Any:
        return x + self.body(x)


def residual(lib: Any, body: Any) -> Any:
    return (nn.Residual if lib is nn else TorchResidual)(body)


@dataclass
class ModuleCase:
    """One module compared in forward mode: ``call(module, *inputs)`` in each of ``modes``."""

    id: str
    make: Callable[[Any], Any]
    inputs: Callable[[np.random.Generator], list[np.ndarray]]
    call: Callable[..., Any] = lambda m, *xs: m(*xs)
    modes: tuple[str, ...] = ("train",)
    perturbed: bool = True
    rtol: float = 1e-5
    atol: float = 1e-6


def randn(*shape: int, scale: float = 1.0) -> Callable[[np.random.Generator], list[np.ndarray]]:
    return lambda rng: [normal(rng, *shape, scale=scale)]


def causal_mask(length: int) -> np.ndarray:
    return np.triu(np.ones((length, length), bool), k=1)


def padding_mask(batch: int, length: int) -> np.ndarray:
    mask = np.zeros((batch, length), bool)
    mask[0, -2:] = True  # the last two keys of sequence 0 are padding
    return mask


ACTIVATIONS = [
    ("relu", lambda lib: lib.ReLU()), ("tanh", lambda lib: lib.Tanh()), ("sigmoid", lambda lib: lib.Sigmoid()),
    ("gelu", lambda lib: lib.GELU()), ("gelu_tanh", lambda lib: lib.GELU(approximate="tanh")),
    ("silu", lambda lib: lib.SiLU()), ("softmax", lambda lib: lib.Softmax(dim=1)),
    ("log_softmax", lambda lib: lib.LogSoftmax(dim=-1)), ("leaky_relu", lambda lib: lib.LeakyReLU(0.2)),
    ("elu", lambda lib: lib.ELU(alpha=0.7)),
]

CASES = [
    *[ModuleCase(f"act_{name}", make, randn(4, 7, scale=3.0)) for name, make in ACTIVATIONS],
    ModuleCase("linear", lambda lib: lib.Linear(6, 4), randn(2, 3, 6)),
    ModuleCase("linear_no_bias", lambda lib: lib.Linear(6, 4, bias=False), randn(5, 6)),
    ModuleCase("conv2d", lambda lib: lib.Conv2d(3, 4, 3, stride=2, padding=1), randn(2, 3, 7, 7)),
    ModuleCase("conv2d_groups", lambda lib: lib.Conv2d(4, 6, 3, dilation=2, groups=2, bias=False), randn(1, 4, 8, 8)),
    ModuleCase("flatten", lambda lib: lib.Flatten(), randn(2, 3, 4, 5)),
    ModuleCase("flatten_range", lambda lib: lib.Flatten(0, 2), randn(2, 3, 4, 5)),
    ModuleCase("max_pool2d", lambda lib: lib.MaxPool2d(2), randn(2, 3, 6, 7)),
    ModuleCase("avg_pool2d", lambda lib: lib.AvgPool2d(3, stride=2, padding=1), randn(2, 3, 7, 7)),
    ModuleCase("batch_norm1d", lambda lib: lib.BatchNorm1d(5), randn(8, 5, scale=2.0), modes=("train", "eval")),
    ModuleCase("batch_norm1d_3d_cumulative", lambda lib: lib.BatchNorm1d(4, momentum=None), randn(3, 4, 6),
               modes=("train", "eval")),
    ModuleCase("batch_norm1d_untracked", lambda lib: lib.BatchNorm1d(4, affine=False, track_running_stats=False),
               randn(6, 4), modes=("train", "eval")),
    ModuleCase("batch_norm2d", lambda lib: lib.BatchNorm2d(3, eps=1e-3), randn(4, 3, 5, 5, scale=3.0),
               modes=("train", "eval")),
    ModuleCase("layer_norm", lambda lib: lib.LayerNorm(6), randn(2, 3, 6, scale=2.0)),
    ModuleCase("layer_norm_2d_plain", lambda lib: lib.LayerNorm((3, 6), elementwise_affine=False), randn(2, 3, 6)),
    ModuleCase("layer_norm_no_bias", lambda lib: lib.LayerNorm(6, bias=False), randn(4, 6)),
    ModuleCase("embedding", lambda lib: lib.Embedding(10, 4), lambda rng: [rng.integers(0, 10, (3, 5))]),
    ModuleCase("embedding_padding", lambda lib: lib.Embedding(10, 4, padding_idx=2),
               lambda rng: [np.array([[2, 0, 9], [1, 2, 2]])], perturbed=False),
    ModuleCase("rnn_tanh", lambda lib: lib.RNN(5, 6), randn(4, 3, 5)),
    ModuleCase("rnn_relu_2_layers_batch_first", lambda lib: lib.RNN(5, 6, 2, nonlinearity="relu", batch_first=True),
               lambda rng: [normal(rng, 3, 4, 5), normal(rng, 2, 3, 6)]),
    ModuleCase("lstm_2_layers", lambda lib: lib.LSTM(5, 6, num_layers=2), randn(4, 3, 5)),
    ModuleCase("lstm_batch_first_no_bias_with_state", lambda lib: lib.LSTM(5, 6, bias=False, batch_first=True),
               lambda rng: [normal(rng, 3, 4, 5), normal(rng, 1, 3, 6), normal(rng, 1, 3, 6)],
               call=lambda m, x, h, c: m(x, (h, c))),
    ModuleCase("lstm_3_layers_dropout_eval", lambda lib: lib.LSTM(5, 6, num_layers=3, dropout=0.3), randn(4, 2, 5),
               modes=("eval",)),
    ModuleCase("lstm_long_sequence", lambda lib: lib.LSTM(4, 8, num_layers=2), randn(16, 2, 4)),
    ModuleCase("mha_weights", lambda lib: lib.MultiheadAttention(8, 2), lambda rng: [
        normal(rng, 4, 2, 8), normal(rng, 5, 2, 8), normal(rng, 5, 2, 8)]),
    ModuleCase("mha_bool_masks_batch_first", lambda lib: lib.MultiheadAttention(8, 4, batch_first=True),
               lambda rng: [normal(rng, 2, 5, 8), causal_mask(5), padding_mask(2, 5)],
               call=lambda m, x, mask, pad: m(x, x, x, key_padding_mask=pad, attn_mask=mask, need_weights=False)),
    ModuleCase("mha_float_mask_per_head_weights", lambda lib: lib.MultiheadAttention(8, 2, bias=False),
               lambda rng: [normal(rng, 3, 2, 8), normal(rng, 4, 2, 8), normal(rng, 4, 2, 8), normal(rng, 4, 3, 4)],
               call=lambda m, q, k, v, mask: m(q, k, v, attn_mask=mask, average_attn_weights=False)),
    ModuleCase("transformer_post_norm_relu", lambda lib: lib.TransformerEncoderLayer(8, 2, 16, batch_first=True),
               randn(2, 5, 8), modes=("eval",)),
    ModuleCase("transformer_norm_first_gelu", lambda lib: lib.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, activation="gelu", norm_first=True), randn(5, 2, 8), modes=("train", "eval")),
    ModuleCase("transformer_masks", lambda lib: lib.TransformerEncoderLayer(8, 4, 12, dropout=0.0),
               lambda rng: [normal(rng, 5, 2, 8), causal_mask(5), padding_mask(2, 5)],
               call=lambda m, x, mask, pad: m(x, src_mask=mask, src_key_padding_mask=pad)),
    ModuleCase("residual", lambda lib: residual(lib, lib.Sequential(lib.Linear(6, 6), lib.Tanh())), randn(3, 6)),
    ModuleCase("sequential_cnn", lambda lib: lib.Sequential(
        lib.Conv2d(3, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2), lib.Flatten(),
        lib.Linear(4 * 3 * 3, 5)), randn(2, 3, 6, 6), modes=("train", "eval")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forward_matches_torch(case: ModuleCase) -> None:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    theirs = case.make(torch.nn)
    if case.perturbed:
        perturb(theirs, rng)
    ours = case.make(nn)
    inputs = case.inputs(rng)
    for mode in case.modes:
        load_from_torch(ours, theirs)  # a train-mode torch forward pass has updated its running statistics
        theirs.train(mode == "train")
        ours.train(mode == "train")
        got = run_needlec(lambda *xs: case.call(ours, *xs), inputs)
        want = run_torch(lambda *xs: case.call(theirs, *xs), inputs)
        assert len(got) == len(want), f"{mode}: {len(got)} outputs, torch gives {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, case.rtol, case.atol, what=f"{case.id} ({mode}) output {i}")


def test_every_layer_function_is_covered() -> None:
    """Each ``needlec.nn.functional`` export is exercised by a module case above or by test_losses.py."""
    used_by_modules = {"gelu": "act_gelu", "silu": "act_silu", "leaky_relu": "act_leaky_relu", "elu": "act_elu",
                       "layer_norm": "layer_norm", "batch_moments": "batch_norm2d", "batch_norm": "batch_norm2d",
                       "dropout": "dropout", "embedding": "embedding"}
    covered_by_losses = {"softplus"}  # binary_cross_entropy_with_logits is built on it
    assert set(nn.functional.__all__) == set(used_by_modules) | covered_by_losses
    ids = {c.id for c in CASES} | {"dropout"}
    assert set(used_by_modules.values()) <= ids


# -- state, buffers and initialisation -------------------------------------------------------
def test_state_dict_matches_torch_names_order_and_buffers() -> None:
    for make in (lambda lib: lib.Sequential(lib.Conv2d(1, 2, 3), lib.BatchNorm2d(2), lib.Flatten()),
                 lambda lib: lib.LSTM(3, 4, num_layers=2), lambda lib: lib.TransformerEncoderLayer(8, 2, 16)):
        ours, theirs = make(nn), make(torch.nn)
        state, want = ours.state_dict(), numpy_state(theirs)
        assert list(state) == list(want)
        for name in want:
            assert state[name].shape == want[name].shape and state[name].dtype == want[name].dtype, name
    bn = nn.BatchNorm1d(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm1d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]


def test_initialisation_follows_torch() -> None:
    nn.manual_seed(0)
    lstm = nn.LSTM(3, 16, num_layers=2)
    for _, p in lstm.named_parameters():
        assert np.abs(p.data).max() <= 0.25 and np.abs(p.data).max() > 0.2  # uniform(+-1/sqrt(16))
    mha = nn.MultiheadAttention(8, 2)
    bound = math.sqrt(6 / (8 + 24))  # Xavier uniform on (24, 8)
    assert np.abs(mha.in_proj_weight.data).max() <= bound and np.abs(mha.in_proj_weight.data).max() > 0.8 * bound
    assert not mha.in_proj_bias.data.any() and not mha.out_proj.bias.data.any()
    embedding = nn.Embedding(1000, 8, padding_idx=-1)
    assert embedding.padding_idx == 999 and not embedding.weight.data[999].any()
    assert abs(embedding.weight.data.std() - 1.0) < 0.05
    norm = nn.LayerNorm(4)
    assert (norm.weight.data == 1).all() and (norm.bias.data == 0).all()
    bn = nn.BatchNorm2d(2)
    assert (bn.running_var.data == 1).all() and bn.num_batches_tracked.data.dtype == np.int64


def test_train_and_eval_reach_nested_modules() -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    layer.eval()
    assert not any(m.training for m in layer.modules())
    assert not layer.self_attn.attn_dropout.training
    layer.train()
    assert all(m.training for m in layer.modules())


def test_batch_norm_proposes_torch_running_statistics() -> None:
    """A train-mode trace with ``track_state_updates`` yields PyTorch's updated running statistics."""
    rng = np.random.default_rng(1)
    for momentum in (0.1, None):
        theirs = torch.nn.BatchNorm2d(3, momentum=momentum)
        perturb(theirs, rng)
        with torch.no_grad():
            theirs.num_batches_tracked.fill_(4)
        ours = load_from_torch(nn.BatchNorm2d(3, momentum=momentum), theirs)
        x = normal(rng, 4, 3, 5, 5, scale=2.0)
        recording = record(ours, x, track_state_updates=True)
        assert [name for name, _, _ in recording.state_updates] == ["running_mean", "running_var",
                                                                    "num_batches_tracked"]
        graph = recording.graph
        graph.set_outputs([*graph.outputs, *[value for _, _, value in recording.state_updates]])
        _, mean, var, count = needlec.compile(graph)(x)
        theirs(torch.from_numpy(x))
        assert_close(mean, theirs.running_mean.numpy(), what="running_mean")
        assert_close(var, theirs.running_var.numpy(), what="running_var")
        assert_close(count, theirs.num_batches_tracked.numpy(), what="num_batches_tracked")
        assert ours.running_mean.data is not None and not np.allclose(ours.running_mean.data, mean)  # pure
    plain = record(nn.BatchNorm2d(3), normal(rng, 2, 3, 2, 2))
    assert plain.state_updates == []


def test_batch_norm_rejects_wrong_shapes() -> None:
    with pytest.raises(ShapeError, match=r"BatchNorm2d\(3\): expected a 4-D input with 3 channels on axis 1, "
                                         r"found shape \(2, 4, 5, 5\)"):
        needlec.trace(nn.BatchNorm2d(3), np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ShapeError, match="training needs more than 1 value per channel"):
        needlec.trace(nn.BatchNorm1d(3), np.zeros((1, 3), np.float32))
    with pytest.raises(ShapeError, match=r"LSTM: expected a non-empty input of shape \(T, N, input_size\)"):
        needlec.trace(nn.LSTM(4, 2), np.zeros((3, 2, 5), np.float32))
    with pytest.raises(NeedlecError, match="embed_dim 6 must be divisible by num_heads 4"):
        nn.MultiheadAttention(6, 4)


# -- dropout: statistics and reproducibility --------------------------------------------------
def dropout_outputs(module: nn.Module, x: np.ndarray, calls: int = 1) -> list[np.ndarray]:
    """``calls`` applications of ``module`` to ``x`` in one trace."""
    return run_needlec(lambda t: [module(t) for _ in range(calls)], [x])


def test_dropout_statistics() -> None:
    x = np.ones((200, 500), np.float32)
    (out,) = dropout_outputs(nn.Dropout(0.3, seed=5), x)
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.005  # 100k Bernoulli(0.7) draws: std 0.0014
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)
    assert abs(out.mean() - 1.0) < 0.01  # unbiased in expectation
    (all_dropped,) = dropout_outputs(nn.Dropout(1.0, seed=5), x[:4])
    assert not all_dropped.any()


def test_dropout_is_reproducible_from_seed_and_step() -> None:
    x = np.arange(1, 1001, dtype=np.float32).reshape(10, 100)
    first, again = dropout_outputs(nn.Dropout(0.5, seed=11), x), dropout_outputs(nn.Dropout(0.5, seed=11), x)
    np.testing.assert_array_equal(first[0], again[0])
    assert (dropout_outputs(nn.Dropout(0.5, seed=12), x)[0] != first[0]).any()
    stepped = nn.Dropout(0.5, seed=11)
    stepped.step = 1
    assert (dropout_outputs(stepped, x)[0] != first[0]).any()
    twice = dropout_outputs(nn.Dropout(0.5, seed=11), x, calls=2)  # two calls in one trace: two masks
    np.testing.assert_array_equal(twice[0], first[0])
    assert (twice[1] != twice[0]).any()
    nn.manual_seed(3)
    seeded = nn.Dropout(0.5)
    nn.manual_seed(3)
    assert nn.Dropout(0.5).seed == seeded.seed


def test_dropout_is_identity_in_eval_mode() -> None:
    x = normal(np.random.default_rng(0), 8, 8)
    (out,) = dropout_outputs(nn.Dropout(0.9).eval(), x)
    np.testing.assert_array_equal(out, x)
    graph = needlec.trace(nn.Dropout(0.9).eval(), x)
    assert [n.op for n in graph.nodes] == []
    with pytest.raises(NeedlecError, match=r"probability p must be in \[0, 1\], found 1.5"):
        nn.Dropout(1.5)


# -- gradients against PyTorch autograd (the acceptance criterion) -------------------------------
def assert_gradients_match(ours: nn.Module, theirs: Any, loss_ours: Callable[..., Any],
                           loss_theirs: Callable[..., Any], inputs: list[np.ndarray], argnums: tuple[int, ...],
                           rtol: float = 1e-4) -> None:
    """needlec.value_and_grad of ``loss_ours`` equals torch autograd of ``loss_theirs`` (inputs and parameters)."""
    value, (input_grads, param_grads) = needlec.value_and_grad(loss_ours, argnums=argnums, wrt_params=ours)(*inputs)
    want_value, want_inputs, want_params = torch_gradients(loss_theirs, theirs, inputs, argnums)
    assert_close(value, want_value, rtol=1e-5, what="loss")
    assert list(param_grads) == list(want_params)
    for i, g, w in zip(argnums, input_grads, want_inputs):
        assert_close(g, w, rtol, atol=rtol * 1e-2 * np.abs(w).max(), what=f"d loss / d input {i}")
    for name, w in want_params.items():
        assert np.abs(w).max() > 0, f"{name}: the test should give every parameter a gradient"
        assert_close(param_grads[name], w, rtol, atol=rtol * 1e-2 * np.abs(w).max(), what=f"d loss / d {name}")


def test_mlp_gradients_match_torch() -> None:
    rng = np.random.default_rng(2)

    def make(lib: Any) -> Any:
        return lib.Sequential(lib.Linear(6, 16), lib.ReLU(), lib.Linear(16, 16), lib.Tanh(), lib.Linear(16, 3))

    torch.manual_seed(2)
    theirs = make(torch.nn)
    ours = load_from_torch(make(nn), theirs)
    x, y = normal(rng, 8, 6), rng.integers(0, 3, 8)
    assert_gradients_match(ours, theirs, lambda x, y: ops.cross_entropy(ours(x), y),
                           lambda x, y: F_torch.cross_entropy(theirs(x), y), [x, y], (0,))


@pytest.mark.slow  # compiles a large backward graph (>10 s)
def test_cnn_with_batch_norm_gradients_match_torch() -> None:
    rng = np.random.default_rng(3)

    def make(lib: Any) -> Any:
        # no conv bias before BatchNorm: its gradient is exactly zero (the batch mean absorbs it)
        return lib.Sequential(lib.Conv2d(3, 4, 3, padding=1, bias=False), lib.BatchNorm2d(4), lib.ReLU(),
                              lib.MaxPool2d(2), lib.Conv2d(4, 6, 3, stride=2, padding=1, bias=False),
                              lib.BatchNorm2d(6), lib.ReLU(),
                              lib.AvgPool2d(2), lib.Flatten(), lib.Linear(6, 5))

    torch.manual_seed(3)
    theirs = make(torch.nn)
    perturb(theirs, rng)
    ours = load_from_torch(make(nn), theirs)
    x, y = normal(rng, 4, 3, 8, 8), rng.integers(0, 5, 4)
    assert ours.training and theirs.training  # batch statistics, and gradients flow through them
    assert_gradients_match(ours, theirs, lambda x, y: ops.cross_entropy(ours(x), y),
                           lambda x, y: F_torch.cross_entropy(theirs(x), y), [x, y], (0,))


def lstm_regressor(lib: Any) -> Any:
    class Regressor(lib.Module):
        """A 2-layer LSTM read out at the last step by a Linear head."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = lib.LSTM(4, 6, num_layers=2, batch_first=True)
            self.head = lib.Linear(6, 2)

        def forward(self, x: Any, h0: Any, c0: Any) -> Any:
            out, _ = self.lstm(x, (h0, c0))
            return self.head(out[:, -1])

    return Regressor()


@pytest.mark.slow  # compiles a large backward graph (>10 s)
def test_multi_layer_lstm_gradients_match_torch() -> None:
    rng = np.random.default_rng(4)
    torch.manual_seed(4)
    theirs = lstm_regressor(torch.nn)
    ours = load_from_torch(lstm_regressor(nn), theirs)
    inputs = [normal(rng, 3, 5, 4), normal(rng, 2, 3, 6), normal(rng, 2, 3, 6), normal(rng, 3, 2)]
    assert_gradients_match(ours, theirs, lambda x, h, c, y: ops.mse_loss(ours(x, h, c), y),
                           lambda x, h, c, y: F_torch.mse_loss(theirs(x, h, c), y), inputs, (0, 1, 2))


@pytest.mark.slow  # compiles a large backward graph (>10 s)
@pytest.mark.parametrize("norm_first, activation", [(False, "relu"), (True, "gelu")])
def test_transformer_encoder_layer_gradients_match_torch(norm_first: bool, activation: str) -> None:
    rng = np.random.default_rng(5)

    def make(lib: Any) -> Any:
        return lib.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=activation, batch_first=True,
                                           norm_first=norm_first)

    torch.manual_seed(5)
    theirs = make(torch.nn)
    perturb(theirs, rng)
    ours = load_from_torch(make(nn), theirs)
    x, mask, y = normal(rng, 2, 5, 8), causal_mask(5), rng.integers(0, 8, (2, 5))

    def loss_ours(x: Any, y: Any) -> Any:
        return ops.cross_entropy(ops.permute(ours(x, src_mask=mask), (0, 2, 1)), y)

    def loss_theirs(x: Any, y: Any) -> Any:
        return F_torch.cross_entropy(theirs(x, src_mask=torch.from_numpy(mask)).permute(0, 2, 1), y)

    assert_gradients_match(ours, theirs, loss_ours, loss_theirs, [x, y], (0,))


def test_embedding_gradient_skips_the_padding_row() -> None:
    rng = np.random.default_rng(6)
    torch.manual_seed(6)
    theirs = torch.nn.Embedding(6, 3, padding_idx=0)
    ours = load_from_torch(nn.Embedding(6, 3, padding_idx=0), theirs)
    idx, y = np.array([[0, 1, 1], [5, 0, 2]]), normal(rng, 2, 3, 3)
    grads = needlec.grad(lambda i, y: ops.mse_loss(ours(i), y, reduction="sum"), wrt_params=ours)(idx, y)
    _, _, want = torch_gradients(lambda i, y: F_torch.mse_loss(theirs(i), y, reduction="sum"), theirs, [idx, y], ())
    assert not grads["weight"][0].any()
    assert_close(grads["weight"], want["weight"], rtol=1e-5, what="d loss / d weight")
