"""MNIST digits and randomly augmented copies of them (the book's ch8, 8.1.2:
data augmentation by small rotations and shifts).

One test digit of each class 0, 1, ... (the first in the test set) is augmented ``variants``
times by ``scratchdl.augment.Augmenter`` (random shift, rotation and scale about the centre,
bilinear, zeros filling in), seeded by ``seed``. The settings are the Augmenter's MNIST
defaults unless changed with ``--set``.

JSON keys:
- ``settings``: the Augmenter's max_shift (pixels), max_rotation (degrees), scale (range),
  max_shear (degrees), p.
- ``seed``, ``rows``, ``variants``, ``indices`` (test indices of the digits), ``labels``.
- ``output_shape``: shape of the augmented batch (rows * variants, 1, 28, 28).
- ``labels_unchanged``: the labels ``Augmenter.apply`` returns are the ones given.
- ``pixel_min``, ``pixel_max``, ``range_kept``: the augmented pixels stay in [0, 1]
  (bilinear interpolation only mixes pixel values and the zero fill).
- ``mean_abs_change``: mean |augmented - original| per pixel; ``changed_images``: how many of
  the variants differ from their original at all.
- ``ink_ratio``: mean over the variants of sum(augmented) / sum(original): rotation and shift
  keep the amount of ink, scaling changes it by about scale**2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..augment import MAX_ROTATION, MAX_SHEAR, Augmenter
from ..support.figures import labels, language, pyplot
from . import common
from .common import Setting, count, positive

NAME = "augmentation"
CHAPTER = 8
TITLE = "Data augmentation: MNIST digits and random shifted, rotated and scaled copies"
EXPLANATION = """
Chapter 8 raises accuracy by data augmentation: training images are changed a little at
random (rotated, shifted, scaled) so the network sees more variety without new data. Each row
shows a test digit (left, framed) and seven random variants made by scratchdl's Augmenter with
its MNIST defaults (shift up to 2 pixels, rotation up to 15 degrees, scale 0.9-1.1). The
labels stay the same and the digits stay readable: that is what makes such a change safe to
use for training.
"""
KEY_NUMBERS = ("mean_abs_change", "ink_ratio", "labels_unchanged", "range_kept")

SETTINGS = {
    "rows": count(10, quick=4, high=10),  # one digit of each class per row
    "variants": count(7),
    "max_shift": Setting(2.0, low=0),  # pixels
    "max_rotation": Setting(15.0, low=0, high=MAX_ROTATION),  # degrees
    "scale_min": positive(0.9),
    "scale_max": positive(1.1),
    "max_shear": Setting(0.0, low=0, high=MAX_SHEAR),  # degrees
}

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "label": "label {t}",
        "original": "original",
        "variant": "variant {c}",
        "suptitle": (
            "Augmenter(rng={seed}): shift <= {shift:g} px, rotation <= {rotation:g}°, "
            "scale {low:g}-{high:g}"
        ),
        "shear": ", shear <= {shear:g}°",
    },
    "ja": {
        "title": "Data Augmentation（データ拡張）: MNIST の数字と、移動・回転・拡大縮小したコピー",
        "label": "ラベル {t}",
        "original": "元の画像",
        "variant": "変形 {c}",
        "suptitle": (
            "Augmenter（シード {seed}）: 移動 ≤ {shift:g} ピクセル、回転 ≤ {rotation:g}°、"
            "拡大縮小 {low:g}〜{high:g}"
        ),
        "shear": "、せん断 ≤ {shear:g}°",
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
    common.check_order(NAME, opts, "scale_min", "scale_max")
    rows, variants = opts["rows"], opts["variants"]
    augmenter = Augmenter(
        max_shift=opts["max_shift"],
        max_rotation=opts["max_rotation"],
        scale=(opts["scale_min"], opts["scale_max"]),
        max_shear=opts["max_shear"],
        rng=seed,
    )
    # the shipped sample's test images are the first 1000 of MNIST's: same digits either way
    (_, _), (x_test, t_test) = common.mnist(flatten=False, quick=True)
    indices = [int(np.flatnonzero(t_test == digit)[0]) for digit in range(rows)]
    originals = x_test[indices]
    x = np.repeat(originals, variants, axis=0)  # each digit `variants` times, in a row
    t = np.repeat(t_test[indices], variants)
    augmented, t_out = augmenter.apply(x, t)
    change = np.abs(augmented.astype(np.float64) - x)
    ink = augmented.reshape(len(x), -1).sum(axis=1) / x.reshape(len(x), -1).sum(axis=1)
    numbers = {
        "settings": {
            "max_shift": augmenter.max_shift,
            "max_rotation": augmenter.max_rotation,
            "scale": list(augmenter.scale),
            "max_shear": augmenter.max_shear,
            "p": augmenter.p,
        },
        "seed": seed,
        "rows": rows,
        "variants": variants,
        "indices": indices,
        "labels": [int(v) for v in t_test[indices]],
        "output_shape": list(augmented.shape),
        "labels_unchanged": bool(np.array_equal(t_out, t)),
        "pixel_min": float(augmented.min()),
        "pixel_max": float(augmented.max()),
        "range_kept": bool(augmented.min() >= 0 and augmented.max() <= 1),
        "mean_abs_change": float(change.mean()),
        "changed_images": int(np.count_nonzero(change.reshape(len(x), -1).max(axis=1) > 0)),
        "ink_ratio": float(ink.mean()),
    }
    images = augmented.reshape(rows, variants, 28, 28)
    with language(lang):
        fig = _figure(originals[:, 0], images, numbers, text)
        return common.save_result(out, NAME, fig, numbers)


def _figure(originals, images, numbers, text):
    plt = pyplot()
    rows, variants = images.shape[:2]
    fig, axes = plt.subplots(
        rows, variants + 1, figsize=(1.15 * (variants + 1), 1.15 * rows + 0.9), squeeze=False
    )
    for r in range(rows):
        for c in range(variants + 1):
            ax = axes[r, c]
            ax.imshow(originals[r] if c == 0 else images[r, c - 1], cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:red")
                    spine.set_linewidth(2)
                ax.set_ylabel(text["label"].format(t=numbers["labels"][r]), fontsize=9)
            else:
                for spine in ax.spines.values():
                    spine.set_edgecolor("0.8")  # the image's edge: shifts show against it
            if r == 0:
                title = text["original"] if c == 0 else text["variant"].format(c=c)
                ax.set_title(title, fontsize=9)
    s = numbers["settings"]
    title = text["suptitle"].format(
        seed=numbers["seed"],
        shift=s["max_shift"],
        rotation=s["max_rotation"],
        low=s["scale"][0],
        high=s["scale"][1],
    )
    if s["max_shear"]:
        title += text["shear"].format(shear=s["max_shear"])
    fig.suptitle(title, fontsize=11, fontweight="bold")
    fig.tight_layout()
    return fig
