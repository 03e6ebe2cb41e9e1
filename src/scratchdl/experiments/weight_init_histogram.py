"""Histograms of the activations of a deep network for four weight initialisations (book ch6,
figs. 6-10 to 6-14).

1000 random inputs x ~ N(0, 1) of 100 dimensions pass through 5 layers of 100 units,
a = z @ W (no bias), z = activation(a), with W ~ N(0, std**2) for std = 1, std = 0.01,
Xavier (sqrt(1/100)) and He (sqrt(2/100)), each with sigmoid, tanh and ReLU. Every
(activation, initialisation) pair uses the same inputs and the same standard-normal
matrices, scaled by its std, so only the scale differs.

JSON keys:
- ``activations``: activation -> initialisation -> ``{"std", "frac_saturated", "hist"}``,
  each a list over the layers: the standard deviation of the layer's activations; the
  fraction whose derivative is below 10 % of its maximum (sigmoid: a(1-a) < 0.025;
  tanh: 1-a**2 < 0.1; ReLU: a == 0, a dead unit); and the histogram counts drawn
  (``bins`` equal bins over ``hist_range``, values beyond it counted in the end bins; for
  ReLU the positive values only, over [0, the 99th percentile of all layers' positive
  values]);
- ``hist_range``: activation -> initialisation -> [low, high] of the histograms;
- ``last_layer_std``: activation -> initialisation -> std of the last layer's activations;
- ``last_layer_saturated``: activation -> initialisation -> frac_saturated of the last layer;
- ``init_std``: initialisation -> the weights' std;
- ``settings``: the settings used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..functions import relu, sigmoid, tanh
from ..support.figures import labels, language, pyplot
from . import common
from .common import count

NAME = "weight-init-histogram"
CHAPTER = 6
TITLE = "Activation histograms of 5 layers for std 1, std 0.01, Xavier and He initial weights"
EXPLANATION = """The book feeds random data through a 5-layer network and draws the histogram
of each layer's activations (figs. 6-10 to 6-14). With std 1 the sigmoid outputs pile up at
0 and 1, where its gradient vanishes; with std 0.01 they all bunch around one value (0.5 for
sigmoid, 0 for tanh and ReLU), so the units all say the same thing and deep layers carry
almost no signal; Xavier's std sqrt(1/n) keeps the spread for sigmoid and tanh, and He's
sqrt(2/n) does so for ReLU, which zeros half its inputs. Each row is one initialisation,
each column one layer; every panel gives the std of the activations and the share of
saturated (sigmoid, tanh) or zero (ReLU) units. For ReLU the histogram shows only the
positive values, over a range set per row."""
KEY_NUMBERS = ("last_layer_std", "last_layer_saturated")

# quick mode runs the book's settings: already a fraction of a second of computing
SETTINGS = {"samples": count(1000), "units": count(100), "layers": count(5), "bins": count(30)}

ACTIVATIONS = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu}
INIT_NAMES = ("std=1", "std=0.01", "Xavier", "He")
FLAT = 0.1  # "saturated": the activation's derivative is below this fraction of its maximum
RELU_RANGE_QUANTILE = 99.0  # the ReLU rows' histogram range ends at this percentile

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "sigmoid": "sigmoid",
        "tanh": "tanh",
        "relu": "ReLU",
        "stats": "std {std:.2g}\n{what} {share:.0%}",
        "zero": "zero",
        "saturated": "sat.",
        "layer": "layer {k}",
        "heading": "{activation}: histograms of the {shown}",
        "positive": "positive activations",
        "all": "activations",
        "suptitle": (
            "Activations of {layers} layers x {units} units for {samples} random inputs, by "
            "initial weight scale (y: fraction of all activations per bin)"
        ),
    },
    "ja": {
        "title": "重みの初期値 std 1、std 0.01、Xavier、He での 5 層のアクティベーション分布",
        "sigmoid": "シグモイド関数",
        "tanh": "tanh",
        "relu": "ReLU",
        "stats": "標準偏差 {std:.2g}\n{what} {share:.0%}",
        "zero": "0 の割合",
        "saturated": "飽和",
        "layer": "{k} 層目",
        "heading": "{activation}: {shown}のヒストグラム",
        "positive": "正のアクティベーション",
        "all": "アクティベーション",
        "suptitle": (
            "ランダムな入力 {samples} 個に対する {layers} 層 × {units} ユニットの"
            "アクティベーション分布、重みの初期値別\n"
            "（縦軸: 全アクティベーションに占めるビンごとの割合）"
        ),
    },
}


def init_std(name: str, fan_in: int) -> float:
    """The weights' std for an initialisation of ``INIT_NAMES``."""
    return {
        "std=1": 1.0,
        "std=0.01": 0.01,
        "Xavier": float(np.sqrt(1.0 / fan_in)),
        "He": float(np.sqrt(2.0 / fan_in)),
    }[name]


def saturated(activation: str, z: np.ndarray) -> float:
    """Fraction of ``z`` where the activation's derivative is below FLAT of its maximum."""
    if activation == "sigmoid":
        flat = z * (1 - z) < FLAT * 0.25  # sigmoid' = z (1 - z), at most 0.25
    elif activation == "tanh":
        flat = 1 - z**2 < FLAT  # tanh' = 1 - z**2, at most 1
    else:
        flat = z == 0  # relu' = 0 for a <= 0
    return float(np.mean(flat))


def forward(x: np.ndarray, weights: list[np.ndarray], activation: str) -> list[np.ndarray]:
    """Activations of every layer: z_k = activation(z_{k-1} @ W_k), z_0 = x."""
    f = ACTIVATIONS[activation]
    outs = []
    z = x
    for W in weights:
        z = f(z @ W)
        outs.append(z)
    return outs


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
    n, units, layers, bins = o["samples"], o["units"], o["layers"], o["bins"]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, units))
    base = [rng.standard_normal((units, units)) for _ in range(layers)]

    stats: dict = {}
    ranges: dict = {}
    for activation in ACTIVATIONS:
        stats[activation], ranges[activation] = {}, {}
        for name in INIT_NAMES:
            std = init_std(name, units)
            zs = forward(x, [W * std for W in base], activation)
            if activation == "sigmoid":
                lo, hi = 0.0, 1.0
            elif activation == "tanh":
                lo, hi = -1.0, 1.0
            else:
                positive = np.concatenate([z[z > 0] for z in zs])
                lo = 0.0
                hi = float(np.percentile(positive, RELU_RANGE_QUANTILE)) if positive.size else 1.0
            ranges[activation][name] = [lo, hi]
            hists = []
            for z in zs:
                values = z[z > 0] if activation == "relu" else z.ravel()
                counts, _ = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
                hists.append(counts.tolist())
            stats[activation][name] = {
                "std": [float(z.std()) for z in zs],
                "frac_saturated": [saturated(activation, z) for z in zs],
                "hist": hists,
            }
    numbers = {
        "activations": stats,
        "hist_range": ranges,
        "last_layer_std": {
            a: {i: s["std"][-1] for i, s in by_init.items()} for a, by_init in stats.items()
        },
        "last_layer_saturated": {
            a: {i: s["frac_saturated"][-1] for i, s in by_init.items()}
            for a, by_init in stats.items()
        },
        "init_std": {name: init_std(name, units) for name in INIT_NAMES},
        "settings": {**o, "quick": quick, "seed": seed},
    }
    with language(lang):
        fig = _draw(numbers, n * units, bins, text)
        return common.save_result(out, NAME, fig, numbers)


def _draw(numbers: dict, total: int, bins: int, text: dict):
    plt = pyplot()
    stats, ranges = numbers["activations"], numbers["hist_range"]
    layers = len(next(iter(stats["sigmoid"].values()))["std"])
    n_init = len(INIT_NAMES)
    # One block of rows per activation, a thin spacer row between blocks for its heading.
    # A fixed grid, not constrained layout: 60 panels would take seconds to lay out.
    ratios = []
    for a in range(len(stats)):
        ratios += ([0.7] if a else []) + [1.0] * n_init
    o = numbers["settings"]
    title = text["suptitle"].format(layers=o["layers"], units=o["units"], samples=o["samples"])
    fig = plt.figure(figsize=(11, 14))
    grid = fig.add_gridspec(
        len(ratios),
        layers,
        height_ratios=ratios,
        hspace=0.55,
        wspace=0.12,
        left=0.07,
        right=0.99,
        top=0.925 - 0.012 * title.count("\n"),  # room for every line of the title
        bottom=0.025,
    )
    for a, (activation, by_init) in enumerate(stats.items()):
        first = a * (n_init + 1)
        for r, (name, s) in enumerate(by_init.items()):
            lo, hi = ranges[activation][name]
            edges = np.linspace(lo, hi, bins + 1)
            row_axes = []
            for k in range(layers):
                ax = fig.add_subplot(grid[first + r, k], sharey=row_axes[0] if row_axes else None)
                row_axes.append(ax)
                fractions = np.asarray(s["hist"][k]) / total
                ax.stairs(fractions, edges, fill=True, color=f"C{r}")
                what = text["zero"] if activation == "relu" else text["saturated"]
                ax.text(
                    0.97,
                    0.95,
                    text["stats"].format(std=s["std"][k], what=what, share=s["frac_saturated"][k]),
                    transform=ax.transAxes,
                    ha="right",
                    va="top",
                    fontsize=7,
                    bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 1},
                )
                ax.set_xlim(lo, hi)
                ax.tick_params(labelsize=6)
                ax.xaxis.get_offset_text().set_fontsize(6)
                if k:
                    ax.tick_params(labelleft=False)
                else:
                    ax.set_ylabel(name, fontsize=9)
                if r == 0:
                    ax.set_title(text["layer"].format(k=k + 1), fontsize=9)
                    if k == layers // 2:
                        shown = text["positive"] if activation == "relu" else text["all"]
                        ax.annotate(
                            text["heading"].format(activation=text[activation], shown=shown),
                            (0.5, 1.5),
                            xycoords="axes fraction",
                            ha="center",
                            fontweight="bold",
                        )
    fig.suptitle(title, fontsize=11)
    return fig
