"""CPU targets and host-independent results.

Code built for a named CPU uses only that CPU's features (an ``x86-64-v3``
library holds no AVX-512 instruction), records them, and is refused with a
one-line error on a host that lacks any (never SIGILL). Conversions give the
same bits whatever the CPU: here every check runs on the host build and on a
baseline (``x86-64-v2``: no AVX, no F16C, no FMA) build.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import needlec
from needlec.build.checked import CPUID_BITS
from needlec.cli import main
from needlec.compiler.target import PSABI_LEVELS, CpuTarget
from needlec.errors import ArtifactError, NeedlecError
from needlec.runtime.cpu_check import missing_features

ROOT = Path(__file__).resolve().parent.parent
CPUS = ("host", "x86-64-v2")


def _unrunnable_cpu() -> str | None:
    """A CPU name whose code this host cannot run (None on a host that has every feature we can name)."""
    for name in ("x86-64-v4", "sapphirerapids"):
        if missing_features(CpuTarget.named(name).features):
            return name
    return None


def _cast(x: np.ndarray, dtype: np.dtype, cpu: str) -> np.ndarray:
    return needlec.compile(lambda a: a.astype(dtype), [x], cpu=cpu)(x)


@pytest.mark.parametrize("cpu", CPUS)
def test_every_f16_code_widens_exactly(cpu: str) -> None:
    codes = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    got = _cast(codes, np.float32, cpu)
    want = codes.astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
    # NaN keeps its sign and payload (the quiet bit set), as vcvtph2ps does
    assert np.array_equal(got[nan].view(np.uint32) >> 13 & 0x3FF | 0x200, codes[nan].view(np.uint16) & 0x3FF | 0x200)


@pytest.mark.parametrize("cpu", CPUS)
def test_f32_and_f64_round_once_to_f16(cpu: str) -> None:
    rng = np.random.default_rng(0)
    special = [0.0, -0.0, 65504.0, 65519.996, 65520.0, -65520.0, 2.0 ** -14, 2.0 ** -24, 2.0 ** -25,
               2.0 ** -25 * 1.0001, 3 * 2.0 ** -26, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, np.inf, -np.inf, 1e30]
    x32 = np.concatenate([np.array(special, np.float32), rng.standard_normal(4000).astype(np.float32) * 300,
                          (rng.standard_normal(1000) * 1e-5).astype(np.float32)])
    with np.errstate(over="ignore"):
        want32 = x32.astype(np.float16)
    assert np.array_equal(_cast(x32, np.float16, cpu).view(np.uint16), want32.view(np.uint16))
    x64 = np.concatenate([x32.astype(np.float64), [1 + 2.0 ** -11 + 2.0 ** -40, 1 + 2.0 ** -11 - 2.0 ** -40,
                                                   65519.99999, 2.0 ** -25 + 2.0 ** -60]])
    with np.errstate(over="ignore"):
        want64 = x64.astype(np.float16)
    assert np.array_equal(_cast(x64, np.float16, cpu).view(np.uint16), want64.view(np.uint16))


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("source", [np.float64, np.int64, np.uint64, np.int32])
def test_casts_to_bf16_round_once(cpu: str, source: type) -> None:
    """Wide sources round straight to bf16, never through f32 first (ml_dtypes >= 0.7 does the same)."""
    if np.dtype(source).kind == "f":
        x = np.array([1 + 2.0 ** -8 + 2.0 ** -30, 1 + 2.0 ** -8, -(1 + 2.0 ** -8 + 2.0 ** -40), 3e38, 1e-40, np.nan])
    else:
        info = np.iinfo(source)
        values = [2 ** 24 + 2 ** 16 + 1, 2 ** 30 + 2 ** 22 + 1, info.max, info.min, 0, 255]
        values += [2 ** 62 + 2 ** 54 + 1, 2 ** 63 + 2 ** 55 + 1] if np.dtype(source).itemsize == 8 else []
        x = np.array([v for v in values if info.min <= v <= info.max], source)
    got = _cast(x.astype(source), ml_dtypes.bfloat16, cpu)
    want = x.astype(source).astype(ml_dtypes.bfloat16)
    assert np.array_equal(got.view(np.uint16), want.view(np.uint16))


SATURATING = [  # float -> integer: truncate toward zero, saturate to the type's range, NaN gives 0
    (np.int8, [-9.5, 300.7, -1e10, np.nan, np.inf, -np.inf, 2.9], [-9, 127, -128, 0, 127, -128, 2]),
    (np.uint8, [-1.0, 255.9, 256.0, np.nan, 1e30], [0, 255, 255, 0, 255]),
    (np.int64, [2.0 ** 63, -2.0 ** 63, np.nan, -1e30], [2 ** 63 - 1, -2 ** 63, 0, -2 ** 63]),
    (np.uint32, [-5.0, 4294967296.0, 7.9], [0, 4294967295, 7]),
    (ml_dtypes.int4, [-9.0, 8.0, 15.0, -2.5, np.nan], [-8, 7, 7, -2, 0]),
    (ml_dtypes.uint4, [-9.0, 16.0, 15.5, 3.7], [0, 15, 15, 3]),
    (ml_dtypes.int2, [-3.0, 2.0, 1.5], [-2, 1, 1]),
    (ml_dtypes.uint2, [-1.0, 4.0, 2.2], [0, 3, 2]),
]


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("dtype, values, want", SATURATING, ids=[np.dtype(d).name for d, _, _ in SATURATING])
@pytest.mark.parametrize("source", [np.float32, np.float64])
def test_float_to_int_saturates(cpu: str, dtype: type, values: list, want: list, source: type) -> None:
    got = _cast(np.array(values, source), np.dtype(dtype), cpu)
    assert got.astype(np.int64).tolist() == want


def test_integer_to_narrow_integer_keeps_the_low_bits() -> None:
    """ONNX: fixed point to fixed point discards the higher bits."""
    x = np.array([-9, 8, 15, 17, 255], np.int32)
    assert _cast(x, np.dtype(ml_dtypes.int4), "host").astype(int).tolist() == [7, -8, -1, 1, -1]


def test_psabi_levels_nest_and_the_c_check_knows_every_feature_they_use() -> None:
    levels = list(PSABI_LEVELS.values())
    assert all(set(a) < set(b) for a, b in zip(levels, levels[1:]))
    unchecked = set(CpuTarget.named("x86-64-v4").features) - set(CPUID_BITS) - {"64bit", "x87"}
    assert not unchecked, f"the C entry cannot check {unchecked}"


def test_unknown_cpu_is_a_clear_error() -> None:
    with pytest.raises(NeedlecError, match="unknown CPU 'pentium-9000'"):
        needlec.compile(lambda a: a + 1, [np.zeros(2, np.float32)], cpu="pentium-9000")
    assert main(["compile", str(ROOT / "examples" / "mlp.py"), "-o", "/tmp/never.so", "--cpu", "no such cpu",
                 "-q"]) == 1


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump")
def test_x86_64_v3_library_has_no_avx512_instruction(tmp_path: Path) -> None:
    library = tmp_path / "mlp.so"
    assert main(["compile", str(ROOT / "examples" / "mlp.py"), "-o", str(library), "--cpu", "x86-64-v3", "-q"]) == 0
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True,
                             text=True, check=True).stdout
    assert "vfmadd" in listing or "ymm" in listing  # it is AVX2 code ...
    evex = re.findall(r".*(%zmm|%k[0-7]|\{1to|%[xy]mm(1[6-9]|2[0-9]|3[01])\b).*", listing)
    assert not evex, f"AVX-512 instructions in an x86-64-v3 library: {evex[:3]}"  # ... and no AVX-512
    x = np.load(ROOT / "examples" / "mlp_input.npy")
    np.testing.assert_allclose(needlec.load(str(library))(x), needlec.compile(str(ROOT / "examples" / "mlp.py"))(x),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(_unrunnable_cpu() is None, reason="this host has every feature of the CPUs we can name")
def test_artifacts_for_features_the_host_lacks_are_refused(tmp_path: Path) -> None:
    cpu = _unrunnable_cpu()
    missing = missing_features(CpuTarget.named(cpu).features)
    model, x_path = ROOT / "examples" / "mlp.py", ROOT / "examples" / "mlp_input.npy"
    compiled = needlec.compile(str(model), cpu=cpu)  # compiles; not loaded here
    with pytest.raises(ArtifactError, match=f"built for CPU '{cpu}' and needs CPU features .* lacks: {missing[0]}"):
        compiled(np.load(x_path))
    library = compiled.export(str(tmp_path / "model.so"))
    with pytest.raises(ArtifactError, match=missing[0]):
        needlec.load(library)
    exe = tmp_path / "model"
    assert main(["compile", str(model), "-o", str(exe), "--cpu", cpu, "-q"]) == 0
    result = subprocess.run([str(exe), f"x={x_path}"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr  # no SIGILL: one line
    assert f"built for CPU '{cpu}'" in result.stderr and missing[0] in result.stderr
    run = subprocess.run(["needlec", "run", library, "--input", f"x={x_path}"], capture_output=True, text=True)
    assert run.returncode == 1 and missing[0] in run.stderr
