"""Training with and without batch normalization over 16 initial weight scales (book ch6,
fig. 6-19).

For each weight scale w in ``np.logspace(0, -4, 16)`` a 6-layer network (784 - 100 x 5 -
10, ReLU, weights N(0, w**2)) is trained with SGD (lr 0.01, batch 100) on 1000 training
images for 20 epochs, once with a BatchNormalization layer before every activation and
once without; both start from the same standard-normal draws and see the same
mini-batches. The accuracy is measured on those 1000 training images (as the book does),
before training and after every epoch.

JSON keys:
- ``weight_scales``: the initial weight scales, largest first;
- ``train_acc``: ``{"batchnorm": [...], "plain": [...]}``, per scale a list of the
  accuracies at epochs 0..epochs;
- ``final_acc``: ``{"batchnorm": [...], "plain": [...]}``, per scale the accuracy after
  the last epoch;
- ``mean_final_acc``, ``std_final_acc``, ``min_final_acc``: ``{"batchnorm", "plain"}``:
  mean, standard deviation and minimum of the final accuracies over the scales;
- ``scales_learned``: ``{"batchnorm", "plain"}``: the number of scales whose final
  accuracy exceeds 0.5;
- ``mean_acc_over_epochs``: ``{"batchnorm", "plain"}``: the mean of all curves (how fast
  each learns: the area under the curves);
- ``settings``: the settings used.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..models import MultiLayerNet
from ..optimizers import SGD
from ..support.figures import labels, language, pyplot
from . import ch6, common
from .common import Setting, count, positive

NAME = "batchnorm"
CHAPTER = 6
TITLE = "Training accuracy with and without batch normalization over 16 initial weight scales"
EXPLANATION = """The book trains a 6-layer network with and without batch normalization
from 16 initial weight scales between 1 and 0.0001 (fig. 6-19). Each panel is one scale:
the solid line is the training accuracy with batch normalization, the dashed line without.
Without it, learning only works in a narrow band of scales: too large and the signal blows
up, too small and it vanishes, and the dashed line stays near 0.1 (chance). With batch
normalization every layer's input is renormalised, so the network learns fast from almost
every scale."""
KEY_NUMBERS = ("mean_final_acc", "scales_learned", "mean_acc_over_epochs", "std_final_acc")

SCALE_EXP = (-10, 10)  # weight scales 1e-10..1e10: beyond, every run vanishes or overflows
SETTINGS = {
    "scales": count(16, quick=4),
    "max_scale_exp": Setting(0, *SCALE_EXP),
    "min_scale_exp": Setting(-4, *SCALE_EXP),
    "train_size": count(1000, quick=500),
    "epochs": count(20),
    "batch_size": count(100),
    "lr": positive(0.01),
    "hidden_size": count(100),
    "hidden_layers": count(5),
}
VARIANTS = ("batchnorm", "plain")
LEARNED = 0.5  # a final training accuracy above this counts as "learned" (chance is 0.1)

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "with": "with batch norm",
        "without": "without",
        "train_acc": "train accuracy",
        "epoch": "epoch",
        "suptitle": (
            "Training accuracy on {n} MNIST images, {layers} hidden ReLU layers, SGD lr {lr:g}"
            "{quick}\ninitial weights N(0, w\u00b2); with (solid) and without (dashed) "
            "batch normalization"
        ),
        "quick": " (quick)",
    },
    "ja": {
        "title": "16 通りの重みの初期値のスケールでの、Batch Normalization あり・なしの学習",
        "with": "Batch Normalization あり",
        "without": "なし",
        "train_acc": "訓練データの認識精度",
        "epoch": "エポック",
        "suptitle": (
            "MNIST {n} 枚での訓練データの認識精度、ReLU の隠れ層 {layers} 層、SGD 学習率 {lr:g}"
            "{quick}\n重みの初期値 N(0, w\u00b2)、Batch Normalization あり（実線）となし（破線）"
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
    common.check_order(NAME, o, "min_scale_exp", "max_scale_exp")
    (x_train, t_train), _ = common.mnist(quick=quick, progress=progress)
    common.check_at_most(NAME, "train_size", o["train_size"], len(x_train), "the training images")
    x, t = x_train[: o["train_size"]], t_train[: o["train_size"]]
    scales = np.logspace(o["max_scale_exp"], o["min_scale_exp"], o["scales"])
    hidden = [o["hidden_size"]] * o["hidden_layers"]

    curves: dict[str, list] = {v: [] for v in VARIANTS}
    jobs = [(k, w, v) for k, w in enumerate(scales) for v in VARIANTS]
    for k, w, variant in common.progress(jobs, total=len(jobs), desc=NAME, enable=progress):
        network = MultiLayerNet(
            784,
            hidden,
            10,
            weight_init_std=float(w),
            use_batchnorm=variant == "batchnorm",
            rng=np.random.default_rng([seed, k]),  # both variants: the same initial draws
        )
        results = ch6.train_epochs(
            network,
            SGD(lr=o["lr"]),
            x,
            t,
            epochs=o["epochs"],
            batch_size=o["batch_size"],
            rng=np.random.default_rng([seed, k, 1]),  # both variants: the same mini-batches
            evaluate=lambda net: net.accuracy(x, t),
        )
        curves[variant].append(results)

    final = {v: [c[-1] for c in curves[v]] for v in VARIANTS}
    numbers = {
        "weight_scales": scales,
        "train_acc": curves,
        "final_acc": final,
        "mean_final_acc": {v: float(np.mean(final[v])) for v in VARIANTS},
        "std_final_acc": {v: float(np.std(final[v])) for v in VARIANTS},
        "min_final_acc": {v: float(np.min(final[v])) for v in VARIANTS},
        "scales_learned": {v: int(np.sum(np.asarray(final[v]) > LEARNED)) for v in VARIANTS},
        "mean_acc_over_epochs": {v: float(np.mean(curves[v])) for v in VARIANTS},
        "settings": {**o, "quick": quick, "seed": seed},
    }
    with language(lang):
        fig = _draw(scales, curves, o, quick, text)
        return common.save_result(out, NAME, fig, numbers)


def _draw(scales: np.ndarray, curves: dict, o: dict, quick: bool, text: dict):
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    n = len(scales)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(2.6 * cols + 1, 2.1 * rows + 1),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    for k, (ax, w) in enumerate(zip(axes.flat, scales, strict=False)):
        epochs = np.arange(len(curves["batchnorm"][k]))
        ax.plot(epochs, curves["batchnorm"][k], color="tab:blue", label=text["with"])
        ax.plot(epochs, curves["plain"][k], "--", color="tab:orange", label=text["without"])
        ax.set_title(f"w = {w:.2g}", fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if k % cols == 0:
            ax.set_ylabel(text["train_acc"], fontsize=8)
        if k // cols == rows - 1 or k + cols >= n:
            ax.set_xlabel(text["epoch"], fontsize=8)
    axes.flat[0].legend(fontsize=7, loc="center right")
    title = text["suptitle"].format(
        n=o["train_size"],
        layers=o["hidden_layers"],
        lr=o["lr"],
        quick=text["quick"] if quick else "",
    )
    fig.suptitle(title, fontsize=10)
    return fig
