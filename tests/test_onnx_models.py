"""Whole ONNX models exported from PyTorch, compiled by needlec and compared with ONNX Runtime.

A ResNet-style CNN, a MobileNet-style CNN and a small transformer encoder
(``tests/onnx_models.py``) are exported to ONNX at a fixed batch size, compiled
from the file with ``needlec.compile(path)``, and run on seeded inputs; the
outputs must match ONNX Runtime's CPUExecutionProvider (rtol 1e-4, atol 1e-5)
through the JIT and through an exported shared library loaded in a fresh
Python process. The transformer is also exported with a dynamic batch axis
(shape arithmetic on ``Shape`` outputs) and fixed with ``input_shapes``.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import needlec  # noqa: E402
from tests.onnx_models import INPUT_NAME, MODELS, NUM_CLASSES, OnnxModel, onnxruntime_session  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL, ATOL = 1e-4, 1e-5
BATCH = 2
INPUT_SEEDS = (1, 2)


@dataclass
class ExportedModel:
    """One model exported to ONNX, seeded inputs, and ONNX Runtime's outputs for them."""

    spec: OnnxModel
    path: pathlib.Path
    inputs: list[np.ndarray]
    expected: list[np.ndarray]


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request: Any, tmp_path_factory: Any) -> ExportedModel:
    """Each model exported at batch ``BATCH``, with ONNX Runtime's outputs for the seeded inputs."""
    spec = MODELS[request.param]
    path = spec.export(tmp_path_factory.mktemp(spec.name) / f"{spec.name}.onnx", BATCH)
    session = onnxruntime_session(path)
    inputs = [spec.example_input(BATCH, seed) for seed in INPUT_SEEDS]
    expected = [session.run(None, {INPUT_NAME: x})[0] for x in inputs]
    return ExportedModel(spec, path, inputs, expected)


@pytest.fixture(scope="module")
def compiled(exported: ExportedModel) -> needlec.Compiled:
    """The exported model compiled by needlec straight from its ONNX file."""
    return needlec.compile(str(exported.path))


def convolutions(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The model's Conv nodes."""
    return [node for node in model.graph.node if node.op_type == "Conv"]


def attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    """Attribute ``name`` of ``node`` as a Python value, ``default`` when absent."""
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def test_exported_models_have_the_intended_structure(exported: ExportedModel) -> None:
    model = onnx.load(str(exported.path))
    ops = {node.op_type for node in model.graph.node}
    if exported.spec.name == "resnet":
        assert {"Conv", "BatchNormalization", "Relu", "Add", "GlobalAveragePool", "Gemm"} <= ops
        projections = [n for n in convolutions(model)
                       if list(attribute(n, "kernel_shape", [])) == [1, 1]
                       and list(attribute(n, "strides", [])) == [2, 2]]
        assert len(projections) == 2  # the stride-2 blocks' 1x1 projection shortcuts
    elif exported.spec.name == "mobilenet":
        assert {"Conv", "BatchNormalization", "Clip", "GlobalAveragePool", "HardSwish", "Gemm"} <= ops
        assert any(attribute(n, "group", 1) > 1 for n in convolutions(model))  # depthwise convolutions
        assert any(len(n.input) == 3 for n in convolutions(model))  # a convolution with a bias
    else:
        assert {"Gather", "LayerNormalization", "MatMul", "Softmax", "Erf", "ReduceMean"} <= ops
    onnx.checker.check_model(model)


def test_onnxruntime_reference_matches_pytorch(exported: ExportedModel) -> None:
    import torch

    module = exported.spec.module()
    for x, want in zip(exported.inputs, exported.expected):
        with torch.no_grad():
            got = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(want, got, rtol=RTOL, atol=ATOL)


def test_compiled_signature_follows_the_onnx_graph(exported: ExportedModel, compiled: needlec.Compiled) -> None:
    (spec_in,) = compiled.signature.inputs
    (spec_out,) = compiled.signature.outputs
    x = exported.inputs[0]
    assert spec_in.name == INPUT_NAME and tuple(spec_in.shape) == x.shape and np.dtype(spec_in.dtype) == x.dtype
    assert tuple(spec_out.shape) == (BATCH, NUM_CLASSES) and np.dtype(spec_out.dtype) == np.float32


def test_jit_matches_onnxruntime(exported: ExportedModel, compiled: needlec.Compiled) -> None:
    for x, want in zip(exported.inputs, exported.expected):
        got = compiled(x)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # distinct inputs give distinct outputs: the model is not collapsed to a constant
    assert not np.allclose(exported.expected[0], exported.expected[1], rtol=RTOL, atol=ATOL)


LOAD_AND_RUN = """
import sys
import numpy as np
import needlec
model = needlec.load(sys.argv[1])
for path in sys.argv[2:]:
    np.save(f"{path}.out.npy", model(np.load(path)))
"""


def test_exported_library_matches_onnxruntime_in_a_fresh_process(exported: ExportedModel, compiled: needlec.Compiled,
                                                                  tmp_path: Any) -> None:
    library = compiled.export(str(tmp_path / f"{exported.spec.name}.so"))
    paths = []
    for i, x in enumerate(exported.inputs):
        paths.append(str(tmp_path / f"x{i}.npy"))
        np.save(paths[-1], x)
    result = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, library, *paths], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    for path, x, want in zip(paths, exported.inputs, exported.expected):
        got = np.load(f"{path}.out.npy")
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(got, compiled(x))


def test_dynamic_batch_axis_fixed_with_input_shapes(tmp_path: Any) -> None:
    spec = MODELS["transformer"]
    path = spec.export(tmp_path / "transformer_dynamic.onnx", batch=2, dynamic_batch=True)
    declared = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert declared.dim_param == "batch" and not declared.HasField("dim_value")
    with pytest.raises(needlec.NeedlecError, match="dynamic dimension 'batch'"):
        needlec.from_onnx(str(path))
    x = spec.example_input(3, seed=4)  # a batch size other than the traced one
    compiled = needlec.compile(str(path), input_shapes={INPUT_NAME: x.shape})
    want = onnxruntime_session(path).run(None, {INPUT_NAME: x})[0]
    got = compiled(x)
    assert got.shape == (3, NUM_CLASSES)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_onnx_resnet_example_matches_onnxruntime() -> None:
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "onnx_resnet.py")], capture_output=True,
                            text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    difference = float(result.stdout.split("max abs difference vs ONNX Runtime: ")[1].split()[0])
    assert difference <= ATOL
    assert "reloaded output identical: True" in result.stdout
