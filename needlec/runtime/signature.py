"""Input/output signatures and the validation every call goes through."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from needlec.errors import RuntimeInputError


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape and NumPy dtype of one graph input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def describe(self) -> str:
        return f"{self.name}: {self.dtype.name}[{', '.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class Signature:
    """A compiled graph's inputs and outputs in call order, and its variables (persistent state)."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    variables: tuple[TensorSpec, ...] = ()
    cpu: str = "host"
    cpu_features: tuple[str, ...] = ()  # LLVM names of the CPU features the code may use

    @staticmethod
    def from_json(text: str) -> Signature:
        data = json.loads(text)

        def specs(items: list[dict]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(d["name"], tuple(d["shape"]), np.dtype(d["dtype"])) for d in items)

        return Signature(data["name"], specs(data["inputs"]), specs(data["outputs"]),
                         specs(data.get("variables", [])), data.get("cpu", "host"), tuple(data.get("cpu_features", ())))

    def bind(self, args: Sequence[Any], kwargs: dict[str, Any]) -> list[np.ndarray]:
        """Match positional and named arguments to inputs, validate, return contiguous arrays."""
        names = [s.name for s in self.inputs]
        if len(args) > len(names):
            raise RuntimeInputError(f"{self.name}: expected {len(names)} input(s) ({', '.join(names)}), "
                                    f"found {len(args) + len(kwargs)}")
        given: dict[str, Any] = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names:
                raise RuntimeInputError(f"{self.name}: unknown input {key!r}; inputs are {', '.join(names)}")
            if key in given:
                raise RuntimeInputError(f"{self.name}: input {key!r} given twice")
            given[key] = value
        missing = [n for n in names if n not in given]
        if missing:
            raise RuntimeInputError(f"{self.name}: expected {len(names)} input(s), found {len(given)}; "
                                    f"missing {', '.join(missing)}")
        return [self._check(spec, given[spec.name]) for spec in self.inputs]

    def _check(self, spec: TensorSpec, value: Any, what: str = "input") -> np.ndarray:
        if not isinstance(value, (np.ndarray, np.generic)):
            raise RuntimeInputError(f"{self.name}: {what} {spec.name!r} must be a numpy array, "
                                    f"found {type(value).__name__}")
        array = np.asarray(value)
        if array.dtype != spec.dtype:
            raise RuntimeInputError(f"{self.name}: {what} {spec.name!r} expected dtype {spec.dtype.name}, "
                                    f"found {array.dtype.name}")
        if tuple(array.shape) != spec.shape:
            raise RuntimeInputError(f"{self.name}: {what} {spec.name!r} expected shape {spec.shape}, "
                                    f"found {tuple(array.shape)}")
        return np.asarray(array, order="C")

    def variable_index(self, name: str) -> int:
        """Slot of variable ``name``; RuntimeInputError naming the known variables otherwise."""
        for i, spec in enumerate(self.variables):
            if spec.name == name:
                return i
        known = ", ".join(s.name for s in self.variables) or "none"
        raise RuntimeInputError(f"{self.name}: no variable {name!r}; variables are {known}")

    def check_variable(self, name: str, value: Any) -> np.ndarray:
        """``value`` validated against variable ``name``'s shape and dtype."""
        return self._check(self.variables[self.variable_index(name)], value, "variable")
