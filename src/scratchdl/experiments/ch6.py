"""Training loops, summaries and figures shared by the chapter-6 experiments.

The book's ch6 scripts train with one random mini-batch per iteration and, where they
track accuracy, evaluate every ``train_size / batch_size`` iterations (one "epoch").
``train_together`` runs that loop for several networks on the same mini-batches, so a
comparison differs only in what is being compared; ``train_epochs`` adds the per-epoch
evaluation.

Why not ``scratchdl.Trainer``: it shuffles each epoch and takes every sample once, while the
book draws each mini-batch afresh (``batch_indices``), so samples repeat and some are missed
in an "epoch"; these experiments reproduce the book's figures with the book's sampling. And
``train_together`` steps several networks on each batch in turn, which one Trainer per
network cannot do. (overfit-dropout and the hyperparameter search use the Trainer.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..models import Sequential
from ..optimizers import Optimizer
from ..support.figures import labels, pyplot, smooth
from . import common

SMOOTH_WINDOW = 50  # iterations in the moving average of the loss curves
RECORD_EVERY = 10  # iterations between the points of a smoothed curve kept in the JSON
LAST = 100  # iterations averaged into the "final loss"
GAP_EPOCHS = 10  # last epochs averaged into the final train/test accuracies and their gap
MATCH_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9)  # training accuracies at which gaps are compared
MATCH_WIDTH = 0.025  # epochs with train accuracy within this of a level count for it

# The words of the shared figures, in each language (the experiments' ``lang``).
LABELS = {
    "en": {
        "iteration": "iteration",
        "loss": "loss (moving average of {window})",
        "last": "mean loss of the last {last} iterations",
        "no_gap": "test = train (no gap)",
        "train_acc": "train accuracy",
        "test_acc": "test accuracy",
        "fit_vs_test": "test vs train accuracy, every epoch",
        "train": "train",
        "test": "test",
        "epoch": "epoch",
        "accuracy": "accuracy",
        "final_gap": "{name}: final gap {gap:.3f}",
    },
    "ja": {
        "iteration": "イテレーション",
        "loss": "損失関数の値（{window} 回の移動平均）",
        "last": "最後の {last} 回の損失関数の値の平均",
        "no_gap": "テスト = 訓練（差なし）",
        "train_acc": "訓練データの認識精度",
        "test_acc": "テストデータの認識精度",
        "fit_vs_test": "各エポックの認識精度: 訓練データとテストデータ",
        "train": "訓練データ",
        "test": "テストデータ",
        "epoch": "エポック",
        "accuracy": "認識精度",
        "final_gap": "{name}: 最後の差 {gap:.3f}",
    },
}


def batch_indices(rng: np.random.Generator, n: int, batch_size: int) -> np.ndarray:
    """A random mini-batch of ``min(batch_size, n)`` distinct indices into ``n`` samples."""
    return rng.choice(n, min(batch_size, n), replace=False)


def train_together(
    runs: Mapping[str, tuple[Sequential, Optimizer]],
    x: np.ndarray,
    t: np.ndarray,
    *,
    iterations: int,
    batch_size: int,
    rng: np.random.Generator,
    progress: bool = True,
    desc: str = "training",
) -> dict[str, np.ndarray]:
    """Train every (network, optimizer) of ``runs`` on the same random mini-batches.

    Returns the loss of every iteration (before its update), per run.
    Shape: x (N, D), t (N,) -> {name: (iterations,)}.
    """
    losses = {name: np.empty(iterations) for name in runs}
    steps = common.progress(range(iterations), total=iterations, desc=desc, enable=progress)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run shows as inf/nan
        for i in steps:
            batch = batch_indices(rng, len(x), batch_size)
            x_batch, t_batch = x[batch], t[batch]
            for name, (network, optimizer) in runs.items():
                optimizer.update(network.params, network.gradient(x_batch, t_batch))
                losses[name][i] = network.last_loss
    return losses


def train_epochs(
    network: Sequential,
    optimizer: Optimizer,
    x: np.ndarray,
    t: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    evaluate: Callable[[Sequential], tuple[float, ...]],
) -> list[tuple[float, ...]]:
    """The book's loop with evaluation: ``evaluate(network)`` before training and after each
    of ``epochs`` epochs of ``max(N // batch_size, 1)`` random mini-batches.

    Returns ``epochs + 1`` results of ``evaluate`` (epoch 0 = the initial network).
    """
    iter_per_epoch = max(len(x) // batch_size, 1)
    results = [evaluate(network)]
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(epochs):
            for _ in range(iter_per_epoch):
                batch = batch_indices(rng, len(x), batch_size)
                optimizer.update(network.params, network.gradient(x[batch], t[batch]))
            results.append(evaluate(network))
    return results


def loss_summary(losses: np.ndarray) -> dict:
    """The smoothed curve sampled every RECORD_EVERY iterations, and the final mean loss."""
    smoothed = smooth(losses, SMOOTH_WINDOW)
    keep = np.arange(0, len(losses), RECORD_EVERY)
    if keep[-1] != len(losses) - 1:
        keep = np.append(keep, len(losses) - 1)
    return {
        "iterations": (keep + 1).tolist(),
        "smoothed": np.round(smoothed[keep], 5).tolist(),
        "final": float(np.mean(losses[-LAST:])),
    }


def plot_loss_curves(
    ax, curves: Mapping[str, dict], *, title: str, log: bool = True, lang: str = "en"
) -> None:
    """Smoothed loss over iterations, one line per entry of ``curves`` (from loss_summary)."""
    text = labels(LABELS, lang)
    for name, curve in curves.items():
        ax.plot(curve["iterations"], curve["smoothed"], label=f"{name}: {curve['final']:.3f}")
    ylabel = text["loss"].format(window=SMOOTH_WINDOW)
    ax.set(xlabel=text["iteration"], ylabel=ylabel, title=title)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(title=text["last"].format(last=LAST), fontsize=9, title_fontsize=9)


def accuracy_summary(results: list[tuple[float, float]]) -> dict:
    """Train and test accuracy per epoch, their means over the last GAP_EPOCHS epochs, the
    final gap and the gaps at matched train accuracies."""
    train = [r[0] for r in results]
    test = [r[1] for r in results]
    last = min(GAP_EPOCHS, len(results))
    final_train = float(np.mean(train[-last:]))
    final_test = float(np.mean(test[-last:]))
    return {
        "train_acc": train,
        "test_acc": test,
        "final_train_acc": final_train,
        "final_test_acc": final_test,
        "final_gap": final_train - final_test,
        "gap_at_train_acc": matched_gaps(train, test),
    }


def matched_gaps(train_acc: list[float], test_acc: list[float]) -> dict[str, float | None]:
    """The mean gap train - test over the epochs whose train accuracy is within MATCH_WIDTH
    of each of MATCH_LEVELS (None where the run never came near that level).

    Compares runs at the same fit of the training set rather than at the same epoch, so a
    regulariser that merely slows learning does not count as narrowing the gap.
    """
    train, test = np.asarray(train_acc), np.asarray(test_acc)
    gaps: dict[str, float | None] = {}
    for level in MATCH_LEVELS:
        near = np.abs(train - level) <= MATCH_WIDTH
        gaps[f"{level:g}"] = float(np.mean(train[near] - test[near])) if near.any() else None
    return gaps


def plot_fit_vs_test(ax, runs: Mapping[str, dict], lang: str = "en") -> None:
    """Test accuracy against train accuracy, epoch by epoch, one line per run."""
    text = labels(LABELS, lang)
    lo = min(min(r["train_acc"] + r["test_acc"]) for r in runs.values())
    ax.plot([lo, 1], [lo, 1], ":", color="gray", lw=0.8, label=text["no_gap"])
    for i, (name, r) in enumerate(runs.items()):
        ax.plot(r["train_acc"], r["test_acc"], ".", ms=2.5, color=f"C{i + 2}", label=name)
    ax.set(xlabel=text["train_acc"], ylabel=text["test_acc"], title=text["fit_vs_test"])
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, markerscale=3)


def plot_train_test(axes, runs: Mapping[str, dict], lang: str = "en") -> None:
    """One panel per run: train and test accuracy per epoch, the final gap in the title."""
    text = labels(LABELS, lang)
    for ax, (name, r) in zip(axes, runs.items(), strict=True):
        epochs = np.arange(len(r["train_acc"]))
        ax.plot(epochs, r["train_acc"], color="tab:blue", label=text["train"])
        ax.plot(epochs, r["test_acc"], "--", color="tab:orange", label=text["test"])
        ax.fill_between(epochs, r["test_acc"], r["train_acc"], color="gray", alpha=0.15, lw=0)
        ax.set(
            xlabel=text["epoch"],
            ylabel=text["accuracy"],
            ylim=(0, 1.02),
            title=text["final_gap"].format(name=name, gap=r["final_gap"]),
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")


def overfit_figure(runs: Mapping[str, dict], title: str, lang: str = "en"):
    """Train/test accuracy of two runs side by side, and test against train accuracy."""
    plt = pyplot()
    fig, axes = plt.subplots(
        1, 3, figsize=(12.5, 4.2), layout="constrained", width_ratios=(1, 1, 0.9)
    )
    plot_train_test(axes[:2], runs, lang)
    axes[1].set_ylabel("")
    plot_fit_vs_test(axes[2], runs, lang)
    fig.suptitle(title)
    return fig
