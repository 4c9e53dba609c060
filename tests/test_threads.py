"""Parallel loops: the schedule's policy, the OpenMP code in the JIT, shared libraries and executables, thread counts.

Results must be the same bits for every thread count (each iteration computes what the serial loop does).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import needlec
from needlec.compiler.ir.dtypes import DType
from needlec.cli import main
from needlec.compiler.loops.ir import Binary, Buffer, Const, Kernel, Load, Loop, LoopKind, Store, Var
from needlec.compiler.loops.transforms import find_loop, walk
from needlec.compiler.passes.schedule import PARALLEL_MIN_ITERATIONS, parallelize_outermost
from needlec.compiler.target import Target, openmp_runtime
from needlec.driver import jit_compile, run_pipeline
from needlec.progress import Progress

pytestmark = pytest.mark.skipif(openmp_runtime() is None, reason="needs an OpenMP runtime (libgomp or libomp)")

RNG = np.random.default_rng(0)
A = RNG.normal(size=(257, 263)).astype(np.float32)  # odd sizes: chunks of unequal length
B = RNG.normal(size=(263, 97)).astype(np.float32)


def _model(a, b):  # type: ignore[no-untyped-def]
    return needlec.ops.tanh(a @ b) * 2 + needlec.ops.exp(-(a @ b))


def _program(target: Target):  # type: ignore[no-untyped-def]
    return run_pipeline(needlec.trace(_model, A, B), target, Progress(False)).program


def _kinds(program) -> set[str]:  # type: ignore[no-untyped-def]
    return {str(n.kind) for k in program.kernels for n in walk(k) if isinstance(n, Loop)}


def test_large_outermost_loops_run_in_parallel_with_the_same_bits_for_every_thread_count() -> None:
    target = Target.named()
    program = _program(target)
    assert "parallel" in _kinds(program)
    serial_target = replace(target, loop_kinds=target.loop_kinds - {"parallel"})
    serial = jit_compile(_program(serial_target), serial_target)(A, B)
    model = jit_compile(program, target)
    np.testing.assert_allclose(serial, np.tanh(A @ B) * 2 + np.exp(-(A @ B)), rtol=1e-4, atol=1e-4)
    for threads in (1, 2, 3, 5, 0):
        model.set_num_threads(threads)
        np.testing.assert_array_equal(model(A, B), serial, err_msg=f"{threads} thread(s)")
    with pytest.raises(needlec.NeedlecError, match="set_num_threads expects a count >= 0, found -1"):
        model.set_num_threads(-1)


def _buffer(name: str, size: int) -> Buffer:
    return Buffer(name, DType.F32, size)


def test_policy_peels_unit_loops_and_skips_small_or_dependent_nests() -> None:
    x, out = _buffer("x", 1024 * 1024), _buffer("out", 1024 * 1024)
    i, j = Var("i"), Var("j")
    index = Binary("add", Binary("mul", i, Const(1024)), j)
    body = (Loop("j", 1024, (Store(out, index, Load(x, index)),)),)
    batch_of_one = Kernel("k", (x, out), (Loop("n", 1, (Loop("i", 1024, body),)),))
    scheduled = parallelize_outermost(batch_of_one)
    assert [type(s).__name__ for s in scheduled.body] == ["Loop"] and scheduled.body[0].var == "i"
    assert find_loop(scheduled, "i").kind is LoopKind.PARALLEL  # the batch loop of one iteration is gone
    small = Kernel("k", (x, out), (Loop("i", 2, body),))
    assert 2 * 1024 < PARALLEL_MIN_ITERATIONS and parallelize_outermost(small) == small
    assert 1024 * 1024 >= PARALLEL_MIN_ITERATIONS
    running = Kernel("k", (x, out), (Loop("i", 1024, (Loop("j", 1024, (Store(out, j, Load(x, index)),)),)),))
    assert parallelize_outermost(running) == running  # every row writes the same elements: not disjoint


def test_the_environment_variable_sets_the_team_size(tmp_path: Path) -> None:
    """The pool threads OpenMP starts are visible in /proc: NEEDLEC_NUM_THREADS=3 makes a team of 3, 1 none."""
    script = tmp_path / "team.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np, needlec
        from test_threads import A, B, _model
        def threads():
            return int(next(l for l in open("/proc/self/status") if l.startswith("Threads:")).split()[1])
        compiled = needlec.compile(_model, [A, B], progress=False)
        before = threads()
        compiled(A, B)
        print(threads() - before)
    """))
    grown = {}
    for count in ("1", "3"):
        env = {**os.environ, "NEEDLEC_NUM_THREADS": count, "OMP_NUM_THREADS": "4"}
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        grown[count] = int(result.stdout.split()[-1])
    assert grown == {"1": 0, "3": 2}  # the calling thread is one of the team


def test_shared_library_and_executable_run_multithreaded(tmp_path: Path) -> None:
    compiled = needlec.compile(_model, [A, B], progress=False)
    want = compiled(A, B)
    library = compiled.export(str(tmp_path / "model.so"))
    needed = subprocess.run(["readelf", "-d", library], capture_output=True, text=True).stdout
    assert "libgomp" in needed or "libomp" in needed
    loaded = needlec.load(library)
    for threads in (2, 1):
        loaded.set_num_threads(threads)
        np.testing.assert_array_equal(loaded(A, B), want)
    np.save(tmp_path / "a.npy", A)
    np.save(tmp_path / "b.npy", B)
    program = tmp_path / "model"
    assert main(["compile", str(tmp_path / "m.py"), "-o", str(program), "-q"]) == 1  # no such file
    (tmp_path / "m.py").write_text("import numpy as np\nimport sys\nsys.path.insert(0, "
                                   f"{str(Path(__file__).parent)!r})\nfrom test_threads import A, B, _model\n"
                                   "model, example_inputs = _model, (A, B)\n")
    assert main(["compile", str(tmp_path / "m.py"), "-o", str(program), "-q"]) == 0
    for count in ("1", "2"):
        env = {**os.environ, "NEEDLEC_NUM_THREADS": count}
        result = subprocess.run([str(program), "a.npy", "b.npy", "--output-dir", f"out{count}"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        (written,) = list((tmp_path / f"out{count}").glob("*.npy"))
        np.testing.assert_array_equal(np.load(written), want)


def test_compiled_set_num_threads_applies_to_every_specialisation() -> None:
    compiled = needlec.compile(_model, progress=False)
    first = compiled(A, B)
    compiled.set_num_threads(2)
    np.testing.assert_array_equal(compiled(A, B), first)
    smaller = compiled(A[:130], B)  # a new shape compiles with the count already set
    np.testing.assert_array_equal(smaller, first[:130])
    with pytest.raises(needlec.NeedlecError, match="set_num_threads expects a count >= 0, found -2"):
        compiled.set_num_threads(-2)
