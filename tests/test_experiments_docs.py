"""docs/experiments.md and docs/experiments.ja.md: every link resolves inside the repository,
every experiment's figure is shown (the Japanese page shows the Japanese figures), and the
numbers quoted come from the run that drew the figures beside them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scratchdl.experiments.registry import EXPERIMENTS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = {"en": DOCS / "experiments.md", "ja": DOCS / "experiments.ja.md"}
FIGURES = {"en": DOCS / "figures", "ja": DOCS / "figures" / "ja"}
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
CODE_PATH = re.compile(r"`(\.\./[^`\s]*)`")  # a relative path quoted as code: `../x/y`
# a file of the repository quoted as code: `tests/test_x.py`, `benchmarks/RESULTS.md`
REPO_FILE = re.compile(r"`((?:src|tests|docs|benchmarks|scripts|notebooks)/[\w./-]+\.(?:py|md))`")


def _inside_repository(target: Path) -> bool:
    return target.resolve().is_relative_to(ROOT)


@pytest.mark.parametrize("lang", PAGES)
def test_every_link_resolves_to_a_file_of_the_repository(lang):
    page = PAGES[lang]
    text = page.read_text()
    links = LINK.findall(text)
    assert len(links) > len(EXPERIMENTS), "the page lost its figures"
    outside = [t for t in links if "://" in t or t.startswith("/")]
    assert not outside, f"{page.name} links outside the repository: {outside}"
    for target in links + CODE_PATH.findall(text):
        path = (page.parent / target.split("#")[0]).resolve()
        assert _inside_repository(path), f"{page.name}: {target} lies outside the repository"
        assert path.exists(), f"{page.name}: {target} does not exist"
    for name in REPO_FILE.findall(text):  # files renamed or split since the page was written
        assert (ROOT / name).is_file(), f"{page.name} names {name}, which does not exist"


@pytest.mark.parametrize("lang", PAGES)
def test_every_experiment_is_shown_with_its_figure_in_the_pages_language(lang):
    text = PAGES[lang].read_text()
    folder = FIGURES[lang].relative_to(DOCS).as_posix()
    for name in EXPERIMENTS:
        assert f"]({folder}/{name}.png)" in text, f"{name}: no figure on {PAGES[lang].name}"
        assert (FIGURES[lang] / f"{name}.json").exists(), f"{name}: the figure's numbers"


def _numbers(lang: str, name: str) -> dict:
    return json.loads((FIGURES[lang] / f"{name}.json").read_text())


@pytest.mark.parametrize("lang", PAGES)
def test_the_pages_numbers_are_those_of_its_figures(lang):
    """A few numbers of each chapter, as the page writes them, from the JSON of its figures."""
    text = PAGES[lang].read_text()
    search = _numbers(lang, "hyperparameter-search")["best"]
    wrong = _numbers(lang, "misclassified")
    quoted = {
        "best lr": f"{search['lr']:.2g}",
        "best validation accuracy": f"{search['val_acc']:.2f}",
        "misclassified": f"{wrong['n_misclassified']}",
        "roughness after training": f"{_numbers(lang, 'filters')['roughness_after']:.2f}",
        "batchnorm scales learned": f"{_numbers(lang, 'batchnorm')['scales_learned']['batchnorm']}",
    }
    for what, value in quoted.items():
        assert value in text, f"{PAGES[lang].name}: {what} {value} of the figures' run is missing"


# Measured times, which no two runs share.
TIMES = {
    "gradient-check": {"time_backprop_s", "time_numerical_s", "time_numerical_per_param_s"},
    "layer-cost": {"ms", "conv_share", "conv_share_simple", "conv_share_deep", "layers_ms"},
    "half-float": {"seconds"},
}
TIMES["gradient-check"] |= {"speedup"}
TIMES["layer-cost"] |= {"step_ms", "update_ms"}


def test_the_two_runs_agree_on_every_number_but_the_times():
    """The English and the Japanese figures come from runs of the same code and seed."""
    for name in EXPERIMENTS:
        en, ja = _numbers("en", name), _numbers("ja", name)
        for key in TIMES.get(name, ()):
            del en[key], ja[key]
        assert en == ja, f"{name}: the English and Japanese runs differ"
