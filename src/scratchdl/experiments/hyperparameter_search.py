"""Random search of the learning rate and weight decay on a validation split (book ch6,
fig. 6-24), on the engine of ``scratchdl search`` (Dask distributed).

The first 500 MNIST training images are shuffled and split: 20 % (100 images) for validation, the
rest for training; the test set is never looked at. Each trial draws lr = 10**U(-6, -2)
and weight decay lambda = 10**U(-8, -4), trains a 7-layer ReLU network (784 - 100 x 6 - 10,
He initialisation) with ``scratchdl.Trainer`` (SGD, batch 100, 50 epochs) and records the
validation accuracy. The 100 trials are the tasks of an embedded Dask ``LocalCluster`` of
``workers`` processes, each held to its share of the cores (``scratchdl.search.engine``).
Trial i draws its hyperparameters, and then its initial weights and mini-batches, from the
seed ``(seed, i)`` (``scratchdl.search.space``), so the results do not depend on the number
of workers or the order in which trials finish. (A script that calls ``run`` needs the usual
``if __name__ == "__main__":`` guard, as with any spawned worker processes.)

JSON keys:
- ``trials``: every trial in order of its index: ``{"trial", "lr", "weight_decay",
  "val_acc", "train_acc", "diverged"}`` (final validation and training accuracy;
  ``val_acc`` is None when the loss diverged);
- ``ranking``: the trials sorted by validation accuracy, best first, each with its ``rank``;
- ``best``: the best trial;
- ``top_box``: ``{"k", "lr": [min, max], "weight_decay": [min, max]}``: the range of the
  top-k trials' hyperparameters (the box drawn in the figure);
- ``top_lr_decades``, ``sampled_lr_decades``: the width in powers of ten of the top-k
  trials' lr range and of the range sampled;
- ``top_val_acc_curves``: the validation accuracy per epoch of the top-k trials;
- ``settings``: the settings used (``workers`` included; the results do not depend on it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..search.engine import connect, run_trials
from ..search.report import ranking as rank_trials
from ..search.space import Range, sample_trials
from ..search.trial import TRAIN_IMAGES, Data, Recipe
from ..support.figures import labels, language, pyplot
from . import common
from .common import Setting, count

NAME = "hyperparameter-search"
CHAPTER = 6
TITLE = "Random search of learning rate and weight decay on a validation split"
EXPLANATION = """The book tunes two hyperparameters by random search (fig. 6-24): each trial
draws a learning rate from 10^-6..10^-2 and a weight decay from 10^-8..10^-4 on a log scale,
trains briefly, and is judged on validation data carved from the training set (never on
test data, which would tune the model to the test set). Left: every trial at its
(learning rate, weight decay), coloured by validation accuracy, the best trials ringed and
their range boxed; right: validation accuracy against learning rate alone. The learning rate
decides almost everything: below about 10^-3 nothing is learned in 50 epochs, and the best
trials crowd into the top of the range, while weight decay this small hardly matters. The
book's next step is to narrow the search to that region and repeat."""
KEY_NUMBERS = ("best", "top_box", "top_lr_decades")

# The learning rates and weight decays are drawn as 10**U(min, max), within 1e-12..1e2:
# smaller changes nothing, larger is far past where training diverges.
EXPONENT = (-12.0, 2.0)
SETTINGS = {
    "trials": count(100, quick=12),
    "epochs": count(50, quick=10),
    # quick: mini-batches of 20 give 120 steps in 10 epochs, enough for the good trials to learn
    "train_size": count(500, quick=300, low=2),  # at least one image to train, one to validate
    "validation_rate": Setting(0.2, low=0, high=1, low_open=True, high_open=True),
    "batch_size": count(100, quick=20),
    "lr_min_exp": Setting(-6.0, *EXPONENT),
    "lr_max_exp": Setting(-2.0, *EXPONENT),
    "wd_min_exp": Setting(-8.0, *EXPONENT),
    "wd_max_exp": Setting(-4.0, *EXPONENT),
    "hidden_size": count(100),
    "hidden_layers": count(6),
    "top": count(5, quick=3),
    "workers": count(2, quick=1),
}
MARGIN = 0.15  # decades shown beyond the sampled ranges, so that the top box stays visible

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "val_acc": "validation accuracy",
        "top": "top {k}",
        "lr": "learning rate",
        "weight_decay": "weight decay \u03bb",
        "trials": "{n} trials, the top {k} boxed",
        "trial": "trial",
        "chance": "chance (0.1)",
        "against_lr": "validation accuracy against learning rate",
        "suptitle": (
            "Random search: {n} MNIST images ({rate:.0%} for validation), {layers} hidden ReLU "
            "layers, SGD, {epochs} epochs"
        ),
        "quick": " (quick)",
    },
    "ja": {
        "title": "検証データによる学習率と Weight decay（荷重減衰）のランダムサーチ",
        "val_acc": "検証データの認識精度",
        "top": "上位 {k} 個",
        "lr": "学習率",
        "weight_decay": "Weight decay（荷重減衰）\u03bb",
        "trials": "{n} 回の試行、上位 {k} 個を枠で囲む",
        "trial": "試行",
        "chance": "当て推量（0.1）",
        "against_lr": "学習率と検証データの認識精度",
        "suptitle": (
            "ランダムサーチ: MNIST {n} 枚（{rate:.0%} を検証データに）、ReLU の隠れ層 {layers} 層、"
            "SGD、{epochs} エポック"
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
    common.check_order(NAME, o, "lr_min_exp", "lr_max_exp")
    common.check_order(NAME, o, "wd_min_exp", "wd_max_exp")
    for low, high in (("lr_min_exp", "lr_max_exp"), ("wd_min_exp", "wd_max_exp")):
        if o[low] == o[high]:
            raise ValueError(
                f"experiment {NAME}: settings {low} and {high} are both {o[low]!r}, an empty "
                f"range; lower {low} or raise {high}"
            )
    n = min(o["train_size"], TRAIN_IMAGES[quick])  # the book: the first 500
    n_val = max(int(round(n * o["validation_rate"])), 1)
    if n_val >= n:
        raise ValueError(
            f"experiment {NAME}: setting validation_rate {o['validation_rate']!r} leaves none "
            f"of the {n} images to train on; lower it or raise train_size"
        )
    common.mnist(quick=quick, progress=progress)  # fetched here, once, if it is missing
    data = Data(sample=quick, train_size=n, validation=o["validation_rate"], seed=seed)
    recipe = Recipe(
        "mlp", o["epochs"], o["batch_size"], "sgd", o["hidden_size"], o["hidden_layers"], data
    )
    space = (
        Range("lr", 10.0 ** o["lr_min_exp"], 10.0 ** o["lr_max_exp"]),
        Range("weight_decay", 10.0 ** o["wd_min_exp"], 10.0 ** o["wd_max_exp"]),
    )
    records: list[dict] = []
    with connect(None, o["workers"]) as client:
        run_trials(
            client,
            recipe,
            seed,
            list(enumerate(sample_trials(space, seed, o["trials"]))),
            records.append,
            progress=progress,
            desc=f"{NAME} ({o['workers']} worker{'s' if o['workers'] > 1 else ''})",
        )
    records.sort(key=lambda r: r["trial"])
    curves = {r["trial"]: r["val_acc_curve"] for r in records}
    trials = [
        {
            "trial": r["trial"],
            "lr": r["params"]["lr"],
            "weight_decay": r["params"]["weight_decay"],
            "val_acc": r["val_acc"],
            "train_acc": r["train_acc"],
            "diverged": r["diverged"],
        }
        for r in records
    ]
    ranking = rank_trials(trials)
    top = ranking[: o["top"]]
    lrs = [r["lr"] for r in top]
    wds = [r["weight_decay"] for r in top]
    numbers = {
        "trials": trials,
        "ranking": ranking,
        "best": ranking[0],
        "top_box": {
            "k": len(top),
            "lr": [min(lrs), max(lrs)],
            "weight_decay": [min(wds), max(wds)],
        },
        "top_lr_decades": float(np.log10(max(lrs) / min(lrs))),
        "sampled_lr_decades": o["lr_max_exp"] - o["lr_min_exp"],
        "top_val_acc_curves": {str(r["trial"]): curves[r["trial"]] for r in top},
        "settings": {
            **o,
            "train_samples": n - n_val,
            "validation_samples": n_val,
            "quick": quick,
            "seed": seed,
        },
    }
    print(_table(ranking[:5]))
    with language(lang):
        fig = _draw(trials, top, o, quick, text)
        return common.save_result(out, NAME, fig, numbers)


def _table(rows: list[dict]) -> str:
    lines = ["rank  val acc  train acc        lr  weight decay  trial"]
    for r in rows:
        val = "diverged" if r["val_acc"] is None else f"{r['val_acc']:.3f}"
        train = "-" if r["train_acc"] is None else f"{r['train_acc']:.3f}"
        lines.append(
            f"{r['rank']:>4}  {val:>7}  {train:>9}  {r['lr']:8.2e}  {r['weight_decay']:12.2e}"
            f"  {r['trial']:>5}"
        )
    return "\n".join(lines)


def _draw(trials: list[dict], top: list[dict], o: dict, quick: bool, text: dict):
    plt = pyplot()
    from matplotlib.patches import Rectangle

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    lr_lim = (10 ** (o["lr_min_exp"] - MARGIN), 10 ** (o["lr_max_exp"] + MARGIN))
    lr = np.array([r["lr"] for r in trials])
    wd = np.array([r["weight_decay"] for r in trials])
    acc = np.array([np.nan if r["val_acc"] is None else r["val_acc"] for r in trials])
    sc = ax1.scatter(lr, wd, c=acc, cmap="viridis", vmin=0, vmax=1, s=30, edgecolors="none")
    fig.colorbar(sc, ax=ax1, label=text["val_acc"])
    top_lr = np.array([r["lr"] for r in top])
    top_wd = np.array([r["weight_decay"] for r in top])
    ax1.scatter(
        top_lr,
        top_wd,
        s=110,
        facecolors="none",
        edgecolors="red",
        lw=1.2,
        label=text["top"].format(k=len(top)),
    )
    pad = 10 ** (MARGIN / 2)  # a little room around the box on the log axes
    x0, x1 = top_lr.min() / pad, top_lr.max() * pad
    y0, y1 = top_wd.min() / pad, top_wd.max() * pad
    ax1.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", ls="--", lw=1))
    ax1.set(
        xscale="log",
        yscale="log",
        xlim=lr_lim,
        ylim=(10 ** (o["wd_min_exp"] - MARGIN), 10 ** (o["wd_max_exp"] + MARGIN)),
        xlabel=text["lr"],
        ylabel=text["weight_decay"],
        title=text["trials"].format(n=len(trials), k=len(top)),
    )
    ax1.legend(loc="lower left", fontsize=8)

    ax2.scatter(lr, acc, s=18, color="tab:blue", label=text["trial"])
    ax2.scatter(
        top_lr,
        [r["val_acc"] for r in top],
        s=60,
        facecolors="none",
        edgecolors="red",
        label=text["top"].format(k=len(top)),
    )
    ax2.axhline(0.1, color="gray", ls=":", lw=0.8, label=text["chance"])
    ax2.set(
        xscale="log",
        xlim=lr_lim,
        ylim=(0, 1),
        xlabel=text["lr"],
        ylabel=text["val_acc"],
        title=text["against_lr"],
    )
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper left", fontsize=8)
    title = text["suptitle"].format(
        n=o["train_size"], rate=o["validation_rate"], layers=o["hidden_layers"], epochs=o["epochs"]
    )
    fig.suptitle(title + (text["quick"] if quick else ""))
    return fig
