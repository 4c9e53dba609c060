"""Optimizers (``needlec.optim``) whose update rules are graph nodes.

An optimizer is configured like its PyTorch namesake (``SGD(model.parameters(),
lr=0.1, momentum=0.9)``; parameter groups as dicts work too) but never touches
NumPy arrays itself: ``add_updates`` appends its update rule to a training
graph, where each parameter is a graph VARIABLE and its gradient a graph value.
The optimizer's state (momentum buffers, Adam moments) is made of variables
too, and the step count comes from the graph's step counter variable, so a
compiled training step carries all of it from call to call,
``needlec_variable`` exposes it to C, and every compiler pass sees the update
like any other computation.

The formulas are PyTorch's single-tensor CPU code paths, operation for
operation (``torch.optim.SGD``, ``Adam``, ``AdamW``). Scalar bias corrections,
which PyTorch computes in Python floats, are computed here in f64 from the
in-graph step counter and rounded to the parameter's dtype.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.graph import Graph, Value
from needlec.errors import NeedlecError
from needlec.frontend import tensor_ops as F
from needlec.frontend.nn import Parameter
from needlec.frontend.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "ParameterSlot", "UpdateBuilder"]


@dataclass(frozen=True)
class ParameterSlot:
    """One trained parameter inside a training graph: its name, its variable and its gradient."""

    name: str
    variable: Value
    gradient: Value


class UpdateBuilder:
    """What an update rule works with: the graph, the step counter and state variables.

    ``step`` is the number of steps completed before the current one (an
    integer scalar variable, 0 on the first call); ``count`` is the current
    step's number (``step + 1``), as PyTorch's state ``step`` reads after its
    increment.
    """

    def __init__(self, graph: Graph, step: Value) -> None:
        self.graph = graph
        self.step = Tensor(step, graph)
        self.count = self.step + 1

    def tensor(self, value: Value) -> Tensor:
        """``value`` as a Tensor, so update rules are written with ordinary arithmetic."""
        return Tensor(value, self.graph)

    def state(self, slot: ParameterSlot, kind: str) -> Tensor:
        """A new zero-initialised state variable shaped like ``slot``'s parameter, named ``<param>.<kind>``."""
        like = slot.variable
        return self.tensor(self.graph.add_variable(np.zeros(like.shape, like.dtype.np), f"{slot.name}.{kind}"))

    def assign(self, variable: Tensor, new: Tensor) -> None:
        """After each call, ``variable`` takes ``new``."""
        self.graph.set_update(variable.value, new.value)


class Optimizer(ABC):
    """Base class: parameter groups with hyperparameters, and the in-graph update driver.

    ``params`` is an iterable of Parameters, of ``(name, Parameter)`` pairs
    (``model.named_parameters()``) or of dicts ``{"params": ..., <hyperparameter>:
    value}`` (parameter groups, each overriding ``defaults``).
    """

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Parameter):
            raise NeedlecError(f"{type(self).__name__}: params must be an iterable of Parameters or of parameter "
                               f"groups, found a single {params!r}; pass [parameter]")
        entries = list(params)
        if not entries:
            raise NeedlecError(f"{type(self).__name__}: got an empty parameter list")
        groups = entries if all(isinstance(e, dict) for e in entries) else [{"params": entries}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (unset ones take ``defaults``)."""
        name = type(self).__name__
        if not isinstance(group, Mapping) or "params" not in group:
            raise NeedlecError(f"{name}: a parameter group is a dict with a 'params' entry, found {group!r}")
        unknown = sorted(set(group) - set(self.defaults) - {"params"})
        if unknown:
            raise NeedlecError(f"{name}: unknown hyperparameter(s) {', '.join(unknown)}; "
                               f"expected {', '.join(sorted(self.defaults))}")
        params = [_parameter(entry, name) for entry in _as_list(group["params"])]
        seen = {id(p) for p in self.parameters()}
        for p in params:
            if id(p) in seen:
                raise NeedlecError(f"{name}: {p!r} appears more than once in the parameter list")
            seen.add(id(p))
        merged = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}, "params": params}
        self.check_hyperparameters(merged)
        self.param_groups.append(merged)

    def parameters(self) -> list[Parameter]:
        """Every optimized Parameter, group by group."""
        return [p for group in self.param_groups for p in group["params"]]

    def check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        """Raise NeedlecError naming the first invalid hyperparameter of ``group``."""
        if group["lr"] < 0:
            raise NeedlecError(f"{type(self).__name__}: invalid learning rate {group['lr']} (expected >= 0)")
        if group["weight_decay"] < 0:
            raise NeedlecError(f"{type(self).__name__}: invalid weight_decay {group['weight_decay']} "
                               f"(expected >= 0)")

    def add_updates(self, graph: Graph, slots: Mapping[int, ParameterSlot], step: Value) -> None:
        """Append the update of every parameter in ``slots`` (keyed by ``id(parameter)``) to ``graph``.

        ``step`` is the graph's step counter: an integer scalar variable
        holding the number of completed steps, incremented by its owner.
        Parameters of this optimizer missing from ``slots`` have no gradient
        and are left alone, as PyTorch skips parameters whose ``grad`` is None.
        """
        if not step.is_variable or step.shape != () or not step.dtype.is_int:
            raise NeedlecError(f"{type(self).__name__}: the step counter must be an integer scalar variable, "
                               f"found {step!r}")
        builder = UpdateBuilder(graph, step)
        for group in self.param_groups:
            for parameter in group["params"]:
                slot = slots.get(id(parameter))
                if slot is not None:
                    new = self.update(builder, group, slot)
                    builder.assign(builder.tensor(slot.variable), new)

    @abstractmethod
    def update(self, builder: UpdateBuilder, group: Mapping[str, Any], slot: ParameterSlot) -> Tensor:
        """The parameter's new value after one step (creating and assigning any state)."""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} parameter(s), {settings}")
        return "\n".join(lines + [")"])


def _as_list(params: Any) -> list[Any]:
    return [params] if isinstance(params, Parameter) else list(params)


def _parameter(entry: Any, optimizer: str) -> Parameter:
    """A Parameter from a Parameter or a ``(name, Parameter)`` pair; float dtypes only."""
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], Parameter):
        entry = entry[1]
    if not isinstance(entry, Parameter):
        raise NeedlecError(f"{optimizer}: expected Parameters or (name, Parameter) pairs, "
                           f"found {type(entry).__name__}")
    if not entry.dtype.is_float:
        raise NeedlecError(f"{optimizer}: {entry!r} is not floating-point; only float parameters can be "
                           f"optimized")
    return entry


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight decay.

    As ``torch.optim.SGD``: ``g = grad + weight_decay * p``; with momentum,
    ``buf = g`` on the first step and ``buf = momentum * buf + (1 - dampening) * g``
    after, then ``g = g + momentum * buf`` (Nesterov) or ``g = buf``; finally
    ``p = p - lr * g``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov,
                                  "weight_decay": weight_decay})

    def check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        super().check_hyperparameters(group)
        if group["momentum"] < 0:
            raise NeedlecError(f"SGD: invalid momentum {group['momentum']} (expected >= 0)")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise NeedlecError(f"SGD: Nesterov momentum needs momentum > 0 and dampening 0, found "
                               f"momentum {group['momentum']}, dampening {group['dampening']}")

    def update(self, builder: UpdateBuilder, group: Mapping[str, Any], slot: ParameterSlot) -> Tensor:
        param, grad = builder.tensor(slot.variable), builder.tensor(slot.gradient)
        if group["weight_decay"] != 0:
            grad = grad + param * group["weight_decay"]
        momentum, dampening = group["momentum"], group["dampening"]
        if momentum != 0:
            buf = builder.state(slot, "momentum_buffer")
            if dampening == 0:
                new_buf = buf * momentum + grad  # the zero-initialised buffer makes the first step buf = g exactly
            else:
                new_buf = F.where(builder.step == 0, grad, buf * momentum + grad * (1 - dampening))
            builder.assign(buf, new_buf)
            grad = grad + new_buf * momentum if group["nesterov"] else new_buf
        return param - grad * group["lr"]


class Adam(Optimizer):
    """Adam with bias correction and L2 weight decay added to the gradient, as ``torch.optim.Adam``.

    ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) * g * g``,
    ``p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``
    with ``t`` the in-graph step count.
    """

    decoupled_weight_decay = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def check_hyperparameters(self, group: Mapping[str, Any]) -> None:
        super().check_hyperparameters(group)
        name = type(self).__name__
        if group["eps"] < 0:
            raise NeedlecError(f"{name}: invalid eps {group['eps']} (expected >= 0)")
        betas = tuple(group["betas"])
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise NeedlecError(f"{name}: invalid betas {group['betas']} (expected two values in [0, 1))")

    def update(self, builder: UpdateBuilder, group: Mapping[str, Any], slot: ParameterSlot) -> Tensor:
        param, grad = builder.tensor(slot.variable), builder.tensor(slot.gradient)
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if weight_decay != 0:
            if self.decoupled_weight_decay:
                param = param * (1 - lr * weight_decay)
            else:
                grad = grad + param * weight_decay
        exp_avg, exp_avg_sq = builder.state(slot, "exp_avg"), builder.state(slot, "exp_avg_sq")
        new_avg = _lerp(exp_avg, grad, 1 - beta1)
        new_avg_sq = exp_avg_sq * beta2 + grad * (1 - beta2) * grad
        builder.assign(exp_avg, new_avg)
        builder.assign(exp_avg_sq, new_avg_sq)
        count = builder.count.astype(DType.F64)
        step_size = (lr / (1 - beta1 ** count)).astype(param.dtype)
        correction2_sqrt = F.sqrt(1 - beta2 ** count).astype(param.dtype)
        denom = F.sqrt(new_avg_sq) / correction2_sqrt + eps
        return param + new_avg * -step_size / denom


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``: ``p = p * (1 - lr * weight_decay)`` first."""

    decoupled_weight_decay = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


def _lerp(start: Tensor, end: Tensor, weight: float) -> Tensor:
    """``torch.lerp`` with a scalar weight, evaluated as PyTorch's CPU kernel does (exact at both ends)."""
    if abs(weight) < 0.5:
        return start + (end - start) * weight
    return end - (end - start) * (1 - weight)
