"""The chapter-6 experiments (training techniques): quick runs write a real figure and the
documented numbers, and those numbers show the book's claims."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from scratchdl.experiments import (
    batchnorm,
    hyperparameter_search,
    optimizer_compare,
    overfit_dropout,
    overfit_weight_decay,
    weight_init_compare,
    weight_init_histogram,
)

# The JSON keys each module's docstring documents.
DOCUMENTED_KEYS = {
    optimizer_compare: {"optimizers", "final_loss", "test_acc", "slowest", "settings"},
    weight_init_histogram: {
        "activations",
        "hist_range",
        "last_layer_std",
        "last_layer_saturated",
        "init_std",
        "settings",
    },
    weight_init_compare: {"inits", "final_loss", "initial_loss", "test_acc", "settings"},
    batchnorm: {
        "weight_scales",
        "train_acc",
        "final_acc",
        "mean_final_acc",
        "std_final_acc",
        "min_final_acc",
        "scales_learned",
        "mean_acc_over_epochs",
        "settings",
    },
    overfit_weight_decay: {
        "runs",
        "final_gap",
        "final_train_acc",
        "final_test_acc",
        "gap_at_train_acc",
        "settings",
    },
    overfit_dropout: {
        "runs",
        "final_gap",
        "final_train_acc",
        "final_test_acc",
        "gap_at_train_acc",
        "settings",
    },
    hyperparameter_search: {
        "trials",
        "ranking",
        "best",
        "top_box",
        "top_lr_decades",
        "sampled_lr_decades",
        "top_val_acc_curves",
        "settings",
    },
}
MODULES = list(DOCUMENTED_KEYS)


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Run BLAS single-threaded when threadpoolctl is there: these matrices are small, and
    on 2 shared, busy cores BLAS threads only wait for each other (5-10x slower, measured)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Run each experiment once in quick mode (on first use); return (numbers, folder)."""
    done = {}

    def get(module):
        if module not in done:
            out = tmp_path_factory.mktemp(module.NAME)
            done[module] = (module.run(out, quick=True, progress=False), out)
        return done[module]

    return get


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_quick_run_writes_a_figure_and_the_documented_numbers(module, quick):
    numbers, out = quick(module)
    assert module.CHAPTER == 6
    assert module.TITLE and len(module.EXPLANATION.split()) > 30
    with Image.open(out / f"{module.NAME}.png") as img:
        img.load()
        gray = np.asarray(img.convert("L"))
    assert min(gray.shape) > 300, gray.shape
    assert len(np.unique(gray)) > 20, "the figure looks empty"
    saved = json.loads((out / f"{module.NAME}.json").read_text())
    assert set(saved) == DOCUMENTED_KEYS[module]
    assert set(module.KEY_NUMBERS) <= set(saved)
    assert saved["settings"]["quick"] is True


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_an_unknown_option_raises_and_names_the_accepted_ones(module, tmp_path):
    with pytest.raises(ValueError, match="no option colour") as info:
        module.run(tmp_path, quick=True, progress=False, colour="red")
    for key in module.SETTINGS:
        assert key in str(info.value)
    assert not list(tmp_path.iterdir()), "nothing is written before the options are checked"


def test_sgd_is_the_slowest_optimizer(quick):
    numbers, _ = quick(optimizer_compare)
    final = numbers["final_loss"]
    others = [final[name] for name in ("Momentum", "AdaGrad", "Adam")]
    assert numbers["slowest"] == "SGD"
    assert final["SGD"] > 2 * max(others), final
    for name, r in numbers["optimizers"].items():
        assert r["smoothed"][-1] < r["smoothed"][0], f"{name} did not learn"


def test_small_initial_weights_collapse_the_activations_and_large_ones_saturate(quick):
    numbers, _ = quick(weight_init_histogram)
    std = numbers["last_layer_std"]
    # The init made for each activation keeps the last layer's spread; std 0.01 collapses it.
    for activation, good in (("sigmoid", "Xavier"), ("tanh", "Xavier"), ("relu", "He")):
        assert std[activation]["std=0.01"] < 0.2 * std[activation][good], (activation, std)
    # He keeps the ReLU spread from layer to layer; Xavier lets it shrink.
    relu = numbers["activations"]["relu"]
    assert 0.5 < relu["He"]["std"][-1] / relu["He"]["std"][0] < 2
    assert relu["Xavier"]["std"][-1] < 0.5 * relu["Xavier"]["std"][0]
    # Std 1 drives sigmoid into its flat ends; Xavier does not.
    saturated = numbers["last_layer_saturated"]["sigmoid"]
    assert saturated["std=1"] > 0.5, saturated
    assert saturated["Xavier"] < 0.05, saturated


def test_std_001_weights_do_not_learn_while_xavier_and_he_do(quick):
    numbers, _ = quick(weight_init_compare)
    final = numbers["final_loss"]
    assert abs(final["std=0.01"] - math.log(10)) < 0.02, final  # a uniform guess
    assert final["Xavier"] < final["std=0.01"] - 0.05, final
    assert final["He"] < 0.6 * final["std=0.01"], final
    assert final["He"] < final["Xavier"], final


def test_batchnorm_learns_from_more_initial_scales(quick):
    numbers, _ = quick(batchnorm)
    mean = numbers["mean_final_acc"]
    assert mean["batchnorm"] > mean["plain"] + 0.2, mean
    learned = numbers["scales_learned"]
    assert learned["batchnorm"] > learned["plain"], learned
    speed = numbers["mean_acc_over_epochs"]
    assert speed["batchnorm"] > speed["plain"], speed


def test_weight_decay_narrows_the_train_test_gap(quick):
    numbers, _ = quick(overfit_weight_decay)
    assert numbers["final_train_acc"]["plain"] > 0.95, "the plain network should overfit"
    gap = numbers["final_gap"]
    assert gap["weight_decay"] < gap["plain"] - 0.03, gap
    # Also at the same training accuracy, not only at the same epoch.
    matched = [
        (g["plain"], g["weight_decay"])
        for g in numbers["gap_at_train_acc"].values()
        if None not in (g["plain"], g["weight_decay"])
    ]
    assert len(matched) >= 3, numbers["gap_at_train_acc"]
    assert all(wd < plain for plain, wd in matched), numbers["gap_at_train_acc"]


def test_dropout_keeps_the_network_from_memorising_as_fast(quick):
    numbers, _ = quick(overfit_dropout)
    train = numbers["final_train_acc"]
    assert train["plain"] > 0.95, "the plain network should overfit"
    assert train["dropout"] < 0.9, train
    gap = numbers["final_gap"]
    assert gap["dropout"] < gap["plain"] - 0.05, gap


def test_the_best_learning_rates_lie_in_a_narrow_band(quick):
    numbers, _ = quick(hyperparameter_search)
    trials = numbers["trials"]
    slow = [r for r in trials if r["lr"] < 1e-4]
    assert slow, "the sample should include small learning rates"
    assert all(r["val_acc"] < 0.2 for r in slow), slow  # near chance: nothing learned
    assert numbers["best"]["lr"] > 1e-3, numbers["best"]
    assert numbers["best"]["val_acc"] > 0.3, numbers["best"]
    assert numbers["top_lr_decades"] < 1 < numbers["sampled_lr_decades"]
    ranks = [r["val_acc"] for r in numbers["ranking"]]
    assert ranks == sorted(ranks, reverse=True)


def test_hyperparameter_search_results_do_not_depend_on_the_worker_count(quick, tmp_path):
    one, _ = quick(hyperparameter_search)
    assert one["settings"]["workers"] == 1
    two = hyperparameter_search.run(tmp_path, quick=True, progress=False, workers=2)
    assert two["trials"] == one["trials"]
    assert two["ranking"] == one["ranking"]
