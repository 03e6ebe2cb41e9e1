"""The gradient as a field of arrows, and gradient descent with three learning rates (book ch4).

For f(x0, x1) = x0**2 + x1**2 the book draws the negative gradient, computed by central
differences, as arrows pointing to the minimum (figure 4-9), then runs gradient descent from
(-3, 4) with lr = 0.1 for 20 steps (figure 4-10), and shows in the text that lr = 10 diverges
and lr = 1e-10 hardly moves (after 100 steps). Everything here uses
``scratchdl.gradient.numerical_gradient`` / ``gradient_descent``, like the book.

JSON keys:
    function, init_x           f and the starting point
    step_num                   steps of the drawn paths (the book's figure: 20)
    learning_rates             {"lr": 0.1, "large_lr": 10.0, "small_lr": 1e-10} (the options)
    final_points               same keys -> the point after ``step_num`` steps
    final_distance             same keys -> its distance from the minimum (0, 0)
    paths                      same keys -> every point visited, the start included
    text_step_num              steps of the book's printed results (100)
    final_points_text          same keys -> the point after ``text_step_num`` steps
    large_lr_frozen_from_step  first step after which the lr = 10 run stops moving (null if it
                               never does): once |x| ~ 1e13, x + h rounds to x in float64,
                               so the central difference returns 0
    large_lr_exact_distance    where exact gradients would take it: |init_x| * |1 - 2 lr|**step_num
    field                      {"x0", "x1", "grad"}: the arrows' grid and numerical gradients
    field_max_error            max |numerical gradient - 2 x| over the grid
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..gradient import gradient_descent, numerical_gradient
from ..support.figures import labels, language, pyplot
from . import common
from .common import Setting, count, positive

NAME = "gradient-descent"
CHAPTER = 4
TITLE = "The gradient field of x0² + x1² and gradient descent with three learning rates"
EXPLANATION = """The left panel is the book's figure 4-9: the negative gradient of
f(x0, x1) = x0² + x1², computed by numerical differentiation at every grid point, drawn as
arrows. They all point to the minimum at (0, 0) and get longer farther from it. The middle
panel is figure 4-10: gradient descent from (-3, 4) with learning rate 0.1, 20 steps, over the
contour lines of f; each step is a fixed fraction of the way to the minimum, so the steps
shrink. The right panel compares learning rates by the distance from the minimum after each
step (log scale): 0.1 converges geometrically, 1e-10 barely leaves the start, and 10 overshoots
further each step (x -> -19 x) until the numbers are so large that the numerical gradient
itself breaks down (x + h == x in float64) and the point freezes, far from the minimum."""
KEY_NUMBERS = ("final_points", "final_distance", "final_points_text", "field_max_error")

SETTINGS = {
    "lr": positive(0.1),  # the book's learning rate
    "large_lr": positive(10.0),  # the book's "too large" example
    "small_lr": positive(1e-10),  # the book's "too small" example
    "step_num": count(20),  # the book's figure 4-10
    "text_step_num": count(100),  # the book's printed results
    "init_x0": Setting(-3.0),
    "init_x1": Setting(4.0),
}
RUNS = ("lr", "large_lr", "small_lr")
FIELD = np.arange(-2.0, 2.5, 0.25)  # the book's grid for figure 4-9

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "field": "$-\\nabla f$ (numerical) of $f = x_0^2 + x_1^2$",
        "lr": "lr = {lr:g}",
        "small_lr": "lr = {lr:g} (end point: stays at the start)",
        "descent": "descent from ({x0:g}, {x1:g}), {steps} steps",
        "exact": "lr = {lr:g}, exact gradient",
        "frozen": "x + h == x in float64:\nnumerical gradient = 0",
        "step": "step",
        "distance": "distance from the minimum (0, 0)",
        "three": "three learning rates",
    },
    "ja": {
        "title": "x0² + x1² の勾配と、3 つの学習率での勾配降下法",
        "field": "$f = x_0^2 + x_1^2$ の $-\\nabla f$（数値微分）",
        "lr": "学習率 {lr:g}",
        "small_lr": "学習率 {lr:g}（終点: 出発点のまま）",
        "descent": "({x0:g}, {x1:g}) から {steps} ステップの勾配降下法",
        "exact": "学習率 {lr:g}、正確な勾配",
        "frozen": "float64 では x + h == x:\n数値微分の勾配 = 0",
        "step": "ステップ",
        "distance": "最小値 (0, 0) からの距離",
        "three": "3 つの学習率",
    },
}


def function_2(x: np.ndarray) -> float:
    """The book's f(x0, x1) = x0**2 + x1**2."""
    return float(np.sum(x**2))


def run(
    out: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    lang: str = "en",
    **options,
) -> dict:
    """Gradient field and descent paths; writes gradient-descent.png/json."""
    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    init_x = np.array([opts["init_x0"], opts["init_x1"]])
    lrs = {key: opts[key] for key in RUNS}

    x0, x1 = np.meshgrid(FIELD, FIELD)
    points = np.stack([x0.ravel(), x1.ravel()], axis=1)
    grad = np.array([numerical_gradient(function_2, p.copy()) for p in points])

    paths, finals_text = {}, {}
    for key, lr in lrs.items():
        _, paths[key] = gradient_descent(function_2, init_x, lr=lr, step_num=opts["step_num"])
        finals_text[key], _ = gradient_descent(
            function_2, init_x, lr=lr, step_num=opts["text_step_num"]
        )
    large = paths["large_lr"]
    still = np.flatnonzero(np.all(large[1:] == large[:-1], axis=1))
    numbers = {
        "function": "f(x0, x1) = x0**2 + x1**2",
        "init_x": init_x,
        "step_num": opts["step_num"],
        "learning_rates": lrs,
        "final_points": {key: path[-1].tolist() for key, path in paths.items()},
        "final_distance": {key: float(np.hypot(*path[-1])) for key, path in paths.items()},
        "paths": paths,
        "text_step_num": opts["text_step_num"],
        "final_points_text": {key: x.tolist() for key, x in finals_text.items()},
        "large_lr_frozen_from_step": int(still[0]) if still.size else None,
        "large_lr_exact_distance": float(
            np.hypot(*init_x) * abs(1 - 2 * lrs["large_lr"]) ** opts["step_num"]
        ),
        "field": {"x0": FIELD, "x1": FIELD, "grad": grad.reshape(*x0.shape, 2)},
        "field_max_error": float(np.abs(grad - 2 * points).max()),
    }
    with language(lang):
        fig = _figure(x0, x1, grad, paths, lrs, init_x, numbers["large_lr_frozen_from_step"], text)
        return common.save_result(out, NAME, fig, numbers)


def _figure(x0, x1, grad, paths, lrs, init_x, frozen, text):
    plt = pyplot()
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4.5), layout="constrained")
    ax1.quiver(
        x0.ravel(), x1.ravel(), -grad[:, 0], -grad[:, 1], angles="xy", color="#555555", width=0.004
    )
    ax1.plot(0, 0, "r+", ms=12, mew=2)
    ax1.set(
        xlim=(-2.25, 2.25),
        ylim=(-2.25, 2.25),
        xlabel="$x_0$",
        ylabel="$x_1$",
        title=text["field"],
        aspect="equal",
    )
    ax1.grid(alpha=0.3)

    r = np.linspace(-4.5, 4.5, 200)
    g0, g1 = np.meshgrid(r, r)
    ax2.contour(g0, g1, g0**2 + g1**2, levels=np.arange(1, 6) ** 2, colors="gray", linewidths=0.7)
    ax2.plot(*paths["lr"].T, "o-", color="tab:blue", ms=4, label=text["lr"].format(lr=lrs["lr"]))
    ax2.plot(
        *paths["small_lr"][-1],
        "s",
        color="tab:green",
        ms=7,
        label=text["small_lr"].format(lr=lrs["small_lr"]),
    )
    ax2.plot(0, 0, "r+", ms=12, mew=2)
    ax2.set(
        xlim=(-4.5, 4.5),
        ylim=(-4.5, 4.5),
        xlabel="$x_0$",
        ylabel="$x_1$",
        title=text["descent"].format(x0=init_x[0], x1=init_x[1], steps=len(paths["lr"]) - 1),
        aspect="equal",
    )
    ax2.legend(loc="lower right", fontsize=8)

    styles = {
        "lr": ("tab:blue", "o-"),
        "large_lr": ("tab:red", "^-"),
        "small_lr": ("tab:green", "s-"),
    }
    for key, path in paths.items():
        colour, style = styles[key]
        label = text["lr"].format(lr=lrs[key])
        ax3.semilogy(np.hypot(*path.T), style, color=colour, ms=4, label=label)
    steps = np.arange(len(paths["large_lr"]))
    exact = np.hypot(*init_x) * abs(1 - 2 * lrs["large_lr"]) ** steps  # x -> (1 - 2 lr) x
    label = text["exact"].format(lr=lrs["large_lr"])
    ax3.semilogy(steps, exact, ":", color="tab:red", label=label)
    if frozen is not None:
        ax3.annotate(
            text["frozen"],
            xy=(frozen + 3, np.hypot(*paths["large_lr"][-1])),
            xytext=(0.5, 0.3),
            textcoords="axes fraction",
            fontsize=8,
            arrowprops={"arrowstyle": "->", "color": "tab:red"},
        )
    ax3.xaxis.get_major_locator().set_params(integer=True)
    ax3.set(xlabel=text["step"], ylabel=text["distance"], title=text["three"])
    ax3.grid(alpha=0.3, which="both")
    ax3.legend(loc="upper left", fontsize=8)
    return fig
