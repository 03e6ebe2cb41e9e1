"""Activation functions, and why a linear one adds nothing to a deep network (book ch3).

The book draws the step function, the sigmoid and ReLU (figures 3-6 to 3-9) and argues
(section 3.2.6) that a linear activation h(x) = c * x makes depth useless: three layers give
h(h(h(x))) = c**3 * x, which one layer computes as well. We draw the four activations, check
that argument numerically, and repeat it for a real 1-8-8-1 network with random weights: with
the identity as activation its three Affine layers equal one Affine layer (W = W1 W2 W3); with
ReLU they do not (the output bends).

JSON keys:
    x_range                   [x_min, x_max] of the curves
    curves                    {"x": [...], "step": [...], "sigmoid": [...], "relu": [...],
                              "tanh": [...]}: the values drawn
    ranges                    activation -> [min, max] over the curves' x
    sigmoid_at_0, tanh_at_0   0.5 and 0
    c, layers                 the linear activation h(x) = c * x, applied ``layers`` times
    linear_stack_max_error    max |h(h(...h(x))) - c**layers * x| over the curves' x
    affine_stack_max_error    max |3 linear Affine layers - the one collapsed Affine layer|
    relu_stack_line_fit_error max distance of the same network with ReLU from its best
                              straight line: > 0, ReLU is what makes depth count
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..functions import relu, sigmoid, step_function, tanh
from ..layers import Affine
from ..support.figures import labels, language, pyplot
from . import common
from .common import Setting, count

NAME = "activations"
CHAPTER = 3
TITLE = "Step, sigmoid, ReLU and tanh; a linear activation collapses layers"
EXPLANATION = """The left panel draws the activation functions of chapter 3 on x in [-5, 5]:
the perceptron's step function jumps from 0 to 1, the sigmoid is its smooth version (always
strictly between 0 and 1, 0.5 at x = 0), tanh is a sigmoid rescaled to (-1, 1), and ReLU is 0
for negative input and x otherwise. The middle panel is the book's argument against a linear
activation h(x) = c*x: three layers compute h(h(h(x))) (dots), which lies exactly on c^3 * x
(line), so the extra layers add nothing. The right panel repeats it for a 1-8-8-1 network with
random weights: with a linear activation the three Affine layers equal one Affine layer
(a straight line), while the same weights with ReLU give a bent, piecewise linear curve."""
KEY_NUMBERS = (
    "ranges",
    "sigmoid_at_0",
    "linear_stack_max_error",
    "affine_stack_max_error",
    "relu_stack_line_fit_error",
)

SETTINGS = {
    "x_min": Setting(-5.0, high=0, high_open=True),  # the curves are drawn across x = 0
    "x_max": Setting(5.0, low=0, low_open=True),
    "points": count(201, low=2),  # points on each curve
    "c": Setting(1.5),  # the linear activation h(x) = c * x
    "layers": count(3),  # the book's three layers
    "hidden_size": count(8),  # width of the 1-H-H-1 network of the right panel
}

ACTIVATIONS = {"step": step_function, "sigmoid": sigmoid, "relu": relu, "tanh": tanh}

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "step": "step",
        "sigmoid": "sigmoid",
        "relu": "ReLU",
        "tanh": "tanh",
        "beyond": "{name} (to {top:g} at x = {x:g})",
        "activations": "activation functions",
        "output": "output",
        "linear": "linear activation, {layers} layers = 1 layer",
        "one_affine": "one Affine layer ($W_1 W_2 W_3$)",
        "stack_linear": "{layers} layers, linear",
        "stack_relu": "{layers} layers, ReLU",
        "network_output": "network output",
        "network": "1-{H}-{H}-1 network, random weights",
    },
    "ja": {
        "title": (
            "ステップ関数、シグモイド関数、ReLU、tanh。線形な活性化関数では層が 1 つにつぶれる"
        ),
        "step": "ステップ関数",
        "sigmoid": "シグモイド関数",
        "relu": "ReLU",
        "tanh": "tanh",
        "beyond": "{name}（x = {x:g} で {top:g} まで）",
        "activations": "活性化関数",
        "output": "出力",
        "linear": "線形な活性化関数: {layers} 層 = 1 層",
        "one_affine": "Affine レイヤ 1 つ（$W_1 W_2 W_3$）",
        "stack_linear": "{layers} 層、線形",
        "stack_relu": "{layers} 層、ReLU",
        "network_output": "ネットワークの出力",
        "network": "1-{H}-{H}-1 のネットワーク、ランダムな重み",
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
    """The activations and the linear-stack check; writes activations.png/json."""
    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    x = np.linspace(opts["x_min"], opts["x_max"], opts["points"])
    curves = {name: np.asarray(f(x), dtype=np.float64) for name, f in ACTIVATIONS.items()}

    c, layers = opts["c"], opts["layers"]
    stacked = x
    for _ in range(layers):
        stacked = c * stacked  # h(x) = c * x, applied once per layer
    collapsed = c**layers * x
    linear_error = float(np.abs(stacked - collapsed).max())

    net = _network(np.random.default_rng(seed), opts["hidden_size"])
    x_col = x.reshape(-1, 1)
    linear_out = _forward(net, x_col, activation=None)
    W, b = _collapse(net)
    one_layer = x_col @ W + b
    relu_out = _forward(net, x_col, activation=relu)
    slope, intercept = np.polyfit(x, relu_out[:, 0], 1)  # the best straight line (least squares)

    numbers = {
        "x_range": [opts["x_min"], opts["x_max"]],
        "curves": {"x": x, **curves},
        "ranges": {name: [float(y.min()), float(y.max())] for name, y in curves.items()},
        "sigmoid_at_0": float(sigmoid(np.float64(0.0))),
        "tanh_at_0": float(tanh(np.float64(0.0))),
        "c": c,
        "layers": layers,
        "linear_stack_max_error": linear_error,
        "affine_stack_max_error": float(np.abs(linear_out - one_layer).max()),
        "relu_stack_line_fit_error": float(np.abs(relu_out[:, 0] - (slope * x + intercept)).max()),
    }
    with language(lang):
        fig = _figure(
            x,
            curves,
            (stacked, collapsed, c, layers),
            (linear_out, one_layer, relu_out, opts["hidden_size"]),
            text,
        )
        return common.save_result(out, NAME, fig, numbers)


def _network(rng: np.random.Generator, hidden: int) -> list[Affine]:
    """Three Affine layers 1 -> H -> H -> 1 with N(0, 1) weights and biases, float64."""
    sizes = [1, hidden, hidden, 1]
    return [
        Affine(rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out))
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def _forward(net: list[Affine], x: np.ndarray, activation) -> np.ndarray:
    """The network's output; ``activation`` between the layers (None: the identity)."""
    for i, layer in enumerate(net):
        x = layer.forward(x)
        if activation is not None and i < len(net) - 1:
            x = activation(x)
    return x


def _collapse(net: list[Affine]) -> tuple[np.ndarray, np.ndarray]:
    """The one Affine layer equal to the linear stack: W = W1 W2 W3, b = (b1 W2 + b2) W3 + b3."""
    W, b = net[0].params["W"], net[0].params["b"]
    for layer in net[1:]:
        W, b = W @ layer.params["W"], b @ layer.params["W"] + layer.params["b"]
    return W, b


def _figure(x, curves, linear, network, text):
    plt = pyplot()
    stacked, collapsed, c, layers = linear
    linear_out, one_layer, relu_out, H = network
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    styles = {"step": "--", "sigmoid": "-", "relu": "-.", "tanh": ":"}
    top = 3.2  # room for sigmoid and tanh to be seen; ReLU runs on above the frame
    for name, y in curves.items():
        label = text[name]
        if y.max() > top:
            label = text["beyond"].format(name=label, top=y.max(), x=x[-1])
        ax1.plot(x, y, ls=styles[name], lw=2, label=label)
    ax1.axhline(0, color="gray", lw=0.5)
    ax1.axhline(1, color="gray", lw=0.5)
    ax1.set(xlabel="x", ylabel="h(x)", title=text["activations"], ylim=(-1.2, top))
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)

    every = max(len(x) // 25, 1)  # markers sparse enough to see the line beneath
    ax2.plot(x, collapsed, color="tab:blue", lw=2, label=f"$c^{layers} x$ = {c**layers:g} x")
    nested = "h(" * layers + "x" + ")" * layers
    ax2.plot(x[::every], stacked[::every], "o", color="tab:orange", ms=5, label=nested)
    ax2.plot(x, c * x, color="gray", ls="--", lw=1, label=f"h(x) = {c:g} x")
    ax2.set(xlabel="x", ylabel=text["output"], title=text["linear"].format(layers=layers))
    ax2.legend(loc="upper left")
    ax2.grid(alpha=0.3)

    ax3.plot(x, one_layer[:, 0], color="tab:blue", lw=2, label=text["one_affine"])
    stack_linear = text["stack_linear"].format(layers=layers)
    ax3.plot(x[::every], linear_out[::every, 0], "o", color="tab:orange", ms=5, label=stack_linear)
    ax3.plot(
        x, relu_out[:, 0], color="tab:red", lw=2, label=text["stack_relu"].format(layers=layers)
    )
    ax3.set(xlabel="x", ylabel=text["network_output"], title=text["network"].format(H=H))
    ax3.legend(loc="best", fontsize=8)
    ax3.grid(alpha=0.3)
    return fig
