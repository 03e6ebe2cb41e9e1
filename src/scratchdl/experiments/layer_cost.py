"""Where the time of a training step goes, per layer type, for SimpleConvNet and DeepConvNet
(the book's ch8, 8.3.1: in AlexNet's forward pass convolutions take about 90 % of the time).

One training step (float32, a batch of ``batch_size`` MNIST sample images) is run layer by
layer: every layer's forward (train=True) and backward is timed on its own with
``time.perf_counter``; the loss layer counts as "other" (with Dropout and Flatten). Each
network runs ``warmup`` untimed steps, then ``repeats`` timed ones; a layer's time is its
median over the repeats; the two networks take turns within each repeat. The optimizer's
update (Adam) is timed apart: it belongs to no layer. The BLAS library is limited to
``threads`` threads while timing (default 1, through threadpoolctl when it is installed;
0 leaves it as it is): on a busy machine a multi-threaded matrix product waits for its
descheduled threads, and the timings become noise.
As in training, the model's first layer (a Convolution) does not compute the gradient of the
input images (``backward_params``).

JSON keys:
- ``ms``: {network: {"forward"|"backward"|"total": {layer type: milliseconds}}}, layer types
  ``Convolution``, ``Pooling``, ``ReLU``, ``Affine``, ``other``.
- ``conv_share``: {network: the convolutions' share of the summed layer time}.
- ``conv_share_simple``, ``conv_share_deep``: the same two numbers, flat.
- ``layers_ms``: {network: [[layer, forward ms, backward ms], ...]} in the order of the layers.
- ``step_ms``: {network: median time of an ordinary ``gradient`` call (no per-layer timing)}.
- ``update_ms``: {network: median time of Adam's update of all parameters}.
- ``batch_size``, ``repeats``, ``warmup``, ``blas_threads`` (the limit used, or a note),
  ``dtype``, ``cpu_count``.
The claim checked: convolution is the largest share for DeepConvNet.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from ..support.figures import labels, language, pyplot
from . import common
from .common import count

NAME = "layer-cost"
CHAPTER = 8
TITLE = "Where a CNN's training step spends its time, per layer type"
EXPLANATION = """
The book (8.3.1) cites that in a CNN such as AlexNet most of the processing time, about 90 %
on GPU and CPU, goes to the convolution layers, which is why speeding up convolution (im2col
plus fast matrix products, GPUs) matters most. Here one float32 training step of SimpleConvNet
and of DeepConvNet is timed layer by layer, forward and backward apart, and summed per layer
type. Left: milliseconds; right: shares of the step. Convolution dominates DeepConvNet;
SimpleConvNet has a single small convolution, so its large Affine layer (4320 x 100) and the
pooling take a bigger share.
"""
KEY_NUMBERS = ("conv_share_simple", "conv_share_deep", "step_ms")

SETTINGS = {
    "batch_size": count(100, quick=20),
    "repeats": count(20, quick=3),  # timed steps; the median is kept
    "warmup": count(2, quick=1, low=0),  # untimed steps first
    "threads": count(1, low=0),  # BLAS threads; 0: as it is
}
TYPES = ("Convolution", "Pooling", "ReLU", "Affine", "other")
COLORS = {
    "Convolution": "tab:red",
    "Pooling": "tab:blue",
    "ReLU": "tab:green",
    "Affine": "tab:orange",
    "other": "tab:gray",
}

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "other": "other",
        "forward": "forward",
        "backward": "backward",
        "ms": "milliseconds per step (median)",
        "per_type": "time per layer type: batch {batch_size}, float32, BLAS threads: {threads}",
        "not_limited": "not limited",
        "share": "share of the pass (%)",
        "conv_share": "convolution: {simple:.0f} % (Simple), {deep:.0f} % (Deep) of the step",
        "suptitle": "Where a training step's time goes (the book: convolution ~90 % in AlexNet)",
    },
    "ja": {
        "title": "CNN の学習 1 ステップの時間の、レイヤの種類ごとの内訳",
        "other": "その他",
        "forward": "順伝播",
        "backward": "逆伝播",
        "ms": "1 ステップのミリ秒（中央値）",
        "per_type": (
            "レイヤの種類ごとの時間: バッチサイズ {batch_size}、float32、"
            "BLAS のスレッド数 {threads}"
        ),
        "not_limited": "制限なし",
        "share": "各パスに占める割合（%）",
        "conv_share": ("畳み込み層の割合: SimpleConvNet {simple:.0f} %、DeepConvNet {deep:.0f} %"),
        "suptitle": "学習 1 ステップの時間の内訳（本書: AlexNet では畳み込み層が約 90 %）",
    },
}


def layer_type(layer) -> str:
    """The group a layer's time is counted in: one of ``TYPES``."""
    from ..layers import Affine, Convolution, Pooling, Relu

    for cls, name in ((Convolution, "Convolution"), (Pooling, "Pooling"), (Relu, "ReLU")):
        if isinstance(layer, cls):
            return name
    return "Affine" if isinstance(layer, Affine) else "other"


def timed_step(model, x: np.ndarray, t: np.ndarray) -> tuple[list[float], list[float]]:
    """One training step, layer by layer; (forward seconds, backward seconds) per layer,
    the loss layer last."""
    clock = time.perf_counter
    layers = [*model.layers, model.last_layer]
    forward, backward = [], []
    h = x
    for layer in model.layers:
        start = clock()
        h = layer.forward(h, train=True)
        forward.append(clock() - start)
    start = clock()
    model.last_layer.forward(h, t)
    forward.append(clock() - start)
    dout = 1.0
    for layer in reversed(layers):
        start = clock()
        if layer is layers[0]:  # as in training: the input images need no gradient
            layer.backward_params(dout)
        else:
            dout = layer.backward(dout)
        backward.append(clock() - start)
    return forward, backward[::-1]


def _median_ms(samples: list[list[float]]) -> np.ndarray:
    return 1000 * np.median(np.array(samples), axis=0)


def measure(models: dict, x, t, *, repeats: int, warmup: int, progress: bool) -> dict:
    """Per-layer median forward/backward times, an untouched step's time and Adam's update.

    The networks take turns within every repeat, so that a busy moment of the machine hits
    them alike.
    """
    from ..optimizers import Adam

    samples = {name: {"f": [], "b": [], "step": [], "update": []} for name in models}
    optimizers = {name: Adam(lr=1e-4) for name in models}
    rounds = common.progress(
        range(warmup + repeats), total=warmup + repeats, desc="timing", enable=progress
    )
    for r in rounds:
        for name, model in models.items():
            f, b = timed_step(model, x, t)
            start = time.perf_counter()
            grads = model.gradient(x, t)
            step = time.perf_counter() - start
            start = time.perf_counter()
            optimizers[name].update(model.params, grads)
            update = time.perf_counter() - start
            if r >= warmup:
                for key, value in (("f", f), ("b", b), ("step", step), ("update", update)):
                    samples[name][key].append(value)
    results = {}
    for name, model in models.items():
        layers = [*model.layers, model.last_layer]
        f_ms, b_ms = _median_ms(samples[name]["f"]), _median_ms(samples[name]["b"])
        by_type = {
            phase: {kind: 0.0 for kind in TYPES} for phase in ("forward", "backward", "total")
        }
        for layer, f, b in zip(layers, f_ms, b_ms, strict=True):
            kind = layer_type(layer)
            by_type["forward"][kind] += float(f)
            by_type["backward"][kind] += float(b)
            by_type["total"][kind] += float(f + b)
        results[name] = {
            "by_type": by_type,
            "layers": [
                [repr(layer), float(f), float(b)]
                for layer, f, b in zip(layers, f_ms, b_ms, strict=True)
            ],
            "step_ms": float(1000 * np.median(samples[name]["step"])),
            "update_ms": float(1000 * np.median(samples[name]["update"])),
        }
    return results


def _blas_threads(threads: int):
    """A context limiting the BLAS library to ``threads`` threads (0: as it is), and a note
    on what it did. Needs threadpoolctl; without it the BLAS is left as it is."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "not limited (threadpoolctl is not installed)"
    if threads == 0:
        found = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        return contextlib.nullcontext(), found[0] if found else "unknown"
    return threadpool_limits(limits=threads, user_api="blas"), threads


def run(
    out: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    lang: str = "en",
    **options,
) -> dict:
    from ..models import DeepConvNet, SimpleConvNet

    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    batch, repeats, warmup, threads = (
        opts[k] for k in ("batch_size", "repeats", "warmup", "threads")
    )
    # the shipped sample is enough for timing: only the shapes (and ReLU masks) matter
    (x_train, t_train), _ = common.mnist(flatten=False, quick=True)
    common.check_at_most(NAME, "batch_size", batch, len(x_train), "the images of the sample")
    x, t = x_train[:batch], t_train[:batch]
    models = {cls.__name__: cls(rng=seed) for cls in (SimpleConvNet, DeepConvNet)}
    limit, blas_threads = _blas_threads(threads)
    with limit:
        results = measure(models, x, t, repeats=repeats, warmup=warmup, progress=progress)
    share = {
        net: r["by_type"]["total"]["Convolution"] / sum(r["by_type"]["total"].values())
        for net, r in results.items()
    }
    numbers = {
        "ms": {net: r["by_type"] for net, r in results.items()},
        "conv_share": share,
        "conv_share_simple": share["SimpleConvNet"],
        "conv_share_deep": share["DeepConvNet"],
        "layers_ms": {net: r["layers"] for net, r in results.items()},
        "step_ms": {net: r["step_ms"] for net, r in results.items()},
        "update_ms": {net: r["update_ms"] for net, r in results.items()},
        "batch_size": batch,
        "repeats": repeats,
        "warmup": warmup,
        "blas_threads": blas_threads,
        "dtype": "float32",
        "cpu_count": os.cpu_count(),
    }
    with language(lang):
        return common.save_result(out, NAME, _figure(numbers, text), numbers)


def _figure(numbers, text):
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    rows = [
        (net, phase)
        for net in ("SimpleConvNet", "DeepConvNet")
        for phase in ("forward", "backward")
    ]
    names = [f"{net}\n{text[phase]}" for net, phase in rows]
    y = np.arange(len(rows))[::-1]
    for ax, normalise in ((ax1, False), (ax2, True)):
        left = np.zeros(len(rows))
        for kind in TYPES:
            ms = np.array([numbers["ms"][net][phase][kind] for net, phase in rows])
            totals = np.array([sum(numbers["ms"][net][phase].values()) for net, phase in rows])
            width = 100 * ms / totals if normalise else ms
            label = text["other"] if kind == "other" else kind  # the rest are the book's names
            ax.barh(y, width, left=left, color=COLORS[kind], label=label, edgecolor="white")
            for yi, li, wi in zip(y, left, width, strict=True):
                if wi > (7 if normalise else 0.07 * _longest_bar(numbers)):
                    value = f"{wi:.0f}%" if normalise else f"{wi:.1f}"
                    ax.text(
                        li + wi / 2, yi, value, ha="center", va="center", fontsize=8, color="white"
                    )
            left += width
        ax.set_yticks(y, names)
        ax.grid(axis="x", alpha=0.3)
    ax1.set_xlabel(text["ms"])
    threads = numbers["blas_threads"]  # a number, or a note when it could not be limited
    threads = threads if isinstance(threads, int) else text["not_limited"]
    ax1.set_title(text["per_type"].format(batch_size=numbers["batch_size"], threads=threads))
    ax2.set_xlabel(text["share"])
    ax2.set_xlim(0, 100)
    s = numbers["conv_share"]
    ax2.set_title(
        text["conv_share"].format(simple=100 * s["SimpleConvNet"], deep=100 * s["DeepConvNet"])
    )
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=len(TYPES), fontsize=9)
    fig.suptitle(text["suptitle"], fontsize=13, fontweight="bold")
    return fig


def _longest_bar(numbers) -> float:
    """The longest bar of the milliseconds panel (labels go only on segments wide enough)."""
    return max(sum(p.values()) for net in numbers["ms"].values() for p in net.values())
