"""Overfitting 300 training images, and dropout against it (book ch6, fig. 6-23).

A 7-layer ReLU network (784 - 100 x 6 - 10, He initialisation) is trained by
``scratchdl.Trainer`` with SGD (lr 0.01, batch 100) on only 300 MNIST training images for
300 epochs, once without and once with dropout (ratio 0.2) after every hidden activation.
Both start from the same weights and see the same shuffled mini-batches. Train accuracy is
measured on the 300 images, test accuracy on the whole test set, before training and after
every epoch (301 points, as the book's ``epochs=301`` gives).

Our Dropout is inverted: kept units are scaled by 1/(1 - ratio) in training and the layer
is the identity at test time. The book's Dropout scales by (1 - ratio) at test time
instead, so in training its signal shrinks by 0.8 at each of the 6 dropout layers; in this
ReLU network that acts like a much smaller learning rate, and the book's run is still far
from fitting the 300 images after 300 epochs. Ours fits them faster, so the narrower gap
shows most clearly in the first 100-200 epochs and at equal training accuracy
(``gap_at_train_acc``).

JSON keys:
- ``runs``: ``{"plain", "dropout"}`` -> ``{"dropout_ratio", "train_acc", "test_acc",
  "final_train_acc", "final_test_acc", "final_gap", "gap_at_train_acc"}``: the
  accuracies per epoch 0..epochs, their means over the last 10 epochs, the gap
  train - test of those means, and the gaps at matched train accuracies (below);
- ``final_gap``: ``{"plain", "dropout"}`` -> the final train - test gap;
- ``final_train_acc``, ``final_test_acc``: ``{"plain", "dropout"}`` -> the final accuracies;
- ``gap_at_train_acc``: training accuracy level ("0.5" .. "0.9") -> ``{"plain", "dropout"}``
  -> the mean gap over the epochs whose train accuracy was within 0.025 of that level
  (None if the run never got there): the two runs compared at the same fit of the
  training set, not at the same epoch;
- ``settings``: the settings used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models import MultiLayerNet
from ..support.figures import labels, language
from ..trainer import Trainer
from . import ch6, common
from .common import Setting, count, positive

NAME = "overfit-dropout"
CHAPTER = 6
TITLE = "Overfitting 300 training images, without and with dropout (ratio 0.2)"
EXPLANATION = """The book trains a 7-layer network on only 300 images with and without
dropout (fig. 6-23). Without it the training accuracy reaches 100 % while the test accuracy
stays far below; the shaded gap is what the network memorised. Dropout switches off a random
20 % of the hidden units at every training step, so no unit can rely on particular others:
the training accuracy rises more slowly and for most of the run the gap between train
(solid) and test (dashed) is narrower. The right panel compares the two runs at equal
training accuracy: the dropout points lie a little higher, i.e. closer to the diagonal.
Our dropout is inverted and keeps the signal's scale, so unlike the book's version it
nearly fits the 300 images by epoch 300, and the final gaps end up close."""
KEY_NUMBERS = ("final_gap", "final_train_acc", "final_test_acc", "gap_at_train_acc")

SETTINGS = {
    "train_size": count(300),
    "epochs": count(300, quick=100),
    "batch_size": count(100),
    "lr": positive(0.01),
    "dropout_ratio": Setting(0.2, low=0, high=1, high_open=True),
    "hidden_size": count(100),
    "hidden_layers": count(6),
}

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "plain": "without dropout",
        "dropout": "dropout ratio {ratio:g}",
        "suptitle": (
            "{n} MNIST training images, {layers} hidden ReLU layers, SGD lr {lr:g}, "
            "batch {batch_size}, scratchdl.Trainer"
        ),
        "quick": " (quick)",
    },
    "ja": {
        "title": "300 枚の訓練データでの過学習: Dropout なしとあり（消去する割合 0.2）",
        "plain": "Dropout なし",
        "dropout": "Dropout（消去する割合 {ratio:g}）",
        "suptitle": (
            "MNIST の訓練データ {n} 枚、ReLU の隠れ層 {layers} 層、SGD 学習率 {lr:g}、"
            "バッチサイズ {batch_size}、scratchdl.Trainer"
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

    runs = {}
    for name in ("plain", "dropout"):
        network = MultiLayerNet(
            784,
            hidden,
            10,
            weight_init_std="he",
            use_dropout=name == "dropout",
            dropout_ratio=o["dropout_ratio"],
            rng=np.random.default_rng(seed),  # both runs: the same initial weights
        )
        trainer = Trainer(
            network,
            x,
            t,
            x_test,
            t_test,
            epochs=o["epochs"],
            mini_batch_size=o["batch_size"],
            optimizer="sgd",
            optimizer_param={"lr": o["lr"]},
            verbose=False,
            rng=np.random.default_rng([seed, 1]),  # both runs: the same mini-batches
        )
        results = [trainer.evaluate()]  # epoch 0: the initial network
        epochs = range(1, o["epochs"] + 1)
        for epoch in common.progress(epochs, total=o["epochs"], desc=name, enable=progress):
            trainer.epochs = epoch  # train() runs the epochs up to this one
            trainer.train()
            results.append((trainer.history["train_acc"][-1], trainer.history["test_acc"][-1]))
        runs[name] = {
            "dropout_ratio": o["dropout_ratio"] if name == "dropout" else 0.0,
            **ch6.accuracy_summary(results),
        }

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
                text["dropout"].format(ratio=o["dropout_ratio"]): runs["dropout"],
            },
            title + (text["quick"] if quick else ""),
            lang,
        )
        return common.save_result(out, NAME, fig, numbers)
