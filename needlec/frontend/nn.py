"""Neural-network modules (``needlec.nn``): PyTorch-style Modules holding NumPy Parameters.

A ``Module`` registers the ``Parameter``s and sub-Modules assigned to its
attributes; ``named_parameters`` names them by module path
(``layers.0.weight``), and those paths become the names of the graph
constants when the module is traced. Weights are float32 and initialised as
PyTorch does (uniform in +-1/sqrt(fan_in)), drawn from the generator set by
``manual_seed`` or from an ``rng=`` argument.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.errors import NeedlecError
from needlec.frontend import functional as F
from needlec.frontend.tensor import Tensor, active_context

__all__ = ["Parameter", "Module", "Linear", "Conv2d", "ReLU", "Tanh", "Sigmoid", "Flatten", "MaxPool2d",
           "AvgPool2d", "Sequential", "manual_seed"]

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator that initialises every module created without ``rng=``."""
    global _generator
    _generator = np.random.default_rng(seed)


def _uniform(rng: np.random.Generator | None, bound: float, shape: tuple[int, ...]) -> np.ndarray:
    """float32 values uniform in [-bound, bound)."""
    return (rng or _generator).uniform(-bound, bound, shape).astype(np.float32)


class Parameter:
    """A trainable NumPy array. While tracing it acts as a Tensor: the graph constant holding it.

    ``np.asarray(p)`` gives the data, so NumPy code (references, optimisers)
    uses Parameters directly.
    """

    def __init__(self, data: Any) -> None:
        self.data = np.array(data, order="C")

    @property
    def shape(self) -> tuple[int, ...]:
        """The data's shape."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> DType:
        """The data's element type."""
        return DType.from_numpy(self.data.dtype)

    @property
    def ndim(self) -> int:
        """The data's number of axes."""
        return self.data.ndim

    def traced(self) -> Tensor:
        """This parameter in the active trace (one named constant per trace)."""
        context = active_context("using a Parameter as a tensor")
        return Tensor(context.parameter_constant(self), context.graph)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __getattr__(self, name: str) -> Any:
        # Tensor methods and properties (.T, .reshape, .sum, ...) act on the traced constant.
        if name.startswith("_") or not hasattr(Tensor, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.traced(), name)

    def __repr__(self) -> str:
        return f"Parameter({self.dtype.value}{list(self.shape)})"


def _forward_to_traced(name: str) -> Callable[..., Tensor]:
    def method(self: Parameter, *args: Any) -> Tensor:
        return getattr(self.traced(), name)(*args)

    method.__name__ = name
    method.__doc__ = f"``Tensor.{name}`` on this parameter's constant in the active trace."
    return method


# Operators must be defined on the class (Python looks them up there, not through __getattr__).
# Comparisons are left out: ``p == q`` stays identity-based, and ``p < t`` reaches ``Tensor.__gt__``.
for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
              "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__",
              "__matmul__", "__rmatmul__", "__neg__", "__pos__", "__abs__", "__getitem__"):
    setattr(Parameter, _name, _forward_to_traced(_name))


class Module:
    """Base class of every layer and model: call it to run ``forward``.

    Subclasses call ``super().__init__()`` first, then assign Parameters and
    Modules as attributes; they are registered in assignment order.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise NeedlecError(f"{type(self).__name__}.__init__ must call super().__init__() before "
                               f"assigning attribute {name!r}")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every concrete Module defines it."""
        raise NeedlecError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- the module tree ------------------------------------------------------
    def children(self) -> Iterator[Module]:
        """The direct sub-Modules, in registration order."""
        return iter(self._modules.values())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (named ``prefix``) and every sub-Module, depth first, by dotted path."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every Parameter by dotted path (a shared Parameter once, under its first path)."""
        seen: set[int] = set()
        for path, module in self.named_modules(prefix):
            for name, parameter in module._parameters.items():
                if id(parameter) not in seen:
                    seen.add(id(parameter))
                    yield (f"{path}.{name}" if path else name), parameter

    def parameters(self) -> list[Parameter]:
        """Every Parameter, in ``named_parameters`` order."""
        return [p for _, p in self.named_parameters()]

    def train(self, mode: bool = True) -> Module:
        """Set the training flag on this module and every sub-Module; returns self."""
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """``train(False)``."""
        return self.train(False)

    # -- weights in and out -------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every Parameter's data, by dotted path."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into the Parameters; names, shapes and dtypes must match (all checked first).

        With ``strict=False`` missing and unexpected names are ignored.
        """
        own = dict(self.named_parameters())
        missing = [n for n in own if n not in state]
        unexpected = [n for n in state if n not in own]
        if strict and (missing or unexpected):
            raise NeedlecError(f"load_state_dict into {type(self).__name__}: missing {missing or 'none'}, "
                               f"unexpected {unexpected or 'none'}")
        arrays = {}
        for name, parameter in own.items():
            if name not in state:
                continue
            array = np.asarray(state[name])
            if array.shape != parameter.data.shape or array.dtype != parameter.data.dtype:
                raise NeedlecError(f"load_state_dict: {name} expected {parameter.data.dtype.name}"
                                   f"{list(parameter.data.shape)}, found {array.dtype.name}{list(array.shape)}")
            arrays[name] = array
        for name, array in arrays.items():
            own[name].data = np.array(array, order="C")

    # -- printing ----------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr``."""
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Linear(Module):
    """y = x @ weight.T + bias, weight of shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        bound = 1 / math.sqrt(in_features) if in_features else 0.0
        self.weight = Parameter(_uniform(rng, bound, (out_features, in_features)))
        self.bias = Parameter(_uniform(rng, bound, (out_features,))) if bias else None

    def forward(self, x: Any) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution over NCHW inputs; weight of shape (out, in / groups, kh, kw)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: F.IntPair, stride: F.IntPair = 1,
                 padding: F.IntPair = 0, dilation: F.IntPair = 1, groups: int = 1, bias: bool = True,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise NeedlecError(f"Conv2d: in_channels {in_channels} and out_channels {out_channels} must be "
                               f"divisible by groups {groups}")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        fan_in = in_channels // groups * kh * kw
        bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
        self.weight = Parameter(_uniform(rng, bound, (out_channels, in_channels // groups, kh, kw)))
        self.bias = Parameter(_uniform(rng, bound, (out_channels,))) if bias else None

    def forward(self, x: Any) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}")


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x: Any) -> Tensor:
        return F.relu(x)


class Tanh(Module):
    """Hyperbolic tangent."""

    def forward(self, x: Any) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    """1 / (1 + e ** -x)."""

    def forward(self, x: Any) -> Tensor:
        return F.sigmoid(x)


class Flatten(Module):
    """Merge axes ``start_dim..end_dim`` (by default every axis but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Any) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class MaxPool2d(Module):
    """Max pooling over the last two axes (stride defaults to the kernel size)."""

    def __init__(self, kernel_size: F.IntPair, stride: F.IntPair | None = None, padding: F.IntPair = 0,
                 dilation: F.IntPair = 1, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Any) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling over the last two axes (padding counted in the divisor by default, as in PyTorch)."""

    def __init__(self, kernel_size: F.IntPair, stride: F.IntPair | None = None, padding: F.IntPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Any) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Sequential(Module):
    """Modules applied in order; sub-Modules are named ``0``, ``1``, ..."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, module in enumerate(modules):
            setattr(self, str(i), module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())
