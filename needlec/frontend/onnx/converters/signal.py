"""Converters for signal-processing ops: DFT, STFT, the Hann/Hamming/Blackman windows and MelWeightMatrix.

A discrete Fourier transform of static length is a matmul: the real and
imaginary parts of the signal (moved to the last axis) multiply constant
cosine and sine matrices computed with NumPy, whose rows also truncate or
zero-pad the signal to the DFT length. Windows and mel filter banks depend
only on compile-time sizes, so they become NumPy constants.
"""
from __future__ import annotations

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Value
from needlec.frontend.onnx.context import NodeContext, converter, onnx_dtype
from needlec.frontend.onnx.converters.sequence import const_int, narrow, reshape, stack, take, unsqueeze

FLOAT_TYPE = 1  # onnx.TensorProto.FLOAT, the default output_datatype


def twiddles(length_in: int, n: int, bins: int, inverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) matrices of shape (length_in, bins): entry [j, k] is the angle 2*pi*j*k/n's cosine and sine,
    rows j >= n zero (the signal is truncated to n; shorter signals are implicitly zero-padded)."""
    j = np.arange(length_in)[:, None]
    k = np.arange(bins)[None, :]
    angle = 2 * np.pi * ((j * k) % n) / n
    keep = (j < n).astype(np.float64)
    scale = 1 / n if inverse else 1.0
    return np.cos(angle) * keep * scale, np.sin(angle) * keep * scale


def to_last(ctx: NodeContext, x: Value, axis: int) -> tuple[Value, tuple[int, ...]]:
    """``x`` with ``axis`` moved last, and the permutation that moves it back."""
    rank = x.type.rank
    order = [a for a in range(rank) if a != axis] + [axis]
    back = tuple(order.index(a) for a in range(rank))
    return ctx.add("permute", x, perm=tuple(order)), back


def transform(ctx: NodeContext, x: Value, axis: int, n: int, inverse: bool, onesided: bool) -> Value:
    """DFT of ``x`` (..., 1 or 2) along ``axis`` with ONNX's output layout (..., 2), or (..., 1) for irfft.

    Computed in f64 and rounded once at the end, so the result stays within about an ulp of the exact
    transform (f32 sums over rounded twiddle factors drift by many ulps on long or large signals)."""
    dtype = x.dtype
    if dtype is not DType.F64:
        x = ctx.add("cast", x, dtype=DType.F64)
    result = transform_f64(ctx, x, axis, n, inverse, onesided)
    return result if dtype is DType.F64 else ctx.add("cast", result, dtype=dtype)


def transform_f64(ctx: NodeContext, x: Value, axis: int, n: int, inverse: bool, onesided: bool) -> Value:
    """``transform`` on an f64 signal: matmuls of its real and imaginary parts with the twiddle matrices."""
    channels = x.shape[-1]
    if channels not in (1, 2):
        raise ctx.error(f"the last axis must hold 1 (real) or 2 (real, imaginary) values, found {channels}")
    real, back = to_last(ctx, take(ctx, x, -1, 0), axis)
    imag = to_last(ctx, take(ctx, x, -1, 1), axis)[0] if channels == 2 else None
    length_in = real.shape[-1]

    def times(part: Value, matrix: np.ndarray) -> Value:
        return ctx.add("matmul", part, ctx.constant(matrix, x.dtype))

    if inverse and onesided:
        bins = n // 2 + 1
        weights = np.full(bins, 2.0)
        weights[0] = 1.0
        if n % 2 == 0:
            weights[-1] = 1.0
        used = min(length_in, bins)  # irfft reads the first n // 2 + 1 bins (Hermitian symmetry gives the rest)
        cos, sin = twiddles(used, n, n, True)
        cos, sin = cos * weights[:used, None], sin * weights[:used, None]
        out = times(narrow(ctx, real, -1, 0, used), cos)
        if imag is not None:
            out = ctx.add("sub", out, times(narrow(ctx, imag, -1, 0, used), sin))
        return unsqueeze(ctx, ctx.add("permute", out, perm=back), -1)
    bins = n // 2 + 1 if onesided else n
    cos, sin = twiddles(length_in, n, bins, inverse)
    sign = 1.0 if inverse else -1.0
    out_real, out_imag = times(real, cos), times(real, sin * sign)
    if imag is not None:
        out_real = ctx.add("sub", out_real, times(imag, sin * sign))
        out_imag = ctx.add("add", out_imag, times(imag, cos))
    parts = [ctx.add("permute", part, perm=back) for part in (out_real, out_imag)]
    return stack(ctx, parts, -1)


@converter("DFT")
def dft(ctx: NodeContext) -> list[Value]:
    x = ctx.input(0)
    rank = x.type.rank
    if ctx.opset >= 20:
        axis = const_int(ctx, 2, "axis") if ctx.has_input(2) else -2
    else:
        axis = ctx.attr("axis", 1)
    if not -rank <= axis < rank or axis % rank == rank - 1:
        raise ctx.error(f"axis {axis} is out of range for a signal of rank {rank} (the last axis holds real/imag)")
    axis %= rank
    inverse, onesided = bool(ctx.attr("inverse", 0)), bool(ctx.attr("onesided", 0))
    if ctx.has_input(1):
        n = const_int(ctx, 1, "dft_length")
    else:
        n = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
    if n <= 0:
        raise ctx.error(f"dft_length must be positive, found {n}")
    if onesided and not inverse and x.shape[-1] == 2:
        raise ctx.error("onesided output needs a real input (last axis of size 1)")
    return [transform(ctx, x, axis, n, inverse, onesided)]


@converter("STFT")
def stft(ctx: NodeContext) -> list[Value]:
    signal = ctx.input(0)
    if signal.type.rank != 3:
        raise ctx.error(f"signal must be (batch, length, 1 or 2), found shape {signal.shape}")
    step = const_int(ctx, 1, "frame_step")
    window = ctx.optional_input(2)
    if ctx.has_input(3):
        frame_length = const_int(ctx, 3, "frame_length")
    elif window is not None:
        frame_length = window.shape[0]
    else:
        raise ctx.error("STFT needs a window or a frame_length")
    window_size = window.shape[0] if window is not None else frame_length
    length = signal.shape[1]
    if step <= 0 or window_size > length:
        raise ctx.error(f"frame_step {step} must be positive and the window ({window_size}) fit the signal ({length})")
    frames_count = 1 + (length - window_size) // step
    frames = stack(ctx, [narrow(ctx, signal, 1, f * step, f * step + window_size) for f in range(frames_count)], 1)
    if window is not None:
        frames = ctx.add("mul", frames, reshape(ctx, window, (1, 1, window_size, 1)))
    onesided = bool(ctx.attr("onesided", 1))
    return [transform(ctx, frames, 2, frame_length, False, onesided)]


def window_size(ctx: NodeContext) -> tuple[int, int, DType]:
    """(size, period N, output dtype) of a window op; the windows compute in the reference's NumPy types."""
    size = const_int(ctx, 0, "size")
    if size < 0:
        raise ctx.error(f"window size must not be negative, found {size}")
    period = size if ctx.attr("periodic", 1) else size - 1
    return size, period, onnx_dtype(ctx.attr("output_datatype", FLOAT_TYPE), ctx.where)


@converter("HannWindow")
def hann_window(ctx: NodeContext) -> list[Value]:
    size, period, dtype = window_size(ctx)
    n = np.arange(size, dtype=dtype.np)
    return [ctx.constant(np.sin(n * np.pi / period) ** 2, dtype)]


@converter("HammingWindow")
def hamming_window(ctx: NodeContext) -> list[Value]:
    size, period, dtype = window_size(ctx)
    n = np.arange(size, dtype=dtype.np)
    alpha = 25.0 / 46.0
    return [ctx.constant(alpha - np.cos(n * np.pi * 2 / period) * (1 - alpha), dtype)]


@converter("BlackmanWindow")
def blackman_window(ctx: NodeContext) -> list[Value]:
    size, period, dtype = window_size(ctx)
    n = np.arange(size)
    return [ctx.constant(np.cos(n * (np.pi * 2) / period) * -0.5 + np.cos(n * (np.pi * 4) / period) * 0.08 + 0.42,
                         dtype)]


@converter("MelWeightMatrix")
def mel_weight_matrix(ctx: NodeContext) -> list[Value]:
    mel_bins, dft_length = const_int(ctx, 0, "num_mel_bins"), const_int(ctx, 1, "dft_length")
    sample_rate = const_int(ctx, 2, "sample_rate")
    low, high = ctx.require_const(3, "lower_edge_hertz"), ctx.require_const(4, "upper_edge_hertz")
    if mel_bins <= 0 or dft_length <= 0 or sample_rate <= 0:
        raise ctx.error("num_mel_bins, dft_length and sample_rate must be positive")
    # the reference's exact arithmetic (same NumPy types), so the integer bin edges agree
    low_mel = 2595 * np.log1p(low / 700) / np.log(10)
    high_mel = 2595 * np.log1p(high / 700) / np.log(10)
    step = (high_mel - low_mel) / (mel_bins + 2)
    hertz = 700 * np.expm1((np.arange(0, mel_bins + 2) * step + low_mel) / 2595 * np.log(10))
    edges = (((dft_length + 1) * hertz) // sample_rate).astype(int)
    weights = np.zeros((dft_length // 2 + 1, mel_bins))
    for i in range(mel_bins):
        left, center, right = edges[i], edges[i + 1], edges[i + 2]
        if center == left:
            weights[center, i] = 1
        else:
            weights[left:center + 1, i] = (np.arange(left, center + 1) - left) / (center - left)
        if right > center:
            weights[center:right, i] = (right - np.arange(center, right)) / (right - center)
    return [ctx.constant(weights, onnx_dtype(ctx.attr("output_datatype", FLOAT_TYPE), ctx.where))]
