"""One 5x5 convolution against two stacked 3x3 ones (the book's ch8, 8.1.3, why deeper
networks: the same 5x5 receptive field with fewer parameters).

Both stacks are built from scratchdl ``Convolution`` layers (stride 1, no padding) with
``channels`` input and output channels and run on a (1, channels, ``size``, ``size``) input.
The parameter counts are read from the layers' W and b; the receptive field of the centre
output is measured by backpropagation: ``backward`` of a one-hot ``dout`` at that output gives
the input pixels it depends on (weights drawn positive so nothing cancels).

JSON keys:
- ``params_5x5``, ``params_two_3x3``: weights per (input, output) channel pair: W[0, 0].size
  of the 5x5 layer (25), and the sum of that over the two 3x3 layers (9 + 9 = 18).
- ``weights_5x5``, ``weights_two_3x3``: all weights of the stack for ``channels`` channels
  (25 C^2 and 18 C^2); ``biases_5x5``, ``biases_two_3x3``: their biases (C and 2C).
- ``output_shape_5x5``, ``output_shape_two_3x3``: the outputs' shapes (24 x 24 for 28 x 28).
- ``receptive_field_5x5``, ``receptive_field_two_3x3``: [height, width] of the input region
  that reaches the centre output (measured: both [5, 5]).
- ``projective_field_5x5``, ``projective_field_two_3x3``: [height, width] of the output
  region one input pixel (an impulse in the centre) reaches, measured by ``forward``.
- ``W_shapes``: the W shapes of each stack; ``channels``, ``size``.
The claim: the two stacks see the same 5x5 window, and the 3x3 pair needs 18/25 = 72 % of the
weights (with a ReLU between them, it also adds a non-linearity).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..support.figures import labels, language, pyplot
from . import common
from .common import count

NAME = "receptive-field"
CHAPTER = 8
TITLE = "Two stacked 3x3 convolutions see a 5x5 window with fewer weights than one 5x5"
EXPLANATION = """
Chapter 8 explains why DeepConvNet (and VGG) stack small 3x3 filters: two 3x3 convolutions in
a row cover the same 5x5 region of the input as one 5x5 convolution, with 18 instead of 25
weights per channel pair, and a ReLU between them adds expressive power. Left: the windows as
grids (each output cell of the 3x3 pair looks at a 3x3 block of the middle layer, each of which
looks at a 3x3 block of the input). Middle: the receptive field measured by backpropagating
from one output of real scratchdl Convolution layers: both are 5x5. Right: the parameter
counts read from the layers' weights.
"""
KEY_NUMBERS = (
    "params_5x5",
    "params_two_3x3",
    "receptive_field_5x5",
    "receptive_field_two_3x3",
    "output_shape_5x5",
)

SETTINGS = {"channels": count(16), "size": count(28, low=5)}  # size: room for a 5x5 window

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "input": "input",
        "middle": "middle",
        "output": "output",
        "one_conv": "one 5x5 convolution",
        "two_conv": "two 3x3 convolutions",
        "5x5": "one 5x5",
        "two_3x3": "two 3x3",
        "measured": "{stack}: measured field {h}x{w}",
        "gradient": "|d output / d input| around the window (9x9)",
        "counts": "{weights:,} weights\n+ {biases} biases\nfor {C}->{C} channels",
        "per_pair": "weights per (input, output) channel pair",
        "parameters": (
            "parameters; output {h}x{w} for both\non a {size}x{size} input without padding"
        ),
        "suptitle": "Same receptive field, fewer weights: two 3x3 convolutions vs one 5x5",
    },
    "ja": {
        "title": "3×3 の畳み込み 2 つは、5×5 の 1 つより少ない重みで 5×5 の領域を見る",
        "input": "入力",
        "middle": "中間",
        "output": "出力",
        "one_conv": "5×5 の畳み込み 1 つ",
        "two_conv": "3×3 の畳み込み 2 つ",
        "5x5": "5×5 が 1 つ",
        "two_3x3": "3×3 が 2 つ",
        "measured": "{stack}: 測った受容野 {h}×{w}",
        "gradient": "窓のまわり（9×9）の |∂出力 / ∂入力|",
        "counts": "重み {weights:,} 個\n+ バイアス {biases} 個\n（{C}→{C} チャンネル）",
        "per_pair": "（入力, 出力）チャンネルの組 1 つあたりの重み",
        "parameters": (
            "パラメータ数。パディングなしの {size}×{size} の入力で\n出力はどちらも {h}×{w}"
        ),
        "suptitle": "同じ受容野を少ない重みで: 3×3 の畳み込み 2 つと 5×5 の 1 つ",
    },
}


def _stack(filter_sizes: tuple[int, ...], channels: int, rng: np.random.Generator) -> list:
    from ..layers import Convolution

    layers = []
    for fs in filter_sizes:
        W = rng.uniform(0.5, 1.5, size=(channels, channels, fs, fs))  # positive: no cancelling
        layers.append(Convolution(W, np.zeros(channels)))
    return layers


def _forward(layers, x):
    for layer in layers:
        x = layer.forward(x)
    return x


def _backward(layers, dout):
    for layer in reversed(layers):
        dout = layer.backward(dout)
    return dout


def _extent(mask: np.ndarray) -> list[int]:
    """[height, width] of the bounding box of the True entries of a 2-D mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)]


def measure(filter_sizes: tuple[int, ...], channels: int, size: int, rng) -> dict:
    """Parameter counts, output shape and measured receptive/projective fields of a stack."""
    layers = _stack(filter_sizes, channels, rng)
    x = np.zeros((1, channels, size, size))
    y = _forward(layers, x)
    _, _, OH, OW = y.shape
    dout = np.zeros_like(y)
    dout[0, 0, OH // 2, OW // 2] = 1.0
    dx = _backward(layers, dout)
    impulse = np.zeros_like(x)
    impulse[0, 0, size // 2, size // 2] = 1.0
    response = _forward(layers, impulse)
    return {
        "per_pair": sum(layer.params["W"][0, 0].size for layer in layers),
        "weights": sum(layer.params["W"].size for layer in layers),
        "biases": sum(layer.params["b"].size for layer in layers),
        "W_shapes": [list(layer.params["W"].shape) for layer in layers],
        "output_shape": list(y.shape),
        "receptive_field": _extent(np.abs(dx[0]).sum(axis=0) > 0),
        "projective_field": _extent(np.abs(response[0]).sum(axis=0) > 0),
        "dx": np.abs(dx[0]).sum(axis=0),
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
    channels, size = opts["channels"], opts["size"]
    rng = np.random.default_rng(seed)
    one, two = measure((5,), channels, size, rng), measure((3, 3), channels, size, rng)
    numbers = {
        "params_5x5": one["per_pair"],
        "params_two_3x3": two["per_pair"],
        "weights_5x5": one["weights"],
        "weights_two_3x3": two["weights"],
        "biases_5x5": one["biases"],
        "biases_two_3x3": two["biases"],
        "output_shape_5x5": one["output_shape"],
        "output_shape_two_3x3": two["output_shape"],
        "receptive_field_5x5": one["receptive_field"],
        "receptive_field_two_3x3": two["receptive_field"],
        "projective_field_5x5": one["projective_field"],
        "projective_field_two_3x3": two["projective_field"],
        "W_shapes": {"5x5": one["W_shapes"], "two_3x3": two["W_shapes"]},
        "channels": channels,
        "size": size,
    }
    with language(lang):
        fig = _figure(numbers, one["dx"], two["dx"], text)
        return common.save_result(out, NAME, fig, numbers)


def _grid(ax, x0: float, yc: float, n: int, lit: tuple[int, int], color: str, label: str):
    """An n x n grid of unit cells, left edge x0, centred on yc; the cells [lit[0], lit[1])
    along both axes filled. Returns the lit square as (x, y, side)."""
    from matplotlib.patches import Rectangle

    y0 = yc - n / 2
    for i in range(n):
        for j in range(n):
            on = lit[0] <= i < lit[1] and lit[0] <= j < lit[1]
            ax.add_patch(
                Rectangle(
                    (x0 + j, y0 + i),
                    1,
                    1,
                    facecolor=color if on else "white",
                    edgecolor="0.4",
                    lw=0.8,
                )
            )
    ax.text(x0 + n / 2, y0 - 0.4, label, ha="center", va="top", fontsize=9)
    return (x0 + lit[0], y0 + lit[0], lit[1] - lit[0])


def _link(ax, a: tuple, b: tuple) -> None:
    """Dashed lines from the corners of square a = (x, y, side) to those of square b."""
    for u, v in ((0, 0), (0, 1), (1, 0), (1, 1)):
        ax.plot(
            [a[0] + u * a[2], b[0] + u * b[2]],
            [a[1] + v * a[2], b[1] + v * b[2]],
            color="0.5",
            lw=0.7,
            ls="--",
        )


def _diagram(ax, text: dict) -> None:
    """The two stacks as grids: a 7x7 input, the window one output cell depends on."""
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text(0, 9.6, text["one_conv"], fontsize=10, fontweight="bold")
    window = _grid(ax, 0, 5, 7, (1, 6), "tab:orange", text["input"])
    _link(ax, window, _grid(ax, 12.5, 5, 1, (0, 1), "tab:red", text["output"]))
    ax.text(0, -0.4, text["two_conv"], fontsize=10, fontweight="bold")
    window = _grid(ax, 0, -5, 7, (1, 6), "tab:orange", text["input"])
    middle = _grid(ax, 9, -5, 5, (1, 4), "tab:green", text["middle"])
    _link(ax, window, middle)
    _link(ax, middle, _grid(ax, 16.5, -5, 1, (0, 1), "tab:red", text["output"]))
    ax.set_xlim(-0.5, 18)
    ax.set_ylim(-10, 10.3)


def _figure(numbers, dx_one, dx_two, text):
    plt = pyplot()
    fig = plt.figure(figsize=(12, 5), layout="constrained")
    gs = fig.add_gridspec(2, 3, width_ratios=[1.5, 0.8, 1.1])
    _diagram(fig.add_subplot(gs[:, 0]), text)
    for row, (dx, key) in enumerate(((dx_one, "5x5"), (dx_two, "two_3x3"))):
        ax = fig.add_subplot(gs[row, 1])
        rows, cols = np.flatnonzero(dx.any(axis=1)), np.flatnonzero(dx.any(axis=0))
        ci, cj = (rows[0] + rows[-1]) // 2, (cols[0] + cols[-1]) // 2  # the field's centre
        crop = dx[max(ci - 4, 0) : ci + 5, max(cj - 4, 0) : cj + 5]
        ax.imshow(crop, cmap="Blues", interpolation="nearest")
        ax.set_xticks(np.arange(-0.5, crop.shape[1], 1), minor=True)
        ax.set_yticks(np.arange(-0.5, crop.shape[0], 1), minor=True)
        ax.grid(which="minor", color="0.8", lw=0.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        rf = numbers[f"receptive_field_{key}"]
        ax.set_title(text["measured"].format(stack=text[key], h=rf[0], w=rf[1]), fontsize=9)
        if row == 1:
            ax.set_xlabel(text["gradient"], fontsize=8)
    ax = fig.add_subplot(gs[:, 2])
    names = (text["5x5"], text["two_3x3"])
    per_pair = (numbers["params_5x5"], numbers["params_two_3x3"])
    bars = ax.bar(names, per_pair, color=("tab:orange", "tab:green"))
    ax.bar_label(bars, fontsize=10)
    C = numbers["channels"]
    for k, key in enumerate(("5x5", "two_3x3")):
        ax.text(
            k,
            per_pair[k] / 2,
            text["counts"].format(
                weights=numbers[f"weights_{key}"], biases=numbers[f"biases_{key}"], C=C
            ),
            ha="center",
            va="center",
            fontsize=8,
            color="white",
        )
    ax.set_ylabel(text["per_pair"])
    shape = numbers["output_shape_5x5"][2:]
    title = text["parameters"].format(h=shape[0], w=shape[1], size=numbers["size"])
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, max(per_pair) * 1.15)
    fig.suptitle(text["suptitle"], fontsize=13, fontweight="bold")
    return fig
