"""The first-layer filters of SimpleConvNet before and after training, and what they respond to
(the book's ch7, 7.6.1, ``visualize_filter.py``, and 7.6.2 on what the filters respond to).

JSON keys:
- ``model``: where the trained network came from (a file, or trained here: epochs, lr, ...).
- ``filter_shape``: shape of the first layer's W, ``[FN, C, FH, FW]`` (``[30, 1, 5, 5]``).
- ``before``, ``after``: statistics of those weights at random initialisation (a fresh network
  of the same class and config seeded by ``seed``, as in the book; for a network trained here
  these are its very initial weights) and after training: ``mean_abs_w``
  (mean |w|), ``std_w`` (std of all weights) and ``roughness``.
- ``roughness_before``, ``roughness_after``: the mean, over the filters, of the mean absolute
  difference between horizontally or vertically neighbouring weights divided by that filter's
  std. Independent random weights give 2/sqrt(pi) = 1.13 on average; a smooth filter (an edge
  or blob detector) gives less. The book's claim: learned filters are smoother (ordered).
- ``random_roughness``: 2/sqrt(pi), the expected value for independent weights.
- ``test_accuracy``, ``test_images``: the trained network's accuracy on the test images.
- ``example_index``, ``example_label``: the test digit whose responses are shown.
- ``shown_filters``: indices of the filters whose responses (Convolution output, before the
  ReLU) are shown: those with the largest weight norm.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..support.figures import labels, language, pyplot
from . import cnn, common
from .common import count

NAME = "filters"
CHAPTER = 7
TITLE = "First-layer filters before and after training, and their responses to a digit"
EXPLANATION = """
Chapter 7 shows the 30 first-layer filters (5x5) of SimpleConvNet as images: at random
initialisation they are noise; after training they have turned into ordered patterns, edges
and blobs, light on one side and dark on the other. Such a filter responds to the strokes of a
digit that run along its edge: the bottom row shows the output of the convolution with a few
learned filters for one test digit (light = strong positive response). The roughness number
(mean difference between neighbouring weights / std of the filter; 1.13 for pure noise)
measures how much smoother the learned filters are.
"""
KEY_NUMBERS = ("roughness_before", "roughness_after", "test_accuracy")

SETTINGS = {
    **cnn.TRAIN_SETTINGS,
    "shown": count(8),  # learned filters drawn with their responses (at most the filters)
    "example": count(0, low=0),  # the test image whose responses are drawn
}
RANDOM_ROUGHNESS = 2 / math.sqrt(math.pi)  # E|a - b| / sigma for independent normal a, b

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "before": "before training (random), roughness {r:.2f}",
        "after": "after training (test acc. {acc:.3f}), roughness {r:.2f}",
        "input": "input: test #{i}",
        "filter": "filter {i}",
        "response": "response",
        "responses": "responses of learned filters (convolution output; light = strong positive)",
        "suptitle": "{model}'s first-layer filters ({n} x {h}x{w}; dark = large weight)",
    },
    "ja": {
        "title": "学習前と学習後の 1 層目のフィルターと、数字に対するその応答",
        "before": "学習前（ランダム）、ざらつき {r:.2f}",
        "after": "学習後（テストデータの認識精度 {acc:.3f}）、ざらつき {r:.2f}",
        "input": "入力: テスト画像 #{i}",
        "filter": "フィルター {i}",
        "response": "応答",
        "responses": "学習したフィルターの応答（畳み込み層の出力。明るい = 強い正の応答）",
        "suptitle": "{model} の 1 層目のフィルター（{n} 個の {h}×{w}。暗い = 重みが大きい）",
    },
}


def roughness(W: np.ndarray) -> np.ndarray:
    """Mean |difference of neighbouring weights| / std, per filter (and input channel).

    Shape: W (FN, C, FH, FW) -> (FN, C).
    """
    dx = np.abs(np.diff(W, axis=3)).reshape(*W.shape[:2], -1)
    dy = np.abs(np.diff(W, axis=2)).reshape(*W.shape[:2], -1)
    mean_diff = np.concatenate([dx, dy], axis=2).mean(axis=2)
    return mean_diff / W.reshape(*W.shape[:2], -1).std(axis=2)


def filter_stats(W: np.ndarray) -> dict:
    W = W.astype(np.float64)
    return {
        "mean_abs_w": float(np.abs(W).mean()),
        "std_w": float(W.std()),
        "roughness": float(roughness(W).mean()),
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
    from ..models import model_from_config

    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    (x_train, t_train), (x_test, t_test) = common.mnist(
        flatten=False, quick=quick, progress=progress
    )
    shown, example = opts["shown"], opts["example"]
    common.check_at_most(NAME, "example", example, len(x_test) - 1, "the last test image")
    model, source = cnn.trained_model(
        opts, (x_train, t_train), (x_test, t_test), seed=seed, progress=progress
    )
    W_after = cnn.first_convolution(model, opts["model"] or "the model").params["W"].copy()
    if W_after.shape[1] != 1:
        raise ValueError(
            f"the first Convolution of the model takes {W_after.shape[1]} channels; "
            "filters are drawn for grayscale (1-channel) input"
        )
    # A fresh network of the same class and config, seeded by seed: its W1 is "before
    # training" (the book draws a fresh SimpleConvNet's). For a network trained here with the
    # same seed these are exactly the initial weights it started from.
    fresh = model_from_config(type(model).__name__, model.config, rng=seed)
    W_before = cnn.first_convolution(fresh, "the model").params["W"]
    accuracy = float(np.mean(cnn.scores(model, x_test).argmax(axis=1) == t_test))

    common.check_at_most(NAME, "shown", shown, len(W_after), "the model's first-layer filters")
    norms = np.sqrt((W_after.astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
    chosen = np.sort(np.argsort(-norms, kind="stable")[:shown])
    conv = cnn.first_convolution(model, "the model")
    response = conv.forward(x_test[example : example + 1].astype(W_after.dtype))[0]

    before, after = filter_stats(W_before), filter_stats(W_after)
    numbers = {
        "model": source,
        "filter_shape": list(W_after.shape),
        "before": before,
        "after": after,
        "roughness_before": before["roughness"],
        "roughness_after": after["roughness"],
        "random_roughness": RANDOM_ROUGHNESS,
        "test_accuracy": accuracy,
        "test_images": len(x_test),
        "example_index": example,
        "example_label": int(t_test[example]),
        "shown_filters": [int(k) for k in chosen],
    }
    with language(lang):
        image, maps = x_test[example, 0], response[chosen]
        fig = _figure(W_before, W_after, image, maps, chosen, numbers, text)
        return common.save_result(out, NAME, fig, numbers)


def _filter_panel(subfig, W: np.ndarray, title: str) -> None:
    FN = len(W)
    cols = min(FN, 10)
    rows = math.ceil(FN / cols)
    axes = subfig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, w in zip(axes.flat, W[:, 0], strict=False):
        ax.imshow(w, cmap="gray_r", interpolation="nearest")  # each filter on its own scale
    subfig.suptitle(title, fontsize=11)


def _figure(W_before, W_after, image, maps, chosen, numbers, text):
    plt = pyplot()
    fig = plt.figure(figsize=(12, 6.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[0.85, 1])
    left, right = top.subfigures(1, 2, wspace=0.04)
    _filter_panel(left, W_before, text["before"].format(r=numbers["roughness_before"]))
    after = text["after"].format(acc=numbers["test_accuracy"], r=numbers["roughness_after"])
    _filter_panel(right, W_after, after)
    axes = bottom.subplots(2, len(chosen) + 1, squeeze=False, height_ratios=[1, 3])
    for ax in axes.flat:
        ax.axis("off")
    axes[1, 0].imshow(image, cmap="gray_r", vmin=0, vmax=1)
    axes[1, 0].set_title(text["input"].format(i=numbers["example_index"]), fontsize=9)
    for k, (index, fmap) in enumerate(zip(chosen, maps, strict=True), start=1):
        axes[0, k].imshow(W_after[index, 0], cmap="gray_r", interpolation="nearest")
        axes[0, k].set_title(text["filter"].format(i=index), fontsize=9)
        axes[1, k].imshow(fmap, cmap="gray")
        axes[1, k].set_title(text["response"], fontsize=8)
    bottom.suptitle(text["responses"], fontsize=11)
    FN, _, FH, FW = numbers["filter_shape"]
    title = text["suptitle"].format(model=numbers["model"]["class"], n=FN, h=FH, w=FW)
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig
