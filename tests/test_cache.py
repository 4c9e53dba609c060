"""The compile cache of ``needlec run`` (needlec/cache.py): hits skip the compiler and give the same outputs,
anything that changes the code misses, broken entries are rebuilt, the size cap evicts the least recently used."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import needlec.driver
from needlec import cache
from needlec.cli import main
from needlec.compiler.target import Target
from needlec.progress import Progress

X = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test has its own empty cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEEDLEC_CACHE_DIR", str(folder))
    monkeypatch.delenv("NEEDLEC_CACHE_MAX_BYTES", raising=False)
    return folder


def write_model(path: Path, seed: int = 0, external: bool = False) -> Path:
    """y = relu(x @ W + B), x[batch, 3] with the batch dynamic; ``seed`` picks the weights."""
    rng = np.random.default_rng(seed)
    weights = [numpy_helper.from_array(rng.standard_normal((3, 5)).astype(np.float32), "W"),
               numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "B")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["pre"]),
             helper.make_node("Relu", ["pre"], ["y"])]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path, save_as_external_data=external, location=path.name + ".data", size_threshold=0)
    return path


def run(model: Path, out: Path, *args: str) -> np.ndarray:
    """``needlec run MODEL x.npy --output-dir OUT``; the output y."""
    np.save(out.parent / "x.npy", X)
    assert main(["run", str(model), str(out.parent / "x.npy"), "--output-dir", str(out), "-q", *args]) == 0
    return np.load(out / "y.npy")


def forbid_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("compiled although the cache holds the model")

    monkeypatch.setattr(needlec.driver, "run_pipeline", fail)


def test_the_second_run_is_a_hit_with_identical_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = write_model(tmp_path / "dense.onnx")
    cold = run(model, tmp_path / "cold")
    assert len(cache.entries()) == 1
    forbid_compiling(monkeypatch)
    warm = run(model, tmp_path / "warm")
    assert warm.tobytes() == cold.tobytes()
    monkeypatch.undo()
    np.testing.assert_allclose(run(model, tmp_path / "jit", "--no-cache"), cold, rtol=1e-6)


class Recorder(Progress):
    """A Progress that keeps the names of its stages."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def stage(self, name: str) -> Any:
        self.names.append(name)
        return super().stage(name)


def test_loading_from_the_cache_is_a_progress_stage(tmp_path: Path) -> None:
    model, target = str(write_model(tmp_path / "dense.onnx")), Target.named("cpu")
    first, second = Recorder(), Recorder()
    cache.compile_model_file(model, {"x": (4, 3)}, None, target, first)
    cache.compile_model_file(model, {"x": (4, 3)}, None, target, second)
    assert "import dense.onnx" in first.names and not any(n.startswith("cache hit") for n in first.names)
    assert second.names == [f"cache hit {cache.entries()[0].path}"]


def test_a_changed_model_file_misses(tmp_path: Path) -> None:
    model = write_model(tmp_path / "dense.onnx", seed=0)
    before = run(model, tmp_path / "a")
    write_model(model, seed=1)
    after = run(model, tmp_path / "b")
    assert len(cache.entries()) == 2 and not np.array_equal(before, after)


def test_another_input_shape_misses(tmp_path: Path) -> None:
    model = write_model(tmp_path / "dense.onnx")
    run(model, tmp_path / "a", "--input-shape", "x=4x3")
    assert len(cache.entries()) == 1
    np.save(tmp_path / "x2.npy", X[:2])
    assert main(["run", str(model), str(tmp_path / "x2.npy"), "--input-shape", "x=2x3", "-q"]) == 0
    assert len(cache.entries()) == 2


def test_no_cache_writes_nothing(tmp_path: Path, cache_dir: Path) -> None:
    run(write_model(tmp_path / "dense.onnx"), tmp_path / "out", "--no-cache")
    assert not cache_dir.exists()


def test_python_model_files_are_not_cached(tmp_path: Path, cache_dir: Path) -> None:
    model = tmp_path / "twice.py"
    model.write_text("import numpy as np\n\ndef model(x):\n    return x * 2.0\n\n"
                     "example_inputs = (np.ones((2, 3), np.float32),)\n")
    assert main(["run", str(model), "-q"]) == 0
    assert not cache_dir.exists()


def test_a_cache_that_cannot_be_written_falls_back_to_compiling_in_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NEEDLEC_CACHE_DIR", str(tmp_path / "file" / "cache"))
    model = write_model(tmp_path / "dense.onnx")
    np.testing.assert_allclose(run(model, tmp_path / "out"), run(model, tmp_path / "jit", "--no-cache"))
    assert "not caching dense.onnx: " in caplog.text


def rewrite(path: str, data: bytes) -> None:
    """Give ``path`` new bytes in a new file: the old one may be mapped into this process (a loaded library)."""
    os.remove(path)
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "not a library"])
def test_a_broken_entry_is_deleted_and_rebuilt(tmp_path: Path, damage: str) -> None:
    model = write_model(tmp_path / "dense.onnx")
    good = run(model, tmp_path / "a")
    entry = cache.entries()[0]
    data = Path(entry.path).read_bytes()
    if damage == "truncated":
        rewrite(entry.path, data[:len(data) // 2])
    elif damage == "flipped byte":
        rewrite(entry.path, data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:  # bytes that match the digest in their name but are no shared library
        os.remove(entry.path)
        junk = b"not an ELF file"
        Path(entry.path).with_name(f"{entry.key}-{hashlib.sha256(junk).hexdigest()[:16]}.so").write_bytes(junk)
    np.testing.assert_array_equal(run(model, tmp_path / "b"), good)
    (rebuilt,) = cache.entries()
    assert Path(rebuilt.path).read_bytes() == data


def test_the_size_cap_evicts_the_least_recently_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = [write_model(tmp_path / f"m{i}.onnx", seed=i) for i in range(3)]
    run(models[0], tmp_path / "a")
    run(models[1], tmp_path / "b")
    first, second = cache.entries()
    os.utime(first.path, (1_000_000, 1_000_000))  # used long ago ...
    os.utime(second.path, (2_000_000, 2_000_000))
    run(models[0], tmp_path / "a2")  # ... but used again now: a hit refreshes it
    monkeypatch.setenv("NEEDLEC_CACHE_MAX_BYTES", str(first.size + second.size + first.size // 2))
    run(models[2], tmp_path / "c")
    paths = [e.path for e in cache.entries()]
    assert len(paths) == 2 and first.path in paths and second.path not in paths


def test_a_bad_size_cap_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NEEDLEC_CACHE_MAX_BYTES", "2G")
    np.save(tmp_path / "x.npy", X)
    assert main(["run", str(write_model(tmp_path / "dense.onnx")), str(tmp_path / "x.npy"), "-q"]) == 1
    assert capsys.readouterr().err == ("needlec: error: NEEDLEC_CACHE_MAX_BYTES must be a byte count "
                                       "(an integer >= 0), found '2G'\n")


def test_the_cache_command_shows_and_clears(tmp_path: Path, cache_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run(write_model(tmp_path / "dense.onnx"), tmp_path / "out")
    capsys.readouterr()
    size = cache.entries()[0].size
    assert main(["cache"]) == 0
    assert capsys.readouterr().out.startswith(f"location: {cache_dir}\nentries: 1\nbytes: {size} of at most ")
    assert main(["cache", "--clear"]) == 0
    assert capsys.readouterr().out == f"removed 1 entry ({size} bytes) from {cache_dir}\n"
    assert cache.entries() == []


def test_the_cache_directory_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache.cache_dir() == str(tmp_path / "cache")
    monkeypatch.delenv("NEEDLEC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == str(tmp_path / "xdg" / "needlec")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == str(tmp_path / "home" / ".cache" / "needlec")


def test_the_key_covers_what_changes_the_code(tmp_path: Path) -> None:
    model = str(write_model(tmp_path / "dense.onnx"))
    host = Target.named("cpu")
    key = cache.model_key(model, {"x": (4, 3)}, None, host)
    assert key == cache.model_key(model, {"x": [4, 3]}, None, host)
    others = [cache.model_key(model, {"x": (2, 3)}, None, host), cache.model_key(model, {"x": (4, 3)}, 10**6, host),
              cache.model_key(model, {"x": (4, 3)}, None, Target.named("cpu", "x86-64-v2"))]
    assert None not in others and len({key, *others}) == 4
    (tmp_path / "model.py").write_text("")
    assert cache.model_key(str(tmp_path / "model.py"), None, None, host) is None
    assert cache.model_key(str(tmp_path / "missing.onnx"), None, None, host) is None


def test_external_data_is_part_of_the_key(tmp_path: Path) -> None:
    model = write_model(tmp_path / "dense.onnx", external=True)
    data = tmp_path / "dense.onnx.data"
    host = Target.named("cpu")
    key = cache.model_key(str(model), None, None, host)
    assert key is not None
    data.write_bytes(data.read_bytes()[::-1])
    changed = cache.model_key(str(model), None, None, host)
    assert changed is not None and changed != key
    data.unlink()
    assert cache.model_key(str(model), None, None, host) is None  # the import reports the missing file
