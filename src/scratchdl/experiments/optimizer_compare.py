"""SGD, Momentum, AdaGrad and Adam training the same network on MNIST (book ch6, fig. 6-9).

A 5-layer ReLU network (784 - 100 x 4 - 10, He initialisation) is trained by each
optimizer from the same initial weights on the same random mini-batches (batch 128,
2000 iterations; learning rates as the book: SGD 0.01, Momentum 0.01, AdaGrad 0.01,
Adam 0.001).

JSON keys:
- ``optimizers``: name -> ``{"lr", "iterations", "smoothed", "final", "test_acc"}``:
  the moving average (window 50) of the loss, sampled at ``iterations``; the mean loss of
  the last 100 iterations; the test accuracy after training;
- ``final_loss``: name -> mean loss of the last 100 iterations;
- ``test_acc``: name -> test accuracy after training;
- ``slowest``: the optimizer with the highest final loss (the book: SGD);
- ``settings``: the settings used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models import MultiLayerNet
from ..optimizers import SGD, AdaGrad, Adam, Momentum
from ..support.figures import labels, language, pyplot
from . import ch6, common
from .common import count, positive

NAME = "optimizer-compare"
CHAPTER = 6
TITLE = "SGD, Momentum, AdaGrad and Adam training a 5-layer network on MNIST"
EXPLANATION = """The book trains the same 5-layer ReLU network on MNIST with each of four
optimizers and plots the loss per iteration (fig. 6-9): SGD learns the slowest, while
Momentum, AdaGrad and Adam drop the loss much faster, AdaGrad often a little ahead. Here all
four start from the same weights and see the same mini-batches, so the curves differ only
by the update rule. Each line is a moving average over 50 iterations on a log scale; lower
is better, and the legend gives the mean loss of the last 100 iterations."""
KEY_NUMBERS = ("final_loss", "test_acc", "slowest")

SETTINGS = {
    "iterations": count(2000, quick=200),
    "batch_size": count(128),
    "hidden_size": count(100),
    "hidden_layers": count(4),
    "sgd_lr": positive(0.01),
    "momentum_lr": positive(0.01),
    "adagrad_lr": positive(0.01),
    "adam_lr": positive(0.001),
}

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "curve": "{name}, lr {lr:g}",
        "axes": "MNIST, {layers}-layer ReLU network, batch {batch_size}",
        "quick": " (quick: 2000-image sample)",
    },
    "ja": {
        "title": "SGD、Momentum、AdaGrad、Adam による MNIST での 5 層のネットワークの学習",
        "curve": "{name}、学習率 {lr:g}",
        "axes": "MNIST、{layers} 層の ReLU ネットワーク、バッチサイズ {batch_size}",
        "quick": "（短時間版: 2000 枚のサンプル）",
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
    optimizers = {
        "SGD": SGD(lr=o["sgd_lr"]),
        "Momentum": Momentum(lr=o["momentum_lr"]),
        "AdaGrad": AdaGrad(lr=o["adagrad_lr"]),
        "Adam": Adam(lr=o["adam_lr"]),
    }
    hidden = [o["hidden_size"]] * o["hidden_layers"]
    runs = {
        # The same seed for every network: identical initial weights.
        name: (MultiLayerNet(784, hidden, 10, weight_init_std="he", rng=seed), opt)
        for name, opt in optimizers.items()
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
    results = {}
    for name, (network, opt) in runs.items():
        results[name] = {
            "lr": opt.lr,
            **ch6.loss_summary(losses[name]),
            "test_acc": network.accuracy(x_test, t_test),
        }
    final = {name: r["final"] for name, r in results.items()}
    numbers = {
        "optimizers": results,
        "final_loss": final,
        "test_acc": {name: r["test_acc"] for name, r in results.items()},
        "slowest": max(final, key=final.get),
        "settings": {**o, "train_size": len(x_train), "quick": quick, "seed": seed},
    }

    with language(lang):
        fig, ax = pyplot().subplots(figsize=(9, 5))
        title = text["axes"].format(layers=o["hidden_layers"] + 1, batch_size=o["batch_size"])
        ch6.plot_loss_curves(
            ax,
            {text["curve"].format(name=name, lr=r["lr"]): r for name, r in results.items()},
            title=title + (text["quick"] if quick else ""),
            lang=lang,
        )
        return common.save_result(out, NAME, fig, numbers)
