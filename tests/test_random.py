"""random_uniform beyond the op table: the exact algorithm, stream properties and statistics."""
from __future__ import annotations

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.compiler.ops.random import mix64
from needlec.errors import ShapeError

MASK = 2**64 - 1
GAMMA = 0x9E3779B97F4A7C15
N = 100_000


def _mix_int(z: int) -> int:
    """SplitMix64's output function on Python ints (independent of the NumPy version)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _python_stream(seed: int, offset: int, count: int, bits: int) -> list[float]:
    """The documented definition, written out: top ``bits`` of SplitMix64 output ``offset + i``."""
    key = _mix_int(seed & MASK)
    return [(_mix_int((key + (offset + i + 1) * GAMMA) & MASK) >> (64 - bits)) * 2.0 ** -bits
            for i in range(count)]


def _compiled_uniform(shape: tuple[int, ...], seed: int, dtype: DType = DType.F32, offset: int = 0) -> np.ndarray:
    """random_uniform run as native code (the shapes used are large enough not to be constant-folded)."""
    g = Graph("rng")
    g.set_outputs([g.add("random_uniform", shape=shape, seed=seed, dtype=dtype, offset=offset)])
    compiled = needlec.compile(g)
    assert [k.name for k in compiled.program.kernels] == ["k0_random_uniform"]
    return compiled()


def test_mix64_matches_the_published_splitmix64_vector() -> None:
    # the first output of SplitMix64 seeded with 0 (Vigna's splitmix64.c)
    assert int(mix64(np.array([GAMMA], np.uint64))[0]) == 0xE220A8397B1DCDAF


@pytest.mark.parametrize("dtype,bits", [(DType.F16, 11), (DType.F32, 24), (DType.F64, 53)])
def test_native_output_is_the_documented_stream_bit_for_bit(dtype: DType, bits: int) -> None:
    got = _compiled_uniform((8, 700), seed=-3, dtype=dtype, offset=2**63 + 5)
    want = np.array(_python_stream(-3, 2**63 + 5, 8 * 700, bits), np.float64).reshape(8, 700)
    assert got.dtype == dtype.np
    np.testing.assert_array_equal(got.astype(np.float64), want)


def test_same_seed_reproduces_and_other_seeds_differ() -> None:
    a = _compiled_uniform((N,), seed=1)
    np.testing.assert_array_equal(a, _compiled_uniform((N,), seed=1))
    for other in (2, 1 + 2**32, -1):
        b = _compiled_uniform((N,), seed=other)
        assert np.mean(a == b) < 1e-3
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.02


def test_offset_shifts_the_stream_and_shape_is_row_major() -> None:
    flat = _compiled_uniform((5000,), seed=9)
    np.testing.assert_array_equal(_compiled_uniform((4000,), seed=9, offset=1000), flat[1000:])
    np.testing.assert_array_equal(_compiled_uniform((50, 100), seed=9), flat.reshape(50, 100))


@pytest.mark.parametrize("dtype", [DType.F16, DType.F32, DType.F64])
def test_uniform_statistics(dtype: DType) -> None:
    x = _compiled_uniform((N,), seed=2024, dtype=dtype).astype(np.float64)
    assert x.min() >= 0.0 and x.max() < 1.0
    # bounds are about 5 standard errors wide
    assert abs(x.mean() - 0.5) < 0.005
    assert abs(x.var() - 1 / 12) < 0.0015
    counts = np.histogram(x, bins=64, range=(0.0, 1.0))[0]
    chi2 = np.sum((counts - N / 64) ** 2 / (N / 64))
    assert chi2 < 63 + 5 * np.sqrt(2 * 63)
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.02


def test_dropout_mask_compiles_from_random_uniform() -> None:
    g = Graph("dropout")
    x = g.add_input("x", TensorType((64, 128), DType.F32))
    keep = g.add("ge", g.add("random_uniform", shape=(64, 128), seed=5), g.add_constant(np.float32(0.25), "p"))
    g.set_outputs([g.add("where", keep, g.add("mul", x, g.add_constant(np.float32(4 / 3), "scale")),
                         g.add_constant(np.float32(0.0), "zero"))])
    data = np.random.default_rng(0).uniform(1, 2, (64, 128)).astype(np.float32)
    got = needlec.compile(g)(data)
    mask = np.array(_python_stream(5, 0, 64 * 128, 24)).reshape(64, 128) >= 0.25
    np.testing.assert_allclose(got, np.where(mask, data * np.float32(4 / 3), 0), rtol=1e-6)
    assert 0.72 < mask.mean() < 0.78


def test_random_uniform_rejects_non_float_dtypes() -> None:
    with pytest.raises(ShapeError, match="random_uniform: dtype i32 is not a float dtype"):
        Graph("bad").add("random_uniform", shape=(3,), seed=0, dtype=DType.I32)
