"""Six optimizers on f(x, y) = x**2/20 + y**2, the book's figure 6-8 (ch6).

f is stretched: 20 times flatter along x than along y, so its gradient points mostly along
y, not at the minimum (0, 0). The book runs SGD (lr 0.95), Momentum (0.1), AdaGrad (1.5) and
Adam (0.3) for 30 steps from (-7, 2) with the exact gradient (df/dx = x/10, df/dy = 2y) and
draws their paths; we add Nesterov (lr 0.1, the same as Momentum, momentum 0.9) and RMSprop
(lr 0.1, decay 0.99: its first step is about 10 * lr per coordinate, so 0.1 stays on the
figure). The optimizers are ``scratchdl.optimizers`` with their default other settings.

JSON keys:
    function, init, steps       the problem
    learning_rates              optimizer -> lr used
    optimizers                  optimizer -> repr (every hyperparameter)
    paths                       optimizer -> [[x, y], ...], steps + 1 points, start included
    final_points                optimizer -> [x, y] after ``steps`` updates
    final_f                     optimizer -> f at the final point
    final_distance              optimizer -> distance of the final point from (0, 0)
    vertical_travel             optimizer -> sum |y_k+1 - y_k|, the total up-and-down motion:
                                |y0| = 2 for a path that never zigzags
    closest_to_minimum          the optimizer with the smallest final_distance
    closer_than_sgd             optimizer -> whether final_distance is below SGD's
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
from ..support.figures import labels, language, pyplot
from . import common
from .common import Setting, count, positive

NAME = "optimizer-paths"
CHAPTER = 6
TITLE = "SGD, Momentum, Nesterov, AdaGrad, RMSprop and Adam on x²/20 + y²"
EXPLANATION = """The book's figure 6-8: each optimizer takes 30 steps from (-7, 2) towards
the minimum (0, 0) of f(x, y) = x²/20 + y², whose contour lines are flat ellipses. The
gradient there points mostly up or down, not towards the minimum, so plain SGD zigzags across
the valley while creeping along x. Momentum (and Nesterov) roll like a ball in a bowl: they
build up speed along x and overshoot, but swing less than SGD. AdaGrad and RMSprop divide each
coordinate's step by the size of its past gradients, so the steep y direction is damped at
once and they head almost straight for the minimum; Adam combines both ideas. Read each panel's
distance d from the minimum at the end and how much the path moves up and down."""
KEY_NUMBERS = ("final_distance", "final_f", "vertical_travel", "closest_to_minimum")

SETTINGS = {
    "sgd_lr": positive(0.95),  # the book's figure 6-8
    "momentum_lr": positive(0.1),  # the book's figure 6-8
    "nesterov_lr": positive(0.1),  # ours: as Momentum, for a like-for-like comparison
    "adagrad_lr": positive(1.5),  # the book's figure 6-8
    "rmsprop_lr": positive(0.1),  # ours
    "adam_lr": positive(0.3),  # the book's figure 6-8
    "steps": count(30),  # the book's figure 6-8
    "init_x": Setting(-7.0),
    "init_y": Setting(2.0),
}
OPTIMIZERS = {
    "SGD": SGD,
    "Momentum": Momentum,
    "Nesterov": Nesterov,
    "AdaGrad": AdaGrad,
    "RMSprop": RMSprop,
    "Adam": Adam,
}

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "panel": "{name} (lr={lr:g})\nd={d:.3g}, f={f:.2g}, vertical travel {travel:.1f}",
        "suptitle": (
            "{steps} steps from ({x:g}, {y:g}) on $f = x^2/20 + y^2$ "
            "(square: start, +: minimum, d: final distance from it)"
        ),
    },
    "ja": {
        "title": "x²/20 + y² での SGD、Momentum、Nesterov、AdaGrad、RMSprop、Adam",
        "panel": "{name}（学習率 {lr:g}）\nd={d:.3g}、f={f:.2g}、縦方向の移動 {travel:.1f}",
        "suptitle": (
            "$f = x^2/20 + y^2$ の上で ({x:g}, {y:g}) から {steps} ステップ"
            "（四角: 出発点、+: 最小値、d: 最後の点の最小値からの距離）"
        ),
    },
}


def f(x, y):
    """The book's f(x, y) = x**2 / 20 + y**2."""
    return x**2 / 20.0 + y**2


def df(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact gradient of f: (x / 10, 2 y)."""
    return x / 10.0, 2.0 * y


def run(
    out: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    lang: str = "en",
    **options,
) -> dict:
    """Thirty steps of each optimizer from (-7, 2); writes optimizer-paths.png/json."""
    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    lrs = {name: opts[f"{name.lower()}_lr"] for name in OPTIMIZERS}
    optimizers = {name: cls(lr=lrs[name]) for name, cls in OPTIMIZERS.items()}
    paths = {name: _path(opt, opts) for name, opt in optimizers.items()}

    final = {name: path[-1] for name, path in paths.items()}
    distance = {name: float(np.hypot(*p)) for name, p in final.items()}
    numbers = {
        "function": "f(x, y) = x**2 / 20 + y**2",
        "init": [opts["init_x"], opts["init_y"]],
        "steps": opts["steps"],
        "learning_rates": lrs,
        "optimizers": {name: repr(opt) for name, opt in optimizers.items()},
        "paths": paths,
        "final_points": {name: p.tolist() for name, p in final.items()},
        "final_f": {name: float(f(*p)) for name, p in final.items()},
        "final_distance": distance,
        "vertical_travel": {
            name: float(np.abs(np.diff(path[:, 1])).sum()) for name, path in paths.items()
        },
        "closest_to_minimum": min(distance, key=distance.get),
        "closer_than_sgd": {name: d < distance["SGD"] for name, d in distance.items()},
    }
    with language(lang):
        return common.save_result(out, NAME, _figure(paths, numbers, text), numbers)


def _path(optimizer, opts: dict) -> np.ndarray:
    """The points visited by ``optimizer`` from (init_x, init_y). Shape: (steps + 1, 2)."""
    params = {"x": np.array([opts["init_x"]]), "y": np.array([opts["init_y"]])}
    path = [(opts["init_x"], opts["init_y"])]
    for _ in range(opts["steps"]):
        dx, dy = df(params["x"], params["y"])
        optimizer.update(params, {"x": dx, "y": dy})  # in place, as on a network's weights
        path.append((params["x"][0], params["y"][0]))
    return np.array(path)


def _figure(paths: dict, numbers: dict, text: dict):
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True, sharey=True, layout="constrained")
    gx, gy = np.meshgrid(np.linspace(-10, 10, 201), np.linspace(-5, 5, 101))
    levels = [0.05, 0.25, 0.5, 1, 2, 4, 7, 11, 16]
    for ax, (name, path) in zip(axes.flat, paths.items(), strict=True):
        ax.contour(gx, gy, f(gx, gy), levels=levels, colors="gray", linewidths=0.6)
        ax.plot(*path.T, "o-", color="tab:red", ms=3, lw=1.2)
        ax.plot(*path[0], "ks", ms=6)
        ax.plot(0, 0, "b+", ms=12, mew=2)
        title = text["panel"].format(
            name=name,
            lr=numbers["learning_rates"][name],
            d=numbers["final_distance"][name],
            f=numbers["final_f"][name],
            travel=numbers["vertical_travel"][name],
        )
        ax.set_title(title, fontsize=10)
        ax.set(xlim=(-10, 10), ylim=(-5, 5), xticks=range(-10, 11, 5))
    for ax in axes[-1]:
        ax.set_xlabel("x")
    for ax in axes[:, 0]:
        ax.set_ylabel("y")
    x, y = numbers["init"]
    fig.suptitle(text["suptitle"].format(steps=numbers["steps"], x=x, y=y))
    return fig
