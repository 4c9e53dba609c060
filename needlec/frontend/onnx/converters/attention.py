"""Converters for attention ops: Attention (opsets 23-25), RotaryEmbedding, LinearAttention and FlexAttention.

Attention decomposes into matmuls, an additive bias and a softmax, following
the ONNX reference step by step so that edge cases agree: the bias collects
the padded attention mask, the causal and sliding-window frontiers (offset by
the past length or, for an external cache, per batch by ``nonpad_kv_seqlen``)
and the padding mask; rows the bias masks completely give zeros, not NaN.
Grouped-query attention repeats each key/value head ``q_heads / kv_heads``
times. Masks that depend on run-time data (``nonpad_kv_seqlen``) compare it
with constant index grids in the graph; static ones are NumPy constants.
"""
from __future__ import annotations

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.compiler.ops import composites as C
from needlec.frontend.onnx.context import NodeContext, converter, onnx_dtype
from needlec.frontend.onnx.converters.sequence import concat, narrow, reshape, unsqueeze

QK_MODE_RAW, QK_MODE_SOFTCAP, QK_MODE_BIAS, QK_MODE_SOFTMAX = 0, 1, 2, 3


def cast(ctx: NodeContext, x: Value, dtype: DType) -> Value:
    """``x`` in ``dtype`` (no node when it already is)."""
    return x if x.dtype is dtype else ctx.add("cast", x, dtype=dtype)


def split_heads(ctx: NodeContext, x: Value, heads: int) -> Value:
    """(batch, seq, heads * size) -> (batch, heads, seq, size)."""
    batch, seq, hidden = x.shape
    if hidden % heads:
        raise ctx.error(f"hidden size {hidden} is not divisible by the number of heads {heads}")
    return ctx.add("permute", reshape(ctx, x, (batch, seq, heads, hidden // heads)), perm=(0, 2, 1, 3))


def repeat_heads(ctx: NodeContext, x: Value, repeats: int) -> Value:
    """(batch, heads, seq, size) -> (batch, heads * repeats, seq, size), each head repeated in place."""
    if repeats == 1:
        return x
    batch, heads, seq, size = x.shape
    spread = ctx.add("broadcast_to", unsqueeze(ctx, x, 2), shape=(batch, heads, repeats, seq, size))
    return reshape(ctx, spread, (batch, heads * repeats, seq, size))


def frontier_bias(ctx: NodeContext, like: Value, q_len: int, kv_len: int, offset: int | Value,
                  left: int, right: int) -> Value:
    """0 where query i may attend key j, ``-inf`` elsewhere: ``offset + i - j`` within [-right, left]
    (-1 leaves a side open). A static offset gives a (q, kv) constant; a per-batch one (batch,) a
    (batch, 1, q, kv) graph value."""
    rows = np.arange(q_len)[:, None] - np.arange(kv_len)[None, :]
    if isinstance(offset, int):
        static_diff = rows + offset
        static_allowed = ((static_diff <= left) | (left < 0)) & ((-static_diff <= right) | (right < 0))
        return ctx.constant(np.where(static_allowed, 0, -np.inf), like.dtype)
    diff = ctx.add("add", ctx.constant(rows, DType.I64), reshape(ctx, offset, (offset.shape[0], 1, 1)))
    checks = []
    if left >= 0:
        checks.append(ctx.add("le", diff, ctx.constant(np.int64(left))))
    if right >= 0:
        checks.append(ctx.add("ge", diff, ctx.constant(np.int64(-right))))
    allowed = checks[0] if len(checks) == 1 else ctx.add("logical_and", *checks)
    bias = ctx.add("where", allowed, ctx.scalar(0, like), ctx.scalar(-np.inf, like))
    return reshape(ctx, bias, (offset.shape[0], 1, q_len, kv_len))


def additive_mask(ctx: NodeContext, mask: Value, like: Value, kv_len: int) -> Value:
    """The attention mask as an additive bias in ``like``'s dtype, padded to ``kv_len`` keys with ``-inf``."""
    if mask.dtype is DType.BOOL:
        mask = ctx.add("where", mask, ctx.scalar(0, like), ctx.scalar(-np.inf, like))
    mask = cast(ctx, mask, like.dtype)
    missing = kv_len - mask.shape[-1]
    if missing < 0:
        raise ctx.error(f"attn_mask covers {mask.shape[-1]} keys, more than the {kv_len} keys present")
    if missing:
        pads = [0] * (2 * mask.type.rank)
        pads[-1] = missing
        mask = ctx.add("pad", mask, pads=tuple(pads), mode="constant", value=float("-inf"))
    return mask


def attention_bias(ctx: NodeContext, q: Value, kv_len: int, past_len: int) -> Value | None:
    """The additive bias of the attention scores (None when nothing is masked)."""
    q_len = q.shape[2]
    mask = ctx.optional_input(3)
    nonpad = ctx.optional_input(6)
    if nonpad is not None and ctx.has_input(4):
        raise ctx.error("nonpad_kv_seqlen cannot be combined with past_key/past_value")
    left, right = ctx.attr("left_window_size", -1), ctx.attr("right_window_size", -1)
    offset: int | Value = past_len
    if nonpad is not None:
        nonpad = cast(ctx, reshape(ctx, nonpad, (nonpad.type.size,)), DType.I64)
        offset = ctx.add("sub", nonpad, ctx.constant(np.int64(q_len)))
    bias = additive_mask(ctx, mask, q, kv_len) if mask is not None else None
    frontiers = [(-1, 0)] if ctx.attr("is_causal", 0) else []
    if left >= 0 or right >= 0:
        frontiers.append((left, right))
    for frontier_left, frontier_right in frontiers:
        term = frontier_bias(ctx, q, q_len, kv_len, offset, frontier_left, frontier_right)
        bias = term if bias is None else ctx.add("add", bias, term)
    if nonpad is not None:
        keys = ctx.constant(np.arange(kv_len, dtype=np.int64)[None, :])
        valid = ctx.add("lt", keys, reshape(ctx, nonpad, (nonpad.shape[0], 1)))
        padding = ctx.add("where", valid, ctx.scalar(0, q), ctx.scalar(-np.inf, q))
        padding = reshape(ctx, padding, (nonpad.shape[0], 1, 1, kv_len))
        bias = padding if bias is None else ctx.add("add", bias, padding)
    return bias


def share_heads(ctx: NodeContext, q: Value, k: Value, v: Value) -> tuple[Value, Value]:
    """K and V repeated so each query head has its own (grouped-query attention); an error if heads do not divide."""
    q_heads, kv_heads = q.shape[1], k.shape[1]
    if kv_heads == 0 or q_heads % kv_heads or v.shape[1] != kv_heads:
        raise ctx.error(f"{q_heads} query heads cannot share {kv_heads} key / {v.shape[1]} value heads")
    return repeat_heads(ctx, k, q_heads // kv_heads), repeat_heads(ctx, v, q_heads // kv_heads)


@converter("Attention")
def attention(ctx: NodeContext) -> list[Value | None]:
    q, k, v = ctx.input(0), ctx.input(1), ctx.input(2)
    rank = q.type.rank
    if rank == 3:
        q_heads, kv_heads = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
        q, k, v = split_heads(ctx, q, q_heads), split_heads(ctx, k, kv_heads), split_heads(ctx, v, kv_heads)
    elif rank != 4 or k.type.rank != 4 or v.type.rank != 4:
        raise ctx.error(f"Q, K and V must all be 3-D or all 4-D, found ranks {rank}, {k.type.rank}, {v.type.rank}")
    past_len = 0
    if ctx.has_input(4) != ctx.has_input(5):
        raise ctx.error("past_key and past_value must be given together")
    if ctx.has_input(4):
        past_len = ctx.input(4).shape[2]
        k, v = concat(ctx, [ctx.input(4), k], 2), concat(ctx, [ctx.input(5), v], 2)
    present_k, present_v = k, v
    k, v = share_heads(ctx, q, k, v)

    scale = ctx.attr("scale", None)
    scale = 1 / np.sqrt(q.shape[3]) if scale is None else scale
    root = ctx.scalar(q.dtype.np.type(np.sqrt(scale)), q)
    keys_t = ctx.add("permute", ctx.add("mul", k, root), perm=(0, 1, 3, 2))
    scores = ctx.add("matmul", ctx.add("mul", q, root), keys_t)
    softcap = ctx.attr("softcap", 0.0)
    if softcap > 0:
        cap = ctx.scalar(softcap, scores)
        scores = ctx.add("mul", ctx.add("tanh", ctx.add("div", scores, cap)), cap)
    qk_output = scores
    bias = attention_bias(ctx, q, k.shape[2], past_len)
    if bias is not None:
        scores = ctx.add("add", scores, bias)
    mode = ctx.attr("qk_matmul_output_mode", QK_MODE_RAW)
    if mode == QK_MODE_BIAS:
        qk_output = scores
    precision = ctx.attr("softmax_precision", None)
    if precision is not None:
        scores = cast(ctx, scores, onnx_dtype(precision, ctx.where))
    probs = C.softmax(ctx, scores, -1, zero_masked_rows=True)  # why: a fully masked row gives zeros (ONNX reference)
    if bias is not None:
        bias_max = ctx.add("reduce_max", bias, axes=(-1,), keepdims=True)
        masked_row = ctx.add("eq", bias_max, ctx.scalar(-np.inf, bias))
        probs = ctx.add("where", masked_row, ctx.scalar(0, probs), probs)
    probs = cast(ctx, probs, q.dtype)
    if mode == QK_MODE_SOFTMAX:
        qk_output = probs
    elif mode not in (QK_MODE_RAW, QK_MODE_SOFTCAP, QK_MODE_BIAS):
        raise ctx.error(f"qk_matmul_output_mode {mode} is not one of 0, 1, 2, 3")
    out = ctx.add("matmul", probs, v)
    if rank == 3:
        batch, heads, seq, size = out.shape
        out = reshape(ctx, ctx.add("permute", out, perm=(0, 2, 1, 3)), (batch, seq, heads * size))
    return [out, present_k, present_v, qk_output]


@converter("RotaryEmbedding")
def rotary_embedding(ctx: NodeContext) -> list[Value]:
    x, cos, sin = ctx.input(0), ctx.input(1), ctx.input(2)
    if x.type.rank == 4:
        rotated_in = ctx.add("permute", x, perm=(0, 2, 1, 3))
    elif x.type.rank == 3:
        heads = ctx.attr("num_heads", 0)
        if heads <= 0 or x.shape[2] % heads:
            raise ctx.error(f"3-D input needs num_heads dividing the hidden size {x.shape[2]}, found {heads}")
        rotated_in = reshape(ctx, x, (x.shape[0], x.shape[1], heads, x.shape[2] // heads))
    else:
        raise ctx.error(f"input must be 3-D or 4-D, found rank {x.type.rank}")
    head_size = rotated_in.shape[3]
    dim = ctx.attr("rotary_embedding_dim", 0) or head_size
    half = dim // 2
    if ctx.has_input(3):
        positions = ctx.input(3)
        cos, sin = ctx.add("gather", cos, positions, axis=0), ctx.add("gather", sin, positions, axis=0)
    if cos.shape[-1] != half or sin.shape[-1] != half:
        raise ctx.error(f"cos/sin caches end in {cos.shape[-1]}/{sin.shape[-1]}, expected rotary_dim/2 = {half}")
    cos, sin = unsqueeze(ctx, cos, 2), unsqueeze(ctx, sin, 2)
    interleaved = bool(ctx.attr("interleaved", 0))
    if interleaved:
        x1, x2 = narrow(ctx, rotated_in, 3, 0, dim, 2), narrow(ctx, rotated_in, 3, 1, dim, 2)
    else:
        x1, x2 = narrow(ctx, rotated_in, 3, 0, half), narrow(ctx, rotated_in, 3, half, dim)
    real = ctx.add("sub", ctx.add("mul", cos, x1), ctx.add("mul", sin, x2))
    imag = ctx.add("add", ctx.add("mul", sin, x1), ctx.add("mul", cos, x2))
    if interleaved:
        pairs = ctx.add("concat", unsqueeze(ctx, real, 4), unsqueeze(ctx, imag, 4), axis=4)
        rotated = reshape(ctx, pairs, real.shape[:3] + (dim,))
    else:
        rotated = ctx.add("concat", real, imag, axis=3)
    if dim < head_size:
        rotated = ctx.add("concat", rotated, narrow(ctx, rotated_in, 3, dim, head_size), axis=3)
    if x.type.rank == 3:
        return [reshape(ctx, rotated, x.shape)]
    return [ctx.add("permute", rotated, perm=(0, 2, 1, 3))]


def heads_last(ctx: NodeContext, x: Value, heads: int) -> Value:
    """(batch, seq, heads * size) -> (batch, heads, seq, size) in f32 (LinearAttention's working precision)."""
    return cast(ctx, split_heads(ctx, x, heads), DType.F32)


@converter("LinearAttention")
def linear_attention(ctx: NodeContext) -> list[Value]:
    """The recurrent (state-space) form: per step, decay the (d_k, d_v) state, optionally apply the delta rule,
    add k v^T, and read q^T S; GQA repeats the state's heads for the read."""
    rule = ctx.attr("update_rule", "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise ctx.error(f"update_rule {rule!r} is not linear, gated, delta or gated_delta")
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if gating != ctx.has_input(4) or delta != ctx.has_input(5):
        raise ctx.error(f"update_rule {rule!r} needs decay {'given' if gating else 'absent'} and beta "
                        f"{'given' if delta else 'absent'}")
    query, key, value = ctx.input(0), ctx.input(1), ctx.input(2)
    q_heads, kv_heads = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
    if q_heads <= 0 or kv_heads <= 0 or q_heads % kv_heads:
        raise ctx.error(f"q_num_heads {q_heads} must be a positive multiple of kv_num_heads {kv_heads}")
    q, k, v = heads_last(ctx, query, q_heads), heads_last(ctx, key, kv_heads), heads_last(ctx, value, kv_heads)
    batch, _, steps, d_k = k.shape
    d_v = v.shape[3]
    decay = None
    if gating:
        raw = ctx.input(4)
        if raw.shape[-1] not in (kv_heads, kv_heads * d_k):
            raise ctx.error(f"decay's last axis {raw.shape[-1]} must be kv_num_heads or kv_num_heads * d_k")
        decay = cast(ctx, split_heads(ctx, raw, kv_heads), DType.F32)
    beta = None
    if delta:
        raw = ctx.input(5)
        if raw.shape[-1] not in (kv_heads, 1):
            raise ctx.error(f"beta's last axis {raw.shape[-1]} must be kv_num_heads or 1")
        beta = cast(ctx, split_heads(ctx, raw, raw.shape[-1]), DType.F32)
    if ctx.has_input(3):
        past = ctx.input(3)
        if past.shape != (batch, kv_heads, d_k, d_v):
            raise ctx.error(f"past_state has shape {past.shape}, expected {(batch, kv_heads, d_k, d_v)}")
        state, state_dtype = cast(ctx, past, DType.F32), past.dtype
    else:
        state, state_dtype = ctx.constant(np.zeros((batch, kv_heads, d_k, d_v), np.float32)), query.dtype
    scale = ctx.attr("scale", 0.0) or 1 / np.sqrt(q.shape[3])
    reads = []
    for t in range(steps):
        k_t = narrow(ctx, k, 2, t, t + 1)                                   # (B, H, 1, d_k)
        v_t = narrow(ctx, v, 2, t, t + 1)                                   # (B, H, 1, d_v)
        if decay is not None:
            g_t = ctx.add("permute", narrow(ctx, decay, 2, t, t + 1), perm=(0, 1, 3, 2))  # (B, H, 1|d_k, 1)
            state = ctx.add("mul", state, ctx.add("exp", g_t))
        if beta is not None:
            retrieved = ctx.add("matmul", k_t, state)                       # (B, H, 1, d_v)
            v_t = ctx.add("mul", narrow(ctx, beta, 2, t, t + 1), ctx.add("sub", v_t, retrieved))
        state = ctx.add("add", state, ctx.add("matmul", ctx.add("permute", k_t, perm=(0, 1, 3, 2)), v_t))
        shared = repeat_heads(ctx, state, q_heads // kv_heads)
        reads.append(ctx.add("matmul", narrow(ctx, q, 2, t, t + 1), shared))  # (B, Hq, 1, d_v)
    out = ctx.add("mul", concat(ctx, reads, 2), ctx.constant(np.float32(scale)))
    out = reshape(ctx, ctx.add("permute", out, perm=(0, 2, 1, 3)), (batch, steps, q_heads * d_v))
    return [cast(ctx, out, query.dtype), cast(ctx, state, state_dtype)]


FLEX_SOFTMAX_DTYPES = {1: DType.F32, 10: DType.F16, 11: DType.F64}


def apply_mod(ctx: NodeContext, name: str, x: Value) -> Value:
    """``x`` through the one-input, one-output graph attribute ``name`` (unchanged when it is absent)."""
    graph = ctx.attr(name, None)
    if graph is None:
        return x
    outputs = ctx.importer.convert_subgraph(graph, [x], f"{ctx.where} {name}")
    if len(outputs) != 1 or not isinstance(outputs[0], Value) or outputs[0].shape != x.shape:
        raise ctx.error(f"{name} must map the {list(x.shape)} scores to one tensor of the same shape")
    return cast(ctx, outputs[0], x.dtype)


@converter("ai.onnx.preview::FlexAttention")
def flex_attention(ctx: NodeContext) -> list[Value]:
    """Attention with user graphs that rewrite the scores before the softmax and the probabilities after."""
    q, k, v = ctx.input(0), ctx.input(1), ctx.input(2)
    if q.type.rank != 4 or k.type.rank != 4 or v.type.rank != 4:
        raise ctx.error(f"Q, K and V must be 4-D, found shapes {q.shape}, {k.shape}, {v.shape}")
    k, v = share_heads(ctx, q, k, v)
    scale = ctx.attr("scale", None)
    scale = 1 / np.sqrt(q.shape[3]) if scale is None else scale
    root = ctx.scalar(np.sqrt(np.float32(scale)), q)
    scores = ctx.add("matmul", ctx.add("mul", q, root), ctx.add("permute", ctx.add("mul", k, root), perm=(0, 1, 3, 2)))
    precision = ctx.attr("softmax_precision", None)
    if precision is not None and precision not in FLEX_SOFTMAX_DTYPES:
        raise ctx.error(f"softmax_precision {precision} is not float, float16 or double")
    compute = FLEX_SOFTMAX_DTYPES[precision] if precision is not None else \
        (DType.F32 if q.dtype.itemsize < 4 else q.dtype)
    scores = apply_mod(ctx, "score_mod", cast(ctx, scores, compute))
    probs = apply_mod(ctx, "prob_mod", C.softmax(ctx, scores, -1))
    return [cast(ctx, ctx.add("matmul", probs, cast(ctx, v, compute)), v.dtype)]
