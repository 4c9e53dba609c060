"""The op registry: one ``OpDef`` per primitive op, holding all of its rules.

Each primitive keeps side by side (as JAX's lax.py does): its attribute schema,
its shape/dtype rule, its NumPy reference, its lowering to loop IR and (slot
for the training work) its gradient rule. Backends only ever see primitives
registered here; ``tests/test_ops.py`` fails when an op lacks a rule or a test case.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from needlec.compiler.ir.dtypes import DType
from needlec.compiler.ir.types import TensorType
from needlec.compiler.loops.builder import ScalarFn, lower_elementwise
from needlec.errors import IRError, ShapeError, UnsupportedOpError

if TYPE_CHECKING:
    from needlec.compiler.loops.builder import BufferOperand, KernelBuilder, Operand
    from needlec.compiler.loops.ir import Kernel, Stmt
    from needlec.compiler.target import Target

ATTR_KINDS = ("int", "float", "bool", "str", "ints", "floats", "dtype")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Attr:
    """One attribute in an op's schema: its kind and default (``REQUIRED`` if none)."""

    kind: str
    default: Any = REQUIRED

    def __post_init__(self) -> None:
        if self.kind not in ATTR_KINDS:
            raise ValueError(f"unknown attribute kind {self.kind}")

    def coerce(self, value: Any, where: str) -> Any:
        """Convert ``value`` to this kind's canonical Python form, or raise IRError."""
        try:
            if self.kind == "int":
                if isinstance(value, (bool, float)) and not float(value).is_integer():
                    raise ValueError
                return int(value)
            if self.kind == "float":
                return float(value)
            if self.kind == "bool":
                if value not in (True, False, 0, 1):
                    raise ValueError
                return bool(value)
            if self.kind == "str":
                if not isinstance(value, str):
                    raise ValueError
                return value
            if self.kind == "ints":
                return tuple(int(v) for v in value)
            if self.kind == "floats":
                return tuple(float(v) for v in value)
            return value if isinstance(value, DType) else DType.parse(str(value))
        except (TypeError, ValueError, IRError):
            raise IRError(f"{where}: expected {self.kind}, found {value!r}") from None


InferFn = Callable[[Sequence[TensorType], Mapping[str, Any]], list[TensorType]]
ReferenceFn = Callable[[Sequence[np.ndarray], Mapping[str, Any]], list[np.ndarray]]
LowerFn = Callable[["KernelBuilder", Sequence["Operand"], Sequence["BufferOperand"], Mapping[str, Any]], list["Stmt"]]
GradFn = Callable[..., list[Any]]
ScheduleFn = Callable[["Kernel", Mapping[str, Any], "Target | None", frozenset[str]], "Kernel | None"]


def NO_GRAD(ctx: Any, node: Any, out_grads: Sequence[Any]) -> list[Any]:  # noqa: N802
    """Marks an op as not differentiable (integer/bool results or piecewise-constant outputs)."""
    return [None] * len(node.inputs)


@dataclass(frozen=True)
class OpDef:
    """Everything needlec knows about one primitive op.

    ``infer`` returns the output types (for views: with strides into the
    input's buffer); ``reference`` is the NumPy ground truth; ``lower`` emits
    the loop-IR body of the op's kernel (``None`` only for views, which alias
    their input and need no kernel); ``grad(ctx, node, out_grads)`` returns
    one gradient value per input (or ``None``) built with the
    ``ops.grad.GradContext`` ``ctx``; ``NO_GRAD`` marks ops that are not
    differentiable.
    ``arity`` is the number of inputs, or ``None`` for variadic ops.

    Elementwise ops give ``scalar`` and pass ``lower=None``: ``scalar(args,
    attrs)`` is the result's expression from the broadcast input elements,
    widened to the compute dtype first unless ``promote`` is False (the store
    rounds to the output dtype). Their ``lower`` is then the generic
    ``builder.lower_elementwise`` nest, and a consumer kernel can compute them
    inline (``builder.InlineOperand``). ``schedule(kernel, attrs, target,
    invariant)``, when given, replaces the default schedule of the kernels
    whose last source is this op, unless it returns None
    (``passes/schedule.py``); ``invariant`` names the buffers whose contents
    never change (the program's constants).
    """

    name: str
    arity: int | None
    infer: InferFn
    reference: ReferenceFn
    lower: LowerFn | None
    attrs: Mapping[str, Attr] = field(default_factory=dict)
    is_view: bool = False
    grad: GradFn | None = None
    doc: str = ""
    scalar: ScalarFn | None = None
    promote: bool = True
    schedule: ScheduleFn | None = None

    def __post_init__(self) -> None:
        if self.scalar is None:
            return
        derived = isinstance(self.lower, partial) and self.lower.func is lower_elementwise  # (dataclasses.replace)
        if self.lower is not None and not derived:
            raise ValueError(f"op {self.name}: an elementwise lowering is derived from its scalar; pass lower=None")
        # why: one lowering for every elementwise op, the same expression InlineOperand computes
        object.__setattr__(self, "lower", partial(lower_elementwise, self.scalar, self.promote))

    @property
    def is_elementwise(self) -> bool:
        """Whether the op is a scalar function of its broadcast inputs (it has ``scalar``)."""
        return self.scalar is not None

    def normalize_attrs(self, attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Check ``attrs`` against the schema, fill defaults, return a sorted dict."""
        unknown = sorted(set(attrs) - set(self.attrs))
        if unknown:
            raise IRError(f"{where}: unknown attribute(s) {', '.join(unknown)} for op {self.name}; "
                          f"expected {sorted(self.attrs) or 'none'}")
        result: dict[str, Any] = {}
        for key in sorted(self.attrs):
            spec = self.attrs[key]
            if key in attrs:
                result[key] = spec.coerce(attrs[key], f"{where}: attribute {key}")
            elif spec.default is REQUIRED:
                raise IRError(f"{where}: missing required attribute {key} of op {self.name}")
            else:
                result[key] = spec.default
        return result

    def infer_types(self, types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        """Check arity, then run the shape/dtype rule."""
        if self.arity is not None and len(types) != self.arity:
            raise ShapeError(f"op {self.name} takes {self.arity} input(s), found {len(types)}")
        return self.infer(types, attrs)


_REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    """Add ``opdef`` to the registry (names are unique)."""
    if opdef.name in _REGISTRY:
        raise ValueError(f"op {opdef.name} registered twice")
    _REGISTRY[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    """The OpDef for ``name``; ``UnsupportedOpError`` naming the op if there is none."""
    import needlec.compiler.ops  # noqa: F401  (registers every primitive)

    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedOpError(f"unknown op {name!r}: not a needlec primitive "
                                 f"(see `needlec ops` for the {len(_REGISTRY)} known ops)") from None


def all_ops() -> dict[str, OpDef]:
    """Every registered primitive, by name."""
    import needlec.compiler.ops  # noqa: F401

    return dict(_REGISTRY)


def check(cond: bool, message: str) -> None:
    """Raise ``ShapeError(message)`` unless ``cond`` (used by shape rules)."""
    if not cond:
        raise ShapeError(message)
