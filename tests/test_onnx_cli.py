"""ONNX models through the ``needlec`` command and ``needlec.compile``: input shapes, artifacts, IR dumps, progress."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import needlec
from needlec.cli import main
from needlec.compiler.ir.parser import parse_graph
from needlec.compiler.passes import PASS_NAMES
from needlec.errors import NeedlecError
from needlec.frontend.onnx import OnnxImportError

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(3)
W = RNG.standard_normal((3, 5)).astype(np.float32)
B = RNG.standard_normal(5).astype(np.float32)
X = RNG.standard_normal((4, 3)).astype(np.float32)


def reference(x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ W + B, 0)


def model_proto() -> onnx.ModelProto:
    """dense.onnx: y = relu(x @ W + B) with x[batch, 3], the batch dynamic."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"], name="dense_matmul"),
             helper.make_node("Add", ["xw", "B"], ["pre"], name="dense_bias"),
             helper.make_node("Relu", ["pre"], ["y"], name="dense_relu")]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])],
                              [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("onnx_cli")
    onnx.save(model_proto(), directory / "dense.onnx")
    np.save(directory / "x.npy", X)
    return directory


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "needlec.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_compile_writes_a_library_and_its_header(workdir: Path) -> None:
    lib = workdir / "dense.so"
    assert main(["compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "-o", str(lib), "-q"]) == 0
    header = (workdir / "dense.h").read_text()
    assert "#define NEEDLEC_INPUT_X_SIZE 12" in header and "#define NEEDLEC_OUTPUT_Y_SIZE 20" in header
    np.testing.assert_allclose(needlec.load(str(lib))(X), reference(X), rtol=1e-5, atol=1e-6)
    custom = workdir / "include" / "my_dense.h"
    custom.parent.mkdir()
    assert main(["compile", str(workdir / "dense.onnx"), "--input-shape", "x=4,3", "-o", str(workdir / "d2.so"),
                 "--header", str(custom), "-q"]) == 0
    assert "(d2.so)" in custom.read_text() and not (workdir / "d2.h").exists()


def test_compile_reports_each_stage_on_stderr_unless_quiet(workdir: Path) -> None:
    result = cli("compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "-o", str(workdir / "p.so"))
    assert result.returncode == 0, result.stderr
    stages = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("needlec: ")]
    assert stages[0] == "import" and stages[1:1 + len(PASS_NAMES)] == list(PASS_NAMES)
    lines = result.stderr.splitlines()
    assert "link" in stages and lines[-1].startswith(f"needlec: wrote {workdir / 'p.so'} (so,")
    assert lines[-2].startswith(f"needlec: {len(lines) - 2} stages in ") and "slowest: " in lines[-2]
    assert all(line.rstrip().endswith(("ms", "s")) for line in lines[:-2])
    quiet = cli("compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "-o", str(workdir / "p.so"), "-q")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
    verbose = cli("compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "-o", str(workdir / "p.so"), "-v")
    records = verbose.stderr.splitlines()  # every stage as a logging record instead of a progress line
    assert [line.split()[2].rstrip(":") for line in records[1:1 + len(PASS_NAMES)]] == list(PASS_NAMES)
    assert all(line.startswith("needlec: debug: ") for line in records[:-1]) and "wrote" in records[-1]


def _on_a_terminal(*args: str) -> str:
    """What ``needlec ARGS`` writes to a 100-column pseudo-terminal (standard output and error together)."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "needlec.cli", *args], stdin=follower, stdout=follower,
                               stderr=follower, cwd=ROOT)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0
    os.close(leader)
    return b"".join(chunks).decode()


def test_compile_shows_a_progress_bar_on_a_terminal(workdir: Path) -> None:
    text = _on_a_terminal("compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "-o",
                          str(workdir / "bar.so"))
    draws = [draw for draw in text.replace("\r\n", "\n").split("\r") if draw.strip()]
    assert any(draw.startswith("needlec: llvm: optimize (O3) ") for draw in draws)  # names the running stage
    done, total, wrote = draws[-1].splitlines()[-3:]
    stages = int(total.split()[1])
    assert done.startswith("needlec: done ") and f" {stages}/{stages} [" in done
    assert total.startswith(f"needlec: {stages} stages in ") and wrote.startswith(f"needlec: wrote {workdir}")
    assert not any(draw.startswith("needlec: import ") and draw.rstrip().endswith("ms") for draw in draws)  # no lines


def test_missing_input_shape_is_the_importers_one_line_error(workdir: Path) -> None:
    result = cli("compile", str(workdir / "dense.onnx"), "-o", str(workdir / "never.so"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("needlec: error: graph input 'x' has a dynamic dimension 'batch' (axis 0)")
    assert "--input-shape x=" in result.stderr and not (workdir / "never.so").exists()


@pytest.mark.parametrize("shape, message", [
    ("x=4xthree", "--input-shape expects NAME=DIMS such as x=1x3x224x224, found 'x=4xthree'"),
    ("4x3", "--input-shape expects NAME=DIMS"),
    ("x=4x-3", "--input-shape expects NAME=DIMS"),
    ("x=4x3x2", "graph input 'x': input_shapes gives rank 3, the model declares rank 2"),
    ("x=4x7", "graph input 'x': input_shapes gives 7 for axis 1, the model fixes it to 3"),
])
def test_bad_input_shapes_are_one_line_errors(workdir: Path, shape: str, message: str, capsys) -> None:
    assert main(["compile", str(workdir / "dense.onnx"), "--input-shape", shape, "-o", str(workdir / "n.so")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("needlec: error: ") and message in err, err


def test_run_an_onnx_model_and_its_library(workdir: Path, capsys) -> None:
    out = workdir / "run_out"
    assert main(["run", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "--input", f"x={workdir / 'x.npy'}",
                 "--output-dir", str(out)]) == 0
    assert capsys.readouterr().out == f"y: float32[4, 5] -> {out / 'y.npy'}\n"
    np.testing.assert_allclose(np.load(out / "y.npy"), reference(X), rtol=1e-5, atol=1e-6)
    lib = workdir / "run.so"
    assert main(["compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "-o", str(lib), "-q"]) == 0
    assert main(["run", str(lib), "--input", f"x={workdir / 'x.npy'}", "--output-dir", str(workdir / "so_out")]) == 0
    np.testing.assert_array_equal(np.load(workdir / "so_out" / "y.npy"), np.load(out / "y.npy"))


def test_ir_prints_the_ir_after_every_pass(workdir: Path, capsys) -> None:
    assert main(["ir", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "--print-after-all", "-q"]) == 0
    out = capsys.readouterr().out
    assert all(f"// ----- IR after {name} -----" in out for name in PASS_NAMES)
    assert "graph @dense(%x: f32[4, 3])" in out and "matmul(%x, %W)" in out and "define" in out


def test_compile_print_after_a_pass(workdir: Path, capsys) -> None:
    assert main(["compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "--print-after", "cse",
                 "-o", str(workdir / "pa.so"), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("// ----- IR after cse -----\ngraph @dense(") and "IR after dce" not in out


@pytest.mark.parametrize("emit, check", [
    ("ir", lambda path: parse_graph(path.read_text()).name == "dense"),
    ("llvm", lambda path: "define" in path.read_text() and "@needlec_run(" in path.read_text()),
    ("obj", lambda path: path.read_bytes()[:4] == b"\x7fELF"),
    ("loops", lambda path: path.read_text().startswith("program @dense")),
])
def test_every_emit_kind_works_for_onnx(workdir: Path, emit: str, check) -> None:
    out = workdir / f"dense_emit.{emit}"
    assert main(["compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "--emit", emit,
                 "-o", str(out), "-q"]) == 0
    assert check(out)


def test_header_is_refused_for_text_artifacts(workdir: Path, capsys) -> None:
    assert main(["compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "--emit", "llvm",
                 "--header", "x.h", "-o", str(workdir / "h.ll")]) == 1
    assert "--header goes with a shared library or object file, not --emit llvm" in capsys.readouterr().err


def test_compile_accepts_onnx_paths_protos_and_bytes(workdir: Path) -> None:
    shapes = {"x": (4, 3)}
    for source in (str(workdir / "dense.onnx"), workdir / "dense.onnx", model_proto(),
                   model_proto().SerializeToString()):
        compiled = needlec.compile(source, input_shapes=shapes)
        np.testing.assert_allclose(compiled(X), reference(X), rtol=1e-5, atol=1e-6)
    graph = needlec.from_onnx(str(workdir / "dense.onnx"), {"x": (2, 3)})
    assert isinstance(graph, needlec.Graph) and graph.inputs[0].shape == (2, 3)
    assert "from_onnx" in needlec.__all__


def test_compile_rejects_mismatched_arguments(workdir: Path) -> None:
    with pytest.raises(OnnxImportError, match="dynamic dimension 'batch'"):
        needlec.compile(str(workdir / "dense.onnx"))
    with pytest.raises(NeedlecError, match="example_inputs apply to functions and Modules"):
        needlec.compile(str(workdir / "dense.onnx"), [X])
    graph = needlec.from_onnx(model_proto(), {"x": (4, 3)})
    with pytest.raises(NeedlecError, match="input_shapes apply to ONNX models only, not to a Graph"):
        needlec.compile(graph, input_shapes={"x": (4, 3)})
    with pytest.raises(NeedlecError, match="input shapes apply to ONNX models only"):
        needlec.compile(str(ROOT / "examples" / "mlp.py"), input_shapes={"x": (4, 784)})


def test_compile_progress_flag(workdir: Path, capsys) -> None:
    needlec.compile(str(workdir / "dense.onnx"), input_shapes={"x": (4, 3)}, progress=True)
    err = capsys.readouterr().err
    assert all(f"needlec: {name} " in err for name in PASS_NAMES) and "needlec: jit: load" in err
    assert err.splitlines()[-1].startswith(f"needlec: {len(PASS_NAMES) + 5} stages in ")
    needlec.compile(str(workdir / "dense.onnx"), input_shapes={"x": (4, 3)})  # auto: quick, so silent
    assert capsys.readouterr().err == ""


def test_compile_train_on_an_onnx_model(workdir: Path) -> None:
    lib = workdir / "train.so"
    assert main(["compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "--train", "--loss", "mse",
                 "--optimizer", "sgd", "--lr", "0.05", "-o", str(lib), "-q"]) == 0
    step = needlec.load(str(lib))
    target = np.zeros((4, 5), np.float32)
    losses = [float(step(X, target)) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]


def test_missing_output_folder_fails_before_compiling(workdir: Path, capsys) -> None:
    for output in ("nowhere/dense.so", "nowhere/dense"):
        assert main(["compile", str(workdir / "dense.onnx"), "--input-shape", "x=4x3", "-o",
                     str(workdir / output)]) == 1
        folder = workdir / "nowhere"
        assert capsys.readouterr().err == (f"needlec: error: cannot write {workdir / output}: the folder {folder} "
                                           "does not exist\n")
    compiled = needlec.compile(model_proto(), input_shapes={"x": (4, 3)})
    with pytest.raises(NeedlecError, match="the folder .*nowhere does not exist"):
        compiled.export(str(workdir / "nowhere" / "dense.so"))


@pytest.mark.parametrize("model", ["examples/cnn.py", "resnet.onnx"])
def test_ir_checks_numerics_and_prints_after_every_graph_and_loop_pass(tmp_path: Path, capsys, model: str) -> None:
    """``needlec ir MODEL --check-numerics --print-after-all`` on a traced CNN and an ONNX CNN: every pass, graph and
    loop, is printed and compared with the reference (a difference would fail the command)."""
    if model.endswith(".onnx"):
        from tests.onnx_models import MODELS

        path = str(MODELS["resnet"].export(tmp_path / model, batch=1))
    else:
        path = str(ROOT / model)
    assert main(["ir", path, "--check-numerics", "--print-after-all", "--stage", "loops", "-q"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("// ----- IR after")] == \
        [f"// ----- IR after {name} -----" for name in PASS_NAMES]
