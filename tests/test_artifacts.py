"""Native artifacts of an ONNX model used from C: the shared library and its header, the object file, the executable.

Each artifact is built with the CLI and driven with no Python in the loop (a
C program compiled with ``cc``, or the generated executable run on ``.npy``
files); outputs are compared with NumPy.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import needlec
from needlec.build.checked import HEADER_NAME, checked_entry_c
from needlec.build.executable import main_source, output_file_names
from needlec.build.header import c_header
from needlec.cli import main
from needlec.runtime.signature import Signature, TensorSpec

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(7)
W = RNG.standard_normal((64, 32)).astype(np.float32)  # 8 KiB: external data, linked from the data object
B = RNG.standard_normal(32).astype(np.float32)  # 128 bytes: a constant inside the LLVM module
X = RNG.standard_normal((2, 64)).astype(np.float32)


def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the model computes: y = relu(x @ W + B) and mask:0 = (x @ W + B) > 0."""
    pre = x @ W + B
    return np.maximum(pre, 0), pre > 0


def write_model(path: Path) -> Path:
    """affine.onnx: input x[N, 64] (dynamic batch), outputs y (float32) and mask:0 (bool)."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"], name="matmul"),
             helper.make_node("Add", ["xw", "B"], ["pre"], name="add"),
             helper.make_node("Relu", ["pre"], ["y"], name="relu"),
             helper.make_node("Greater", ["pre", "zero"], ["mask:0"], name="greater")]
    graph = helper.make_graph(nodes, "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32]),
                               helper.make_tensor_value_info("mask:0", TensorProto.BOOL, ["N", 32])],
                              [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B"),
                               numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("artifacts")
    write_model(directory / "affine.onnx")
    X.tofile(directory / "x.bin")
    np.save(directory / "x.npy", X)
    return directory


def compile_model(workdir: Path, output: str, *extra: str) -> Path:
    args = ["compile", str(workdir / "affine.onnx"), "--input-shape", "x=2x64", "-o", str(workdir / output), "-q"]
    assert main([*args, *extra]) == 0
    return workdir / output


DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include HEADER

static NEEDLEC_INPUT_X_CTYPE x[NEEDLEC_INPUT_X_SIZE];
static NEEDLEC_OUTPUT_Y_CTYPE y[NEEDLEC_OUTPUT_Y_SIZE], y2[NEEDLEC_OUTPUT_Y_SIZE];
static NEEDLEC_OUTPUT_MASK_0_CTYPE mask[NEEDLEC_OUTPUT_MASK_0_SIZE], mask2[NEEDLEC_OUTPUT_MASK_0_SIZE];

static void report(const char *what, int32_t status) {
    printf("%s %d %s\n", what, (int)status, needlec_last_error());
}

int main(int argc, char **argv) {
    void *in[NEEDLEC_NUM_INPUTS], *out[NEEDLEC_NUM_OUTPUTS];
    needlec_tensor tin, tout[NEEDLEC_NUM_OUTPUTS];
    const int64_t wrong_shape[2] = {3, 64};
    FILE *f;
    if (argc != 3 || (f = fopen(argv[1], "rb")) == NULL ||
        fread(x, sizeof x[0], NEEDLEC_INPUT_X_SIZE, f) != NEEDLEC_INPUT_X_SIZE) {
        return 9;
    }
    fclose(f);
    in[NEEDLEC_INPUT_X] = x;
    out[NEEDLEC_OUTPUT_Y] = y;
    out[NEEDLEC_OUTPUT_MASK_0] = mask;
    if (needlec_run(in, out) != 0) {
        return 8;
    }
    f = fopen(argv[2], "wb");
    fwrite(y, sizeof y[0], NEEDLEC_OUTPUT_Y_SIZE, f);
    fwrite(mask, sizeof mask[0], NEEDLEC_OUTPUT_MASK_0_SIZE, f);
    fclose(f);

    tin.data = x;
    tin.dtype = NEEDLEC_INPUT_X_DTYPE_CODE;
    tin.rank = NEEDLEC_INPUT_X_RANK;
    tin.shape = needlec_inputs[NEEDLEC_INPUT_X].shape;
    tout[NEEDLEC_OUTPUT_Y].data = y2;
    tout[NEEDLEC_OUTPUT_MASK_0].data = mask2;
    for (int i = 0; i < NEEDLEC_NUM_OUTPUTS; i++) {
        tout[i].dtype = needlec_outputs[i].dtype_code;
        tout[i].rank = needlec_outputs[i].rank;
        tout[i].shape = needlec_outputs[i].shape;
    }
    report("checked", needlec_run_checked(&tin, 1, tout, NEEDLEC_NUM_OUTPUTS));
    printf("same %d\n", memcmp(y, y2, sizeof y) == 0 && memcmp(mask, mask2, sizeof mask) == 0);
    tin.shape = wrong_shape;
    report("shape", needlec_run_checked(&tin, 1, tout, NEEDLEC_NUM_OUTPUTS));
    tin.shape = needlec_inputs[NEEDLEC_INPUT_X].shape;
    tin.dtype = NEEDLEC_DTYPE_FLOAT64;
    report("dtype", needlec_run_checked(&tin, 1, tout, NEEDLEC_NUM_OUTPUTS));
    tin.dtype = NEEDLEC_DTYPE_FLOAT32;
    tin.rank = 1;
    report("rank", needlec_run_checked(&tin, 1, tout, NEEDLEC_NUM_OUTPUTS));
    tin.rank = 2;
    report("count", needlec_run_checked(&tin, 2, tout, NEEDLEC_NUM_OUTPUTS));
    tout[NEEDLEC_OUTPUT_Y].data = NULL;
    report("null", needlec_run_checked(&tin, 1, tout, NEEDLEC_NUM_OUTPUTS));
    printf("%s\n", NEEDLEC_INPUT_X_DTYPE);
    return 0;
}
"""

EXPECTED_REPORTS = [
    "checked 0 ",
    "same 1",
    "shape 1 affine: input 'x' expected shape (2, 64), found (3, 64)",
    "dtype 1 affine: input 'x' expected dtype float32, found float64",
    "rank 1 affine: input 'x' expected shape (2, 64), found (2,)",
    "count 1 affine: expected 1 input(s), found 2",
    "null 1 affine: output 'y' has no data (NULL)",
    "float32",
]


def build_driver(workdir: Path, header: Path, link: list[str], name: str) -> Path:
    source = workdir / f"{name}.c"
    source.write_text(DRIVER.replace("HEADER", f'"{header.name}"'))
    binary = workdir / name
    subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{header.parent}", str(source), *link,
                    "-lm", "-o", str(binary)], check=True)
    return binary


def run_driver(binary: Path, workdir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    result = subprocess.run([str(binary), str(workdir / "x.bin"), str(workdir / f"{binary.name}.out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    raw = (workdir / f"{binary.name}.out").read_bytes()
    y = np.frombuffer(raw[:2 * 32 * 4], np.float32).reshape(2, 32)
    mask = np.frombuffer(raw[2 * 32 * 4:], np.uint8).reshape(2, 32)
    return result.stdout.splitlines(), y, mask


def test_c_program_runs_the_shared_library_through_its_header(workdir: Path) -> None:
    library = compile_model(workdir, "libaffine.so")
    header = workdir / "libaffine.h"
    assert "int32_t needlec_run_checked(const needlec_tensor *inputs" in header.read_text()
    binary = build_driver(workdir, header, [str(library), f"-Wl,-rpath,{workdir}"], "so_driver")
    lines, y, mask = run_driver(binary, workdir)
    want_y, want_mask = reference(X)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mask, want_mask)
    assert lines == EXPECTED_REPORTS


def test_weights_are_hidden_inside_the_shared_library(workdir: Path) -> None:
    library = compile_model(workdir, "libhidden.so")
    lib = ctypes.CDLL(str(library))
    assert hasattr(lib, "needlec_run") and hasattr(lib, "needlec_run_checked")
    assert not hasattr(lib, "needlec_data_0")  # the weights' symbol is not exported
    assert library.stat().st_size > W.nbytes
    text = compile_model(workdir, "affine.ll").read_text()
    assert f"@needlec_data_0 = external hidden local_unnamed_addr constant [{W.nbytes} x i8], align 64" in text
    assert W.tobytes()[:16].hex() not in text  # the weight bytes never pass through LLVM IR text


def test_the_object_file_links_into_a_c_program(workdir: Path) -> None:
    obj = compile_model(workdir, "affine.o", "--header", str(workdir / "custom.h"))
    assert obj.read_bytes()[:4] == b"\x7fELF" and not (workdir / "affine.h").exists()
    binary = build_driver(workdir, workdir / "custom.h", [str(obj), "-fopenmp"], "obj_driver")
    lines, y, mask = run_driver(binary, workdir)
    want_y, want_mask = reference(X)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mask, want_mask)
    assert lines == EXPECTED_REPORTS


@pytest.fixture(scope="module")
def executable(workdir: Path) -> Path:
    exe = compile_model(workdir, "affine")  # no suffix: an executable
    libraries = subprocess.run(["ldd", str(exe)], capture_output=True, text=True).stdout
    assert "python" not in libraries.lower()
    return exe


def run_exe(exe: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_executable_runs_on_npy_files(executable: Path, workdir: Path) -> None:
    result = run_exe(executable, "x=x.npy", "--output-dir", "named", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["y: float32[2, 32] -> named/y.npy", "mask:0: bool[2, 32] -> named/mask_0.npy"]
    want_y, want_mask = reference(X)
    y, mask = np.load(workdir / "named" / "y.npy"), np.load(workdir / "named" / "mask_0.npy")
    assert y.dtype == np.float32 and mask.dtype == np.bool_
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mask, want_mask)
    positional = run_exe(executable, str(workdir / "x.npy"), cwd=workdir)  # default: the current directory
    assert positional.returncode == 0, positional.stderr
    np.testing.assert_array_equal(np.load(workdir / "y.npy"), y)


def test_executable_help_lists_the_signature(executable: Path, workdir: Path) -> None:
    result = run_exe(executable, "--help", cwd=workdir)
    assert result.returncode == 0
    assert "input  x: float32[2, 64]" in result.stdout and "output mask:0: bool[2, 32]" in result.stdout


@pytest.mark.parametrize("make, args, message", [
    (lambda d: np.save(d / "in.npy", np.zeros((3, 64), np.float32)), ["x=in.npy"],
     "affine: input 'x' expected shape (2, 64), found (3, 64)"),
    (lambda d: np.save(d / "in.npy", np.zeros((2, 64), np.float64)), ["in.npy"],
     "affine: input 'x' expected dtype float32, found float64"),
    (lambda d: np.save(d / "in.npy", np.zeros(64, np.float32)), ["in.npy"],
     "affine: input 'x' expected shape (2, 64), found (64,)"),
    (lambda d: np.save(d / "in.npy", np.zeros((2, 64), ">f4")), ["in.npy"],
     "input 'x': in.npy has dtype '>f4', which needlec does not read (expected float32)"),
    (lambda d: np.save(d / "in.npy", np.asfortranarray(np.zeros((2, 64), np.float32))), ["in.npy"],
     "input 'x': in.npy is not stored in C order"),
    (lambda d: (d / "in.npy").write_bytes(np.lib.format.magic(1, 0) + b"\x40\x00{'descr': '<f4',"), ["in.npy"],
     "input 'x': in.npy is truncated"),
    (lambda d: (d / "in.npy").write_text("not numpy"), ["in.npy"], "input 'x': in.npy is not a .npy file"),
    (lambda d: None, ["missing.npy"], "input 'x': cannot open missing.npy: No such file or directory"),
    (lambda d: None, [], "missing input 'x' (give x=FILE.npy; see --help)"),
    (lambda d: None, ["a.npy", "b.npy"], "expected 1 input(s), found more: b.npy"),
    (lambda d: None, ["x=a.npy", "x=b.npy"], "input 'x' given twice"),
    (lambda d: None, ["--fast"], "unknown option --fast (see --help)"),
])
def test_executable_rejects_bad_inputs_with_one_line(executable: Path, tmp_path: Path, make, args, message) -> None:
    make(tmp_path)
    result = run_exe(executable, *args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"affine: error: {message}") and result.stderr.count("\n") == 1, result.stderr


def test_truncated_npy_data_is_reported(executable: Path, tmp_path: Path) -> None:
    data = (tmp_path / "full.npy")
    np.save(data, X)
    (tmp_path / "cut.npy").write_bytes(data.read_bytes()[:-4])
    result = run_exe(executable, "cut.npy", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "affine: error: input 'x': cut.npy is truncated (expected 512 bytes of data)\n"


def test_output_file_names_are_safe_and_distinct() -> None:
    assert output_file_names(["y", "out/0:1", "..", "", "a_b", "a.b", "a b"]) == [
        "y.npy", "out_0_1.npy", "_...npy", "_.npy", "a_b.npy", "a.b.npy", "a_b_6.npy"]


def _spec(name: str, shape: tuple[int, ...], dtype: str) -> TensorSpec:
    return TensorSpec(name, shape, np.dtype(dtype))


@pytest.mark.parametrize("signature", [
    Signature("every-dtype", tuple(_spec(f"in{i}", (i % 3,) * (i % 3), d) for i, d in enumerate(
        ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
         "bool"])), (_spec("out", (), "float32"),)),
    Signature("no-inputs", (), (_spec("c", (2,), "int64"),)),
])
def test_generated_c_sources_compile_without_warnings(tmp_path: Path, signature: Signature) -> None:
    (tmp_path / HEADER_NAME).write_text(c_header(signature))
    (tmp_path / "checked.c").write_text(checked_entry_c(signature))
    (tmp_path / "main.c").write_text(main_source(signature))
    for source in ("checked.c", "main.c"):
        subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only",
                        f"-I{tmp_path}", str(tmp_path / source)], check=True)


def test_executable_of_a_python_model_matches_the_jit(tmp_path: Path) -> None:
    model, x_path = ROOT / "examples" / "mlp.py", ROOT / "examples" / "mlp_input.npy"
    exe = tmp_path / "mlp"
    assert main(["compile", str(model), "--emit", "exe", "-o", str(exe), "-q"]) == 0
    result = run_exe(exe, f"x={x_path}", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    want = needlec.compile(str(model))(np.load(x_path))
    np.testing.assert_allclose(np.load(tmp_path / "out" / "out.npy"), want, rtol=1e-5, atol=1e-6)
