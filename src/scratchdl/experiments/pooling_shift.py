"""Max pooling's robustness to small shifts of the input (the book's ch7, 7.3.3).

Each test digit is moved by ``shift`` pixels to the right and, separately, down (zeros fill
in; MNIST's 4-pixel empty border loses nothing). Two representations are compared before and
after ``pool`` x ``pool`` max pooling with stride ``pool`` (the book's Pooling(2, 2, stride=2)):
the raw pixels, and the feature maps of a convolution layer followed by ReLU (the first
Convolution of ``model=FILE``, or a He-initialised random 30 x 5x5 layer when no model is
given). An entry counts as *active* where the digit reaches it: where the original or the shifted
version differs from the value a blank image gives there (0 for pixels; ReLU(bias) for
features), and as *unchanged* where the shift changes it by at most ``TOL`` times the largest
such difference.

JSON keys:
- ``unchanged_fraction``: {"pixels"|"features": {"unpooled"|"pooled": fraction}}: the share
  of active entries that are unchanged by the shift, over both directions and all images.
- ``relative_change``: the same layout: sum |after - before| / sum |before - blank|.
- ``unchanged_pooled_features``, ``unchanged_unpooled_features``,
  ``relative_change_pooled_features``, ``relative_change_unpooled_features``: the feature
  numbers again, flat (the gallery shows them).
- ``by_direction``: {"right"|"down": the unchanged fractions for that direction alone}.
- ``images``, ``shift``, ``pool``, ``features_from`` (which convolution), ``example_index``,
  ``example_channel`` (the channel drawn in the figure: the one the digit excites most).
The book's claim: pooled outputs change less under a small shift than the unpooled maps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..support.figures import labels, language, pyplot
from . import cnn, common
from .common import count

NAME = "pooling-shift"
CHAPTER = 7
TITLE = "Max pooling is robust to small shifts of the input"
EXPLANATION = """
The book (7.3.3) notes that pooling absorbs small changes of position: shift the input by a
pixel and a 2x2 max pooling often outputs the same values, because each window's maximum
stays inside the window. Here real test digits are shifted by one pixel right or down, and we
count how many active entries of the feature map (convolution + ReLU) and of the raw pixels are
unchanged, before and after pooling. The top row shows one digit, its shifted copy, a feature
map and what the shift changes in it, unpooled and pooled (dark = large change); the bars give
the shares over all images: pooled outputs keep more of their values and change less.
"""
KEY_NUMBERS = (
    "unchanged_unpooled_features",
    "unchanged_pooled_features",
    "relative_change_unpooled_features",
    "relative_change_pooled_features",
)

SETTINGS = {
    "model": cnn.TRAIN_SETTINGS["model"],  # empty: a random He-initialised convolution
    "images": count(1000, quick=100),
    "shift": count(1, high=4),  # pixels; MNIST's digits have an empty border of 4
    "pool": count(2, low=2),  # the pooling window and stride
}
TOL = 1e-5  # relative to the largest value: float32 rounding, never a real change
DIRECTIONS = ("right", "down")

# The figure's words, in each language (``run(lang=...)``); the English ``features_*`` are
# also the JSON's ``features_from``.
LABELS = {
    "en": {
        "title": TITLE,
        "features_file": "the first Convolution of {file}, trained",
        "features_random": "random He-initialised Convolution(30 x 5x5), not trained",
        "digit": "test digit",
        "shifted": "shifted {s} px right",
        "map": "feature map (channel {c})",
        "map_change": "|change| of the map",
        "pooled": "max-pooled {p}x{p}",
        "pooled_change": "|change| after pooling",
        "changed": "{a} of {b} changed",
        "pixels": "raw pixels",
        "features": "conv + ReLU\nfeature maps",
        "unchanged_share": "share of active entries unchanged",
        "relative": "sum |change| / sum |value|",
        "unpooled": "unpooled",
        "pooled_bars": "max-pooled {p}x{p}, stride {p}",
        "unchanged_title": "unchanged after a {s}-pixel shift (higher = more robust)",
        "relative_title": "relative change (lower = more robust)",
        "bottom": "{n} test digits, each shifted right and down; features: {features}",
        "suptitle": "Max pooling absorbs a {s}-pixel shift",
    },
    "ja": {
        "title": "Max プーリングは入力の小さなずれに頑健",
        "features_file": "{file} の 1 層目の Convolution（学習済み）",
        "features_random": "He の初期値によるランダムな Convolution（30 個の 5×5、学習なし）",
        "digit": "テスト画像の数字",
        "shifted": "右に {s} ピクセルずらしたもの",
        "map": "特徴マップ（チャンネル {c}）",
        "map_change": "マップの |変化|",
        "pooled": "{p}×{p} の Max プーリング後",
        "pooled_change": "プーリング後の |変化|",
        "changed": "{b} 個中 {a} 個が変化",
        "pixels": "生の画素",
        "features": "畳み込み + ReLU\nの特徴マップ",
        "unchanged_share": "変わらない活性な要素の割合",
        "relative": "Σ|変化| / Σ|値|",
        "unpooled": "プーリング前",
        "pooled_bars": "{p}×{p} の Max プーリング、ストライド {p}",
        "unchanged_title": "{s} ピクセルずらしても変わらない割合（高いほど頑健）",
        "relative_title": "相対的な変化（低いほど頑健）",
        "bottom": "テスト画像 {n} 枚、それぞれ右と下にずらす。特徴: {features}",
        "suptitle": "Max プーリングは {s} ピクセルのずれを吸収する",
    },
}


def shifted(x: np.ndarray, shift: int, direction: str) -> np.ndarray:
    """Move images ``shift`` pixels right or down, filling with zeros. Shape: (N, C, H, W)."""
    out = np.zeros_like(x)
    if direction == "right":
        out[..., :, shift:] = x[..., :, : x.shape[3] - shift]
    else:
        out[..., shift:, :] = x[..., : x.shape[2] - shift, :]
    return out


def _counts(a: np.ndarray, b: np.ndarray, base: np.ndarray, tol: float) -> np.ndarray:
    """(active, unchanged, sum |b - a|, sum |a - base|) of two same-shaped arrays.

    ``base`` is the value an entry has when the digit does not reach it (a blank image's).
    """
    diff = np.abs(b - a)
    active = (np.abs(a - base) > tol) | (np.abs(b - base) > tol)
    unchanged = active & (diff <= tol)
    return np.array(
        [active.sum(), unchanged.sum(), diff.sum(dtype=np.float64), np.abs(a - base).sum()]
    )


def run(
    out: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    lang: str = "en",
    **options,
) -> dict:
    from .. import weight_init as init
    from ..layers import Convolution, Pooling, Relu

    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    shift, pool, n = opts["shift"], opts["pool"], opts["images"]
    (_, _), (x_test, _) = common.mnist(flatten=False, quick=quick, progress=progress)
    common.check_at_most(NAME, "images", n, len(x_test), "the test images")
    x = x_test[:n]

    if opts["model"]:
        from ..files import load

        conv = cnn.first_convolution(load(opts["model"], rng=seed), opts["model"])
        file = Path(opts["model"]).name
        features_from = LABELS["en"]["features_file"].format(file=file)
        features_shown = text["features_file"].format(file=file)
    else:
        rng = np.random.default_rng(seed)
        W = init.he((30, 1, 5, 5), 25, rng=rng, dtype=np.float32)
        conv = Convolution(W, np.zeros(30, dtype=np.float32))
        features_from = LABELS["en"]["features_random"]
        features_shown = text["features_random"]
    relu = Relu()

    def features(images):
        return relu.forward(conv.forward(images.astype(conv.params["W"].dtype)))

    def pooled(maps):
        H, W = maps.shape[2:]
        crop = maps[:, :, : H - H % pool, : W - W % pool]  # windows must tile the map
        return Pooling(pool, pool, stride=pool).forward(np.ascontiguousarray(crop))

    blank = np.zeros_like(x[:1])  # where the digit does not reach: a blank image's values
    bases = {"pixels": blank, "features": features(blank)}
    side = min(bases["features"].shape[2:])
    common.check_at_most(NAME, "pool", pool, side, "the side of the feature maps")
    totals = {r: {s: np.zeros(4) for s in ("unpooled", "pooled")} for r in ("pixels", "features")}
    by_direction = {}
    for direction in common.progress(DIRECTIONS, desc="shifts", enable=progress):
        xs = shifted(x, shift, direction)
        direction_counts = {}
        for name, before, after in (("pixels", x, xs), ("features", features(x), features(xs))):
            base = bases[name].astype(np.float64)
            tol = TOL * float(np.abs(before - base).max())
            for stage, a, b, base_s in (
                ("unpooled", before, after, base),
                ("pooled", pooled(before), pooled(after), pooled(base)),
            ):
                c = _counts(a.astype(np.float64), b.astype(np.float64), base_s, tol)
                totals[name][stage] += c
                direction_counts[f"{name}_{stage}"] = c[1] / c[0]
        by_direction[direction] = direction_counts

    unchanged = {r: {s: c[1] / c[0] for s, c in v.items()} for r, v in totals.items()}
    change = {r: {s: c[2] / c[3] for s, c in v.items()} for r, v in totals.items()}

    example = 0
    maps = features(x[example : example + 1])
    channel = int(np.argmax((maps - bases["features"])[0].sum(axis=(1, 2))))
    maps_s = features(shifted(x[example : example + 1], shift, "right"))
    numbers = {
        "unchanged_fraction": unchanged,
        "relative_change": change,
        "unchanged_unpooled_features": unchanged["features"]["unpooled"],
        "unchanged_pooled_features": unchanged["features"]["pooled"],
        "relative_change_unpooled_features": change["features"]["unpooled"],
        "relative_change_pooled_features": change["features"]["pooled"],
        "by_direction": by_direction,
        "images": n,
        "shift": shift,
        "pool": pool,
        "features_from": features_from,
        "example_index": example,
        "example_channel": channel,
    }
    panels = (
        x[example, 0],
        shifted(x[example : example + 1], shift, "right")[0, 0],
        maps[0, channel],
        np.abs(maps_s[0, channel] - maps[0, channel]),
        pooled(maps)[0, channel],
        np.abs(pooled(maps_s)[0, channel] - pooled(maps)[0, channel]),
    )
    with language(lang):
        fig = _figure(panels, numbers, text, features_shown)
        return common.save_result(out, NAME, fig, numbers)


def _figure(panels, numbers, text, features):
    plt = pyplot()
    fig = plt.figure(figsize=(12, 7), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.3])
    axes = top.subplots(1, 6)
    s, p = numbers["shift"], numbers["pool"]
    titles = (
        text["digit"],
        text["shifted"].format(s=s),
        text["map"].format(c=numbers["example_channel"]),
        text["map_change"],
        text["pooled"].format(p=p),
        text["pooled_change"],
    )
    vmax = float(panels[2].max()) or 1.0
    for k, (ax, img, title) in enumerate(zip(axes, panels, titles, strict=True)):
        if k < 2:
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
        else:  # maps and their changes on one scale: the changes compare directly
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    cells = np.count_nonzero(panels[3] > TOL * vmax), np.count_nonzero(panels[5] > TOL * vmax)
    axes[3].set_xlabel(text["changed"].format(a=cells[0], b=panels[3].size), fontsize=8)
    axes[5].set_xlabel(text["changed"].format(a=cells[1], b=panels[5].size), fontsize=8)

    ax1, ax2 = bottom.subplots(1, 2)
    groups = ("pixels", "features")
    names = (text["pixels"], text["features"])
    xs = np.arange(len(groups))
    width = 0.36
    for ax, key, ylabel in (
        (ax1, "unchanged_fraction", text["unchanged_share"]),
        (ax2, "relative_change", text["relative"]),
    ):
        for offset, stage, color in (
            (-width / 2, "unpooled", "tab:gray"),
            (width / 2, "pooled", "tab:blue"),
        ):
            values = [numbers[key][g][stage] for g in groups]
            label = text["unpooled"] if stage == "unpooled" else text["pooled_bars"].format(p=p)
            bars = ax.bar(xs + offset, values, width, label=label, color=color)
            ax.bar_label(bars, fmt="%.2f", fontsize=9)
        ax.set_xticks(xs, names)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, max(1.0, ax.get_ylim()[1] * 1.1))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper right", fontsize=9)
    ax1.set_title(text["unchanged_title"].format(s=s))
    ax2.set_title(text["relative_title"])
    bottom.suptitle(text["bottom"].format(n=numbers["images"], features=features), fontsize=9)
    fig.suptitle(text["suptitle"].format(s=s), fontsize=13, fontweight="bold")
    return fig
