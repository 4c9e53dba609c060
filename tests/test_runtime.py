"""The runtime: input validation, shared-library export and loading."""
from __future__ import annotations

import io
import logging
import subprocess
import sys
import time

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.errors import ArtifactError, RuntimeInputError, UnsupportedOpError


@pytest.fixture(scope="module")
def model() -> needlec.Compiled:
    g = Graph("affine")
    x = g.add_input("x", TensorType((2, 3), DType.F32))
    s = g.add_input("s", TensorType((), DType.F32))
    g.set_outputs([g.add("mul", x, s), g.add("exp", x)])
    return needlec.compile(g)


def test_call_by_position_and_by_name(model) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    a, b = model(x, np.float32(2))
    np.testing.assert_allclose(a, 2 * x)
    a2, _ = model(s=np.float32(3), x=x)
    np.testing.assert_allclose(a2, 3 * x)
    np.testing.assert_allclose(b, np.exp(x), rtol=1e-6)


def test_non_contiguous_input_is_accepted(model) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4).T[:2, :3]
    np.testing.assert_allclose(model(x, np.float32(1))[0], x)


@pytest.mark.parametrize("args, kwargs, message", [
    ((np.zeros((2, 3), np.float32),), {}, r"expected 2 input\(s\), found 1; missing s"),
    ((np.zeros((2, 3), np.float32), np.float32(1), np.float32(1)), {}, r"expected 2 input\(s\) \(x, s\), found 3"),
    ((np.zeros((3, 2), np.float32), np.float32(1)), {}, r"input 'x' expected shape \(2, 3\), found \(3, 2\)"),
    ((np.zeros((2, 3), np.float64), np.float32(1)), {}, "input 'x' expected dtype float32, found float64"),
    ((np.zeros((2, 3), np.float32),), {"t": np.float32(1)}, "unknown input 't'"),
    (([[1.0, 2.0, 3.0]] * 2, np.float32(1)), {}, "input 'x' must be a numpy array, found list"),
])
def test_bad_inputs_raise_named_errors(model, args, kwargs, message) -> None:
    with pytest.raises(RuntimeInputError, match=message):
        model(*args, **kwargs)


def test_unknown_op_is_named() -> None:
    g = Graph("g")
    x = g.add_input("x", TensorType((2,), DType.F32))
    with pytest.raises(UnsupportedOpError, match="unknown op 'frobnicate'"):
        g.add("frobnicate", x)


def test_export_and_load_in_a_fresh_process(model, tmp_path) -> None:
    lib = str(tmp_path / "affine.so")
    model.export(lib)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, needlec\n"
        f"m = needlec.load({lib!r})\n"
        f"a, b = m(np.load({str(tmp_path / 'x.npy')!r}), np.float32(0.5))\n"
        f"np.save({str(tmp_path / 'a.npy')!r}, a); np.save({str(tmp_path / 'b.npy')!r}, b)\n"
        "try:\n    m(a)\nexcept needlec.NeedlecError as e:\n    print('rejected:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "rejected:" in out.stdout and "missing s" in out.stdout
    a_jit, b_jit = model(x, np.float32(0.5))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), a_jit)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), b_jit)


def test_load_rejects_missing_and_foreign_files(tmp_path) -> None:
    with pytest.raises(ArtifactError, match="no such file"):
        needlec.load(str(tmp_path / "missing.so"))
    bogus = tmp_path / "bogus.so"
    bogus.write_text("not a library")
    with pytest.raises(ArtifactError, match="cannot load"):
        needlec.load(str(bogus))


def _large_state_graph() -> Graph:
    """out = x @ W + sum(v); v <- v + 1 (W and v are larger than INLINE_LIMIT: external data)."""
    g = Graph("large_state")
    x = g.add_input("x", TensorType((2, 64), DType.F32))
    w = g.add_constant(np.arange(64 * 48, dtype=np.float32).reshape(64, 48) / 1000, "W")
    v = g.add_variable(np.zeros(2048, np.float32), "v")
    g.set_update(v, g.add("add", v, g.add_constant(np.float32(1), "one")))
    g.set_outputs([g.add("add", g.add("matmul", x, w), g.add("reduce_sum", v, axes=[0]))])
    return g


def test_external_data_in_the_jit_and_in_a_shared_library(tmp_path) -> None:
    from needlec.compiler.codegen.cpu import INLINE_LIMIT, external_data
    from needlec.compiler.pipeline import Pipeline

    graph = _large_state_graph()
    externals = external_data(Pipeline().run(graph).program, 64)
    assert sorted((e.writable, e.nbytes) for e in externals) == [(False, 64 * 48 * 4), (True, 2048 * 4)]
    assert all(e.nbytes > INLINE_LIMIT for e in externals)
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    w = graph.constants[0].data
    compiled = needlec.compile(graph)
    np.testing.assert_allclose(compiled(x), x @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(compiled(x), x @ w + 2048, rtol=1e-5, atol=1e-3)  # v was updated in place
    np.testing.assert_array_equal(compiled.get_variable("v"), np.full(2048, 2, np.float32))
    compiled.set_variable("v", np.full(2048, 0.5, np.float32))
    lib = compiled.export(str(tmp_path / "state.so"))  # continues from the current state
    loaded = needlec.load(lib)
    np.testing.assert_allclose(loaded(x), x @ w + 1024, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(loaded(x), x @ w + 3072, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(compiled.get_variable("v"), np.full(2048, 0.5, np.float32))  # separate state


def test_aligned_bytes_copies_onto_the_alignment() -> None:
    from needlec.build.jit import aligned_bytes

    data = np.arange(1000, dtype=np.float64)[::2]
    for alignment in (64, 256):
        copy = aligned_bytes(data, alignment)
        assert copy.ctypes.data % alignment == 0 and copy.flags.writeable
        np.testing.assert_array_equal(copy.view(np.float64), data)


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as standard error in an interactive shell does."""

    def isatty(self) -> bool:
        return True


def test_progress_shown_as_lines_outside_a_terminal_with_a_total() -> None:
    from needlec.progress import Progress

    stream = io.StringIO()
    with Progress(True, stream) as progress:
        with progress.stage("first"):
            pass
        with progress.stage("second"):
            time.sleep(0.01)
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines[:2]] == ["first", "second"] and lines[0].endswith(" ms")
    assert lines[2].startswith("needlec: 2 stages in ") and "slowest: second" in lines[2]


def test_progress_auto_and_never_print_nothing_outside_a_terminal() -> None:
    from needlec.progress import Progress

    for show in (None, False):
        stream = io.StringIO()
        with Progress(show, stream) as progress:
            with progress.stage("quick"):
                pass
        assert stream.getvalue() == "", show


def test_progress_bar_on_a_terminal(monkeypatch) -> None:
    from needlec import progress as progress_module
    from needlec.progress import Progress

    stream = _Terminal()
    with Progress(None, stream, expected=3) as progress:
        with progress.stage("quick"):
            pass
    assert stream.getvalue() == ""  # auto: held back, the compilation has not taken a couple of seconds
    monkeypatch.setattr(progress_module, "AUTO_DELAY", 0.0)
    monkeypatch.setattr(progress_module, "REFRESH", 0.01)
    stream = _Terminal()
    with Progress(True, stream, expected=3) as progress:
        with progress.stage("parse"):
            pass
        with progress.stage("llvm: optimize (O3)"):
            time.sleep(0.1)  # the bar is redrawn while a stage runs
    text = stream.getvalue()
    assert "needlec: llvm: optimize (O3)" in text and "1/3" in text and "2/3" in text
    assert text.count("llvm: optimize (O3)") >= 3  # redrawn during the long stage, not only at its ends
    last_draw = text.rsplit("\r", 1)[1].splitlines()
    assert last_draw[0].startswith("needlec: done") and "2/2" in last_draw[0]  # complete when closed
    assert last_draw[1].startswith("needlec: 2 stages in ") and "slowest: llvm: optimize (O3) " in last_draw[1]
    stream = _Terminal()
    with Progress(False, stream) as progress:
        with progress.stage("quiet"):
            pass
    assert stream.getvalue() == ""


def test_progress_logs_every_stage_and_the_total(caplog) -> None:
    from needlec.progress import Progress

    caplog.set_level(logging.DEBUG, logger="needlec")
    with pytest.raises(ValueError):
        with Progress(False) as progress:
            with progress.stage("failing"):
                raise ValueError("boom")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["failing"]  # no total for a failure
    caplog.clear()
    with Progress(False) as progress:
        with progress.stage("first"):
            pass
    assert [(r.name, r.levelno) for r in caplog.records] == [("needlec.progress", logging.DEBUG),
                                                             ("needlec.progress", logging.DEBUG)]
    assert caplog.records[1].getMessage().startswith("compiled: 1 stages in ")


def test_the_library_logs_nothing_by_default() -> None:
    code = ("import numpy as np, needlec; needlec.compile(lambda x: x * 2, [np.ones(3, np.float32)], "
            "progress=None); import logging; logging.getLogger('needlec').warning('seen')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr


def test_progress_reports_every_pass_as_an_instrument() -> None:
    from needlec.compiler.passes import PASSES
    from needlec.compiler.pipeline import Pipeline
    from needlec.progress import Progress

    stream = io.StringIO()
    graph = Graph("g")
    x = graph.add_input("x", TensorType((2,), DType.F32))
    graph.set_outputs([graph.add("neg", x)])
    Pipeline(instruments=[Progress(True, stream)]).run(graph)
    assert [line.split()[1] for line in stream.getvalue().splitlines()] == [p.name for p in PASSES]
