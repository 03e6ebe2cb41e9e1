"""Training on MNIST with initial weights of std 0.01, Xavier and He (book ch6, fig. 6-15).

A 5-layer ReLU network (784 - 100 x 4 - 10) is trained with SGD (lr 0.01, batch 128,
2000 iterations) from each initialisation, on the same random mini-batches. The three
networks draw their weights from the same standard-normal numbers, scaled by each std.

JSON keys:
- ``inits``: name -> ``{"weight_init_std", "iterations", "smoothed", "final", "test_acc"}``:
  the moving average (window 50) of the loss sampled at ``iterations``, the mean loss of
  the last 100 iterations and the test accuracy after training;
- ``final_loss``: name -> mean loss of the last 100 iterations;
- ``initial_loss``: name -> mean loss of the first 10 iterations;
- ``test_acc``: name -> test accuracy after training;
- ``settings``: the settings used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models import MultiLayerNet
from ..optimizers import SGD
from ..support.figures import labels, language, pyplot
from . import ch6, common
from .common import count, positive

NAME = "weight-init-compare"
CHAPTER = 6
TITLE = "Training a 5-layer ReLU network on MNIST from std 0.01, Xavier and He weights"
EXPLANATION = """The book trains the same 5-layer ReLU network with SGD from three initial
weight scales (fig. 6-15). With std 0.01 the signal shrinks at every layer, the gradients
vanish and the loss stays at ln 10 = 2.30, the loss of a uniform guess: the network does not
learn at all. Xavier and He initialisation keep the signal alive and the loss falls, He (made
for ReLU) the fastest. Each line is a moving average of the loss over 50 iterations."""
KEY_NUMBERS = ("final_loss", "test_acc")

SETTINGS = {
    "iterations": count(2000, quick=200),
    "batch_size": count(128),
    "lr": positive(0.01),
    "hidden_size": count(100),
    "hidden_layers": count(4),
}
INITS = {"std=0.01": 0.01, "Xavier": "xavier", "He": "he"}

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "axes": "MNIST, {layers}-layer ReLU network, SGD lr {lr:g}, batch {batch_size}",
        "quick": " (quick: 2000-image sample)",
        "uniform": "ln 10: a uniform guess",
    },
    "ja": {
        "title": "重みの初期値 std 0.01、Xavier、He からの 5 層の ReLU ネットワークの学習",
        "axes": (
            "MNIST、{layers} 層の ReLU ネットワーク、SGD 学習率 {lr:g}、バッチサイズ {batch_size}"
        ),
        "quick": "（短時間版: 2000 枚のサンプル）",
        "uniform": "ln 10: 一様な当て推量",
    },
}


def run(
    out: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    lang: str = "en",
    **options,
) -> dict:
    text = labels(LABELS, lang)
    o = common.options(options, SETTINGS, NAME, quick=quick)
    (x_train, t_train), (x_test, t_test) = common.mnist(quick=quick, progress=progress)
    hidden = [o["hidden_size"]] * o["hidden_layers"]
    runs = {
        # The same seed: the same standard-normal draws, only the scale differs.
        name: (MultiLayerNet(784, hidden, 10, weight_init_std=std, rng=seed), SGD(lr=o["lr"]))
        for name, std in INITS.items()
    }
    losses = ch6.train_together(
        runs,
        x_train,
        t_train,
        iterations=o["iterations"],
        batch_size=o["batch_size"],
        rng=np.random.default_rng([seed, 1]),
        progress=progress,
        desc=NAME,
    )
    results = {
        name: {
            "weight_init_std": INITS[name],
            **ch6.loss_summary(losses[name]),
            "test_acc": network.accuracy(x_test, t_test),
        }
        for name, (network, _) in runs.items()
    }
    numbers = {
        "inits": results,
        "final_loss": {name: r["final"] for name, r in results.items()},
        "initial_loss": {name: float(np.mean(losses[name][:10])) for name in results},
        "test_acc": {name: r["test_acc"] for name, r in results.items()},
        "settings": {**o, "train_size": len(x_train), "quick": quick, "seed": seed},
    }

    with language(lang):
        fig, ax = pyplot().subplots(figsize=(9, 5))
        title = text["axes"].format(
            layers=o["hidden_layers"] + 1, lr=o["lr"], batch_size=o["batch_size"]
        )
        ch6.plot_loss_curves(
            ax, results, title=title + (text["quick"] if quick else ""), log=False, lang=lang
        )
        ax.set_ylim(0, 2.5)  # the book's scale
        ax.axhline(np.log(10), color="gray", lw=0.8, ls=":")
        ax.annotate(
            text["uniform"],
            (0, np.log(10)),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=8,
            color="gray",
        )
        return common.save_result(out, NAME, fig, numbers)
