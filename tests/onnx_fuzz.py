"""Seeded mutations of the ONNX node-test models, for fuzzing needlec's importer and compiler.

A ``Case`` is one node-test model of the installed onnx package with its
test inputs; integer inputs after the first become initializers (so shape-like
inputs such as Reshape's ``shape`` are constants and the model compiles).
``make_mutant(cases, seed, index)`` derives mutant ``index`` of run ``seed``
on its own (``random.Random(f"{seed}:{index}")``), so any mutant of a run can
be rebuilt from its seed and index. Each mutation is a function
``(Draft, Random) -> detail`` named in ``MUTATIONS``; it edits the draft's
model (or replaces its serialized bytes, or adds files next to it) and raises
``NotApplicable`` when the model offers nothing to mutate.

Shared by ``tests/test_onnx_fuzz.py`` and ``tools/fuzz_onnx.py``; the isolated
runner that classifies outcomes is ``tests/onnx_fuzz_runner.py``.
"""
from __future__ import annotations

import importlib
import random
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

# Small, fast node-test families (modules of onnx.backend.test.case.node) for the in-suite run.
SMALL_MODULES = ("abs", "add", "relu", "sigmoid", "mul", "div", "matmul", "gemm", "transpose", "reshape", "concat",
                 "softmax", "reducesum", "reducemean", "gather", "slice", "where", "clip", "cast", "unsqueeze",
                 "squeeze", "expand", "flatten", "tile", "split", "pad", "conv", "argmax",
                 "layernormalization", "topk", "cumsum", "onehot", "leakyrelu", "pow")

INTS_EXTREME = (-1, -2, -7, 0, 1, 3, 7, 2**31 - 1, 2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1, -2**31, -2**63)
FLOATS_EXTREME = (float("nan"), float("inf"), float("-inf"), -1.0, 0.0, 1e-45, 1e38, -1e38, 3.5)
STRINGS_EXTREME = ("", "bogus", "NOTSET", "x" * 2000, "a\0b", "CONSTANT\0", "é")
ELEM_TYPES = (0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 13, 14, 16, 17, 22, 24, 28, 29, 99, 12345)
LONG_NAME = "n" * 1500


class NotApplicable(Exception):
    """The chosen mutation has nothing to act on in this model."""


@dataclass
class Case:
    """A base model to mutate: a node test with its test inputs by graph-input name."""

    name: str
    op: str
    model: onnx.ModelProto
    inputs: dict[str, np.ndarray]


@dataclass
class Draft:
    """A mutant in the making: the model, or serialized bytes that replace it, plus files beside it."""

    model: onnx.ModelProto
    data: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Mutant:
    """One mutated model: what it came from, what was done, and everything a worker needs to run it."""

    case: str
    op: str
    mutation: str
    detail: str
    seed: int
    index: int
    model: bytes
    files: dict[str, bytes]
    inputs: dict[str, np.ndarray]

    @property
    def label(self) -> str:
        return f"{self.case} [{self.mutation}: {self.detail}] seed={self.seed} index={self.index}"


# ----------------------------------------------------------------------------------------------- cases

def load_cases(modules: Sequence[str] | None = SMALL_MODULES) -> list[Case]:
    """Fuzzing cases from the named node-test modules (all node tests with ``None``), sorted by name."""
    import onnx.backend.test.case.node as node_tests

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        tests = node_tests.collect_testcases() if modules is None else [t for m in modules for t in _module_tests(m)]
    cases = [_case(test) for test in tests if _usable(test)]
    return sorted({c.name: c for c in cases}.values(), key=lambda c: c.name)


def _module_tests(module: str) -> list:
    """The node tests of one module of onnx.backend.test.case.node, whatever was collected before.

    Importing the module runs its ``export*`` functions, which append to onnx's
    global case list; an already imported module's exports run again. Either
    way they run against a fresh list, and cases new to the process are also
    added to onnx's list so that a later ``collect_testcases()`` still sees them.
    """
    import onnx.backend.test.case.node as node_tests
    from onnx.backend.test.case.base import Base

    name = f"onnx.backend.test.case.node.{module}"
    collected, names = node_tests._NodeTestCases, node_tests._existing_names
    node_tests._NodeTestCases, node_tests._existing_names = [], {}
    try:
        if name in sys.modules:
            for cls in vars(sys.modules[name]).values():
                if isinstance(cls, type) and issubclass(cls, Base) and cls is not Base:
                    for attribute in [a for a in vars(cls) if a.startswith("export")]:
                        np.random.seed(0)
                        getattr(cls, attribute)()
        else:
            importlib.import_module(name)
            collected.extend(node_tests._NodeTestCases)
            names.update(node_tests._existing_names)
        return node_tests._NodeTestCases
    finally:
        node_tests._NodeTestCases, node_tests._existing_names = collected, names


def _usable(test) -> bool:  # type: ignore[no-untyped-def]
    """Tensor inputs only (sequences and optionals are left out)."""
    inputs = test.data_sets[0][0]
    return all(isinstance(x, (np.ndarray, TensorProto)) for x in inputs)


def _case(test) -> Case:  # type: ignore[no-untyped-def]
    model = onnx.ModelProto()
    model.CopyFrom(test.model)
    present = [v.name for v in model.graph.input]
    arrays = [numpy_helper.to_array(x) if isinstance(x, TensorProto) else np.asarray(x) for x in test.data_sets[0][0]]
    inputs = dict(zip(present, arrays))
    for name in present[1:]:
        if inputs[name].dtype in (np.int64, np.int32):
            _to_initializer(model.graph, name, inputs.pop(name))
    ops = sorted({n.op_type for n in model.graph.node})
    op = model.graph.node[0].op_type if len(model.graph.node) == 1 else "+".join(ops)[:60]
    return Case(test.name, op, model, inputs)


def _to_initializer(graph: onnx.GraphProto, name: str, value: np.ndarray) -> None:
    """Turn graph input ``name`` into an initializer holding ``value``."""
    kept = [v for v in graph.input if v.name != name]
    del graph.input[:]
    graph.input.extend(kept)
    graph.initializer.append(numpy_helper.from_array(value, name))


# ----------------------------------------------------------------------------------------------- mutants

def make_mutant(cases: Sequence[Case], seed: int, index: int) -> Mutant:
    """Mutant ``index`` of the run seeded ``seed``: a random case and mutation, reproducible on its own."""
    rng = random.Random(f"{seed}:{index}")
    case = rng.choice(list(cases))
    names = sorted(MUTATIONS)
    while True:
        mutation = rng.choice(names)
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        draft = Draft(model)
        try:
            detail = MUTATIONS[mutation](draft, rng)
        except NotApplicable:
            continue
        data = draft.data if draft.data is not None else draft.model.SerializeToString()
        return Mutant(case.name, case.op, mutation, detail, seed, index, data, draft.files, case.inputs)


def unmutated(case: Case) -> Mutant:
    """The case's model as it is (mutation ``none``): a baseline that should compile and match."""
    return Mutant(case.name, case.op, "none", "", 0, -1, case.model.SerializeToString(), {}, case.inputs)


def _pick(rng: random.Random, items: Sequence):  # type: ignore[no-untyped-def]
    if not items:
        raise NotApplicable
    return items[rng.randrange(len(items))]


def _value_infos(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs, outputs and value_info entries that carry a tensor type."""
    return [v for v in [*graph.input, *graph.output, *graph.value_info] if v.type.HasField("tensor_type")]


def _names(graph: onnx.GraphProto) -> list[str]:
    """Every value name of the top-level graph, in a fixed order."""
    names = [*(v.name for v in graph.input), *(t.name for t in graph.initializer)]
    names += [o for n in graph.node for o in n.output if o]
    return list(dict.fromkeys(names))


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename value ``old`` to ``new`` everywhere in the top-level graph."""
    for v in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        if v.name == old:
            v.name = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


# ---- serialized bytes

def bytes_flip(draft: Draft, rng: random.Random) -> str:
    data = bytearray(draft.model.SerializeToString())
    count = rng.randint(1, 8)
    for _ in range(count):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    draft.data = bytes(data)
    return f"{count} bit(s)"


def bytes_truncate(draft: Draft, rng: random.Random) -> str:
    data = draft.model.SerializeToString()
    cut = rng.randrange(len(data))
    draft.data = data[:cut]
    return f"at {cut} of {len(data)}"


def bytes_overwrite(draft: Draft, rng: random.Random) -> str:
    data = bytearray(draft.model.SerializeToString())
    start = rng.randrange(len(data))
    run = bytes(rng.choice((0, 0xFF, rng.randrange(256))) for _ in range(rng.randint(1, 16)))
    data[start:start + len(run)] = run
    draft.data = bytes(data)
    return f"{len(run)} byte(s) at {start}"


# ---- dims, ranks, element types

def _dims(draft: Draft) -> list[onnx.TensorShapeProto.Dimension]:
    return [d for v in _value_infos(draft.model.graph) for d in v.type.tensor_type.shape.dim]


def dim_value(draft: Draft, rng: random.Random) -> str:
    dim = _pick(rng, _dims(draft))
    value = rng.choice((-1, -5, 0, 2**31, 2**40, 2**62, 2**63 - 1, -2**63))
    dim.dim_value = value
    return str(value)


def dim_param(draft: Draft, rng: random.Random) -> str:
    dim = _pick(rng, _dims(draft))
    dim.dim_param = rng.choice(("N", "", "batch size", LONG_NAME))
    return repr(dim.dim_param[:20])


def rank_change(draft: Draft, rng: random.Random) -> str:
    info = _pick(rng, _value_infos(draft.model.graph))
    shape = info.type.tensor_type.shape
    action = rng.choice(("add", "drop", "scalar", "unknown"))
    if action == "add":
        shape.dim.add().dim_value = rng.choice((1, 2, 3))
    elif action == "drop" and shape.dim:
        del shape.dim[rng.randrange(len(shape.dim))]
    elif action == "scalar":
        del shape.dim[:]
    else:
        info.type.tensor_type.ClearField("shape")
    return f"{action} on {info.name[:40]!r}"


def elem_type(draft: Draft, rng: random.Random) -> str:
    info = _pick(rng, _value_infos(draft.model.graph))
    info.type.tensor_type.elem_type = rng.choice(ELEM_TYPES)
    return f"{info.name[:40]!r} -> {info.type.tensor_type.elem_type}"


# ---- attributes

def _attributes(draft: Draft) -> list[tuple[onnx.NodeProto, AttributeProto]]:
    return [(n, a) for n in draft.model.graph.node for a in n.attribute]


def _set_value(attribute: AttributeProto, kind: int, rng: random.Random) -> None:
    """Give ``attribute`` type ``kind`` and an extreme value of that type."""
    for name in ("f", "i", "s", "t", "g", "floats", "ints", "strings", "tensors", "graphs"):
        attribute.ClearField(name)
    attribute.type = kind
    if kind == AttributeProto.INT:
        attribute.i = rng.choice(INTS_EXTREME)
    elif kind == AttributeProto.FLOAT:
        attribute.f = rng.choice(FLOATS_EXTREME)
    elif kind == AttributeProto.STRING:
        attribute.s = rng.choice(STRINGS_EXTREME).encode()
    elif kind == AttributeProto.INTS:
        attribute.ints.extend(rng.choice(INTS_EXTREME) for _ in range(rng.choice((0, 1, 2, 4, 9))))
    elif kind == AttributeProto.FLOATS:
        attribute.floats.extend(rng.choice(FLOATS_EXTREME) for _ in range(rng.choice((0, 1, 3))))
    elif kind == AttributeProto.STRINGS:
        attribute.strings.extend(rng.choice(STRINGS_EXTREME).encode() for _ in range(rng.choice((0, 1, 2))))
    elif kind == AttributeProto.TENSOR:
        attribute.t.CopyFrom(numpy_helper.from_array(np.array(rng.choice(INTS_EXTREME[:7]), np.int64)))
    elif kind == AttributeProto.GRAPH:
        attribute.g.name = "empty"


def _describe(attribute: AttributeProto) -> str:
    """A short one-line account of an attribute's value."""
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, TensorProto):
        return f"tensor dtype {value.data_type} dims {list(value.dims)}"
    if isinstance(value, onnx.GraphProto):
        return f"graph {value.name!r}"
    return repr(value)[:60]


ATTRIBUTE_KINDS = (AttributeProto.INT, AttributeProto.FLOAT, AttributeProto.STRING, AttributeProto.INTS,
                   AttributeProto.FLOATS, AttributeProto.STRINGS, AttributeProto.TENSOR, AttributeProto.GRAPH,
                   AttributeProto.UNDEFINED)


def attr_wrong_type(draft: Draft, rng: random.Random) -> str:
    node, attribute = _pick(rng, _attributes(draft))
    kind = rng.choice([k for k in ATTRIBUTE_KINDS if k != attribute.type])
    if rng.random() < 0.3:  # only the declared type changes; the old value stays in its field
        attribute.type = kind
    else:
        _set_value(attribute, kind, rng)
    return f"{node.op_type}.{attribute.name} -> type {kind}"


def attr_value(draft: Draft, rng: random.Random) -> str:
    """An existing attribute gets an out-of-range, huge, negative or empty value of its own type."""
    node, attribute = _pick(rng, _attributes(draft))
    kind = attribute.type
    values = attribute.ints if kind == AttributeProto.INTS else attribute.floats
    if kind in (AttributeProto.INTS, AttributeProto.FLOATS) and values and rng.random() < 0.5:  # one element
        values[rng.randrange(len(values))] = rng.choice(INTS_EXTREME if kind == AttributeProto.INTS
                                                        else FLOATS_EXTREME)
    else:
        _set_value(attribute, kind, rng)
    return f"{node.op_type}.{attribute.name} = {_describe(attribute)}"


def attr_schema(draft: Draft, rng: random.Random) -> str:
    """Set an attribute the op's schema declares (present or not) to an extreme value of its declared type."""
    node = _pick(rng, list(draft.model.graph.node))
    version = {o.domain: o.version for o in draft.model.opset_import}.get(node.domain, 1)
    try:
        schema = onnx.defs.get_schema(node.op_type, version, node.domain)
    except onnx.defs.SchemaError:
        raise NotApplicable from None
    name, declared = _pick(rng, sorted(schema.attributes.items()))
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)
    attribute = node.attribute.add()
    attribute.name = name
    _set_value(attribute, int(declared.type), rng)
    return f"{node.op_type}.{name} = {_describe(attribute)}"


def attr_drop(draft: Draft, rng: random.Random) -> str:
    node, attribute = _pick(rng, _attributes(draft))
    node.attribute.remove(attribute)
    return f"{node.op_type}.{attribute.name}"


def attr_duplicate(draft: Draft, rng: random.Random) -> str:
    node, attribute = _pick(rng, _attributes(draft))
    copy = node.attribute.add()
    copy.CopyFrom(attribute)
    if rng.random() < 0.5:
        _set_value(copy, copy.type, rng)
    return f"{node.op_type}.{attribute.name}"


def attr_unknown(draft: Draft, rng: random.Random) -> str:
    node = _pick(rng, list(draft.model.graph.node))
    attribute = node.attribute.add()
    attribute.name = rng.choice(("frobnicate", "", LONG_NAME, "axis\0"))
    _set_value(attribute, rng.choice(ATTRIBUTE_KINDS), rng)
    return f"{node.op_type}.{attribute.name[:20]!r}"


# ---- initializers

def _initializer(draft: Draft, rng: random.Random) -> TensorProto:
    """A random initializer; a graph input becomes one (from its zero-filled type) when there is none."""
    graph = draft.model.graph
    if graph.initializer and rng.random() < 0.7:
        return _pick(rng, list(graph.initializer))
    candidates = [v for v in graph.input if v.type.HasField("tensor_type")
                  and v.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32)
                  and all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)]
    info = _pick(rng, candidates)
    shape = [d.dim_value for d in info.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type)
    _to_initializer(graph, info.name, np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape))
    return graph.initializer[-1]


def _raw(tensor: TensorProto) -> TensorProto:
    """``tensor`` with its data in raw_data."""
    if not tensor.HasField("raw_data"):
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    return tensor


def init_raw_length(draft: Draft, rng: random.Random) -> str:
    tensor = _raw(_initializer(draft, rng))
    delta = rng.choice((-1, -3, 1, 5, 64, -len(tensor.raw_data)))
    tensor.raw_data = tensor.raw_data[:max(len(tensor.raw_data) + delta, 0)] + b"\1" * max(delta, 0)
    return f"{tensor.name[:40]!r}: {delta:+d} byte(s)"


def init_dims(draft: Draft, rng: random.Random) -> str:
    tensor = _initializer(draft, rng)
    action = rng.choice(("value", "add", "drop"))
    if action == "value" and tensor.dims:
        tensor.dims[rng.randrange(len(tensor.dims))] = rng.choice((-1, 0, 2, 2**31, 2**62, 2**63 - 1))
    elif action == "add":
        tensor.dims.append(rng.choice((0, 2, 7, 2**40)))
    elif tensor.dims:
        del tensor.dims[rng.randrange(len(tensor.dims))]
    return f"{tensor.name[:40]!r}: dims {list(tensor.dims)}"


def init_data_type(draft: Draft, rng: random.Random) -> str:
    tensor = _initializer(draft, rng)
    tensor.data_type = rng.choice(ELEM_TYPES)
    return f"{tensor.name[:40]!r}: data_type {tensor.data_type}"


def init_typed_data(draft: Draft, rng: random.Random) -> str:
    """Data moves from raw_data to a typed field (possibly the wrong one) with a wrong count."""
    tensor = _raw(_initializer(draft, rng))
    count = len(tensor.raw_data) // 4 + rng.choice((-1, 0, 1, 3))
    tensor.ClearField("raw_data")
    target = rng.choice(("float_data", "int32_data", "int64_data", "double_data", "string_data"))
    values = getattr(tensor, target)
    values.extend([b"x" if target == "string_data" else 1] * max(count, 0))
    return f"{tensor.name[:40]!r}: {target} x{max(count, 0)}"


def init_external(draft: Draft, rng: random.Random) -> str:
    """Move an initializer to external data with a bad location, offset or length."""
    tensor = _raw(_initializer(draft, rng))
    data = tensor.raw_data
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    location = rng.choice(("weights.bin", "weights.bin", "missing.bin", "../weights.bin", "/etc/hostname", "",
                           "sub/../weights.bin", "weights\0.bin", LONG_NAME, ".", "sub"))
    draft.files["weights.bin"] = data[:rng.choice((len(data), len(data) // 2, 0))]
    if rng.random() < 0.2:
        draft.files["sub/x"] = b""
    entries = {"location": location}
    for key in ("offset", "length"):
        if rng.random() < 0.6:
            entries[key] = rng.choice(("0", "-1", "3", "1", str(len(data)), str(len(data) + 1), str(2**63 - 1),
                                       str(2**64), "abc", ""))
    if rng.random() < 0.1:
        entries["checksum"] = "0"
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    if rng.random() < 0.1:
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "other.bin"
    return f"{tensor.name[:40]!r}: {', '.join(f'{k}={v[:20]!r}' for k, v in entries.items())}"


# ---- value names

def name_long(draft: Draft, rng: random.Random) -> str:
    old = _pick(rng, _names(draft.model.graph))
    _rename(draft.model.graph, old, old + LONG_NAME)
    return f"{old[:40]!r}"


def name_nul(draft: Draft, rng: random.Random) -> str:
    old = _pick(rng, _names(draft.model.graph))
    _rename(draft.model.graph, old, rng.choice((old + "\0", "\0", old + "\0tail", "")))
    return f"{old[:40]!r}"


def name_collide(draft: Draft, rng: random.Random) -> str:
    """A value takes the name of another value (everywhere, or only where it is produced)."""
    graph = draft.model.graph
    names = _names(graph)
    if len(names) < 2:
        raise NotApplicable
    old, new = rng.sample(names, 2)
    if rng.random() < 0.5:
        _rename(graph, old, new)
        return f"{old[:40]!r} -> {new[:40]!r} everywhere"
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
                return f"output {old[:40]!r} of {node.op_type} -> {new[:40]!r}"
    raise NotApplicable


def name_reference(draft: Draft, rng: random.Random) -> str:
    """A node input names another value (a node's own output: a cycle; a later output: out of order)."""
    graph = draft.model.graph
    node = _pick(rng, [n for n in graph.node if n.input])
    i = rng.randrange(len(node.input))
    node.input[i] = _pick(rng, _names(graph) + list(node.output))
    return f"{node.op_type} input {i} -> {node.input[i][:40]!r}"


# ---- opset imports and IR version

def opset(draft: Draft, rng: random.Random) -> str:
    model = draft.model
    action = rng.choice(("remove", "zero", "huge", "negative", "wrong_domain", "duplicate", "low"))
    default = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if action == "remove":
        for o in default:
            model.opset_import.remove(o)
    elif action == "duplicate":
        model.opset_import.add().version = rng.choice((1, 9, 22))
    elif action == "wrong_domain":
        for o in default:
            o.domain = rng.choice(("ai.onnx.ml", "com.example", "ai.onnx\0", "ai.onnx.preview.training"))
    else:
        value = {"zero": 0, "huge": rng.choice((1000, 2**31, 2**63 - 1)), "negative": -1,
                 "low": rng.choice((1, 5, 6))}[action]
        for o in default:
            o.version = value
    return action


def ir_version(draft: Draft, rng: random.Random) -> str:
    draft.model.ir_version = rng.choice((0, 1, 2, 3, 99, 2**62, -1))
    return str(draft.model.ir_version)


# ---- graph structure

def node_drop(draft: Draft, rng: random.Random) -> str:
    graph = draft.model.graph
    node = _pick(rng, list(graph.node))
    graph.node.remove(node)
    return node.op_type


def node_duplicate(draft: Draft, rng: random.Random) -> str:
    graph = draft.model.graph
    node = _pick(rng, list(graph.node))
    graph.node.insert(rng.randrange(len(graph.node) + 1), node)
    return node.op_type


def node_swap_inputs(draft: Draft, rng: random.Random) -> str:
    node = _pick(rng, [n for n in draft.model.graph.node if len(n.input) >= 2])
    i, j = rng.sample(range(len(node.input)), 2)
    node.input[i], node.input[j] = node.input[j], node.input[i]
    return f"{node.op_type} inputs {i}<->{j}"


def node_arity(draft: Draft, rng: random.Random) -> str:
    """Add or remove an input or output of a node (optional empty names included)."""
    node = _pick(rng, list(draft.model.graph.node))
    action = rng.choice(("add_input", "drop_input", "empty_input", "add_output", "drop_output"))
    if action == "add_input":
        node.input.append(rng.choice(_names(draft.model.graph) + [""]))
    elif action == "drop_input" and node.input:
        del node.input[-1]
    elif action == "empty_input" and node.input:
        node.input[rng.randrange(len(node.input))] = ""
    elif action == "add_output":
        node.output.append(rng.choice(("extra", "")))
    elif node.output:
        del node.output[rng.randrange(len(node.output))]
    return f"{node.op_type} {action}"


def node_op_type(draft: Draft, rng: random.Random) -> str:
    node = _pick(rng, list(draft.model.graph.node))
    choice = rng.choice(("Relu", "Add", "Reshape", "Conv", "If", "Loop", "Constant", "Identity", "", "relu",
                         "Frobnicate", "domain"))
    if choice == "domain":
        node.domain = rng.choice(("com.example", "ai.onnx.ml", "com.microsoft"))
        return f"{node.op_type} domain {node.domain!r}"
    old, node.op_type = node.op_type, choice
    return f"{old} -> {choice!r}"


def graph_outputs(draft: Draft, rng: random.Random) -> str:
    """Drop a graph output, add one naming a graph input or no value, or drop every output."""
    graph = draft.model.graph
    action = rng.choice(("drop", "drop_all", "input", "missing"))
    if action == "drop":
        graph.output.remove(_pick(rng, list(graph.output)))
    elif action == "drop_all":
        del graph.output[:]
    else:
        extra = graph.output.add()
        extra.CopyFrom(graph.input[0] if graph.input and action == "input" else graph.output[0])
        if action == "missing":
            extra.name = "nowhere"
    return action


def graph_inputs(draft: Draft, rng: random.Random) -> str:
    """A node reads a name nothing defines, or a graph input disappears, or is declared twice."""
    graph = draft.model.graph
    action = rng.choice(("dangling", "drop", "duplicate"))
    if action == "dangling":
        node = _pick(rng, [n for n in graph.node if n.input])
        node.input[rng.randrange(len(node.input))] = "nowhere"
    elif action == "drop":
        graph.input.remove(_pick(rng, list(graph.input)))
    else:
        graph.input.add().CopyFrom(_pick(rng, list(graph.input)))
    return action


MUTATIONS: dict[str, Callable[[Draft, random.Random], str]] = {f.__name__: f for f in (
    bytes_flip, bytes_truncate, bytes_overwrite,
    dim_value, dim_param, rank_change, elem_type,
    attr_wrong_type, attr_value, attr_schema, attr_drop, attr_duplicate, attr_unknown,
    init_raw_length, init_dims, init_data_type, init_typed_data, init_external,
    name_long, name_nul, name_collide, name_reference,
    opset, ir_version,
    node_drop, node_duplicate, node_swap_inputs, node_arity, node_op_type, graph_outputs, graph_inputs,
)}
