"""Bad ONNX models and bad inputs: a one-line error and a non-zero exit, never a crash or a hang.

Each case is checked through the CLI (a subprocess with a timeout: a crash
would show as a signal, a hang as a timeout) and through the API (a
``NeedlecError`` with the same message).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

import needlec
from needlec.errors import NeedlecError

ROOT = Path(__file__).resolve().parent.parent
BIAS = np.arange(6, dtype=np.float32).reshape(2, 3)


def make_model(nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto] = (),
               opsets: tuple[tuple[str, int], ...] = (("", 17),)) -> onnx.ModelProto:
    """A graph with input x: float32[2, 3] and output y."""
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def add_bias(bias: onnx.TensorProto | None = None) -> onnx.ModelProto:
    """y = x + b, with b an initializer."""
    return make_model([helper.make_node("Add", ["x", "b"], ["y"], name="add_bias")],
                      [bias if bias is not None else numpy_helper.from_array(BIAS, "b")])


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def external_bias(folder: Path, location: str) -> Path:
    """folder/model.onnx whose initializer b lives in the external file ``location``."""
    model = add_bias()
    tensor = model.graph.initializer[0]
    set_external_data(tensor, location=location, offset=0, length=BIAS.nbytes)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    return save(model, folder / "model.onnx")


def _missing(d: Path) -> Path:
    return d / "missing.onnx"


def _text(d: Path) -> Path:
    (d / "text.onnx").write_text("this is a text file, not an ONNX model\n")
    return d / "text.onnx"


def _random(d: Path) -> Path:
    (d / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    return d / "random.onnx"


def _empty(d: Path) -> Path:
    (d / "empty.onnx").write_bytes(b"")
    return d / "empty.onnx"


def _truncated(d: Path) -> Path:
    data = add_bias().SerializeToString()
    (d / "truncated.onnx").write_bytes(data[:len(data) // 2])
    return d / "truncated.onnx"


def _corrupted_initializer(d: Path) -> Path:
    bias = onnx.TensorProto(name="b", data_type=TensorProto.FLOAT, dims=[2, 3], raw_data=b"\0" * 7)
    return save(add_bias(bias), d / "corrupted.onnx")


def _short_initializer(d: Path) -> Path:
    bias = onnx.TensorProto(name="b", data_type=TensorProto.FLOAT, dims=[2, 3], raw_data=b"\0" * 8)
    return save(add_bias(bias), d / "short.onnx")


def _cycle(d: Path) -> Path:
    return save(make_model([helper.make_node("Add", ["x", "r"], ["a"], name="loop_add"),
                            helper.make_node("Relu", ["a"], ["r"], name="loop_relu"),
                            helper.make_node("Neg", ["a"], ["y"], name="out")]), d / "cycle.onnx")


def _dangling(d: Path) -> Path:
    return save(make_model([helper.make_node("Add", ["x", "nowhere"], ["y"], name="add_ghost")]), d / "dangling.onnx")


def _unknown_op(d: Path) -> Path:
    return save(make_model([helper.make_node("Frobnicate", ["x"], ["y"], name="frob")]), d / "unknown_op.onnx")


def _unknown_domain(d: Path) -> Path:
    node = helper.make_node("Foo", ["x"], ["y"], name="custom_foo", domain="com.example")
    return save(make_model([node], opsets=(("", 17), ("com.example", 3))), d / "unknown_domain.onnx")


def _unimported_domain(d: Path) -> Path:
    node = helper.make_node("Foo", ["x"], ["y"], name="custom_foo", domain="com.example")
    return save(make_model([node]), d / "unimported_domain.onnx")


def _external_dotdot(d: Path) -> Path:
    BIAS.tofile(d / "outside.bin")
    return external_bias(d / "model", "../outside.bin")


def _external_absolute(d: Path) -> Path:
    BIAS.tofile(d / "outside.bin")
    return external_bias(d / "model", str(d / "outside.bin"))


def _external_symlink(d: Path) -> Path:
    BIAS.tofile(d / "outside.bin")
    (d / "model").mkdir()
    os.symlink(d / "outside.bin", d / "model" / "weights.bin")
    return external_bias(d / "model", "weights.bin")


def _external_missing(d: Path) -> Path:
    return external_bias(d / "model", "weights.bin")


def _external_truncated(d: Path) -> Path:
    (d / "model").mkdir()
    (d / "model" / "weights.bin").write_bytes(BIAS.tobytes()[:10])
    return external_bias(d / "model", "weights.bin")


BAD_MODELS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("missing file", _missing, "missing.onnx does not exist"),
    ("text file", _text, "text.onnx is not an ONNX model"),
    ("random bytes", _random, "random.onnx is not an ONNX model"),
    ("empty file", _empty, "empty.onnx is not an ONNX model"),
    ("truncated", _truncated, "truncated.onnx is not an ONNX model"),
    ("corrupted initializer", _corrupted_initializer, "invalid model (onnx checker): TensorProto (tensor name: "
                                                    "b) raw_data size (7 bytes) is too small"),
    ("short initializer", _short_initializer, "invalid model (onnx checker): TensorProto (tensor name: b) "
                                            "raw_data size (8 bytes) is too small"),
    ("cycle", _cycle, "graph: the graph has a cycle through node(s) 'loop_add', 'loop_relu'"),
    ("dangling name", _dangling, "node 'add_ghost' (Add) reads 'nowhere', which no node, input or initializer "
                                 "defines (dangling name)"),
    ("unknown op", _unknown_op, "node 'frob' (Frobnicate, opset 17): unsupported op Frobnicate in domain ai.onnx "
                                "(opset 17)"),
    ("unknown domain", _unknown_domain, "node 'custom_foo' (Foo, opset 3): unsupported op Foo in domain "
                                        "com.example (opset 3)"),
    ("domain not imported", _unimported_domain, "unsupported op Foo in domain com.example (opset not imported)"),
    ("external data ..", _external_dotdot, "tensor 'b': external data location '../outside.bin' leaves the "
                                           "model's folder"),
    ("external data absolute", _external_absolute, "is an absolute path; only files inside the model's folder"),
    ("external data symlink", _external_symlink, "tensor 'b': external data location 'weights.bin' resolves "
                                                 "outside the model's folder (through a symlink)"),
    ("external data missing", _external_missing, "tensor 'b': external data file 'weights.bin' does not exist"),
    ("external data truncated", _external_truncated, "external data file 'weights.bin' is truncated "
                                                     "(expected 24 bytes, found 10)"),
]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "needlec.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("needlec: error: "), result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("make, message", [case[1:] for case in BAD_MODELS], ids=[case[0] for case in BAD_MODELS])
def test_bad_model_via_the_cli(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    path = make(tmp_path)
    out = tmp_path / "out.so"
    assert_one_line_error(cli("compile", str(path), "-o", str(out)), message)
    assert not out.exists()


@pytest.mark.parametrize("make, message", [case[1:] for case in BAD_MODELS], ids=[case[0] for case in BAD_MODELS])
def test_bad_model_via_the_api(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(NeedlecError) as info:
        needlec.compile(str(path))
    assert message in str(info.value) and "\n" not in str(info.value)
    if path.exists():  # from_onnx reads the same file with the same checks
        with pytest.raises(NeedlecError, match=re.escape(message)):
            needlec.from_onnx(str(path))


def test_from_onnx_on_a_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(NeedlecError, match="cannot read .*missing.onnx: no such file"):
        needlec.from_onnx(str(tmp_path / "missing.onnx"))


def test_the_good_twin_of_the_bad_models_works(tmp_path: Path) -> None:
    """The external-data model with its file in place imports and runs: the refusals above are not blanket."""
    (tmp_path / "model").mkdir()
    BIAS.tofile(tmp_path / "model" / "weights.bin")
    compiled = needlec.compile(str(external_bias(tmp_path / "model", "weights.bin")))
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(compiled(x), x + BIAS)


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("good")
    model = save(add_bias(), directory / "add.onnx")
    library = directory / "add.so"
    assert cli("compile", str(model), "-o", str(library), "-q").returncode == 0
    return model, library


@pytest.mark.parametrize("array, message", [
    (np.zeros((3, 2), np.float32), "add: input 'x' expected shape (2, 3), found (3, 2)"),
    (np.zeros((2, 3), np.float64), "add: input 'x' expected dtype float32, found float64"),
    (np.zeros(6, np.float32), "add: input 'x' expected shape (2, 3), found (6,)"),
])
def test_wrong_inputs_at_run_time(good_model: tuple[Path, Path], tmp_path: Path, array: np.ndarray,
                                  message: str) -> None:
    model, library = good_model
    np.save(tmp_path / "bad.npy", array)
    for artifact in (model, library):
        assert_one_line_error(cli("run", str(artifact), "--input", f"x={tmp_path / 'bad.npy'}"), message)
    with pytest.raises(NeedlecError, match=re.escape(message)):
        needlec.load(str(library))(array)


def test_unknown_and_missing_inputs_at_run_time(good_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, library = good_model
    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))
    assert_one_line_error(cli("run", str(library), "--input", f"z={tmp_path / 'x.npy'}"), "unknown input 'z'")
    assert_one_line_error(cli("run", str(model)), "missing input 'x' (give x=FILE.npy; see --help)")
    assert_one_line_error(cli("run", str(library), "--input", f"x={tmp_path / 'nope.npy'}"),
                          "cannot read input x from")
