"""Value names of any content (1,025 characters, NUL bytes, names that collide once mangled) compile into
valid, unique LLVM, C and file names, while the signature keeps the original names."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

import needlec
from needlec import DType, Graph, TensorType
from needlec.cli import main

LONG = "x" * 1025
NAMES = [LONG, LONG + "y", "a\0b", "a-b", "a_b", "a.b", "\u00e9t\u00e9 */ \"q\"", "1"]


def weird_graph() -> Graph:
    """One f32[3] input per name; output i = input i + (i + 1), named like the input plus a suffix."""
    g = Graph(LONG + "\0model")
    inputs = [g.add_input(name, TensorType((3,), DType.F32)) for name in NAMES]
    outputs = []
    for i, x in enumerate(inputs):
        out = g.add("add", x, g.add_constant(np.full(3, i + 1, np.float32), name=NAMES[i] + "_c"))
        g.rename(out, NAMES[i] + "_out")
        outputs.append(out)
    g.set_outputs(outputs)
    return g


def test_weird_names_compile_and_keep_their_names(tmp_path: Path) -> None:
    arrays = [np.arange(3, dtype=np.float32) * (i + 1) for i in range(len(NAMES))]
    compiled = needlec.compile(weird_graph())
    assert [s.name for s in compiled.signature.inputs] == NAMES
    assert [s.name for s in compiled.signature.outputs] == [n + "_out" for n in NAMES]
    got = compiled(*arrays)
    for i, (g, x) in enumerate(zip(got, arrays)):
        np.testing.assert_array_equal(g, x + i + 1)
    library = compiled.export(str(tmp_path / "weird.so"), header=str(tmp_path / "weird.h"))
    loaded = needlec.load(library)
    assert [s.name for s in loaded.signature.inputs] == NAMES
    for g, w in zip(loaded(*arrays), got):
        np.testing.assert_array_equal(g, w)
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-fsyntax-only", "-x", "c", str(tmp_path / "weird.h")],
                   check=True)


def test_weird_names_in_an_executable(tmp_path: Path) -> None:
    (tmp_path / "weird.nir").write_text(str(weird_graph()))
    exe = tmp_path / "weird"
    assert main(["compile", str(tmp_path / "weird.nir"), "-o", str(exe), "-q"]) == 0
    paths = []
    for i in range(len(NAMES)):
        paths.append(tmp_path / f"in{i}.npy")
        np.save(paths[-1], np.full(3, i, np.float32))
    result = subprocess.run([str(exe), *map(str, paths), "-o", "out"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == len(NAMES) and all(len(f.name) <= 110 for f in files)
    values = sorted(float(np.load(f)[0]) for f in files)
    assert values == [2.0 * i + 1 for i in range(len(NAMES))]
