"""Tests for scratchdl.perceptron: the gates of book ch2 and the limits of one perceptron."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scratchdl import perceptron
from scratchdl.perceptron import (
    AND,
    NAND,
    OR,
    TRUTH_TABLE_INPUTS,
    XOR,
    Perceptron,
    find_perceptron,
    separable,
)

# Outputs for the inputs (0,0), (1,0), (0,1), (1,1), from the book's tables 2-1 .. 2-5.
TRUTH_TABLES = {
    "AND": [0, 0, 0, 1],
    "NAND": [1, 1, 1, 0],
    "OR": [0, 1, 1, 1],
    "XOR": [0, 1, 1, 0],
}
GATES = {"AND": AND, "NAND": NAND, "OR": OR, "XOR": XOR}
GATE_NAMES = list(GATES)


def test_truth_table_inputs_are_the_books_four_pairs_in_order():
    assert TRUTH_TABLE_INPUTS.tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    assert not TRUTH_TABLE_INPUTS.flags.writeable


@pytest.mark.parametrize("name", GATE_NAMES)
def test_truth_table_on_scalars_gives_python_ints(name):
    gate = GATES[name]
    for (x1, x2), expected in zip(TRUTH_TABLE_INPUTS.tolist(), TRUTH_TABLES[name], strict=True):
        y = gate(x1, x2)
        assert type(y) is int
        assert y == expected, (name, x1, x2)


@pytest.mark.parametrize("name", GATE_NAMES)
def test_truth_table_on_an_array_of_pairs(name):
    y = GATES[name](TRUTH_TABLE_INPUTS)
    assert y.shape == (4,)
    assert y.dtype == np.int64
    assert y.tolist() == TRUTH_TABLES[name]


@pytest.mark.parametrize("name", GATE_NAMES)
def test_truth_table_on_separate_arrays(name):
    x1, x2 = TRUTH_TABLE_INPUTS[:, 0], TRUTH_TABLE_INPUTS[:, 1]
    y = GATES[name](x1, x2)
    assert y.dtype == np.int64
    assert y.tolist() == TRUTH_TABLES[name]
    # Plain lists and a grid of shape (2, 2) work too: x1 across the columns, x2 down the rows.
    assert GATES[name](list(x1), list(x2)).tolist() == TRUTH_TABLES[name]
    grid = GATES[name](np.array([[0, 1]]), np.array([[0], [1]]))
    assert grid.shape == (2, 2)
    assert grid.ravel().tolist() == TRUTH_TABLES[name]


@pytest.mark.parametrize("name", GATE_NAMES)
def test_one_pair_of_shape_2_gives_an_int(name):
    for pair, expected in zip(TRUTH_TABLE_INPUTS, TRUTH_TABLES[name], strict=True):
        y = GATES[name](pair)
        assert type(y) is int
        assert y == expected


@pytest.mark.parametrize("name", ["AND", "NAND", "OR"])
def test_the_books_weights_and_biases(name):
    expected = {"AND": ([0.5, 0.5], -0.7), "NAND": ([-0.5, -0.5], 0.7), "OR": ([0.5, 0.5], -0.2)}
    gate = GATES[name]
    assert (gate.w.tolist(), gate.b) == expected[name]


def test_the_boundary_itself_gives_0():
    # y = 1 only if b + w . x > 0 strictly (book eq. 2.2): w = (1, 1), b = -1 is 0 at (1, 0).
    gate = Perceptron(w=(1.0, 1.0), b=-1.0)
    assert gate(TRUTH_TABLE_INPUTS).tolist() == [0, 0, 0, 1]
    assert gate(1, 0) == 0
    assert gate(0.25, 0.75) == 0


def test_separate_inputs_and_rows_agree_on_real_inputs_near_the_boundary():
    rng = np.random.default_rng(0)
    # Points on and around AND's line 0.5*x1 + 0.5*x2 = 0.7, where rounding decides.
    x1 = rng.uniform(-1, 2, 10_000)
    x2 = 1.4 - x1 + rng.choice([0.0, 1e-16, -1e-16, 1e-3], x1.size)
    for gate in (AND, NAND, OR, XOR):
        np.testing.assert_array_equal(gate(x1, x2), gate(np.stack([x1, x2], axis=1)))
    # Both sides of the line occur, so the comparison above is not vacuous.
    assert 0 < AND(x1, x2).sum() < x1.size


def test_xor_is_built_only_from_nand_or_and(monkeypatch):
    calls = []

    def spy(name, gate):
        def wrapped(*x):
            calls.append(name)
            return gate(*x)

        return wrapped

    for name in ("AND", "NAND", "OR"):
        monkeypatch.setattr(perceptron, name, spy(name, GATES[name]))
    assert XOR(TRUTH_TABLE_INPUTS).tolist() == TRUTH_TABLES["XOR"]
    assert sorted(calls) == ["AND", "NAND", "OR"]
    # The only global names XOR's code refers to are the three gates.
    assert set(XOR.__code__.co_names) == {"AND", "NAND", "OR"}


def test_xor_changes_when_its_output_gate_does(monkeypatch):
    # XOR looks the gates up; it does not hard-code a table. With OR as the output layer
    # it becomes OR(NAND, OR), which is 1 everywhere.
    monkeypatch.setattr(perceptron, "AND", OR)
    assert XOR(TRUTH_TABLE_INPUTS).tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("name", ["AND", "NAND", "OR"])
def test_one_gate_is_separable_and_the_search_reproduces_it(name):
    found = find_perceptron(TRUTH_TABLES[name])
    assert found is not None
    assert found(TRUTH_TABLE_INPUTS).tolist() == TRUTH_TABLES[name]
    assert separable(TRUTH_TABLES[name])


def test_xor_and_xnor_are_the_only_two_input_functions_no_perceptron_reproduces():
    not_separable = []
    for targets in itertools.product((0, 1), repeat=4):
        found = find_perceptron(targets)
        if found is None:
            not_separable.append(list(targets))
        else:
            assert found(TRUTH_TABLE_INPUTS).tolist() == list(targets)
    assert not_separable == [[0, 1, 1, 0], [1, 0, 0, 1]]  # XOR, XNOR
    assert not separable(XOR(TRUTH_TABLE_INPUTS))


def test_random_perceptrons_never_reproduce_xor_but_do_reproduce_the_other_gates():
    # Independent of the grid: a million perceptrons with continuous random weights.
    rng = np.random.default_rng(0)
    w1, w2, b = rng.standard_normal((3, 1_000_000, 1))
    x1, x2 = TRUTH_TABLE_INPUTS.T
    outputs = (w1 * x1 + w2 * x2 + b > 0).astype(np.int64)  # (1_000_000, 4)
    for name, table in TRUTH_TABLES.items():
        hits = np.count_nonzero((outputs == table).all(axis=1))
        if name == "XOR":
            assert hits == 0
        else:
            assert hits > 1000, name


def test_find_perceptron_prefers_a_wide_margin_and_accepts_a_grid():
    found = find_perceptron(TRUTH_TABLES["AND"])
    s = TRUTH_TABLE_INPUTS @ found.w + found.b
    assert np.abs(s).min() >= 0.2  # at least as wide as the book's AND
    zero = find_perceptron([0, 0, 0, 0], grid=[0.0])
    assert (zero.w.tolist(), zero.b) == ([0.0, 0.0], 0.0)
    assert zero(TRUTH_TABLE_INPUTS).tolist() == [0, 0, 0, 0]
    assert find_perceptron(TRUTH_TABLES["AND"], grid=[0.0]) is None


@pytest.mark.parametrize("targets", [[0, 1, 1], [0, 1, 2, 1], [[0, 1], [1, 0]]])
def test_find_perceptron_rejects_bad_targets(targets):
    with pytest.raises(ValueError, match="targets must be four 0/1 outputs"):
        find_perceptron(targets)


@pytest.mark.parametrize("grid", [[], [[0.0]], [0.0, np.nan]])
def test_find_perceptron_rejects_bad_grids(grid):
    with pytest.raises(ValueError, match="grid must be"):
        find_perceptron(TRUTH_TABLES["AND"], grid=grid)


def test_decision_line_of_and():
    slope, intercept = AND.decision_line()
    assert slope == pytest.approx(-1.0)
    assert intercept == pytest.approx(1.4)
    x1 = np.linspace(-2, 3, 11)
    on_line = intercept + slope * x1
    np.testing.assert_allclose(AND.b + AND.w[0] * x1 + AND.w[1] * on_line, 0, atol=1e-12)
    assert AND(x1, on_line + 0.01).tolist() == [1] * 11  # w2 > 0: 1 above the line
    assert AND(x1, on_line - 0.01).tolist() == [0] * 11


def test_decision_line_of_nand_is_the_same_line_with_sides_swapped():
    assert NAND.decision_line() == pytest.approx(AND.decision_line())
    assert NAND(0.0, 1.5) == 0  # above the line
    assert AND(0.0, 1.5) == 1


def test_decision_line_errors():
    with pytest.raises(ValueError, match=r"vertical line x1 = 0\.5"):
        Perceptron(w=(2.0, 0.0), b=-1.0).decision_line()
    with pytest.raises(ValueError, match=r"nowhere"):
        Perceptron(w=(0.0, 0.0), b=1.0).decision_line()
    with pytest.raises(ValueError, match="has 3"):
        Perceptron(w=(1.0, 1.0, 1.0), b=0.0).decision_line()


@pytest.mark.parametrize(
    ("args", "shape"),
    [
        ((np.zeros((4, 3)),), r"\(4, 3\)"),
        ((np.zeros((2, 2, 2)),), r"\(2, 2, 2\)"),
        ((np.zeros(3),), r"\(3,\)"),
        ((1,), r"\(\)"),
        ((np.zeros(3), np.zeros(4)), r"\(3,\), \(4,\)"),
    ],
)
def test_wrong_shapes_raise_value_error_naming_the_shape(args, shape):
    with pytest.raises(ValueError, match=shape):
        AND(*args)


def test_wrong_inputs():
    with pytest.raises(TypeError, match="got 3 arguments"):
        AND(1, 0, 1)
    with pytest.raises(TypeError, match="got 0 arguments"):
        OR()
    with pytest.raises(ValueError, match="must be numbers"):
        AND("1", "0")
    with pytest.raises(ValueError, match="finite"):
        NAND(np.nan, 1.0)


def test_perceptron_with_three_inputs():
    and3 = Perceptron(w=[1.0, 1.0, 1.0], b=-2.5)
    inputs = np.array(list(itertools.product((0, 1), repeat=3)))
    expected = [0] * 7 + [1]
    assert and3(inputs).tolist() == expected
    assert and3(*inputs.T).tolist() == expected
    assert and3(1, 1, 1) == 1
    assert and3.n_inputs == 3


def test_repr_round_trips_and_weights_are_frozen_copies():
    assert repr(AND) == "Perceptron(w=[0.5, 0.5], b=-0.7)"
    clone = eval(repr(NAND), {"Perceptron": Perceptron})
    assert (clone.w.tolist(), clone.b) == (NAND.w.tolist(), NAND.b)
    w = np.array([0.5, 0.5])
    p = Perceptron(w, -0.7)
    w[0] = 100.0  # the caller's array is copied
    assert p.w.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="read-only"):
        AND.w[0] = 1.0


@pytest.mark.parametrize(
    ("w", "b", "message"),
    [
        ([[0.5, 0.5]], 0.0, r"shape \(1, 2\)"),
        ([], 0.0, r"shape \(0,\)"),
        ([0.5, np.inf], 0.0, "inf"),
        ([0.5, 0.5], np.nan, "nan"),
        ([0.5, 0.5], "0.7", "'0.7'"),
        ([0.5, 0.5], True, "True"),
    ],
)
def test_bad_weights_or_bias_raise_naming_the_value(w, b, message):
    with pytest.raises(ValueError, match=message):
        Perceptron(w, b)
