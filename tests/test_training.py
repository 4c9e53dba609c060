"""Compiled training steps: training, state read-back, BatchNorm, memory, C export and header, errors."""
from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import needlec
from needlec import nn, optim
from needlec.build.header import c_header
from needlec.errors import NeedlecError, RuntimeInputError
from needlec.runtime.signature import Signature, TensorSpec

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "c" / "train_driver.c"
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")


def _blobs(n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in the plane: points (n, 2) f32 and labels (n,) i64."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    return (centers[labels] + rng.normal(0, 0.5, (n, 2))).astype(np.float32), labels.astype(np.int64)


def _mlp(seed: int = 0) -> nn.Module:
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(2, 16, rng=rng), nn.ReLU(), nn.Linear(16, 3, rng=rng))


def _sgd_step(model: nn.Module, x: np.ndarray, y: np.ndarray, **options: Any) -> needlec.TrainingStep:
    return needlec.compile_training_step(model, nn.CrossEntropyLoss(),
                                         optim.SGD(model.parameters(), lr=0.2, momentum=0.9), (x, y), **options)


def test_example_trains_spirals_above_95_percent() -> None:
    spec = importlib.util.spec_from_file_location("train_mlp", ROOT / "examples" / "train_mlp.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(epochs=20, verbose=False) > 0.95


def test_state_reads_back_and_loads_into_the_model() -> None:
    x, y = _blobs()
    model = _mlp()
    initial = model.state_dict()
    step = _sgd_step(model, x, y)
    losses = [step.step(x, y) for _ in range(5)]
    assert losses[-1] < losses[0]
    trained = step.parameters()
    assert list(trained) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(not np.array_equal(trained[k], initial[k]) for k in trained)
    for name, value in model.state_dict().items():  # the Module is untouched until synced
        np.testing.assert_array_equal(value, initial[name])
    assert set(step.optimizer_state()) == {"step", *(f"{k}.momentum_buffer" for k in trained)}
    assert step.optimizer_state()["step"] == 5

    step.sync_to_model()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, trained[name])
    # the synced Module computes the loss the step reports before its next update
    loss = needlec.compile(lambda a, b: nn.CrossEntropyLoss()(model(a), b), (x, y))(x, y)
    np.testing.assert_allclose(step.step(x, y), loss, rtol=1e-6)

    other = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 3)))
    with pytest.raises(NeedlecError, match=r"load_into Sequential: the model has no parameter or buffer "
                                           r"2.weight, 2.bias"):
        step.load_into(other)


def test_batchnorm_running_statistics_follow_pytorch() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                 torch.nn.Linear(16, 3))
    ours = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    torch_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    step = needlec.compile_training_step(ours, nn.CrossEntropyLoss(), optim.SGD(ours.parameters(), lr=0.1,
                                                                                momentum=0.9), _blobs(16))
    assert step.buffer_names == ("1.running_mean", "1.running_var", "1.num_batches_tracked")
    for seed in range(6):
        x, y = _blobs(16, seed)
        torch_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        torch_opt.step()
        np.testing.assert_allclose(step.step(x, y), loss.item(), rtol=1e-4)
    state = {**step.parameters(), **step.buffers()}
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(state[name], value.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    assert state["1.num_batches_tracked"] == 6
    step.sync_to_model()
    np.testing.assert_array_equal(ours.state_dict()["1.running_var"], state["1.running_var"])


def test_memory_plan_reuses_buffers_of_the_backward_graph() -> None:
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(32, 64, rng=rng), nn.ReLU(), nn.Linear(64, 64, rng=rng), nn.ReLU(),
                          nn.Linear(64, 10, rng=rng))
    x, y = rng.standard_normal((16, 32)).astype(np.float32), rng.integers(0, 10, 16).astype(np.int64)
    program = _sgd_step(model, x, y).compiled.program
    sizes = [b.size * b.dtype.itemsize for name, b in program.buffers.items()
             if program.storage[name].kind == "arena"]
    assert max(sizes) <= program.arena_size < 0.75 * sum(sizes)


def test_training_graph_shows_every_stage() -> None:
    x, y = _blobs(8)
    dumps = io.StringIO()
    step = _sgd_step(_mlp(), x, y, print_after="dce", stream=dumps)
    text = str(step.graph)
    assert "%0.weight: f32[16, 2] = variable" in text
    assert "update %0.weight <- %" in text and "update %0.weight.momentum_buffer <- %" in text
    assert any(node.origin is not None for node in step.graph.nodes)  # backward nodes name their forward node
    assert "// ----- IR after dce -----" in dumps.getvalue()
    assert [s.name for s in step.signature.inputs] == ["input", "target"]
    assert [s.name for s in step.signature.outputs] == ["loss"]


def test_several_inputs_and_targets() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(np.array([1.5, -0.5], np.float32))

        def forward(self, a: Any, b: Any) -> Any:
            return a * self.scale + b

    def weighted_mse(prediction: Any, target: Any, weight: Any) -> Any:
        return ((prediction - target) * (prediction - target) * weight).mean()

    rng = np.random.default_rng(0)
    a, b, t, w = (rng.standard_normal((4, 2)).astype(np.float32) for _ in range(4))
    model = TwoInputs()
    step = needlec.compile_training_step(model, weighted_mse, optim.SGD(model.parameters(), lr=0.1),
                                         ((a, b), (t, w)))
    assert [s.name for s in step.signature.inputs] == ["input0", "input1", "target0", "target1"]
    scale = model.scale.data
    error = a * scale + b - t
    assert step.step(a, b, t, w) == pytest.approx(float(np.mean(error * error * w)), rel=1e-6)
    gradient = np.mean(2 * error * w * a, axis=0) / 2  # mean over 8 elements = mean over rows / 2
    np.testing.assert_allclose(step.parameters()["scale"], scale - 0.1 * gradient, rtol=1e-5)


def _build_driver(header_dir: Path, library: Path, out: Path) -> Path:
    """Compile tests/c/train_driver.c against ``library`` (header in ``header_dir``)."""
    name = library.name[len("lib"):-len(".so")]
    subprocess.run(["cc", "-std=c99", "-O1", "-Wall", "-Wextra", "-pedantic", "-Werror", f"-I{header_dir}",
                    str(DRIVER), f"-L{library.parent}", f"-l{name}", f"-Wl,-rpath,{library.parent}", "-o",
                    str(out)], check=True, capture_output=True, text=True)
    return out


def _run_driver(driver: Path, steps: int, x_file: Path, y_file: Path) -> tuple[list[float], dict[str, str]]:
    """Losses per step and the other ``key value`` lines the driver prints."""
    lines = subprocess.run([str(driver), str(steps), str(x_file), str(y_file)], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    losses = [float(line.split()[3]) for line in lines if line.startswith("step ")]
    facts = dict(line.split(" ", 1) for line in lines if not line.startswith("step "))
    return losses, facts


@needs_cc
def test_exported_step_trains_when_driven_from_c(tmp_path: Path) -> None:
    x, y = _blobs(64)
    x.tofile(tmp_path / "x.bin")
    y.tofile(tmp_path / "y.bin")
    step = _sgd_step(_mlp(), x, y)
    library, header = step.export(str(tmp_path / "libtrainstep.so"), header=str(tmp_path / "train_step.h"))
    assert Path(library).is_file() and "needlec_variable" in Path(header).read_text()
    driver = _build_driver(tmp_path, Path(library), tmp_path / "driver")

    c_losses, facts = _run_driver(driver, 30, tmp_path / "x.bin", tmp_path / "y.bin")
    assert len(c_losses) == 30 and c_losses[-1] < 0.2 * c_losses[0]
    python_losses = [step.step(x, y) for _ in range(30)]
    np.testing.assert_allclose(c_losses, python_losses, rtol=1e-5)
    name, *values = facts["param"].split()
    assert name == "0.weight"
    np.testing.assert_allclose(np.array(values, np.float32).reshape(16, 2), step.parameters()["0.weight"],
                               rtol=1e-5, atol=1e-7)
    assert facts["past-end"] == "null"
    assert Signature.from_json(facts["signature"]) == step.signature


@needs_cc
def test_export_continues_from_the_current_state(tmp_path: Path) -> None:
    x, y = _blobs(64)
    x.tofile(tmp_path / "x.bin")
    y.tofile(tmp_path / "y.bin")
    step = _sgd_step(_mlp(), x, y)
    for _ in range(10):
        step.step(x, y)
    library, _ = step.export(str(tmp_path / "libtrainstep.so"), header=str(tmp_path / "train_step.h"))
    driver = _build_driver(tmp_path, Path(library), tmp_path / "driver")
    c_losses, _ = _run_driver(driver, 3, tmp_path / "x.bin", tmp_path / "y.bin")
    np.testing.assert_allclose(c_losses, [step.step(x, y) for _ in range(3)], rtol=1e-5)


HEADER_PROGRAM = r"""
#include <stdio.h>
#include "model.h"
int main(void) {
    int i;
    printf("%d %d %d\n", NEEDLEC_NUM_INPUTS, NEEDLEC_NUM_OUTPUTS, NEEDLEC_NUM_VARIABLES);
    printf("%d %d %d %d\n", NEEDLEC_VARIABLE_A_B, NEEDLEC_VARIABLE_A_B_1, NEEDLEC_VARIABLE_W,
           NEEDLEC_VARIABLE_W_SIZE_3);
    printf("%d %d %d\n", (int)sizeof(NEEDLEC_INPUT_HALF_CTYPE), (int)sizeof(NEEDLEC_INPUT_FLAGS_CTYPE),
           (int)sizeof(NEEDLEC_OUTPUT_OUT_CTYPE));
    printf("%s %s %d %d\n", NEEDLEC_MODEL_NAME, NEEDLEC_INPUT_HALF_DTYPE, NEEDLEC_INPUT_HALF_RANK,
           NEEDLEC_INPUT_HALF_SIZE);
    for (i = 0; i < NEEDLEC_NUM_VARIABLES; i++) {
        const needlec_tensor_info *v = &needlec_variables[i];
        printf("%s %s %d %d %lld %s\n", v->name, v->dtype, (int)v->itemsize, (int)v->rank, (long long)v->size,
               v->shape == NULL ? "scalar" : "shaped");
    }
    return 0;
}
"""


@needs_cc
def test_header_declares_every_tensor_and_compiles_as_c_and_cpp(tmp_path: Path) -> None:
    def spec(name: str, shape: tuple[int, ...], dtype: str) -> TensorSpec:
        return TensorSpec(name, shape, np.dtype(dtype))

    signature = Signature("my-model", (spec("half", (2, 3), "float16"), spec("flags", (4,), "bool")),
                          (spec("out", (), "float64"),),
                          (spec("a.b", (5,), "int8"), spec("a_b", (), "int64"), spec("w", (2,), "uint8"),
                           spec("w.size", (1, 1, 1), "int32"), spec("*/", (3,), "int16"),
                           spec("??/", (1,), "float32")))
    text = c_header(signature, "libmy-model.so")
    assert " *   0   half   float16[2, 3]\n" in text and " *   4   * /     int16[3]\n" in text
    (tmp_path / "model.h").write_text(text)
    (tmp_path / "main.c").write_text(HEADER_PROGRAM)
    subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", f"-I{tmp_path}",
                    str(tmp_path / "main.c"), "-o", str(tmp_path / "main")], check=True)
    lines = subprocess.run([str(tmp_path / "main")], check=True, capture_output=True, text=True).stdout.splitlines()
    assert lines[:4] == ["2 1 6", "0 1 2 3", "2 1 8", "my-model float16 2 6"]
    assert lines[4:] == ["a.b int8 1 1 5 shaped", "a_b int64 8 0 1 scalar", "w uint8 1 1 2 shaped",
                         "w.size int32 4 3 1 shaped", "*/ int16 2 1 3 shaped", "??/ float32 4 1 1 shaped"]
    if shutil.which("c++"):
        subprocess.run(["c++", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c++",
                        str(tmp_path / "model.h")], check=True)


def test_invalid_training_steps_are_rejected() -> None:
    x, y = _blobs(8)
    model = _mlp()
    sgd = optim.SGD(model.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss()
    with pytest.raises(NeedlecError, match=r"loss_fn must return one float scalar, found f32\[8\]"):
        needlec.compile_training_step(model, nn.CrossEntropyLoss(reduction="none"), sgd, (x, y))
    with pytest.raises(NeedlecError, match=r"the optimizer's Parameter\(f32\[16, 2\]\) is not a parameter of the "
                                           r"model \(Sequential\)"):
        needlec.compile_training_step(model, loss, optim.SGD(_mlp().parameters(), lr=0.1), (x, y))
    with pytest.raises(NeedlecError, match=r"example_inputs must be a pair \(inputs, targets\)"):
        needlec.compile_training_step(model, loss, sgd, (x,))
    with pytest.raises(NeedlecError, match="example target 0 must be a NumPy array, found int"):
        needlec.compile_training_step(model, loss, sgd, (x, [0, 1]))
    with pytest.raises(NeedlecError, match="model must be an nn.Module, found function"):
        needlec.compile_training_step(lambda t: t, loss, sgd, (x, y))
    with pytest.raises(NeedlecError, match="optimizer must be a needlec.optim optimizer, found dict"):
        needlec.compile_training_step(model, loss, {"lr": 0.1}, (x, y))

    step = needlec.compile_training_step(model, loss, sgd, (x, y))
    with pytest.raises(NeedlecError, match=r"cannot compile for inputs float32\[4, 2\], int64\[8\]: cross_entropy: "
                                           r"class-index target must have shape \(4,\) for input shape \(4, 3\)"):
        step.step(x[:4], y)  # a short batch is fine (tests/test_specialize.py); inconsistent ones are not
    with pytest.raises(RuntimeInputError, match="missing target"):
        step.step(x)
    with pytest.raises(RuntimeInputError, match=r"expected 2 input\(s\) \(input, target\), found 3"):
        step.step(x, y, y)


def test_dropout_draws_a_fresh_mask_every_step() -> None:
    x, y = _blobs(8)
    model = nn.Sequential(nn.Linear(2, 32), nn.Dropout(0.5, seed=3), nn.Linear(32, 3))
    loss = nn.CrossEntropyLoss()
    step = needlec.compile_training_step(model, loss, optim.SGD(model.parameters(), lr=0.0), (x, y))
    losses = [step.step(x, y) for _ in range(3)]
    assert len(set(losses)) == 3  # with lr 0 only the dropout mask changes from step to step
    for k in (0, 2):  # step k draws the mask of a Dropout whose static step is k
        model[1].step = k
        assert needlec.compile(lambda a, b: loss(model(a), b), (x, y))(x, y) == pytest.approx(losses[k], rel=1e-6)
    assert step.optimizer_state()["step"] == 3
