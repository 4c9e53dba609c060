"""Two models in one C program: ``--name`` gives each its own symbols and header names.

Model ``a`` is ``tests/test_artifacts.py``'s affine ONNX model written as
``liba.so``, model ``b`` the example MLP written as ``mlp.so`` (not
``lib*.so``, so both forms of the header's link recipe are used). One C
program includes both headers, is linked with the commands the headers print
(run verbatim through the shell) and runs both models; its outputs are
compared with ``needlec.compile``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import needlec
from needlec.build.checked import HEADER_NAME, checked_entry_c
from needlec.build.executable import main_source
from needlec.build.header import c_header
from needlec.cli import main
from needlec.errors import NeedlecError
from needlec.runtime.library import library_prefixes
from needlec.runtime.library import load as load_library
from tests.test_artifacts import ROOT, X, reference, write_model

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")

MLP = ROOT / "examples" / "mlp.py"
MLP_X = np.load(ROOT / "examples" / "mlp_input.npy")

# Reads each model's inputs from <p>_in<i>.bin, runs a through a_run_checked and b through b_run,
# writes <p>_out<i>.bin. The macros of both headers are used side by side.
PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "liba.h"
#include "mlp.h"
#include "liba.h" /* again: the include guards hold */

static A_INPUT_X_CTYPE a_x[A_INPUT_X_SIZE];
static A_OUTPUT_Y_CTYPE a_y[A_OUTPUT_Y_SIZE];
static A_OUTPUT_MASK_0_CTYPE a_mask[A_OUTPUT_MASK_0_SIZE];

static int io(const char *path, void *data, size_t bytes, int write) {
    FILE *f = fopen(path, write ? "wb" : "rb");
    size_t done;
    if (f == NULL) {
        return 1;
    }
    done = write ? fwrite(data, 1, bytes, f) : fread(data, 1, bytes, f);
    fclose(f);
    return done != bytes;
}

int main(void) {
    needlec_tensor in[A_NUM_INPUTS], out[A_NUM_OUTPUTS];
    void *b_in[B_NUM_INPUTS], *b_out[B_NUM_OUTPUTS];
    int i;
    char path[64];
    if (io("a_in0.bin", a_x, sizeof a_x, 0)) {
        return 3;
    }
    in[A_INPUT_X].data = a_x;
    in[A_INPUT_X].dtype = A_INPUT_X_DTYPE_CODE;
    in[A_INPUT_X].rank = A_INPUT_X_RANK;
    in[A_INPUT_X].shape = a_inputs[A_INPUT_X].shape;
    out[A_OUTPUT_Y].data = a_y;
    out[A_OUTPUT_MASK_0].data = a_mask;
    for (i = 0; i < A_NUM_OUTPUTS; i++) {
        out[i].dtype = a_outputs[i].dtype_code;
        out[i].rank = a_outputs[i].rank;
        out[i].shape = a_outputs[i].shape;
    }
    if (a_run_checked(in, A_NUM_INPUTS, out, A_NUM_OUTPUTS) != NEEDLEC_OK) {
        fprintf(stderr, "a: %s\n", a_last_error());
        return 1;
    }
    if (io("a_out0.bin", a_y, sizeof a_y, 1) || io("a_out1.bin", a_mask, sizeof a_mask, 1)) {
        return 3;
    }
    for (i = 0; i < B_NUM_INPUTS; i++) {
        b_in[i] = malloc((size_t)(b_inputs[i].size * b_inputs[i].itemsize));
        snprintf(path, sizeof path, "b_in%d.bin", i);
        if (b_in[i] == NULL || io(path, b_in[i], (size_t)(b_inputs[i].size * b_inputs[i].itemsize), 0)) {
            return 3;
        }
    }
    for (i = 0; i < B_NUM_OUTPUTS; i++) {
        b_out[i] = malloc((size_t)(b_outputs[i].size * b_outputs[i].itemsize));
    }
    if (b_run(b_in, b_out) != 0) {
        return 2;
    }
    for (i = 0; i < B_NUM_OUTPUTS; i++) {
        snprintf(path, sizeof path, "b_out%d.bin", i);
        if (io(path, b_out[i], (size_t)(b_outputs[i].size * b_outputs[i].itemsize), 1)) {
            return 3;
        }
    }
    printf("%s %s\n", A_MODEL_NAME, B_MODEL_NAME);
    printf("%d\n", strstr(a_signature(), "\"affine\"") != NULL && strstr(b_signature(), "\"mlp\"") != NULL);
    return 0;
}
"""


def link_recipe(header: Path) -> str:
    """The link command the header prints (the comment line starting with ``cc main.c``)."""
    found = re.findall(r"^ \*   (cc main\.c .*)$", header.read_text(), re.M)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def expected(built: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``needlec.compile`` computes: a's y and mask on X, b's output on MLP_X."""
    want_y, want_mask = needlec.compile(str(built / "affine.onnx"), input_shapes={"x": (2, 64)}, progress=False)(X)
    np.testing.assert_allclose(want_y, reference(X)[0], rtol=1e-5, atol=1e-5)
    return want_y, want_mask, needlec.compile(str(MLP), progress=False)(MLP_X)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """liba.so (affine, --name a) and mlp.so (--name b), their objects, headers and the program's inputs."""
    directory = tmp_path_factory.mktemp("two_models")
    onnx_model = write_model(directory / "affine.onnx")
    affine = ["compile", str(onnx_model), "--input-shape", "x=2x64", "-q", "--name", "a"]
    assert main([*affine, "-o", str(directory / "liba.so")]) == 0
    assert main(["compile", str(MLP), "-q", "--name", "b", "-o", str(directory / "mlp.so")]) == 0
    objects = directory / "objects"
    objects.mkdir()
    assert main([*affine, "-o", str(objects / "a.o")]) == 0
    assert main(["compile", str(MLP), "-q", "--name", "b", "-o", str(objects / "mlp.o")]) == 0
    for folder in (directory, objects):
        X.tofile(folder / "a_in0.bin")
        MLP_X.tofile(folder / "b_in0.bin")
        (folder / "main.c").write_text(PROGRAM)
    shutil.copy(objects / "a.h", objects / "liba.h")  # the program includes liba.h
    return directory


def run_program(folder: Path, command: str, expected: tuple[np.ndarray, ...]) -> list[str]:
    """Link ``main.c`` in ``folder`` with ``command`` (through the shell), run it and check both models' outputs."""
    subprocess.run(command, shell=True, cwd=folder, check=True)
    result = subprocess.run(["./a.out"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    want_y, want_mask, want_b = expected
    np.testing.assert_allclose(np.fromfile(folder / "a_out0.bin", np.float32).reshape(2, 32), want_y,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.fromfile(folder / "a_out1.bin", np.uint8).reshape(2, 32), want_mask)
    np.testing.assert_allclose(np.fromfile(folder / "b_out0.bin", np.float32).reshape(want_b.shape), want_b,
                               rtol=1e-6, atol=1e-6)
    return result.stdout.splitlines()


def test_two_shared_libraries_link_into_one_program_with_the_headers_recipes(
        built: Path, expected: tuple[np.ndarray, ...]) -> None:
    recipe_a, recipe_b = link_recipe(built / "liba.h"), link_recipe(built / "mlp.h")
    assert recipe_a == "cc main.c -L. -la -Wl,-rpath,'$ORIGIN'"
    assert recipe_b == "cc main.c ./mlp.so -Wl,-rpath,'$ORIGIN'"
    both = recipe_a + recipe_b.removeprefix("cc main.c")
    assert run_program(built, both, expected) == ["affine mlp", "1"]


def test_two_objects_link_into_one_program(built: Path, expected: tuple[np.ndarray, ...]) -> None:
    objects = built / "objects"
    recipe_a, recipe_b = link_recipe(objects / "a.h"), link_recipe(objects / "mlp.h")
    assert (recipe_a, recipe_b) == ("cc main.c a.o -fopenmp -lm", "cc main.c mlp.o -fopenmp -lm")
    assert run_program(objects, recipe_a + recipe_b.removeprefix("cc main.c"), expected) == ["affine mlp", "1"]


def test_a_single_recipe_works_verbatim_and_the_so_has_its_soname(built: Path, tmp_path: Path) -> None:
    shutil.copy(built / "mlp.so", tmp_path)
    shutil.copy(built / "mlp.h", tmp_path)
    (tmp_path / "main.c").write_text('#include <stdio.h>\n#include "mlp.h"\n'
                                     "int main(void) { return b_variable(0) == NULL && B_NUM_INPUTS == 1 ? 0 : 1; }\n")
    subprocess.run(link_recipe(tmp_path / "mlp.h"), shell=True, cwd=tmp_path, check=True)
    assert subprocess.run(["./a.out"], cwd=tmp_path, timeout=60).returncode == 0
    if shutil.which("readelf"):
        dynamic = subprocess.run(["readelf", "-d", str(built / "mlp.so")], capture_output=True, text=True).stdout
        assert "Library soname: [mlp.so]" in dynamic


def test_the_loader_finds_each_library_prefix(built: Path, expected: tuple[np.ndarray, ...]) -> None:
    assert library_prefixes(str(built / "liba.so")) == ["a"]
    a, b = needlec.load(str(built / "liba.so")), needlec.load(str(built / "mlp.so"))
    np.testing.assert_allclose(a(X)[0], reference(X)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b(MLP_X), expected[2], rtol=1e-6, atol=1e-6)
    with pytest.raises(NeedlecError, match="symbol prefix 'c'"):
        load_library(str(built / "mlp.so"), name="c")


def test_export_takes_a_name_and_rejects_one_that_is_not_a_c_identifier(built: Path, tmp_path: Path) -> None:
    compiled = needlec.compile(str(MLP), progress=False)
    compiled.export(str(tmp_path / "libc.so"), header=str(tmp_path / "libc.h"), name="c_model")
    assert "int32_t c_model_run(void **inputs, void **outputs);" in (tmp_path / "libc.h").read_text()
    assert library_prefixes(str(tmp_path / "libc.so")) == ["c_model"]
    np.testing.assert_allclose(needlec.load(str(tmp_path / "libc.so"))(MLP_X), compiled(MLP_X), rtol=1e-6, atol=1e-6)
    with pytest.raises(NeedlecError, match=r"invalid symbol prefix '1x': --name must be a C identifier"):
        compiled.export(str(tmp_path / "bad.so"), name="1x")
    assert not (tmp_path / "bad.so").exists()


def test_cli_rejects_a_bad_name_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(MLP), "-q", "--name", "my-model", "-o", str(tmp_path / "m.so")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid symbol prefix 'my-model'" in err
    assert not (tmp_path / "m.so").exists()


def test_prefixed_c_sources_compile_without_warnings(tmp_path: Path) -> None:
    signature = needlec.compile(str(MLP), progress=False).signature
    (tmp_path / HEADER_NAME).write_text(c_header(signature, "libq.so", "q"))
    (tmp_path / "checked.c").write_text(checked_entry_c(signature, "q"))
    (tmp_path / "main.c").write_text(main_source(signature, "q"))
    for source in ("checked.c", "main.c"):
        subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only",
                        f"-I{tmp_path}", str(tmp_path / source)], check=True)


def test_an_executable_with_a_name_runs(tmp_path: Path, expected: tuple[np.ndarray, ...]) -> None:
    exe = tmp_path / "mlp"
    assert main(["compile", str(MLP), "--emit", "exe", "--name", "b", "-o", str(exe), "-q"]) == 0
    np.save(tmp_path / "x.npy", MLP_X)
    result = subprocess.run([str(exe), "x.npy", "-o", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out" / "out.npy"), expected[2], rtol=1e-6, atol=1e-6)
