"""Overfitting 300 training images, and weight decay against it (book ch6, figs. 6-20, 6-21).

A 7-layer ReLU network (784 - 100 x 6 - 10, He initialisation) is trained with SGD
(lr 0.01, batch 100) on only 300 MNIST training images for 200 epochs (3 random
mini-batches each), once without and once with weight decay (lambda 0.1). Both start
from the same weights and see the same mini-batches. Train accuracy is measured on the 300
images, test accuracy on the whole test set, before training and after every epoch
(201 points, as the book's ``max_epochs = 201``).

JSON keys:
- ``runs``: ``{"plain", "weight_decay"}`` -> ``{"weight_decay_lambda", "train_acc",
  "test_acc", "final_train_acc", "final_test_acc", "final_gap", "gap_at_train_acc"}``:
  the accuracies per epoch 0..epochs, their means over the last 10 epochs, the gap
  train - test of those means, and the gaps at matched train accuracies (below);
- ``final_gap``: ``{"plain", "weight_decay"}`` -> the final train - test gap;
- ``final_train_acc``, ``final_test_acc``: ``{"plain", "weight_decay"}`` -> the final accuracies;
- ``gap_at_train_acc``: training accuracy level ("0.5" .. "0.9") -> ``{"plain", "weight_decay"}``
  -> the mean gap over the epochs whose train accuracy was within 0.025 of that level
  (None if the run never got there): the two runs compared at the same fit of the
  training set, not at the same epoch;
- ``settings``: the settings used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models import MultiLayerNet
from ..optimizers import SGD
from ..support.figures import labels, language
from . import ch6, common
from .common import Setting, count, positive

NAME = "overfit-weight-decay"
CHAPTER = 6
TITLE = "Overfitting 300 training images, without and with weight decay (lambda 0.1)"
EXPLANATION = """The book makes a 7-layer network overfit by training it on only 300 images
(fig. 6-20): the training accuracy reaches 100 % while the test accuracy stays far below,
and the shaded gap between them is what the network memorised rather than learned. Weight
decay adds lambda/2 * sum(W**2) to the loss, which keeps the weights small (fig. 6-21): the
training accuracy no longer reaches 100 % and the gap narrows, although the test accuracy
does not rise much. Solid lines are train accuracy, dashed lines test accuracy; the right
panel compares the runs at equal training accuracy, where weight decay's points lie higher
(a narrower gap), so it is not only fitting the training set less."""
KEY_NUMBERS = ("final_gap", "final_train_acc", "final_test_acc", "gap_at_train_acc")

SETTINGS = {
    "train_size": count(300),
    "epochs": count(200, quick=100),
    "batch_size": count(100),
    "lr": positive(0.01),
    "weight_decay_lambda": Setting(0.1, low=0),
    "hidden_size": count(100),
    "hidden_layers": count(6),
}

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "plain": "without weight decay",
        "decay": "weight decay \u03bb = {lam:g}",
        "suptitle": (
            "{n} MNIST training images, {layers} hidden ReLU layers, SGD lr {lr:g}, "
            "batch {batch_size}"
        ),
        "quick": " (quick)",
    },
    "ja": {
        "title": "300 枚の訓練データでの過学習: Weight decay（荷重減衰）なしとあり（λ 0.1）",
        "plain": "Weight decay なし",
        "decay": "Weight decay（荷重減衰）\u03bb = {lam:g}",
        "suptitle": (
            "MNIST の訓練データ {n} 枚、ReLU の隠れ層 {layers} 層、SGD 学習率 {lr:g}、"
            "バッチサイズ {batch_size}"
        ),
        "quick": "（短時間版）",
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
    common.check_at_most(NAME, "train_size", o["train_size"], len(x_train), "the training images")
    x, t = x_train[: o["train_size"]], t_train[: o["train_size"]]
    hidden = [o["hidden_size"]] * o["hidden_layers"]
    lambdas = {"plain": 0.0, "weight_decay": o["weight_decay_lambda"]}

    runs = {}
    for name, lam in common.progress(lambdas.items(), total=2, desc=NAME, enable=progress):
        network = MultiLayerNet(
            784, hidden, 10, weight_init_std="he", weight_decay_lambda=lam, rng=seed
        )
        results = ch6.train_epochs(
            network,
            SGD(lr=o["lr"]),
            x,
            t,
            epochs=o["epochs"],
            batch_size=o["batch_size"],
            rng=np.random.default_rng([seed, 1]),  # both runs: the same mini-batches
            evaluate=lambda net: (net.accuracy(x, t), net.accuracy(x_test, t_test)),
        )
        runs[name] = {"weight_decay_lambda": lam, **ch6.accuracy_summary(results)}

    numbers = {
        "runs": runs,
        **{
            key: {name: r[key] for name, r in runs.items()}
            for key in ("final_gap", "final_train_acc", "final_test_acc")
        },
        "gap_at_train_acc": {
            level: {name: r["gap_at_train_acc"][level] for name, r in runs.items()}
            for level in runs["plain"]["gap_at_train_acc"]
        },
        "settings": {**o, "test_size": len(x_test), "quick": quick, "seed": seed},
    }
    title = text["suptitle"].format(
        n=o["train_size"], layers=o["hidden_layers"], lr=o["lr"], batch_size=o["batch_size"]
    )
    with language(lang):
        fig = ch6.overfit_figure(
            {
                text["plain"]: runs["plain"],
                text["decay"].format(lam=o["weight_decay_lambda"]): runs["weight_decay"],
            },
            title + (text["quick"] if quick else ""),
            lang,
        )
        return common.save_result(out, NAME, fig, numbers)
