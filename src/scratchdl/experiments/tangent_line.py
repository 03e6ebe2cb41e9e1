"""Numerical differentiation: the tangent lines of 0.01x² + 0.1x at x = 5 and 10 (book ch4).

The book's ``gradient_1d.py`` differentiates f(x) = 0.01 x**2 + 0.1 x with the central
difference (f(x + h) - f(x - h)) / 2h, h = 1e-4, prints 0.1999999999990898 at x = 5 and
0.2999999999986347 at x = 10 (the exact derivative 0.02 x + 0.1 gives 0.2 and 0.3), and draws
f on 0 <= x <= 20 with the tangent line y = d t + (f(x) - d x) through each point (figure 4-7).
Everything here uses ``scratchdl.gradient.numerical_diff``, like the book. The third panel is
ours: the error of the central and the forward difference at the first point as h shrinks.

JSON keys:
    function, x_range        f and the drawn interval [0, 20] (the book's np.arange(0, 20, 0.1))
    h                        the step of the central difference (the book's 1e-4)
    points                   where the tangents touch (the book's 5 and 10)
    numerical_slopes         numerical_diff(f, x, h) at each point
    exact_slopes             0.02 x + 0.1 at each point
    error_vs_exact           numerical - exact slope at each point
    book_slopes              what the book prints for each point (null where the point or h
                             is not the book's)
    difference_from_book     numerical slope - the book's (null where the book has none)
    tangent_lines            per point: x, f(x), slope d and intercept f(x) - d x
    forward_slopes           the forward difference (f(x + h) - f(x)) / h at each point
    forward_error_vs_exact   its error: h f''/2 = 0.01 h, which the central difference cancels
    curves                   {"x", "f", "tangents"}: the values drawn
    h_sweep                  {"x", "h", "central_error", "forward_error"}: |slope - exact| at the
                             first point for h = 1e-1 .. 1e-15
    best_h_central           the h of the sweep with the smallest central error
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..gradient import numerical_diff
from ..support.figures import labels, language, pyplot
from . import common
from .common import Setting

NAME = "tangent-line"
CHAPTER = 4
TITLE = "Numerical differentiation: the tangent lines of 0.01x² + 0.1x at x = 5 and 10"
EXPLANATION = """The book's figure 4-7: f(x) = 0.01x² + 0.1x on 0 <= x <= 20 with its tangent
lines at x = 5 (left) and x = 10 (middle), each slope computed by numerical differentiation,
the central difference (f(x + h) - f(x - h)) / 2h with h = 1e-4. The slopes are 0.2 and 0.3 up
to about 1e-12 (the book prints 0.1999999999990898 and 0.2999999999986347, and so do we), and
each line touches the curve at its point only. The right panel (ours) shows what the step h
does: the error of the slope at x = 5 against h, log-log. The forward difference
(f(x + h) - f(x)) / h is off by 0.01 h, which shrinks with h; the central difference's leading
error is h² times the third derivative / 6, which is 0 for a quadratic, so all its error is
rounding, and rounding grows as h shrinks: f(x + h) - f(x - h) cancels more and more digits.
Below about 1e-8 both are mostly rounding; the book's bad example h = 1e-50 is 0 in float32
and the quotient breaks down altogether. h = 1e-4 is the book's compromise for functions in
general, not the best h for this one."""
KEY_NUMBERS = ("numerical_slopes", "book_slopes", "difference_from_book", "forward_slopes")

X_RANGE = (0.0, 20.0)  # the book's np.arange(0.0, 20.0, 0.1)
X_STEP = 0.1
BOOK_H = 1e-4
BOOK_SLOPES = {5.0: 0.1999999999990898, 10.0: 0.2999999999986347}  # gradient_1d.py's prints
# h = 1e-1 .. 1e-15 for the error panel, each the float nearest 1e-k, parsed from its text:
# numpy's vectorised power (10.0 ** -np.arange(1, 16)) gives 9.999999999999999e-06 for 1e-5
# on AVX2 and more such values on AVX-512, which the JSON would then report
SWEEP_H = tuple(float(f"1e-{k}") for k in range(1, 16))

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "tangent": "tangent, slope {slope!r}",
        "tangent_at": "tangent at x = {x:g} (numerical_diff, h = {h:g})",
        "forward": "forward (f(x+h) - f(x)) / h",
        "central": "central (f(x+h) - f(x-h)) / 2h",
        "book_h": "the book's h = 1e-4",
        "error": "|slope - exact| at x = {x:g}",
        "error_title": "error of the numerical derivative",
    },
    "ja": {
        "title": "数値微分: 0.01x² + 0.1x の x = 5 と 10 での接線",
        "tangent": "接線、傾き {slope!r}",
        "tangent_at": "x = {x:g} での接線（numerical_diff、h = {h:g}）",
        "forward": "前方差分 (f(x+h) - f(x)) / h",
        "central": "中心差分 (f(x+h) - f(x-h)) / 2h",
        "book_h": "本書の h = 1e-4",
        "error": "x = {x:g} での |傾き - 真の値|",
        "error_title": "数値微分の誤差",
    },
}

SETTINGS = {
    "x_a": Setting(5.0, X_RANGE[0], X_RANGE[1]),  # the book's first tangent point
    "x_b": Setting(10.0, X_RANGE[0], X_RANGE[1]),  # the book's second
    "h": Setting(BOOK_H, 0.0, 1.0, low_open=True),  # the book's step
}


def function_1(x):
    """The book's f(x) = 0.01 x**2 + 0.1 x."""
    return 0.01 * x**2 + 0.1 * x


def exact_diff(x):
    """f'(x) = 0.02 x + 0.1, to compare the numerical slopes with."""
    return 0.02 * x + 0.1


def forward_diff(f, x: float, h: float) -> float:
    """The forward difference (f(x + h) - f(x)) / h: the book's first, poorer attempt."""
    return (f(x + h) - f(x)) / h


def run(
    out: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    lang: str = "en",
    **options,
) -> dict:
    """f, its two tangent lines and the error against h; writes tangent-line.png/json."""
    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    h = opts["h"]
    points = [opts["x_a"], opts["x_b"]]

    slopes = [float(numerical_diff(function_1, x, h)) for x in points]
    exact = [float(exact_diff(x)) for x in points]
    book = [BOOK_SLOPES.get(x) if h == BOOK_H else None for x in points]
    forward = [float(forward_diff(function_1, x, h)) for x in points]
    lines = [
        {"x": x, "f": function_1(x), "slope": d, "intercept": function_1(x) - d * x}
        for x, d in zip(points, slopes, strict=True)
    ]

    x = np.arange(*X_RANGE, X_STEP)
    tangents = [line["slope"] * x + line["intercept"] for line in lines]
    x0 = points[0]
    sweep = {
        "x": x0,
        "h": list(SWEEP_H),
        "central_error": [abs(numerical_diff(function_1, x0, s) - exact_diff(x0)) for s in SWEEP_H],
        "forward_error": [abs(forward_diff(function_1, x0, s) - exact_diff(x0)) for s in SWEEP_H],
    }
    numbers = {
        "function": "f(x) = 0.01*x**2 + 0.1*x",
        "x_range": list(X_RANGE),
        "h": h,
        "points": points,
        "numerical_slopes": slopes,
        "exact_slopes": exact,
        "error_vs_exact": [d - e for d, e in zip(slopes, exact, strict=True)],
        "book_slopes": book,
        "difference_from_book": [
            None if b is None else d - b for d, b in zip(slopes, book, strict=True)
        ],
        "tangent_lines": lines,
        "forward_slopes": forward,
        "forward_error_vs_exact": [d - e for d, e in zip(forward, exact, strict=True)],
        "curves": {"x": x, "f": function_1(x), "tangents": tangents},
        "h_sweep": sweep,
        "best_h_central": float(SWEEP_H[int(np.argmin(sweep["central_error"]))]),
    }
    with language(lang):
        fig = _figure(x, lines, sweep, h, text)
        return common.save_result(out, NAME, fig, numbers)


def _figure(x, lines, sweep, h, text):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3), layout="constrained")
    for ax, line in zip(axes[:2], lines, strict=True):
        ax.plot(x, function_1(x), color="tab:blue", lw=2, label="f(x) = 0.01x² + 0.1x")
        ax.plot(
            x,
            line["slope"] * x + line["intercept"],
            color="tab:orange",
            ls="--",
            lw=1.5,
            label=text["tangent"].format(slope=line["slope"]),
        )
        ax.plot(line["x"], line["f"], "o", color="tab:red", ms=6)
        ax.set(
            xlabel="x",
            ylabel="f(x)",
            title=text["tangent_at"].format(x=line["x"], h=h),
            xlim=(x[0], x[-1] + X_STEP),
        )
        ax.legend(loc="upper left", fontsize=9)
        ax.grid(alpha=0.3)

    ax = axes[2]
    floor = np.finfo(np.float64).eps * exact_diff(sweep["x"]) / 10  # where an error of 0 is drawn
    for key, style, label in (
        ("forward_error", "s-", text["forward"]),
        ("central_error", "o-", text["central"]),
    ):
        ax.loglog(sweep["h"], np.maximum(sweep[key], floor), style, ms=4, label=label)
    ax.axvline(BOOK_H, color="gray", ls=":", lw=1)
    ax.annotate(
        text["book_h"],
        xy=(BOOK_H, 1e-9),
        xytext=(-4, 0),
        textcoords="offset points",
        ha="right",
        fontsize=9,
    )
    ax.invert_xaxis()  # h shrinks to the right, as in "take h to 0"
    ax.set(
        xlabel="h",
        ylabel=text["error"].format(x=sweep["x"]),
        title=text["error_title"],
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    return fig
