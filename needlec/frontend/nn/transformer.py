"""Attention layers: MultiheadAttention and TransformerEncoderLayer (PyTorch parameters and semantics)."""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Callable

import numpy as np

from needlec.errors import NeedlecError, ShapeError
from needlec.frontend import tensor_ops as F
from needlec.frontend.nn.activations import GELU, ReLU
from needlec.frontend.nn.layers import Dropout, Linear
from needlec.frontend.nn.module import Module, Parameter, generator
from needlec.frontend.nn.normalization import LayerNorm
from needlec.frontend.tensor import Tensor, as_tensor, graph_of


def _mask(scores: Tensor, mask: Any, shape: tuple[int, ...], what: str) -> Tensor:
    """``scores`` with ``mask`` applied: a bool mask sets True positions to -inf, a float mask is added.

    ``mask`` is reshaped to ``shape`` (which broadcasts against ``scores``).
    """
    m = as_tensor(mask, scores.graph, what)
    if m.size != math.prod(shape):
        raise ShapeError(f"MultiheadAttention: {what} of shape {m.shape} does not fit {shape}")
    m = F.reshape(m, shape)
    if m.dtype.is_bool:
        return F.where(m, -math.inf, scores)
    return scores + m.astype(scores.dtype)


class MultiheadAttention(Module):
    """Multi-head scaled dot-product attention with PyTorch's packed parameters.

    ``in_proj_weight`` (3E, E) holds the query, key and value projections
    stacked (Xavier-uniform init), ``in_proj_bias`` (3E) starts at zero, and
    ``out_proj`` is a Linear(E, E) whose bias starts at zero. Inputs are
    (L, N, E), or (N, L, E) with ``batch_first``.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True)`` returns ``(output,
    weights)``; weights are the attention probabilities after dropout,
    averaged over heads (N, L, S) or per head (N, H, L, S), or None without
    ``need_weights``. ``attn_mask`` is (L, S) or (N * H, L, S) and
    ``key_padding_mask`` (N, S); bool masks mark positions to ignore, float
    masks are added to the scores.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise NeedlecError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads "
                               f"{num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))
        self.in_proj_weight = Parameter(generator(rng).uniform(-bound, bound, (3 * embed_dim, embed_dim))
                                        .astype(np.float32))
        self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, np.float32)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, rng=rng)
        if bias:
            assert self.out_proj.bias is not None  # Linear(..., bias=True) has one
            self.out_proj.bias.data[:] = 0.0
        self.attn_dropout = Dropout(dropout, rng=rng)

    def _batch_first(self, x: Any, what: str) -> Tensor:
        t = as_tensor(x, graph_of(x, what="MultiheadAttention"), "MultiheadAttention")
        if t.ndim != 3 or t.shape[2] != self.embed_dim:
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise ShapeError(f"MultiheadAttention: {what} must have shape {layout} with E = {self.embed_dim}, "
                             f"found {t.shape}")
        return t if self.batch_first else F.transpose(t, 0, 1)

    def _heads(self, x: Tensor, part: int) -> Tensor:
        """Project (N, L, E) with block ``part`` (0 query, 1 key, 2 value) of in_proj and split heads: (N, H, L, D)."""
        e = self.embed_dim
        weight = self.in_proj_weight[part * e:(part + 1) * e]
        bias = None if self.in_proj_bias is None else self.in_proj_bias[part * e:(part + 1) * e]
        projected = F.linear(x, weight, bias)
        split = F.reshape(projected, (x.shape[0], x.shape[1], self.num_heads, self.head_dim))
        return F.permute(split, (0, 2, 1, 3))

    def forward(self, query: Any, key: Any, value: Any, key_padding_mask: Any = None, need_weights: bool = True,
                attn_mask: Any = None, average_attn_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        q, k, v = (self._batch_first(x, what) for x, what in ((query, "query"), (key, "key"), (value, "value")))
        batch, target, source = q.shape[0], q.shape[1], k.shape[1]
        if k.shape[0] != batch or v.shape[:2] != k.shape[:2]:
            raise ShapeError(f"MultiheadAttention: query, key and value disagree on batch or source length: "
                             f"{q.shape}, {k.shape}, {v.shape} (batch first)")
        scores = F.matmul(self._heads(q, 0) * (1.0 / math.sqrt(self.head_dim)),
                          F.transpose(self._heads(k, 1), 2, 3))
        if attn_mask is not None:
            mask = as_tensor(attn_mask, scores.graph, "attn_mask")
            shape = (batch, self.num_heads, target, source) if mask.ndim == 3 else (1, 1, target, source)
            scores = _mask(scores, mask, shape, "attn_mask")
        if key_padding_mask is not None:
            scores = _mask(scores, key_padding_mask, (batch, 1, 1, source), "key_padding_mask")
        probs = self.attn_dropout(F.softmax(scores, -1))
        context = F.permute(F.matmul(probs, self._heads(v, 2)), (0, 2, 1, 3))
        out = self.out_proj(F.reshape(context, (batch, target, self.embed_dim)))
        if not self.batch_first:
            out = F.transpose(out, 0, 1)
        if not need_weights:
            return out, None
        return out, (F.mean(probs, 1) if average_attn_weights else probs)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with dropout, a residual connection and LayerNorm.

    Post-norm by default (``x = norm1(x + sa(x)); x = norm2(x + ff(x))``), or
    pre-norm with ``norm_first`` (``x = x + sa(norm1(x)); x = x + ff(norm2(x))``),
    as in PyTorch; ``activation`` is ``"relu"``, ``"gelu"`` or a callable.
    ``forward(src, src_mask=None, src_key_padding_mask=None)``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Any], Tensor] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            rng=rng)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, rng=rng)
        self.dropout = Dropout(dropout, rng=rng)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, rng=rng)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout, rng=rng)
        self.dropout2 = Dropout(dropout, rng=rng)
        if isinstance(activation, str):
            if activation not in ("relu", "gelu"):
                raise NeedlecError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, "
                                   f"found {activation!r}")
            activation = ReLU() if activation == "relu" else GELU()
        self.activation = activation

    def _self_attention(self, x: Tensor, mask: Any, key_padding_mask: Any) -> Tensor:
        out, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False, attn_mask=mask)
        return self.dropout1(out)

    def _feed_forward(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None) -> Tensor:
        x = as_tensor(src, graph_of(src, what="TransformerEncoderLayer"), "TransformerEncoderLayer")
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), src_mask, src_key_padding_mask)
            return x + self._feed_forward(self.norm2(x))
        x = self.norm1(x + self._self_attention(x, src_mask, src_key_padding_mask))
        return self.norm2(x + self._feed_forward(x))
