"""Test accuracy of one trained network in float64, float32 and float16 (the book's ch8
``half_float_network.py``, 8.3.4: DeepConvNet scores 99.35 % in float64 and in float16).

The network is read once from a model file and rebuilt in each dtype: ``model_from_config``
with the file's class and config (``dtype`` replaced), then ``load_state_dict`` casts the
weights. The test images are cast to the same dtype, so the whole forward pass runs in it:
every layer's output dtype is checked. (NumPy has no float16 BLAS: a float16 matrix product
is a plain loop, about 10-30 times slower than float32; it accumulates each sum in higher
precision and rounds only the result to float16.)

The network: ``model=FILE``; else, in full mode, ``benchmarks/results/model-deep.safetensors``
(relative to the working directory) when it exists; else a SimpleConvNet trained here (see
``cnn``), saved to a temporary file first so that all three dtypes start from the same file.

JSON keys:
- ``model``: where the network came from (file and class, or how it was trained).
- ``test_images``: how many test images were classified (the first ``images``; 0 = all).
- ``accuracy``: {"float64"|"float32"|"float16": accuracy}; ``accuracy_float16``,
  ``accuracy_float32``, ``accuracy_float64`` flat, for the gallery.
- ``agreement``: {"float32_vs_float64"|"float16_vs_float64"|"float16_vs_float32": share of
  images with the same predicted class}.
- ``max_abs_score_diff``: {same pairs: largest |score difference| over all images and classes}.
- ``dtypes_kept``: {dtype: every layer's output and every parameter had that dtype}.
- ``layer_dtypes``: {dtype: the distinct dtypes seen in the forward passes}.
- ``seconds``: {dtype: time to classify the test images}.
The book's claim: float16 loses (almost) no accuracy: within 1 point of float32 here.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..support.figures import labels, language, pyplot
from . import cnn, common
from .common import count

NAME = "half-float"
CHAPTER = 8
TITLE = "Half precision: test accuracy in float64, float32 and float16"
EXPLANATION = """
Chapter 8 (8.3.4) notes that deep learning needs little numerical precision: the book casts
a trained DeepConvNet's weights and the test images to 16-bit floats and the accuracy stays at
99.35 %. Here one trained network is rebuilt in float64, float32 and float16 and classifies
the same test images, every layer running in that dtype. Left: accuracy per dtype; right: how
often the dtypes predict the same class, and the largest difference of their scores.
"""
KEY_NUMBERS = ("accuracy_float64", "accuracy_float32", "accuracy_float16", "agreement")

SETTINGS = {
    **cnn.TRAIN_SETTINGS,
    "images": count(0, quick=300, low=0),  # the first test images classified; 0: all
}
DEFAULT_MODEL = Path("benchmarks/results/model-deep.safetensors")
DTYPES = ("float64", "float32", "float16")
PAIRS = (("float32", "float64"), ("float16", "float64"), ("float16", "float32"))
BATCH = 100

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "accuracy": "test accuracy (%)",
        "on": "accuracy on {n} test images",
        "seconds": "{dtype}\n({s:.1f} s to classify)",
        "pair": "{a} vs {b}",
        "agree": "{share:.2f} %  (max |score diff| {diff:.2g})",
        "same": "same predicted class (%)",
        "agreement": "agreement between dtypes",
        "from_file": "{model} from {file}",
        "trained": "{model} trained {epochs} epochs here",
        "suptitle": "Half precision loses (almost) nothing: {what}",
    },
    "ja": {
        "title": "半精度: float64、float32、float16 でのテストデータの認識精度",
        "accuracy": "テストデータの認識精度（%）",
        "on": "テスト画像 {n} 枚での認識精度",
        "seconds": "{dtype}\n（分類に {s:.1f} 秒）",
        "pair": "{a} と {b}",
        "agree": "{share:.2f} %（スコアの差の最大 {diff:.2g}）",
        "same": "予測したクラスが同じ割合（%）",
        "agreement": "データ型の間での一致",
        "from_file": "{file} の {model}",
        "trained": "ここで {epochs} エポック学習した {model}",
        "suptitle": "半精度でも（ほとんど）何も失わない: {what}",
    },
}


def forward_in(model, x: np.ndarray) -> tuple[np.ndarray, set[str]]:
    """Scores of ``model`` for x, layer by layer; the dtypes of every layer's output.

    Shape: (N, ...) -> (N, K).
    """
    h = x.astype(model.dtype)
    seen = {h.dtype.name}
    for layer in model.layers:
        h = layer.forward(h, train=False)
        seen.add(h.dtype.name)
    return h, seen


def run(
    out: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    lang: str = "en",
    **options,
) -> dict:
    from ..files import load, save
    from ..models import model_from_config

    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    n = opts["images"]
    (x_train, t_train), (x_test, t_test) = common.mnist(
        flatten=False, quick=quick, progress=progress
    )
    common.check_at_most(NAME, "images", n, len(x_test), "the test images")
    if n:
        x_test, t_test = x_test[:n], t_test[:n]
    if not opts["model"] and not quick and DEFAULT_MODEL.exists():
        opts = {**opts, "model": str(DEFAULT_MODEL)}
    with tempfile.TemporaryDirectory() as tmp:
        if opts["model"]:
            path = Path(opts["model"])
            source = {"source": "file", "file": str(path)}
        else:
            trained, source = cnn.trained_model(
                opts, (x_train, t_train), (x_test, t_test), seed=seed, progress=progress
            )
            path = Path(tmp) / "model.safetensors"
            save(trained, path)
        reference = load(path, rng=seed)
        source["class"] = type(reference).__name__
        state = reference.state_dict()
        scores, accuracy, kept, seen, seconds = {}, {}, {}, {}, {}
        for dtype in DTYPES:
            model = model_from_config(
                type(reference).__name__, {**reference.config, "dtype": dtype}, rng=seed
            )
            model.load_state_dict(state)  # cast to the model's dtype
            start = time.perf_counter()
            parts, dtypes = [], set()
            batches = range(0, len(x_test), BATCH)
            for i in common.progress(batches, total=len(batches), desc=dtype, enable=progress):
                s, d = forward_in(model, x_test[i : i + BATCH])
                parts.append(s)
                dtypes |= d
            seconds[dtype] = time.perf_counter() - start
            scores[dtype] = np.concatenate(parts)
            accuracy[dtype] = float(np.mean(scores[dtype].argmax(axis=1) == t_test))
            params_ok = all(a.dtype.name == dtype for a in model.state_dict().values())
            kept[dtype] = bool(params_ok and dtypes == {dtype})
            seen[dtype] = sorted(dtypes)
    agreement, max_diff = {}, {}
    for a, b in PAIRS:
        key = f"{a}_vs_{b}"
        agreement[key] = float(np.mean(scores[a].argmax(axis=1) == scores[b].argmax(axis=1)))
        diff = np.abs(scores[a].astype(np.float64) - scores[b].astype(np.float64))
        max_diff[key] = float(diff.max())
    numbers = {
        "model": source,
        "test_images": len(x_test),
        "accuracy": accuracy,
        **{f"accuracy_{dtype}": accuracy[dtype] for dtype in DTYPES},
        "agreement": agreement,
        "max_abs_score_diff": max_diff,
        "dtypes_kept": kept,
        "layer_dtypes": seen,
        "seconds": seconds,
    }
    with language(lang):
        return common.save_result(out, NAME, _figure(numbers, text), numbers)


def _figure(numbers, text):
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    acc = [100 * numbers["accuracy"][d] for d in DTYPES]
    colors = ("tab:blue", "tab:green", "tab:orange")
    bars = ax1.bar(DTYPES, acc, color=colors)
    ax1.bar_label(bars, fmt="%.2f %%", fontsize=10)
    low = min(acc)
    ax1.set_ylim(max(0.0, low - max(2.0, (100 - low) * 1.5)), 100)
    ax1.set_ylabel(text["accuracy"])
    ax1.set_title(text["on"].format(n=numbers["test_images"]))
    ax1.grid(axis="y", alpha=0.3)
    ax1.set_xticks(
        range(len(DTYPES)),
        [text["seconds"].format(dtype=d, s=numbers["seconds"][d]) for d in DTYPES],
    )
    keys = [f"{a}_vs_{b}" for a, b in PAIRS]
    agree = [100 * numbers["agreement"][k] for k in keys]
    pairs = [text["pair"].format(a=a, b=b) for a, b in PAIRS]
    bars = ax2.barh(pairs, agree, color="tab:gray")
    ax2.bar_label(
        bars,
        labels=[
            text["agree"].format(share=a, diff=numbers["max_abs_score_diff"][k])
            for a, k in zip(agree, keys, strict=True)
        ],
        label_type="center",
        color="white",
        fontsize=9,
    )
    ax2.set_xlim(min(agree) - max(1.0, 100 - min(agree)), 100)
    ax2.set_xlabel(text["same"])
    ax2.set_title(text["agreement"])
    ax2.invert_yaxis()
    what = cnn.model_words(numbers["model"], text)
    fig.suptitle(text["suptitle"].format(what=what), fontsize=13, fontweight="bold")
    return fig
