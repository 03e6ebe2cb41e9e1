"""The "tangent-line" experiment (ch4, gradient_1d.py): the numerical slopes of
0.01x² + 0.1x at x = 5 and 10 are the book's printed numbers, and the figure is drawn."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchdl.experiments import registry, tangent_line

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")

NAME = "tangent-line"
# The keys the module's docstring documents.
DOCUMENTED_KEYS = {
    "function",
    "x_range",
    "h",
    "points",
    "numerical_slopes",
    "exact_slopes",
    "error_vs_exact",
    "book_slopes",
    "difference_from_book",
    "tangent_lines",
    "forward_slopes",
    "forward_error_vs_exact",
    "curves",
    "h_sweep",
    "best_h_central",
}
BOOK_PRINTS = [0.1999999999990898, 0.2999999999986347]  # gradient_1d.py, x = 5 and 10


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("tangent")
    return registry.run_one(NAME, out, seed=0, quick=True, progress=False), out


def test_module_follows_the_contract():
    assert NAME in registry.EXPERIMENTS
    assert registry.EXPERIMENTS.index(NAME) == registry.EXPERIMENTS.index("gradient-descent") + 1
    assert registry.load(NAME) is tangent_line
    assert tangent_line.NAME == NAME and tangent_line.CHAPTER == 4
    assert len(tangent_line.EXPLANATION.split()) > 40
    assert set(tangent_line.KEY_NUMBERS) <= DOCUMENTED_KEYS


def test_slopes_are_the_books_printed_numbers(result):
    n, _ = result
    assert n["points"] == [5.0, 10.0] and n["h"] == 1e-4
    np.testing.assert_allclose(n["numerical_slopes"], [0.2, 0.3], rtol=0, atol=1e-9)
    # The same central difference in float64 as the book's: the same digits.
    np.testing.assert_allclose(n["numerical_slopes"], BOOK_PRINTS, rtol=0, atol=1e-15)
    assert n["book_slopes"] == BOOK_PRINTS
    assert max(abs(d) for d in n["difference_from_book"]) <= 1e-15
    # Off 0.2 and 0.3 by rounding only (~1e-12), not by the forward difference's 0.01 h.
    assert all(1e-14 < abs(e) < 1e-11 for e in n["error_vs_exact"])
    np.testing.assert_allclose(n["forward_error_vs_exact"], [1e-6, 1e-6], rtol=1e-5)


def test_tangent_lines_touch_the_curve_at_their_points(result):
    n, _ = result
    x = np.array(n["curves"]["x"])
    f = np.array(n["curves"]["f"])
    assert x[0] == 0 and 19.8 < x[-1] < 20 and len(x) == 200  # np.arange(0.0, 20.0, 0.1)
    for line, tangent in zip(n["tangent_lines"], n["curves"]["tangents"], strict=True):
        assert line["slope"] * line["x"] + line["intercept"] == pytest.approx(line["f"], abs=1e-12)
        assert np.all(np.array(tangent) <= f + 1e-9)  # f is convex: the line lies below it
    # h sweep: the central difference beats the forward one at the book's h
    sweep = n["h_sweep"]
    i = SWEEP_TEXT.index(json.dumps(1e-4))  # 1e-4 by its text, not a float found in the sweep
    assert sweep["central_error"][i] < 1e-3 * sweep["forward_error"][i]


# The sweep's steps as the JSON must print them: 1e-1 .. 1e-15, each the float nearest 1e-k.
SWEEP_TEXT = [json.dumps(float(f"1e-{k}")) for k in range(1, 16)]


def test_the_h_sweep_holds_exact_powers_of_ten_whatever_the_cpu(result):
    # numpy's vectorised 10.0 ** -np.arange(1, 16) gives 9.999999999999999e-06 (AVX2) and
    # 9.999999999999999e-05 (AVX-512, numpy 1.24), which the JSON then printed as the step
    numbers, out = result
    saved = json.loads((out / f"{NAME}.json").read_text())
    for n in (numbers, saved):
        assert [json.dumps(h) for h in n["h_sweep"]["h"]] == SWEEP_TEXT
        assert json.dumps(n["best_h_central"]) in SWEEP_TEXT
    errors = numbers["h_sweep"]["central_error"]
    assert numbers["best_h_central"] == numbers["h_sweep"]["h"][int(np.argmin(errors))]


def test_quick_run_writes_a_real_figure_and_the_documented_json(result):
    numbers, out = result
    with PIL.open(out / f"{NAME}.png") as im:
        im.load()
        assert min(im.size) > 300, im.size
        assert np.unique(np.asarray(im.convert("L"))).size > 20, "the figure looks blank"
    saved = json.loads((out / f"{NAME}.json").read_text())
    assert set(saved) == DOCUMENTED_KEYS == set(numbers)


def test_another_h_is_not_compared_with_the_book(tmp_path):
    n = tangent_line.run(tmp_path, quick=True, progress=False, h="1e-3", x_b=7)
    assert n["book_slopes"] == [None, None] and n["difference_from_book"] == [None, None]
    assert n["points"] == [5.0, 7.0]
    np.testing.assert_allclose(n["numerical_slopes"], [0.2, 0.24], atol=1e-9)


def test_unknown_option_raises(tmp_path):
    with pytest.raises(ValueError, match="no option bogus"):
        tangent_line.run(tmp_path, quick=True, progress=False, bogus=1)
    assert not list(tmp_path.iterdir())
