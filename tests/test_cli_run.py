"""``needlec run`` and the executables of ``compile --emit exe``: one input syntax, random inputs, timed repeats,
a Python model file's example inputs and dynamic ONNX dimensions from the data."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from needlec.cli import main

MODEL = '''
import numpy as np


def model(a, b):
    return a * 2.0 + b


example_inputs = (np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 3), np.float32))
'''
A = np.full((2, 3), 3, np.float32)
B = np.arange(6, dtype=np.float32).reshape(2, 3)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli_run")
    (directory / "two.py").write_text(MODEL)
    np.save(directory / "a.npy", A)
    np.save(directory / "b.npy", B)
    return directory


@pytest.fixture(scope="module")
def executable(workdir: Path) -> Path:
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler (cc)")
    assert main(["compile", str(workdir / "two.py"), "-o", str(workdir / "two"), "-q"]) == 0
    return workdir / "two"


def run_cli(workdir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["run", str(workdir / "two.py"), "-q", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


GOOD = [
    ["a.npy", "b.npy"],
    ["b=b.npy", "a=a.npy"],
    ["--input", "b=b.npy", "--input", "a=a.npy"],
    ["--input=b=b.npy", "a.npy"],
    ["--input", "b=b.npy", "a.npy"],
]


@pytest.mark.parametrize("args", GOOD)
def test_run_takes_named_and_positional_inputs(workdir: Path, capsys, monkeypatch, args: list[str]) -> None:
    monkeypatch.chdir(workdir)
    out = workdir / f"run_{len(args)}_{args[0][:3]}"
    code, _, err = run_cli(workdir, capsys, *args, "--output-dir", str(out))
    assert code == 0, err
    np.testing.assert_allclose(np.load(out / "out.npy"), A * 2 + B)


@pytest.mark.parametrize("args", GOOD)
def test_executable_takes_named_and_positional_inputs(executable: Path, workdir: Path, args: list[str]) -> None:
    out = f"exe_{len(args)}_{args[0][:3]}"
    result = subprocess.run([str(executable), *args, "--output-dir", out], capture_output=True, text=True,
                            cwd=workdir, timeout=60)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(workdir / out / "out.npy"), A * 2 + B)


BAD = [
    (["a.npy", "b.npy", "c.npy"], "expected 2 input(s), found more: c.npy"),
    (["a=a.npy", "a=b.npy"], "input 'a' given twice"),
    (["a.npy", "a=b.npy"], "input 'a' given twice"),
    (["--input", "c=a.npy", "b.npy"], "unknown input 'c' in --input 'c=a.npy' (the model's inputs: see --help)"),
    (["--input", "a.npy"], "--input expects NAME=FILE.npy, found 'a.npy'"),
    (["a.npy"], "missing input 'b' (give b=FILE.npy; see --help)"),
]


@pytest.mark.parametrize("args, message", BAD)
def test_bad_inputs_have_the_same_message_in_run_and_the_executable(executable: Path, workdir: Path, capsys,
                                                                     monkeypatch, args: list[str],
                                                                     message: str) -> None:
    monkeypatch.chdir(workdir)
    code, _, err = run_cli(workdir, capsys, *args)
    assert (code, err) == (1, f"needlec: error: {message}\n")
    result = subprocess.run([str(executable), *args], capture_output=True, text=True, cwd=workdir, timeout=60)
    assert (result.returncode, result.stderr) == (1, f"two: error: {message}\n")


def test_random_inputs_are_seeded(workdir: Path, capsys) -> None:
    first = run_cli(workdir, capsys, "--random-inputs")
    assert first[0] == 0 and first == run_cli(workdir, capsys, "--random-inputs")
    other = run_cli(workdir, capsys, "--random-inputs", "--seed", "1")
    assert other[0] == 0 and other[1] != first[1]
    code, _, err = run_cli(workdir, capsys, "--random-inputs", str(workdir / "a.npy"))
    assert code == 1 and "--random-inputs replaces the input files" in err


def test_a_python_model_runs_on_its_example_inputs(workdir: Path, capsys) -> None:
    out = workdir / "example_out"
    code, _, err = run_cli(workdir, capsys, "--output-dir", str(out))
    assert code == 0, err
    np.testing.assert_allclose(np.load(out / "out.npy"), np.arange(6).reshape(2, 3) * 2.0 + 1)


def test_repeat_prints_latency_percentiles(workdir: Path, capsys) -> None:
    code, out, err = run_cli(workdir, capsys, "--repeat", "5")
    assert code == 0, err
    line = out.splitlines()[0]
    assert line.startswith("latency over 5 runs (ms): min ") and all(k in line for k in (" p50 ", " p90 ", " max "))
    _, _, err = run_cli(workdir, capsys, "--repeat", "0")
    assert err == "needlec: error: --repeat expects a positive count, found 0\n"


def test_a_dynamic_onnx_dimension_comes_from_the_data(tmp_path: Path, capsys) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "dyn.onnx")
    x = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    np.save(tmp_path / "x.npy", x)
    for inputs in (["--input", f"x={tmp_path / 'x.npy'}"], [str(tmp_path / "x.npy")]):
        assert main(["run", str(tmp_path / "dyn.onnx"), *inputs, "--output-dir", str(tmp_path / "out"), "-q"]) == 0
        assert capsys.readouterr().out.startswith("y: float32[5, 3] ->")
        np.testing.assert_array_equal(np.load(tmp_path / "out" / "y.npy"), np.maximum(x, 0))


def test_a_static_onnx_input_keeps_its_shape_check(tmp_path: Path, capsys) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "fixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "fixed.onnx")
    np.save(tmp_path / "x.npy", np.zeros((5, 3), np.float32))
    assert main(["run", str(tmp_path / "fixed.onnx"), str(tmp_path / "x.npy"), "-q"]) == 1
    assert capsys.readouterr().err == "needlec: error: fixed: input 'x' expected shape (4, 3), found (5, 3)\n"


def test_input_shapes_are_refused_for_a_python_model(workdir: Path, capsys) -> None:
    assert run_cli(workdir, capsys, "--input-shape", "a=2x3")[2].startswith(
        "needlec: error: input shapes apply to ONNX models only;")
