"""Optimizers as graph ops: compiled training steps follow PyTorch's optimizers step for step."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import needlec
from needlec import nn, optim
from needlec.compiler.passes.gradients import gradients
from needlec.errors import NeedlecError

torch = pytest.importorskip("torch")

STEPS = 20
BATCH, FEATURES, HIDDEN, CLASSES = 32, 10, 24, 4

# name -> (torch optimizer, needlec optimizer, hyperparameters)
CASES: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "sgd_momentum": (torch.optim.SGD, optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "sgd_dampening_weight_decay": (torch.optim.SGD, optim.SGD,
                                   {"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.01}),
    "sgd_nesterov_weight_decay": (torch.optim.SGD, optim.SGD,
                                  {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    "adam": (torch.optim.Adam, optim.Adam, {"lr": 0.01}),
    "adam_weight_decay": (torch.optim.Adam, optim.Adam,
                          {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    "adamw": (torch.optim.AdamW, optim.AdamW, {"lr": 0.01}),
    "adamw_small_beta1": (torch.optim.AdamW, optim.AdamW, {"lr": 0.01, "betas": (0.3, 0.9), "weight_decay": 0.3}),
}


def _torch_mlp() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES))


def _needlec_copy(theirs: Any) -> nn.Module:
    """The needlec MLP with ``theirs``'s exact weights."""
    ours = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    return ours


def _batches() -> tuple[np.ndarray, np.ndarray]:
    """STEPS different batches: inputs (STEPS, BATCH, FEATURES) f32 and their classes (STEPS, BATCH) i64.

    The class is the argmax of a fixed linear map of the input, so there is something to learn.
    """
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((STEPS, BATCH, FEATURES)).astype(np.float32)
    teacher = rng.standard_normal((FEATURES, CLASSES))
    return xs, np.argmax(xs @ teacher, axis=-1).astype(np.int64)


def _torch_losses(model: Any, optimizer: Any, xs: np.ndarray, ys: np.ndarray) -> list[float]:
    losses = []
    for x, y in zip(xs, ys):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _train_both(torch_cls: Any, our_cls: Any, settings: dict[str, Any], groups: Any = None) -> tuple:
    """Train identical MLPs for STEPS steps; returns (torch model, torch optimizer, step, torch losses, ours).

    ``groups(model)`` builds parameter groups (for both libraries) instead of ``model.parameters()``.
    """
    theirs = _torch_mlp()
    ours = _needlec_copy(theirs)
    xs, ys = _batches()
    torch_opt = torch_cls(groups(theirs) if groups else theirs.parameters(), **settings)
    our_opt = our_cls(groups(ours) if groups else ours.parameters(), **settings)
    step = needlec.compile_training_step(ours, nn.CrossEntropyLoss(), our_opt, (xs[0], ys[0]))
    ours_losses = [step.step(x, y) for x, y in zip(xs, ys)]
    return theirs, torch_opt, step, _torch_losses(theirs, torch_opt, xs, ys), ours_losses


def _assert_state_matches(theirs: Any, torch_opt: Any, step: Any) -> None:
    """Parameters and optimizer state agree with PyTorch's."""
    params = step.parameters()
    state = step.optimizer_state()
    theirs_by_name = dict(theirs.named_parameters())
    for name in params:
        p = theirs_by_name[name]
        np.testing.assert_allclose(params[name], p.detach().numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
        for kind, value in torch_opt.state[p].items():
            if kind == "step":
                assert state["step"] == value.item() == STEPS
            else:
                np.testing.assert_allclose(state[f"{name}.{kind}"], value.numpy(), rtol=1e-4, atol=1e-6,
                                           err_msg=f"{name}.{kind}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_curve_parameters_and_state_follow_pytorch(case: str) -> None:
    torch_cls, our_cls, settings = CASES[case]
    theirs, torch_opt, step, torch_losses, our_losses = _train_both(torch_cls, our_cls, settings)
    np.testing.assert_allclose(our_losses, torch_losses, rtol=1e-4)
    assert our_losses[-1] < our_losses[0]  # the comparison is about a run that actually trains
    _assert_state_matches(theirs, torch_opt, step)


def test_parameter_groups_follow_pytorch() -> None:
    def groups(model: Any) -> list[dict[str, Any]]:
        params = list(model.parameters())
        return [{"params": params[:2], "lr": 0.01, "momentum": 0.5}, {"params": params[2:]}]

    theirs, torch_opt, step, torch_losses, our_losses = _train_both(torch.optim.SGD, optim.SGD,
                                                                    {"lr": 0.1, "momentum": 0.9}, groups)
    np.testing.assert_allclose(our_losses, torch_losses, rtol=1e-4)
    _assert_state_matches(theirs, torch_opt, step)


def test_parameters_outside_the_optimizer_stay_frozen() -> None:
    theirs, torch_opt, step, torch_losses, our_losses = _train_both(
        torch.optim.Adam, optim.Adam, {"lr": 0.01}, lambda model: list(model.parameters())[2:])
    np.testing.assert_allclose(our_losses, torch_losses, rtol=1e-4)
    assert list(step.parameters()) == ["2.weight", "2.bias"]
    frozen = {v.name: v.data for v in step.graph.constants if v.name.startswith("0.")}
    assert sorted(frozen) == ["0.bias", "0.weight"]
    for name, p in theirs.named_parameters():
        if name in frozen:
            np.testing.assert_array_equal(frozen[name], p.detach().numpy())
    _assert_state_matches(theirs, torch_opt, step)


def test_update_rules_are_graph_nodes_with_state_variables() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    x, y = np.ones((4, 3), np.float32), np.zeros(4, np.int64)
    step = needlec.compile_training_step(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters()), (x, y))
    graph = step.graph
    variables = {v.name: v for v in graph.variables}
    assert set(variables) == {"0.weight", "0.bias", "step", "0.weight.exp_avg", "0.weight.exp_avg_sq",
                              "0.bias.exp_avg", "0.bias.exp_avg_sq"}
    for name in ["step", "0.weight.exp_avg", "0.bias.exp_avg_sq"]:
        assert not variables[name].data.any(), f"{name} starts at zero"
    assert {var.name for var, _ in graph.updates} == set(variables)
    # bias correction: beta ** t with t the step counter plus one, in f64
    pows = [n for n in graph.nodes if n.op == "pow"]
    assert len(pows) >= 2 and all(n.inputs[1].dtype is needlec.DType.F64 for n in pows)
    text = str(graph)
    assert "update %0.weight.exp_avg <- %" in text and "variable" in text


def test_add_updates_works_on_any_graph_with_a_step_counter() -> None:
    parameter = nn.Parameter(np.array([1.0, 2.0, 3.0], np.float32))
    graph = needlec.Graph("by_hand")
    x = graph.add_input("x", needlec.TensorType((3,), needlec.DType.F32))
    w = graph.add_variable(parameter.data, "w")
    step = graph.add_variable(np.zeros((), np.int64), "step")
    graph.set_update(step, graph.add("add", step, graph.add_constant(np.int64(1), "one")))
    loss = graph.add("reduce_sum", graph.add("mul", w, x), axes=[0])
    (grad,) = gradients(graph, [loss], [w])
    sgd = optim.SGD([parameter], lr=0.5, momentum=0.9)
    with pytest.raises(NeedlecError, match="SGD: the step counter must be an integer scalar variable"):
        sgd.add_updates(graph, {id(parameter): optim.ParameterSlot("w", w, grad)}, x)
    sgd.add_updates(graph, {id(parameter): optim.ParameterSlot("w", w, grad)}, step)
    graph.set_outputs([loss])
    compiled = needlec.compile(graph)
    xs = np.array([1.0, -1.0, 2.0], np.float32)
    compiled(xs)
    compiled(xs)  # buf = x, then 1.9 x: w = w0 - 0.5 * 2.9 x
    np.testing.assert_allclose(compiled.get_variable("w"), parameter.data - 0.5 * 2.9 * xs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(compiled.get_variable("w.momentum_buffer"), 1.9 * xs, rtol=1e-6)


def test_named_parameters_are_accepted() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    assert optim.SGD(model.named_parameters(), lr=0.1).parameters() == model.parameters()
    assert optim.Adam([{"params": model.parameters()[0]}]).parameters() == [model.parameters()[0]]


def test_repr_lists_groups() -> None:
    model = nn.Linear(3, 2)
    text = repr(optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=0.1))
    assert "group 0: 1 parameter(s), lr=0.1" in text and "group 1: 1 parameter(s), lr=0.5" in text


@pytest.mark.parametrize("make, message", [
    (lambda ps: optim.SGD([], lr=0.1), "SGD: got an empty parameter list"),
    (lambda ps: optim.SGD(ps[0], lr=0.1), r"found a single Parameter\(f32\[2, 3\]\); pass \[parameter\]"),
    (lambda ps: optim.SGD(ps, lr=-1.0), "SGD: invalid learning rate -1.0"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5), "SGD: invalid momentum -0.5"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "Nesterov momentum needs momentum > 0 and dampening 0"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening 0.1"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1), "SGD: invalid weight_decay -1"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.9)), r"Adam: invalid betas \(1.0, 0.9\)"),
    (lambda ps: optim.AdamW(ps, eps=-1e-8), "AdamW: invalid eps"),
    (lambda ps: optim.SGD([ps[0], ps[0]], lr=0.1), "appears more than once"),
    (lambda ps: optim.SGD([{"params": ps, "betas": (0.9, 0.9)}], lr=0.1), "unknown hyperparameter.*betas"),
    (lambda ps: optim.SGD([np.zeros(3, np.float32)], lr=0.1), "expected Parameters.*found ndarray"),
    (lambda ps: optim.SGD([nn.Parameter(np.zeros(3, np.int64))], lr=0.1), "only float parameters"),
])
def test_invalid_optimizers_are_rejected(make: Any, message: str) -> None:
    params = nn.Linear(3, 2).parameters()
    with pytest.raises(NeedlecError, match=message):
        make(params)
