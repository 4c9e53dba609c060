"""Graph variables: persistent state updated after each call, in the JIT and in shared libraries."""
from __future__ import annotations

import numpy as np
import pytest

import needlec
from needlec import DType, Graph, TensorType
from needlec.compiler.interpreter import evaluate
from needlec.compiler.ir.parser import parse_graph
from needlec.compiler.ir.verifier import verify_graph
from needlec.errors import IRError, RuntimeInputError, VerificationError


def _accumulator() -> Graph:
    """out = sum(w); w <- w + x; n <- n + 1."""
    g = Graph("acc")
    x = g.add_input("x", TensorType((3,), DType.F32))
    w = g.add_variable(np.ones(3, np.float32), "w")
    n = g.add_variable(np.zeros((), np.int64), "n")
    g.set_update(w, g.add("add", x, w))
    g.set_update(n, g.add("add", n, g.add_constant(np.int64(1), "one")))
    g.set_outputs([g.add("reduce_sum", w, axes=[0])])
    return g


def test_updates_persist_across_calls_and_reads_see_the_old_value() -> None:
    compiled = needlec.compile(_accumulator(), check_numerics=True)
    x = np.array([1, 2, 3], np.float32)
    assert compiled(x) == 3.0  # sum of the initial w, before the update
    assert compiled(x) == 9.0
    np.testing.assert_array_equal(compiled.get_variable("w"), [3, 5, 7])
    assert compiled.get_variable("n") == 2


def test_set_variable_is_checked_and_takes_effect() -> None:
    compiled = needlec.compile(_accumulator())
    compiled.set_variable("w", np.zeros(3, np.float32))
    assert compiled(np.ones(3, np.float32)) == 0.0
    assert set(compiled.variables()) == {"w", "n"}
    with pytest.raises(RuntimeInputError, match=r"variable 'w' expected shape \(3,\), found \(4,\)"):
        compiled.set_variable("w", np.zeros(4, np.float32))
    with pytest.raises(RuntimeInputError, match="no variable 'q'; variables are w, n"):
        compiled.get_variable("q")


def test_each_compiled_model_has_its_own_state() -> None:
    a = needlec.compile(_accumulator())
    b = needlec.compile(_accumulator())
    a(np.ones(3, np.float32))
    np.testing.assert_array_equal(b.get_variable("w"), np.ones(3))


def test_interpreter_reports_updates() -> None:
    outputs, updates = evaluate(_accumulator(), [np.ones(3, np.float32)], {"w": np.zeros(3, np.float32)})
    assert outputs[0] == 0.0
    np.testing.assert_array_equal(updates["w"], np.ones(3))
    assert updates["n"] == 1


def test_variables_round_trip_through_ir_text() -> None:
    text = str(_accumulator())
    assert "= variable dense<[1.0, 1.0, 1.0]>" in text and "update %w <- %" in text
    assert str(parse_graph(text)) == text


def test_shared_library_keeps_state(tmp_path) -> None:
    compiled = needlec.compile(_accumulator())
    lib = needlec.load(compiled.export(str(tmp_path / "acc.so")))
    lib(np.ones(3, np.float32))
    np.testing.assert_array_equal(lib.get_variable("w"), [2, 2, 2])
    assert lib.signature.variables[1].name == "n"


def test_bad_updates_are_rejected() -> None:
    g = _accumulator()
    with pytest.raises(IRError, match="is not a variable"):
        g.set_update(g.inputs[0], g.inputs[0])
    with pytest.raises(IRError, match=r"update of %w: expected f32\[3\], found i64\[\]"):
        g.set_update(g.variables[0], g.variables[1])
    other = Graph("other").add_variable(np.ones(3, np.float32), "w")
    g.updates.append((other, g.inputs[0]))
    with pytest.raises(VerificationError, match="not a variable of this graph"):
        verify_graph(g)
