"""`lang="ja"`: every experiment draws its titles, axis labels and legends in Japanese, in the
book's terms, and its numbers do not change; the Japanese font, and the hint when it is
missing; `scratchdl experiment --lang`."""

from __future__ import annotations

import json
import re
import sys

import pytest

from scratchdl.experiments import common, registry
from scratchdl.experiments.registry import EXPERIMENTS
from scratchdl.support import figures as plots

matplotlib = pytest.importorskip("matplotlib")

# The smallest settings that still draw every panel, on top of quick mode.
TINY = {
    "gradient-check": {"hidden_size": 4, "repeats": 2},
    "optimizer-compare": {"iterations": 20},
    "weight-init-compare": {"iterations": 20},
    "weight-init-histogram": {"samples": 50, "units": 20},
    "batchnorm": {"scales": 2, "train_size": 100, "epochs": 2},
    "overfit-weight-decay": {"epochs": 3},
    "overfit-dropout": {"epochs": 3},
    "hyperparameter-search": {"trials": 4, "epochs": 1, "train_size": 100},
    "filters": {"epochs": 1},
    "pooling-shift": {"images": 10},
    "layer-cost": {"batch_size": 4, "repeats": 1, "warmup": 0},
    "misclassified": {"epochs": 1, "images": 200},
    "half-float": {"epochs": 1, "images": 50},
}
# Measured times (they differ from run to run, whatever the language): left out of the
# comparison of the two runs' numbers.
TIMES = {
    "gradient-check": ("time_backprop_s", "time_numerical_s", "time_numerical_per_param_s"),
    "layer-cost": ("ms", "conv_share", "conv_share_simple", "conv_share_deep", "layers_ms"),
    "half-float": ("seconds",),
}
TIMES["gradient-check"] += ("speedup",)
TIMES["layer-cost"] += ("step_ms", "update_ms")

# Names that the book writes in Latin letters in its Japanese text and figures.
BOOK_NAMES = {
    *("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"),
    *("Xavier", "He", "std", "ReLU", "Sigmoid", "tanh", "Affine", "Convolution", "Pooling"),
    *("Batch", "Normalization", "Weight", "decay", "Dropout", "Max", "Data", "Augmentation"),
    *("AND", "NAND", "OR", "XOR", "MNIST", "SimpleConvNet", "DeepConvNet", "TwoLayerNet"),
    *("float", "BLAS", "ln", "scratchdl", "Trainer", "Augmenter", "numerical_diff", "AlexNet"),
}
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # kana and kanji
MATH = re.compile(r"\$[^$]*\$")  # mathtext: symbols, not words
WORD = re.compile(r"[A-Za-z][A-Za-z_]*[A-Za-z]")  # two letters or more; x, h, w are symbols


def figure_texts(fig) -> list[str]:
    """Every visible, non-empty text of a figure: titles, axis and tick labels, legends,
    annotations, bar labels, colour-bar labels, subfigures' titles."""
    from matplotlib.text import Text

    fig.canvas.draw()  # tick labels exist once the figure is laid out
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def english_words(texts: list[str]) -> set[str]:
    return {w for text in texts for w in WORD.findall(MATH.sub(" ", text))}


@pytest.fixture
def drawn(monkeypatch):
    """The texts of each figure an experiment saves, by file name."""
    seen = {}
    save = common.save_figure

    def keep_texts(fig, path, *args, **kwargs):
        seen[path.name] = figure_texts(fig)
        save(fig, path, *args, **kwargs)

    monkeypatch.setattr(common, "save_figure", keep_texts)
    return seen


def _without_times(name: str, numbers: dict) -> dict:
    return {k: v for k, v in numbers.items() if k not in TIMES.get(name, ())}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_japanese_figure_in_the_books_terms_and_the_same_numbers(name, tmp_path, drawn):
    numbers = {}
    for lang in ("en", "ja"):
        out = tmp_path / lang
        registry.run_one(
            name, out, seed=0, quick=True, progress=False, lang=lang, **TINY.get(name, {})
        )
        numbers[lang] = json.loads((out / f"{name}.json").read_text())
        texts = drawn.pop(f"{name}.png")
        if lang == "en":
            assert not [t for t in texts if JAPANESE.search(t)], f"{name}: Japanese in English"
            english = texts
        else:
            assert any(JAPANESE.search(t) for t in texts), texts
            stray = english_words(texts) - BOOK_NAMES
            assert not stray, f"{name}: English words in the Japanese figure: {sorted(stray)}"
            assert len(texts) >= len(english) // 2, "the Japanese figure lost its labels"
    assert _without_times(name, numbers["ja"]) == _without_times(name, numbers["en"])


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_string_has_both_languages(name):
    table = registry.load(name).LABELS
    assert set(table) == set(plots.LANGS)
    assert set(table["ja"]) == set(table["en"]), f"{name}: the two tables differ"
    assert JAPANESE.search(table["ja"]["title"])


def test_an_unknown_language_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="lang must be one of en, ja, got 'fr'"):
        registry.run_one("gates", tmp_path / "out", seed=0, quick=True, progress=False, lang="fr")
    assert not (tmp_path / "out").exists()


def test_without_a_japanese_font_a_hint_once_and_the_figure_still_drawn(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "matplotlib_fontja", None)  # import raises ImportError
    monkeypatch.setattr(plots, "JAPANESE_FONTS", ())  # nor one of the system's
    plots.show_font_hint.cache_clear()
    assert plots.japanese_font() is None
    for seed in (0, 1):
        registry.run_one("gates", tmp_path, seed=seed, quick=True, progress=False, lang="ja")
    assert (tmp_path / "gates.png").stat().st_size > 10_000
    err = capsys.readouterr().err
    assert err.count("pip install 'scratchdl[notebooks]'") == 1
    assert "Glyph" not in err
    plots.show_font_hint.cache_clear()


def test_matplotlib_fontja_gives_the_japanese_font_without_changing_the_global_one():
    pytest.importorskip("matplotlib_fontja")
    before = list(matplotlib.rcParams["font.family"])
    assert plots.japanese_font() == "IPAexGothic"
    assert list(matplotlib.rcParams["font.family"]) == before
    with plots.language("ja"):
        assert matplotlib.rcParams["font.family"][0] == "IPAexGothic"
    assert list(matplotlib.rcParams["font.family"]) == before


def test_command_line_lang(tmp_path, capsys):
    from scratchdl import cli

    argv = ["experiment", "gates", "--quick", "--quiet", "--out", str(tmp_path)]
    assert cli.main([*argv, "--lang", "ja"]) == 0
    assert (tmp_path / "gates.png").exists()
    capsys.readouterr()  # without matplotlib-fontja, the Japanese run printed its hint
    assert cli.main([*argv, "--lang", "fr"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fr" in err and "ja" in err


def test_all_in_japanese_writes_a_japanese_gallery(tmp_path, monkeypatch):
    from scratchdl import cli

    monkeypatch.setattr(registry, "EXPERIMENTS", ("gates", "receptive-field"))
    argv = ["experiment", "all", "--quick", "--quiet", "--lang", "ja", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    page = (tmp_path / "index.html").read_text()
    assert '<html lang="ja">' in page and "第2章" in page and "短時間版" in page
    assert registry.load("receptive-field").LABELS["ja"]["title"] in page
    assert "--lang ja" in page
