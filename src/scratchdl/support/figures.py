"""Figures shared by the command line and the experiments: learning curves, confusion
matrices and image grids, and the fonts of a figure's language (``language``). Every figure
is written atomically as a PNG."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import warnings
from collections.abc import Iterator, Mapping

import numpy as np

from .atomic import atomic_write

MAX_TICKS = 40  # more classes than this on an axis: matplotlib's own ticks, not one per class
MAX_ANNOTATED = 900  # confusion-matrix cells (30 x 30) beyond which counts are unreadable

LANGS = ("en", "ja")  # the languages a figure's titles, axis labels and legends come in
LATIN_FONT = "DejaVu Sans"  # matplotlib's own font: the glyphs a Japanese font lacks
# Fonts with Japanese glyphs that a system may have, tried when matplotlib-fontja is missing.
JAPANESE_FONTS = (
    "IPAexGothic",
    "IPAGothic",
    "Noto Sans CJK JP",
    "Noto Sans JP",
    "Source Han Sans JP",
    "TakaoGothic",
    "VL Gothic",
    "Hiragino Sans",
    "Yu Gothic",
    "MS Gothic",
)
FONT_HINT = (
    "日本語のフォントが見つかりません。図の日本語を表示するには "
    "pip install 'scratchdl[notebooks]' で matplotlib-fontja を入れてください"
    "（いまは代わりのフォントで描くので、日本語の文字は表示されません）"
)


def pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(
            "figures need matplotlib, a dependency of scratchdl: pip install matplotlib"
        ) from e
    if "matplotlib.pyplot" not in sys.modules:  # a notebook keeps its own (inline) backend
        matplotlib.use("Agg")  # files only: no screen needed
    import matplotlib.pyplot as plt

    return plt


def check_lang(lang: object) -> str:
    """``lang`` if it is one of ``LANGS``; ValueError naming the choices otherwise."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
    return lang


def labels(table: Mapping[str, Mapping[str, str]], lang: str) -> Mapping[str, str]:
    """The strings of ``lang`` from an experiment's table ``{"en": {...}, "ja": {...}}``."""
    return table[check_lang(lang)]


def japanese_font() -> str | None:
    """The family name of a font with Japanese glyphs: matplotlib-fontja's IPAexGothic when it
    is installed, else the first of ``JAPANESE_FONTS`` that the system has; None if none."""
    import matplotlib
    from matplotlib import font_manager

    try:
        # importing it sets the global font (matplotlib.rc); the caller's settings are kept
        with matplotlib.rc_context():
            import matplotlib_fontja
    except ImportError:
        pass
    else:
        path = matplotlib_fontja.get_font_ttf_path()
        if not any(font.fname == path for font in font_manager.fontManager.ttflist):
            font_manager.fontManager.addfont(path)  # its import does it; a reload may not
        return font_manager.FontProperties(fname=path).get_name()
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in JAPANESE_FONTS if name in installed), None)


@contextlib.contextmanager
def language(lang: str) -> Iterator[None]:
    """Draw and save figures inside this block with the fonts of ``lang``.

    English leaves matplotlib's settings as they are. Japanese puts a font with Japanese
    glyphs first and LATIN_FONT after it, for the symbols it lacks; without one it prints
    FONT_HINT (once) and draws with LATIN_FONT alone: the figure is still written, its
    Japanese characters as empty boxes. Text takes its font when it is created, so the
    figure is built inside the block as well as saved.
    """
    import matplotlib

    if check_lang(lang) == "en":
        yield
        return
    family = japanese_font()
    with contextlib.ExitStack() as stack:
        if family is None:
            show_font_hint()
            stack.enter_context(warnings.catch_warnings())
            # one hint says it all; not one warning per missing character
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        fonts = [family, LATIN_FONT] if family else [LATIN_FONT]
        stack.enter_context(matplotlib.rc_context({"font.family": fonts}))
        stack.enter_context(_quiet_font_manager())
        yield


@contextlib.contextmanager
def _quiet_font_manager() -> Iterator[None]:
    """Japanese fonts often come in one weight: a bold title is drawn in the regular one,
    which matplotlib's font manager would report on stderr for every figure."""
    import logging

    log = logging.getLogger("matplotlib.font_manager")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@functools.cache  # once per process, not once per figure
def show_font_hint() -> None:
    """Print FONT_HINT to stderr, the first time only."""
    print(FONT_HINT, file=sys.stderr)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Render ``fig`` to PNG in memory, write it atomically and close it."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def smooth(values, window: int = 50) -> np.ndarray:
    """Moving average over ``window`` values (shorter at the start)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def learning_curve(history: dict, path: str | os.PathLike, title: str = "") -> None:
    """Loss per iteration (raw and smoothed) and train/test accuracy per epoch."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    loss = history["loss"]
    ax1.plot(loss, lw=0.5, alpha=0.35, color="tab:blue", label="loss per iteration")
    ax1.plot(smooth(loss), color="tab:blue", label="moving average")
    ax1.set(xlabel="iteration", ylabel="loss", title="training loss")
    ax1.set_yscale("log")
    ax1.legend()
    epochs = np.arange(1, len(history["train_acc"]) + 1)
    ax2.plot(epochs, history["train_acc"], "o-", label="train")
    ax2.plot(epochs, history["test_acc"], "s--", label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def confusion_matrix(
    t: np.ndarray, y: np.ndarray, num_classes: int, num_predicted: int | None = None
) -> np.ndarray:
    """Counts of (true class, predicted class); ``num_predicted`` columns where a model has
    more outputs than the data set has classes. Shape: (K, K) or (K, num_predicted)."""
    m = np.zeros((num_classes, num_predicted or num_classes), dtype=np.int64)
    np.add.at(m, (t, y), 1)
    return m


def plot_confusion_matrix(matrix: np.ndarray, path, class_names=None, title: str = "") -> None:
    """A confusion matrix (true classes x predicted classes) as an annotated heat map.

    ``class_names`` name the predicted classes (the columns), the first ones also the rows;
    classes beyond them are labelled by their index.
    """
    plt = pyplot()
    R, K = matrix.shape
    names = list(class_names or [])
    if len(names) > K:
        raise ValueError(f"{len(names)} class names for a matrix of {K} classes: {names}")
    names += [str(k) for k in range(len(names), K)]
    side = min(max(6.0, 0.4 * K), 20.0)  # inches: room for each class, up to a point
    fig, ax = plt.subplots(figsize=(side + 1, side * max(R / K, 0.3)))
    im = ax.imshow(matrix, cmap="Blues", aspect="auto")
    fig.colorbar(im, ax=ax)
    if K <= MAX_TICKS:
        ax.set_xticks(range(K), names, rotation=45 if max(map(len, names)) > 2 else 0)
    if R <= MAX_TICKS:
        ax.set_yticks(range(R), names[:R])
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    if R * K <= MAX_ANNOTATED:
        threshold = matrix.max() / 2
        for i, j in np.ndindex(R, K):
            color = "white" if matrix[i, j] > threshold else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    save_figure(fig, path)


def image_grid(
    images: np.ndarray, labels: list[str], path, cols: int = 10, title: str = ""
) -> None:
    """Grayscale images (N, H, W) in a grid, each with its caption."""
    plt = pyplot()
    n = max(len(images), 1)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, label in zip(axes.flat, images, labels, strict=False):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(label, fontsize=7)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
