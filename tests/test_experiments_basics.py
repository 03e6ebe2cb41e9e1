"""The chapter 2-6 "basics" experiments: gates, activations, gradient descent, gradient check,
optimizer paths. Each runs once in quick mode; the tests check its files and the book's claim
on its numbers."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from scratchdl.experiments.registry import EXPERIMENTS, module_name
from scratchdl.perceptron import TRUTH_TABLE_INPUTS, Perceptron

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")

# The keys each module's docstring documents.
DOCUMENTED_KEYS = {
    "gates": {
        "inputs",
        "truth_tables",
        "truth_tables_match_logic",
        "perceptrons",
        "separable",
        "found_perceptrons",
        "xor_separable_by_one_perceptron",
        "xor_layers",
        "search_grid",
    },
    "activations": {
        "x_range",
        "curves",
        "ranges",
        "sigmoid_at_0",
        "tanh_at_0",
        "c",
        "layers",
        "linear_stack_max_error",
        "affine_stack_max_error",
        "relu_stack_line_fit_error",
    },
    "gradient-descent": {
        "function",
        "init_x",
        "step_num",
        "learning_rates",
        "final_points",
        "final_distance",
        "paths",
        "text_step_num",
        "final_points_text",
        "large_lr_frozen_from_step",
        "large_lr_exact_distance",
        "field",
        "field_max_error",
    },
    "gradient-check": {
        "input_size",
        "hidden_size",
        "output_size",
        "samples",
        "weight_init_std",
        "dtype",
        "n_params",
        "mean_abs_difference",
        "relative_error",
        "max_relative_error",
        "time_backprop_s",
        "time_numerical_s",
        "time_numerical_per_param_s",
        "speedup",
        "book_mean_abs_difference",
    },
    "optimizer-paths": {
        "function",
        "init",
        "steps",
        "learning_rates",
        "optimizers",
        "paths",
        "final_points",
        "final_f",
        "final_distance",
        "vertical_travel",
        "closest_to_minimum",
        "closer_than_sgd",
    },
}
NAMES = tuple(DOCUMENTED_KEYS)


def load(name: str):
    return importlib.import_module(module_name(name))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run every experiment once in quick mode: name -> (returned numbers, output folder)."""
    out = tmp_path_factory.mktemp("basics")
    return {name: (load(name).run(out, quick=True, progress=False), out) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_module_follows_the_contract(name):
    module = load(name)
    assert name in EXPERIMENTS
    assert module.NAME == name
    assert isinstance(module.CHAPTER, int) and 2 <= module.CHAPTER <= 6
    assert module.TITLE and "\n" not in module.TITLE
    assert len(module.EXPLANATION.split()) > 40
    assert set(module.KEY_NUMBERS) <= DOCUMENTED_KEYS[name]


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_writes_a_real_figure_and_the_documented_json(name, results):
    numbers, out = results[name]
    with PIL.open(out / f"{name}.png") as im:
        im.load()
        assert min(im.size) > 300, im.size
        gray = np.asarray(im.convert("L"))
        assert np.unique(gray).size > 20, "the figure looks blank"
    saved = json.loads((out / f"{name}.json").read_text())
    assert set(saved) == DOCUMENTED_KEYS[name]
    assert set(saved) == set(numbers)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_raises(name, tmp_path):
    with pytest.raises(ValueError, match="no option bogus"):
        load(name).run(tmp_path, quick=True, progress=False, bogus=1)
    assert not list(tmp_path.iterdir()), "nothing is written for a bad option"


def test_option_of_the_wrong_type_raises(tmp_path):
    with pytest.raises(ValueError, match="lr"):
        load("gradient-descent").run(tmp_path, quick=True, progress=False, lr="fast")


def test_options_arrive_as_strings_from_the_command_line(tmp_path):
    numbers = load("gradient-descent").run(
        tmp_path, quick=True, progress=False, step_num="5", lr="0.2"
    )
    assert len(numbers["paths"]["lr"]) == 6
    # one step of x <- x - 0.2 * 2x = 0.6 x, five times
    np.testing.assert_allclose(numbers["final_points"]["lr"], 0.6**5 * np.array([-3, 4]))


# -- the book's claims, on the quick numbers -------------------------------------------------


def test_gates_truth_tables_and_xor_needs_two_layers(results):
    n, _ = results["gates"]
    assert n["inputs"] == TRUTH_TABLE_INPUTS.tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    assert n["truth_tables"] == {
        "AND": [0, 0, 0, 1],
        "NAND": [1, 1, 1, 0],
        "OR": [0, 1, 1, 1],
        "XOR": [0, 1, 1, 0],
    }
    assert all(n["truth_tables_match_logic"].values())
    assert n["separable"] == {"AND": True, "NAND": True, "OR": True, "XOR": False}
    assert n["xor_separable_by_one_perceptron"] is False
    assert n["found_perceptrons"]["XOR"] is None
    for gate in ("AND", "NAND", "OR"):  # the perceptrons found really compute the gate
        found = n["found_perceptrons"][gate]
        p = Perceptron(found["w"], found["b"])
        assert p(TRUTH_TABLE_INPUTS).tolist() == n["truth_tables"][gate]
    assert n["xor_layers"]["y"] == n["truth_tables"]["XOR"]


def test_activations_ranges_and_linear_layers_collapse(results):
    n, _ = results["activations"]
    lo, hi = n["ranges"]["sigmoid"]
    assert 0 < lo < hi < 1
    assert n["sigmoid_at_0"] == 0.5 and n["tanh_at_0"] == 0
    lo, hi = n["ranges"]["tanh"]
    assert -1 < lo < hi < 1
    assert n["ranges"]["relu"] == [0, n["x_range"][1]]
    assert set(n["curves"]["step"]) == {0, 1}
    assert np.all(np.diff(n["curves"]["sigmoid"]) > 0), "sigmoid increases"
    assert n["linear_stack_max_error"] < 1e-12  # h(h(h(x))) == c**3 x
    assert n["affine_stack_max_error"] < 1e-9  # 3 linear layers == 1 layer
    assert n["relu_stack_line_fit_error"] > 0.1  # ReLU layers are not one straight line


def test_gradient_descent_learning_rates(results):
    n, _ = results["gradient-descent"]
    start = np.array(n["init_x"])
    assert n["final_distance"]["lr"] < 0.1  # lr 0.1 ends near (0, 0)
    assert n["final_distance"]["large_lr"] > 1e10  # lr 10 diverges
    assert np.abs(np.array(n["final_points"]["small_lr"]) - start).max() < 1e-6  # barely moves
    assert n["field_max_error"] < 1e-6  # the numerical gradient of x0² + x1² is 2x
    # The book's printed results after 100 steps (section 4.4.1).
    assert np.abs(n["final_points_text"]["lr"]).max() < 1e-8
    np.testing.assert_allclose(
        n["final_points_text"]["large_lr"], [-2.58983747e13, -1.29524862e12], rtol=1e-8
    )
    np.testing.assert_allclose(
        n["final_points_text"]["small_lr"], [-2.99999994, 3.99999992], rtol=1e-8
    )
    assert n["large_lr_exact_distance"] > n["final_distance"]["large_lr"]


def test_gradient_check_agrees_and_backprop_is_faster(results):
    n, _ = results["gradient-check"]
    assert n["dtype"] == "float64"
    assert set(n["mean_abs_difference"]) == {"W1", "b1", "W2", "b2"}
    assert n["max_relative_error"] < 1e-4
    assert max(n["mean_abs_difference"].values()) < 1e-8
    assert n["time_backprop_s"] < n["time_numerical_s"]
    assert n["speedup"] > 10
    assert n["n_params"] == 784 * n["hidden_size"] + n["hidden_size"] + n["hidden_size"] * 10 + 10


def test_optimizer_paths_adaptive_methods_beat_sgd_zigzag(results):
    n, _ = results["optimizer-paths"]
    start_f = n["init"][0] ** 2 / 20 + n["init"][1] ** 2
    assert all(f < start_f / 10 for f in n["final_f"].values()), n["final_f"]
    # The book: "AdaGrad looks best" on this problem.
    assert n["closest_to_minimum"] == "AdaGrad"
    assert n["closer_than_sgd"]["AdaGrad"]
    # SGD zigzags across the valley; Momentum, AdaGrad and Adam much less.
    for name in ("Momentum", "AdaGrad", "Adam"):
        assert n["vertical_travel"]["SGD"] > 3 * n["vertical_travel"][name], name
    # The drawn SGD path is the exact iteration x <- 0.905 x, y <- -0.9 y of the book's lr 0.95.
    k = np.arange(n["steps"] + 1)
    sgd = np.array(n["paths"]["SGD"])
    np.testing.assert_allclose(sgd[:, 0], -7 * (1 - 0.95 / 10) ** k)
    np.testing.assert_allclose(sgd[:, 1], 2 * (1 - 0.95 * 2) ** k, atol=1e-12)
