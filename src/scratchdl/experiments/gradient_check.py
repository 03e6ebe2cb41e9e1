"""Gradient check: backpropagation against numerical differentiation (book ch5, section 5.7.3).

The book builds TwoLayerNet(784, 50, 10), takes 3 MNIST training images, computes the
gradient of the loss both ways and prints the mean absolute difference per parameter (about
1e-10 to 1e-13). We do the same in float64, add the relative error
(``scratchdl.gradient.relative_error``: max |difference| / max |gradient|), and time both
methods: backprop is one forward and one backward pass, the numerical gradient two forward
passes per parameter (2 * 39,760 for the book's network).

JSON keys:
    input_size, hidden_size, output_size, samples, weight_init_std, dtype   the setting
    n_params               number of parameters (numerical gradient does 2 losses each)
    mean_abs_difference    param -> mean |backprop - numerical| (the book's printed number)
    relative_error         param -> max |backprop - numerical| / max |gradient|
    max_relative_error     the largest of those
    time_backprop_s        one backprop gradient (the fastest of ``repeats`` runs)
    time_numerical_s       one numerical gradient of every parameter
    time_numerical_per_param_s   param -> seconds spent on it
    speedup                time_numerical_s / time_backprop_s
    book_mean_abs_difference   the book's printed numbers for its setting (784-50-10, 3 images)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..gradient import numerical_gradient, relative_error
from ..models import TwoLayerNet
from ..support.figures import labels, language, pyplot
from . import common
from .common import Setting, count, positive

NAME = "gradient-check"
CHAPTER = 5
TITLE = "Gradient check: backpropagation vs numerical gradient on TwoLayerNet"
EXPLANATION = """Backpropagation is fast but easy to get wrong; numerical differentiation
is slow but simple, so the book uses it to check backprop (section 5.7.3): TwoLayerNet(784,
50, 10) on 3 MNIST images, the gradient of the loss computed both ways. The left panel shows
how far apart the two are for each parameter (log scale): the mean absolute difference (the
book's number) and the relative error (largest difference over the gradient's largest entry).
In float64 they agree to many digits, so backprop is right. The right panel shows the cost:
the numerical gradient evaluates the loss twice per parameter, backprop runs the network once
forward and once backward, orders of magnitude faster."""
KEY_NUMBERS = (
    "mean_abs_difference",
    "max_relative_error",
    "time_backprop_s",
    "time_numerical_s",
    "speedup",
)

SETTINGS = {
    # the book's TwoLayerNet(784, 50, 10); quick: 7,960 parameters, under a second
    "hidden_size": count(50, quick=10),
    "samples": count(3),  # the book's x_train[:3]
    "weight_init_std": positive(0.01),
    # float32 round-off swamps the central differences
    "dtype": Setting("float64", choices=("float64", "float32", "float16")),
    "repeats": count(20),  # backprop is timed as the fastest of this many runs
}
# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "mean_abs": "mean |backprop - numerical|",
        "relative": "relative error (max diff / max |grad|)",
        "book": "the book's mean difference",
        "difference": "difference",
        "network": "TwoLayerNet({input}, {hidden}, {output}), {samples} images, {dtype}",
        "backprop": "backprop",
        "numerical": "numerical",
        "seconds": "{s:.2g} s",
        "time": "seconds for one gradient",
        "faster": "time: backprop {speedup:,.0f}x faster ({params:,} params)",
    },
    "ja": {
        "title": "勾配確認: TwoLayerNet での誤差逆伝播法と数値微分",
        "mean_abs": "|誤差逆伝播法 − 数値微分| の平均",
        "relative": "相対誤差（差の最大 / |勾配| の最大）",
        "book": "本書の差の平均",
        "difference": "差",
        "network": "TwoLayerNet({input}, {hidden}, {output})、{samples} 枚、{dtype}",
        "backprop": "誤差逆伝播法",
        "numerical": "数値微分",
        "seconds": "{s:.2g} 秒",
        "time": "勾配 1 回の計算時間（秒）",
        "faster": "時間: 誤差逆伝播法が {speedup:,.0f} 倍速い（パラメータ {params:,} 個）",
    },
}
# What the book prints for TwoLayerNet(784, 50, 10) on x_train[:3] (section 5.7.3).
BOOK_MEAN_ABS_DIFFERENCE = {
    "W1": 2.2232446644e-13,
    "b1": 9.70418809871e-13,
    "W2": 8.41139039497e-13,
    "b2": 1.1945999745e-10,
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
    """Backprop vs numerical gradients of TwoLayerNet; writes gradient-check.png/json."""
    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    (x_train, t_train), _ = common.mnist(quick=quick, progress=progress)
    common.check_at_most(NAME, "samples", opts["samples"], len(x_train), "the training images")
    x, t = x_train[: opts["samples"]], t_train[: opts["samples"]]
    net = TwoLayerNet(
        x.shape[1],
        opts["hidden_size"],
        10,
        opts["weight_init_std"],
        rng=np.random.default_rng(seed),
        dtype=opts["dtype"],
    )

    times = []
    for _ in range(opts["repeats"]):
        start = time.perf_counter()
        grads = net.gradient(x, t)
        times.append(time.perf_counter() - start)
    backprop = {k: v.copy() for k, v in grads.items()}

    def f(_):
        return net.loss(x, t, train=True)  # the loss the model's gradient() differentiates

    numerical, per_param = {}, {}
    n_params = sum(p.size for p in net.params.values())
    items = common.progress(
        net.params.items(), total=len(net.params), desc="numerical gradient", enable=progress
    )
    for name, p in items:
        start = time.perf_counter()
        numerical[name] = numerical_gradient(f, p)
        per_param[name] = time.perf_counter() - start

    rel = {k: relative_error(backprop[k], numerical[k]) for k in backprop}
    time_backprop, time_numerical = min(times), sum(per_param.values())
    numbers = {
        "input_size": x.shape[1],
        "hidden_size": opts["hidden_size"],
        "output_size": 10,
        "samples": opts["samples"],
        "weight_init_std": opts["weight_init_std"],
        "dtype": net.dtype.name,
        "n_params": n_params,
        "mean_abs_difference": {
            k: float(np.mean(np.abs(backprop[k] - numerical[k]))) for k in backprop
        },
        "relative_error": rel,
        "max_relative_error": max(rel.values()),
        "time_backprop_s": time_backprop,
        "time_numerical_s": time_numerical,
        "time_numerical_per_param_s": per_param,
        "speedup": time_numerical / time_backprop,
        "book_mean_abs_difference": BOOK_MEAN_ABS_DIFFERENCE,
    }
    with language(lang):
        return common.save_result(out, NAME, _figure(numbers, text), numbers)


def _figure(numbers: dict, text: dict):
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(11, 4.2), layout="constrained", width_ratios=(3, 2)
    )
    names = list(numbers["mean_abs_difference"])
    pos = np.arange(len(names))
    tiny = np.finfo(np.float64).tiny  # a zero difference cannot be drawn on a log scale
    for offset, key, label in (
        (-0.2, "mean_abs_difference", text["mean_abs"]),
        (0.2, "relative_error", text["relative"]),
    ):
        values = np.maximum([numbers[key][n] for n in names], tiny)
        bars = ax1.bar(pos + offset, values, width=0.4, label=label)
        ax1.bar_label(bars, labels=[f"{v:.1e}" for v in values], fontsize=7)
    book_setting = (numbers["hidden_size"], numbers["samples"], numbers["dtype"]) == (
        50,
        3,
        "float64",
    )
    if book_setting:  # the book's numbers only apply to its own network and images
        book = [numbers["book_mean_abs_difference"][n] for n in names]
        ax1.plot(pos - 0.2, book, "k_", ms=28, mew=2, label=text["book"])
    ax1.set_yscale("log")
    ax1.set_xticks(pos, names)
    ax1.set(
        ylabel=text["difference"],
        title=text["network"].format(
            input=numbers["input_size"],
            hidden=numbers["hidden_size"],
            output=numbers["output_size"],
            samples=numbers["samples"],
            dtype=numbers["dtype"],
        ),
    )
    ax1.legend(loc="upper left", fontsize=8)
    ax1.grid(alpha=0.3, axis="y")
    top = max(max(numbers["relative_error"].values()), max(numbers["mean_abs_difference"].values()))
    ax1.set_ylim(top=top * 1000)  # room above the bars for the legend

    methods = [text["backprop"], text["numerical"]]
    seconds = [numbers["time_backprop_s"], numbers["time_numerical_s"]]
    bars = ax2.bar(methods, seconds, color=["tab:green", "tab:red"])
    ax2.bar_label(bars, labels=[text["seconds"].format(s=s) for s in seconds], fontsize=8)
    ax2.set_yscale("log")
    ax2.set(
        ylabel=text["time"],
        title=text["faster"].format(speedup=numbers["speedup"], params=numbers["n_params"]),
    )
    ax2.grid(alpha=0.3, axis="y")
    ax2.margins(y=0.3)
    return fig
