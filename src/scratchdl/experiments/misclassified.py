"""The test digits a trained network gets wrong, with true and predicted labels (the book's
ch8, 8.1.1, ``misclassified_mnist.py``).

The network is ``model=FILE`` (``scratchdl experiment misclassified --model FILE``) or, without
one, a SimpleConvNet trained here (see ``cnn``). It classifies the test images (all of them,
or the first ``images``); the first ``max_images`` it gets wrong are drawn with "true→predicted"
captions.

JSON keys:
- ``model``: where the network came from; ``test_images``: how many were classified.
- ``accuracy``, ``n_misclassified``.
- ``misclassified``: [[test index, true label, predicted label], ...] for every mistake.
- ``most_confused``: the most frequent (true, predicted) pairs, [[true, predicted, count], ...].
- ``shown``: how many are drawn.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..support.figures import labels, language, pyplot
from . import cnn, common
from .common import count

NAME = "misclassified"
CHAPTER = 8
TITLE = "The test digits a trained network misclassifies"
EXPLANATION = """
Chapter 8 looks at the few test images a deep CNN still gets wrong: most of them are hard for
people too (a 7 written like a 1, an open 4 like a 9, strokes cut off). Each image is captioned
"true→predicted". The run classifies the whole test set with a trained network (a model file
given with --model, or a SimpleConvNet trained briefly here) and lists every mistake in the
JSON.
"""
KEY_NUMBERS = ("accuracy", "n_misclassified", "test_images")

SETTINGS = {
    **cnn.TRAIN_SETTINGS,
    "images": count(0, low=0),  # the first test images classified; 0: all
    "max_images": count(40),  # misclassified images drawn
}
MOST_CONFUSED = 5

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "none": "no mistakes",
        "from_file": "{model} from {file}",
        "trained": "{model} trained {epochs} epochs here",
        "suptitle": (
            "{what}: accuracy {accuracy:.4f}, {wrong} of {n} test images wrong; the first "
            "{shown} (true→predicted)"
        ),
    },
    "ja": {
        "title": "学習したネットワークが誤認識するテスト画像",
        "none": "誤認識なし",
        "from_file": "{file} の {model}",
        "trained": "ここで {epochs} エポック学習した {model}",
        "suptitle": (
            "{what}: 認識精度 {accuracy:.4f}、テスト画像 {n} 枚中 {wrong} 枚を誤認識。"
            "最初の {shown} 枚（正解→予測）"
        ),
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
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    max_images, n = opts["max_images"], opts["images"]
    (x_train, t_train), (x_test, t_test) = common.mnist(
        flatten=False, quick=quick, progress=progress
    )
    common.check_at_most(NAME, "images", n, len(x_test), "the test images")
    if n:
        x_test, t_test = x_test[:n], t_test[:n]
    model, source = cnn.trained_model(
        opts, (x_train, t_train), (x_test, t_test), seed=seed, progress=progress
    )
    y = cnn.scores(model, x_test, progress=progress, desc="classifying").argmax(axis=1)
    wrong = np.flatnonzero(y != t_test)
    pairs = Counter(zip(t_test[wrong].tolist(), y[wrong].tolist(), strict=True))
    shown = wrong[:max_images]
    numbers = {
        "model": source,
        "test_images": len(x_test),
        "accuracy": float(np.mean(y == t_test)),
        "n_misclassified": len(wrong),
        "misclassified": [[int(i), int(t_test[i]), int(y[i])] for i in wrong],
        "most_confused": [[a, b, c] for (a, b), c in pairs.most_common(MOST_CONFUSED)],
        "shown": len(shown),
    }
    with language(lang):
        fig = _figure(x_test[shown, 0], t_test[shown], y[shown], shown, numbers, text)
        return common.save_result(out, NAME, fig, numbers)


def _figure(images, t, y, indices, numbers, text, cols: int = 10):
    plt = pyplot()
    n = max(len(images), 1)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.05, rows * 1.25 + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, ti, yi, index in zip(axes.flat, images, t, y, indices, strict=False):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{ti}→{yi}", fontsize=10, color="tab:red")
        ax.text(
            0.5,
            -0.04,
            f"#{index}",
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=6,
            color="0.4",
        )
    if not len(images):
        axes.flat[0].text(0.5, 0.5, text["none"], ha="center", va="center")
    title = text["suptitle"].format(
        what=cnn.model_words(numbers["model"], text),
        accuracy=numbers["accuracy"],
        wrong=numbers["n_misclassified"],
        n=numbers["test_images"],
        shown=numbers["shown"],
    )
    fig.suptitle(title, fontsize=11, fontweight="bold")
    fig.tight_layout()
    return fig
