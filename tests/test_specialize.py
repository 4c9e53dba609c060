"""Shape specialisation on demand: new input shapes compile and keep another specialisation; the decorator form;
ONNX dynamic dimensions; training steps with a short last batch; variables carried between specialisations."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import needlec
from needlec import api, nn, optim
from needlec.errors import NeedlecError, RuntimeInputError


def _gelu_ish(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.maximum(x @ w, 0) * 2 + 1


W = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def _model(x):  # type: ignore[no-untyped-def]
    return needlec.ops.relu(x @ W) * 2 + 1


def test_new_batch_sizes_compile_new_specialisations_and_keep_them() -> None:
    compiled = needlec.compile(_model, [_batch(4)], progress=False)
    for n in (4, 2, 7, 2, 4):
        np.testing.assert_allclose(compiled(_batch(n, n)), _gelu_ish(_batch(n, n), W), rtol=1e-5, atol=1e-6)
    assert compiled.shapes == [(((7, 3), "float32"),), (((2, 3), "float32"),), (((4, 3), "float32"),)]
    assert compiled.signature.inputs[0].shape == (4, 3)  # describes the specialisation used last
    np.testing.assert_allclose(compiled(x=_batch(2)), _gelu_ish(_batch(2), W), rtol=1e-5, atol=1e-6)
    assert "2 more shape(s)" in repr(compiled)
    float64 = compiled(_batch(3).astype(np.float64))  # a new dtype is a new specialisation too
    assert float64.dtype == np.float64 and len(compiled.shapes) == 4


def test_specialisations_are_bounded_least_recently_used_first(monkeypatch) -> None:
    monkeypatch.setattr(api, "MAX_SPECIALIZATIONS", 2)
    compiled = needlec.compile(_model, [_batch(1)], progress=False)
    for n in (2, 1, 3):
        compiled(_batch(n))
    assert [key[0][0][0] for key in compiled.shapes] == [1, 3]  # 2 was used least recently


def test_compile_decorates_a_function() -> None:
    @needlec.compile
    def affine(x, bias):  # type: ignore[no-untyped-def]
        """Doc kept."""
        return x * 3 + bias

    assert affine.__name__ == "affine" and affine.__doc__ == "Doc kept."
    with pytest.raises(NeedlecError, match="compiled at its first call"):
        affine.signature  # noqa: B018
    x, b = np.ones((2, 2), np.float32), np.arange(2, dtype=np.float32)
    np.testing.assert_array_equal(affine(x, b), x * 3 + b)
    assert [spec.name for spec in affine.signature.inputs] == ["x", "bias"]
    np.testing.assert_array_equal(affine(bias=b, x=np.zeros((5, 2), np.float32)), np.zeros((5, 2)) + b)

    @needlec.compile(progress=False)
    def square(x):  # type: ignore[no-untyped-def]
        return x * x

    np.testing.assert_array_equal(square(np.full(3, 3, np.int32)), np.full(3, 9))
    with pytest.raises(NeedlecError, match="input 0 must be a numpy array, found list"):
        needlec.compile(lambda x: x)([1, 2])


def test_a_module_compiles_at_its_first_call() -> None:
    model = nn.Sequential(nn.Linear(3, 4, rng=np.random.default_rng(0)), nn.ReLU())
    compiled = needlec.compile(model)
    for n in (2, 5):
        np.testing.assert_allclose(compiled(_batch(n)), model(_batch(n)), rtol=1e-5, atol=1e-6)


def _dense_onnx(batch: str | int) -> bytes:
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="dense_matmul")]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
                              [numpy_helper.from_array(W, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_an_onnx_models_dynamic_dimension_follows_the_inputs(tmp_path) -> None:
    path = tmp_path / "dense.onnx"
    path.write_bytes(_dense_onnx("batch"))
    for model in (str(path), _dense_onnx("batch")):
        compiled = needlec.compile(model, input_shapes={"x": (4, 3)}, progress=False)
        for n in (4, 1, 6):
            np.testing.assert_allclose(compiled(_batch(n)), _batch(n) @ W, rtol=1e-5, atol=1e-6)
        assert len(compiled.shapes) == 3
    fixed = needlec.compile(_dense_onnx(4), progress=False)
    with pytest.raises(NeedlecError, match=r"cannot compile for inputs float32\[2, 3\]: .*the model fixes it to 4"):
        fixed(_batch(2))


def test_a_graph_has_one_specialisation() -> None:
    graph = needlec.trace(_model, _batch(4))
    compiled = needlec.compile(graph, progress=False)
    with pytest.raises(RuntimeInputError, match=r"expected shape \(4, 3\), found \(2, 3\)"):
        compiled(_batch(2))
    with pytest.raises(RuntimeInputError, match="expected 1 input"):
        compiled(_batch(4), _batch(4))


def test_a_training_step_takes_a_short_last_batch_and_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    ours = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    torch_opt = torch.optim.Adam(theirs.parameters(), lr=0.01)
    x = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    y = np.random.default_rng(2).integers(0, 2, 20)
    step = needlec.compile_training_step(ours, nn.CrossEntropyLoss(), optim.Adam(ours.parameters(), lr=0.01),
                                         (x[:8], y[:8]), progress=False)
    for epoch in range(2):
        for start in range(0, 20, 8):  # batches of 8, 8 and a short last one of 4
            xb, yb = x[start:start + 8], y[start:start + 8]
            torch_opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(xb)), torch.from_numpy(yb))
            loss.backward()
            torch_opt.step()
            np.testing.assert_allclose(step(xb, yb), loss.item(), rtol=1e-5, err_msg=f"epoch {epoch}, {start}")
    assert sorted(key[0][0][0] for key in step.compiled.shapes) == [4, 8]
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(step.parameters()[name], value.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    assert step.optimizer_state()["step"] == 6  # the step counter carried over too
