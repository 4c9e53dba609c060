"""The needlec command: compile, run, ir, passes, ops, and one-line errors with non-zero exits."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from needlec import load as needlec_load
from needlec.cli import main
from needlec.compiler.ir.parser import parse_graph
from needlec.compiler.passes import PASS_NAMES

ROOT = pathlib.Path(__file__).resolve().parent.parent
MLP = str(ROOT / "examples" / "mlp.py")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "needlec.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_compile_then_run_the_shared_library(tmp_path, capsys) -> None:
    lib = tmp_path / "mlp.so"
    assert main(["compile", MLP, "-o", str(lib)]) == 0
    x = np.load(ROOT / "examples" / "mlp_input.npy")
    np.save(tmp_path / "x.npy", x)
    out_dir = tmp_path / "out"
    assert main(["run", str(lib), "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", str(out_dir)]) == 0
    (result,) = list(out_dir.iterdir())
    via_model = tmp_path / "model_out"
    assert main(["run", MLP, "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", str(via_model)]) == 0
    np.testing.assert_allclose(np.load(result), np.load(next(via_model.iterdir())), rtol=1e-6)


@pytest.mark.parametrize("emit, check", [
    ("ir", lambda text: parse_graph(text) is not None),
    ("llvm", lambda text: "define" in text and "needlec_run" in text),
    ("loops", lambda text: text.startswith("program @mlp") and "kernel k0_" in text),
])
def test_compile_emits_text_artifacts(tmp_path, emit, check) -> None:
    out = tmp_path / f"mlp.{emit}"
    assert main(["compile", MLP, "-o", str(out), "--emit", emit, "-q"]) == 0
    assert check(out.read_text())


def test_compile_emits_an_object_file(tmp_path) -> None:
    out = tmp_path / "mlp.o"
    assert main(["compile", MLP, "-o", str(out), "-q"]) == 0
    assert out.read_bytes()[:4] == b"\x7fELF"


def test_ir_text_model_files_compile(tmp_path) -> None:
    ir = tmp_path / "mlp.nir"
    assert main(["compile", MLP, "-o", str(ir), "-q"]) == 0
    assert main(["compile", str(ir), "-o", str(tmp_path / "again.nir"), "-q"]) == 0
    assert (tmp_path / "again.nir").read_text() == ir.read_text()


def test_ir_prints_every_stage_and_the_requested_passes(capsys) -> None:
    assert main(["ir", MLP, "--print-after", "cse", "--print-after", "plan_memory"]) == 0
    out = capsys.readouterr().out
    for header in ("input graph", "IR after cse", "IR after plan_memory", "graph after the last graph pass",
                   "loop IR", "LLVM IR (optimised)"):
        assert header in out
    assert "IR after dce" not in out


def test_ir_print_after_all_and_dump_dir(tmp_path, capsys) -> None:
    assert main(["ir", MLP, "--stage", "graph", "--print-after-all", "--dump-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(f"IR after {name} -----" in out for name in PASS_NAMES)
    assert len(list(tmp_path.iterdir())) == len(PASS_NAMES)


def test_passes_and_ops_list(capsys) -> None:
    assert main(["passes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == list(PASS_NAMES)
    assert main(["passes", "--target", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert main(["ops"]) == 0
    assert "conv2d" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["compile", "missing.py", "-o", "x.so"], "model file missing.py does not exist"),
    (["compile", "README.md", "-o", "x.so"], "unsupported file type .md"),
    (["compile", MLP, "-o", "x.so", "--target", "tpu"], "unknown target 'tpu'"),
    (["ir", MLP, "--target", "cuda"], "unknown target 'cuda'; available: cpu"),
    (["run", MLP, "--target", "gpu"], "unknown target 'gpu'"),
    (["passes", "--target", "tpu"], "unknown target 'tpu'"),
    (["run", "missing.so"], "cannot load missing.so: no such file"),
    (["run", MLP, "--input", "x"], "--input expects NAME=FILE.npy"),
])
def test_errors_print_one_line_and_exit_non_zero(args, message) -> None:
    result = _cli(*args)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr and result.stderr.startswith("needlec: error:")


def test_a_closed_pipe_stops_output_quietly() -> None:
    """``needlec ir ... | head``: the reader leaving is not an error (no message; 141, like a process SIGPIPE ends)."""
    process = subprocess.Popen([sys.executable, "-m", "needlec.cli", "ir", MLP, "--full-constants", "-q"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"// ----- input graph")
    process.stdout.close()  # the output (megabytes of weights) is far from written: the next write fails
    assert process.wait(timeout=120) == 141
    assert process.stderr.read() == b""


def test_bad_ir_file_names_the_line(tmp_path) -> None:
    bad = tmp_path / "bad.nir"
    bad.write_text("graph @g(%x: f32[2]) {\n  %y: f32[2] = frobnicate(%x)\n  return %y\n}\n")
    result = _cli("compile", str(bad), "-o", str(tmp_path / "bad.so"))
    assert result.returncode == 1 and "line 2" in result.stderr and "frobnicate" in result.stderr


def test_wrong_input_shape_at_run_time(tmp_path) -> None:
    lib = tmp_path / "mlp.so"
    assert main(["compile", MLP, "-o", str(lib), "-q"]) == 0
    np.save(tmp_path / "x.npy", np.zeros((2, 784), np.float32))
    result = _cli("run", str(lib), "--input", f"x={tmp_path / 'x.npy'}")
    assert result.returncode == 1 and "expected shape (4, 784), found (2, 784)" in result.stderr


def test_data_dependent_model_file_reports_trace_error(tmp_path) -> None:
    model = tmp_path / "branchy.py"
    model.write_text("import numpy as np\n"
                     "def model(x):\n    return x if (x.sum() > 0) else -x\n"
                     "example_inputs = (np.ones(3, np.float32),)\n")
    result = _cli("compile", str(model), "-o", str(tmp_path / "b.so"))
    assert result.returncode == 1 and "data-dependent" in result.stderr


@pytest.mark.parametrize("model_file", ["py", "nir"])
def test_compile_train_writes_a_training_step_that_lowers_the_loss(tmp_path, model_file) -> None:
    model = MLP
    if model_file == "nir":  # an IR file trains as a GraphModule: its weight constants become parameters
        model = str(tmp_path / "mlp.nir")
        assert main(["compile", MLP, "-o", model, "-q"]) == 0
    lib = tmp_path / "train.so"
    assert main(["compile", model, "--train", "--loss", "cross_entropy", "--optimizer", "adam", "--lr", "0.01",
                 "-o", str(lib), "--name", "mlp_step", "-q"]) == 0
    assert "mlp_step_variable" in (tmp_path / "train.h").read_text()  # the training step takes --name too
    step = needlec_load(str(lib))
    x = np.load(ROOT / "examples" / "mlp_input.npy")
    y = np.array([1, 3, 5, 7], np.int64)
    losses = [float(step(x, y)) for _ in range(15)]
    assert losses[-1] < 0.2 * losses[0]


def test_compile_train_rejects_a_function_model(tmp_path) -> None:
    model = tmp_path / "fn.py"
    model.write_text("import numpy as np\ndef model(x):\n    return x * 2\n"
                     "example_inputs = (np.ones((2, 3), np.float32),)\n")
    result = _cli("compile", str(model), "--train", "-o", str(tmp_path / "t.so"))
    assert result.returncode == 1 and "training needs `model` to be an nn.Module" in result.stderr


def test_compile_train_from_an_onnx_model(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.random((8, 3)) * 0.1).astype(np.float32), "W"),
               numpy_helper.from_array(np.zeros(3, np.float32), "b")]
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["h"]),
                               helper.make_node("Add", ["h", "b"], ["y"])],
                              "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "linear.onnx"))
    lib = tmp_path / "train.so"
    assert main(["compile", str(tmp_path / "linear.onnx"), "--train", "--optimizer", "sgd", "--lr", "0.5",
                 "-o", str(lib), "-q"]) == 0
    step = needlec_load(str(lib))
    x, y = rng.random((4, 8)).astype(np.float32), np.array([0, 1, 2, 1], np.int64)
    losses = [float(step(x, y)) for _ in range(10)]
    assert losses[-1] < losses[0] and {s.name for s in step.signature.variables} >= {"W", "b"}


def test_debug_works_after_the_subcommand_too(tmp_path) -> None:
    missing = str(tmp_path / "missing.py")
    for args in (["--debug", "ir", missing], ["ir", missing, "--debug"]):
        result = _cli(*args)
        assert result.returncode == 1 and "Traceback" in result.stderr, args
    assert "Traceback" not in _cli("ir", missing).stderr


def test_dump_dir_alone_dumps_every_pass_to_the_folder_only(tmp_path, capsys) -> None:
    assert main(["compile", MLP, "-o", str(tmp_path / "mlp.nir"), "-q", "--dump-dir", str(tmp_path / "d")]) == 0
    assert "IR after" not in capsys.readouterr().out
    assert sorted(p.name.split("-", 1)[1][:-4] for p in (tmp_path / "d").iterdir()) == sorted(PASS_NAMES)


def test_options_are_not_prefix_matched() -> None:
    result = _cli("compile", MLP, "-o", "x.so", "--optimize", "3")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: needlec compile")
    assert "unrecognized arguments: --optimize 3" in result.stderr


def test_unknown_options_print_the_subcommands_usage() -> None:
    result = _cli("run", MLP, "--bogus")
    assert result.returncode == 2 and result.stderr.startswith("usage: needlec run")
    assert result.stderr.rstrip().endswith("needlec run: error: unrecognized arguments: --bogus")


def test_version() -> None:
    import needlec

    result = _cli("--version")
    assert result.returncode == 0 and result.stdout == f"needlec {needlec.__version__}\n" == "needlec 0.1.0\n"


@pytest.mark.parametrize("command, expected", [
    ("compile", ["-o PATH, --output PATH  the file to write", "learning rate (default: 0.001)",
                 "(default: cross_entropy)", "backend to compile for (default: cpu)"]),
    ("ir", ["which IR to print", "(default: all)"]),
    ("run", ["INPUT ", "--input NAME=FILE.npy", "--repeat N", "--random-inputs"]),
])
def test_help_describes_every_option_with_its_default(command, expected, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for piece in expected:
        assert " ".join(piece.split()) in text, piece


def test_the_cli_starts_without_loading_the_compiler() -> None:
    """``needlec --help`` is fast: the package loads its public names on first use (``needlec/__init__.py``)."""
    code = ("import sys, needlec.cli; needlec.cli.build_parser(); "
            "print(sorted(m for m in ('needlec.api', 'llvmlite', 'onnx', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_every_public_name_loads() -> None:
    import needlec

    for name in needlec.__all__:
        assert getattr(needlec, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        needlec.nope  # noqa: B018


def test_a_cli_training_step_keeps_input_names_and_carries_its_state_across_runs(tmp_path, capsys) -> None:
    """``compile --train`` keeps the model's input name (``x``, not ``input``); ``needlec run`` continues training
    from ``--load-variables`` and writes ``--save-variables``, so repeated runs lower the loss."""
    lib = str(tmp_path / "train.so")
    assert main(["compile", MLP, "--train", "--optimizer", "adam", "--lr", "0.01", "-o", lib, "-q"]) == 0
    step = needlec_load(lib)
    assert [s.name for s in step.signature.inputs] == ["x", "target"]
    np.save(tmp_path / "y.npy", np.array([1, 3, 5, 7], np.int64))
    state = str(tmp_path / "state.npz")
    run = ["run", lib, "--input", f"x={ROOT / 'examples' / 'mlp_input.npy'}", "--input", f"target={tmp_path / 'y.npy'}",
           "--save-variables", state]
    losses = []
    for i in range(6):
        assert main(run + (["--load-variables", state] if i else [])) == 0
        out = capsys.readouterr().out
        losses.append(float(out.split("=\n")[1].split()[0]))
        assert f"-> {state}" in out
    assert losses[-1] < 0.5 * losses[0], losses
    assert main(["run", lib, "--random-inputs", "--load-variables", str(tmp_path / "y.npy")]) == 1  # not an .npz
