"""The per-kernel profiler: ``Compiled.profile``, ``NativeModel.profile`` of a loaded library, ``needlec run
--profile`` / ``--profile-json``, the static flops and bytes estimates and the Chrome trace.

The model is ``tests/test_artifacts.py``'s affine ONNX model (``relu(x @ W + B)`` and a mask; its ONNX nodes
are named, so kernels carry origins): x[2, 64] @ W[64, 32] is a matmul of M=2, K=64, N=32.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import needlec
from needlec import abi
from needlec.cli import main
from needlec.compiler.ir.dtypes import DType
from needlec.compiler.loops.cost import KernelCost, kernel_cost
from needlec.compiler.loops.ir import Binary, Buffer, Cast, Const, If, Kernel, Load, Loop, Stmt, Store, Var
from needlec.compiler.loops.parser import parse_program
from needlec.compiler.loops.printer import print_program
from needlec.errors import NeedlecError
from needlec.runtime.native import NativeModel
from needlec.runtime.profile import Profile
from tests.test_artifacts import X, write_model

M, K, N = 2, 64, 32
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("profile") / "affine.onnx")


@pytest.fixture(scope="module")
def compiled(onnx_path: Path) -> needlec.Compiled:
    return needlec.compile(str(onnx_path), input_shapes={"x": X.shape}, progress=False)


@pytest.fixture(scope="module")
def library(compiled: needlec.Compiled, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler (cc)")
    return Path(compiled.export(str(tmp_path_factory.mktemp("profile_so") / "affine.so")))


def kernel_names(compiled: needlec.Compiled) -> list[str]:
    return [k.name for k in compiled.program.kernels]


def check_profile(profile: Profile, names: list[str], repeat: int) -> None:
    """Every kernel of ``names`` ran ``repeat`` times for a positive time; the kernels' time fits the runs'."""
    assert sorted(r.name for r in profile.rows) == sorted(names)
    assert all(r.calls == repeat and r.total_ns > 0 for r in profile.rows), profile.rows
    assert 0 < profile.total_ns <= profile.wall_ns
    totals = [r.total_ns for r in profile.rows]
    assert totals == sorted(totals, reverse=True)


@pytest.mark.parametrize("repeat", [1, 4])
def test_every_kernel_is_timed_once_per_run_within_the_wall_time(compiled: needlec.Compiled, repeat: int) -> None:
    profile = compiled.profile(X, repeat=repeat)
    check_profile(profile, kernel_names(compiled), repeat)
    assert profile.repeat == repeat and len([e for e in profile.events if e.kernel is None]) == repeat
    assert sum(e.duration_ns for e in profile.events if e.kernel is None) == profile.wall_ns


def test_a_matmul_kernel_is_estimated_at_2mnk_flops_and_its_buffers_bytes() -> None:
    m, k, n = 3, 7, 5
    c = needlec.compile(lambda a, b: a @ b, [np.ones((m, k), np.float32), np.ones((k, n), np.float32)],
                        progress=False)
    profile = c.profile(np.ones((m, k), np.float32), np.ones((k, n), np.float32), repeat=2)
    [matmul] = profile.rows
    assert [s.op for s in matmul.info.sources] == ["matmul"]
    assert matmul.info.flops == 2 * m * n * k
    assert matmul.info.bytes == (m * k + k * n + m * n) * 4  # each buffer once, though read n or m times
    assert matmul.gflops == pytest.approx(2 * 2 * m * n * k / matmul.total_ns)


def test_the_onnx_models_matmul_does_at_least_2mnk_flops(compiled: needlec.Compiled) -> None:
    [kernel] = [k for k in compiled.program.kernels if "matmul" in k.ops]
    assert kernel_cost(kernel).flops >= 2 * M * N * K  # more where the add and relu are fused in


def _kernel(body: tuple[Stmt, ...], *buffers: Buffer) -> Kernel:
    return Kernel("k", buffers, body)


def test_costs_count_float_arithmetic_and_each_element_at_most_once() -> None:
    a, b, out = Buffer("a", DType.F32, 12), Buffer("b", DType.F32, 3), Buffer("out", DType.F32, 12)
    i, j = Var("i"), Var("j")
    row = Binary("add", Binary("mul", i, Const(3)), j)  # index arithmetic: not counted
    add = Loop("i", 4, (Loop("j", 3, (Store(out, row, Binary("add", Load(a, row), Load(b, j))),)),))
    assert kernel_cost(_kernel((add,), a, b, out)) == KernelCost(12, (12 + 3 + 12) * 4)  # b: 4 reads, once

    flags, limit = Buffer("flags", DType.BOOL, 3), Buffer("limit", DType.F32, 1)
    window = Loop("j", 3, (Store(flags, j, Binary("gt", Load(a, Binary("add", Const(3), j)),
                                                         Load(limit, Const(0)))),))
    assert kernel_cost(_kernel((window,), a, limit, flags)) == KernelCost(3, 3 * 4 + 4 + 3)  # 3 of a's 12

    x, y = Buffer("x", DType.F32, 4), Buffer("y", DType.F32, 4)
    square = Binary("add", Binary("mul", Load(x, i), Load(x, i)), Cast(DType.F32, Const(1)))
    branch = Loop("i", 4, (If(Binary("lt", i, Const(2)), (Store(y, i, square),), (Store(y, i, Load(x, i)),)),))
    assert kernel_cost(_kernel((branch,), x, y)) == KernelCost(4 * 2, 4 * 4 + 4 * 4)  # the costlier branch


def test_kernels_name_their_onnx_nodes(compiled: needlec.Compiled) -> None:
    profile = compiled.profile(X, repeat=1)
    nodes = " ".join(r.info.nodes for r in profile.rows)
    for onnx_node in ("matmul", "add", "relu", "greater"):
        assert f"@ {onnx_node})" in nodes, nodes
    text = str(profile)
    assert all(name in text for name in kernel_names(compiled)) and "(matmul @ matmul)" in text
    assert text.splitlines()[-1].lstrip().startswith("100.0%") and "total of" in text.splitlines()[-1]


def test_origins_round_trip_through_the_loop_ir_text(compiled: needlec.Compiled) -> None:
    program = compiled.program
    text = print_program(program)
    assert 'origin="matmul"' in text
    assert [k.sources for k in parse_program(text).kernels] == [k.sources for k in program.kernels]


def test_the_trace_has_one_complete_event_per_kernel_per_run_in_order(compiled: needlec.Compiled,
                                                                      tmp_path: Path) -> None:
    repeat = 3
    compiled.profile(X, repeat=repeat, trace=tmp_path / "trace.json")
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert all({"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"} <= set(e) for e in complete)
    kernels = [e for e in complete if e["cat"] == "kernel"]
    runs = [e for e in complete if e["cat"] == "session"]
    names = kernel_names(compiled)
    assert len(runs) == repeat and len(kernels) == repeat * len(names)
    assert [e["name"] for e in kernels] == names * repeat  # in execution order, run after run
    assert all(e["dur"] > 0 for e in kernels)
    for before, after in zip(kernels, kernels[1:]):
        assert after["ts"] >= before["ts"] + before["dur"] - 1e-3  # microseconds, rounded from nanoseconds
    for run in runs:
        inside = [e for e in kernels if e["args"]["run"] == run["args"]["run"]]
        assert run["ts"] - 1e-3 <= inside[0]["ts"] and inside[-1]["ts"] + inside[-1]["dur"] <= run["ts"] + run["dur"] \
            + 1e-3


def test_counters_stay_at_zero_while_profiling_is_off(compiled: needlec.Compiled) -> None:
    native = compiled._current.native
    assert native.profiler is not None
    compiled.profile(X, repeat=2)
    native.profiler.reset()
    native(X)
    native(X)
    assert native.profiler.counters().shape == (len(kernel_names(compiled)), len(abi.PROFILE_FIELDS))
    assert not native.profiler.counters().any()  # profile() switched timing off again
    assert native.profiler.enable(True) is False
    native(X)
    assert native.profiler.enable(False) is True
    assert (native.profiler.counters()[:, abi.PROFILE_FIELDS.index("calls")] == 1).all()


def test_profile_checks_its_arguments(compiled: needlec.Compiled) -> None:
    with pytest.raises(NeedlecError, match="repeat expects a positive count"):
        compiled.profile(X, repeat=0)
    with pytest.raises(NeedlecError, match="input"):
        compiled._current.native.profile(X[:1, :3])


def test_a_new_shape_is_profiled_on_its_own_specialisation(compiled: needlec.Compiled) -> None:
    x = np.ones((5, 64), np.float32)
    profile = compiled.profile(x, repeat=2)
    check_profile(profile, kernel_names(compiled), 2)
    assert compiled.signature.inputs[0].shape == (5, 64)
    compiled(X)  # back to the first shape for the other tests


@needs_cc
def test_an_exported_library_is_profiled_through_load(library: Path, compiled: needlec.Compiled) -> None:
    model = needlec.load(str(library))
    assert isinstance(model, NativeModel) and model.profiler is not None
    profile = model.profile(X, repeat=3)
    check_profile(profile, kernel_names(compiled), 3)
    assert [k.name for k in model.profiler.kernels] == kernel_names(compiled)


@needs_cc
def test_needlec_run_profiles_a_library_and_writes_its_trace(library: Path, compiled: needlec.Compiled,
                                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    trace = tmp_path / "run.json"
    assert main(["run", str(library), "--random-inputs", "--profile", "--repeat", "3", "--profile-json",
                 str(trace)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("profile of"):]
    assert all(name in table for name in kernel_names(compiled)), out
    assert "latency over 3 runs" in out and "y: float32[2, 32] =" in out
    events = json.loads(trace.read_text())["traceEvents"]
    assert len([e for e in events if e.get("cat") == "kernel"]) == 3 * len(kernel_names(compiled))


def test_needlec_run_profiles_a_model_file(onnx_path: Path, compiled: needlec.Compiled, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", X)
    assert main(["run", str(onnx_path), str(tmp_path / "x.npy"), "--profile", "-q"]) == 0
    out = capsys.readouterr().out
    lines = out[out.index("profile of"):].splitlines()
    assert lines[0].startswith("profile of affine: 1 run,") and "share" in lines[1]
    assert sorted(line.split()[6] for line in lines[2:-1]) == sorted(kernel_names(compiled))
    assert all(line.split()[3] == "1" for line in lines[2:-1])  # calls


@needs_cc
def test_a_library_without_profiling_symbols_loads_runs_and_refuses_to_profile(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signature = json.dumps({"name": "old", "inputs": [{"name": "x", "shape": [2], "dtype": "float32"}],
                            "outputs": [{"name": "y", "shape": [2], "dtype": "float32"}], "variables": [],
                            "cpu": "x86-64", "cpu_features": []})
    source = ("#include <stdint.h>\n"
              f"const char *needlec_signature(void) {{ return {json.dumps(signature)}; }}\n"
              "int32_t needlec_run(void **in, void **out) {\n"
              "    const float *x = in[0]; float *y = out[0]; y[0] = 2 * x[0]; y[1] = 2 * x[1]; return 0;\n}\n"
              "void *needlec_variable(int32_t i) { (void)i; return 0; }\n")
    (tmp_path / "old.c").write_text(source)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(tmp_path / "old.so"), str(tmp_path / "old.c")], check=True)
    model = needlec.load(str(tmp_path / "old.so"))
    np.testing.assert_array_equal(model(np.array([1, 2], np.float32)), [2, 4])
    assert model.profiler is None
    with pytest.raises(NeedlecError, match="built without profiling support") as error:
        model.profile(np.array([1, 2], np.float32))
    assert "\n" not in str(error.value)
    assert main(["run", str(tmp_path / "old.so"), "--random-inputs", "--profile"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "without profiling support" in err
