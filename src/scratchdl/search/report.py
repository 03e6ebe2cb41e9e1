"""What a search leaves for its user: the ranking, ``best.json``, a table of the top trials,
and ``search.png``: the book's figure of the best trials' validation curves (fig. 6-24)
beside a map of validation accuracy over learning rate x weight decay."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..support.atomic import atomic_write
from .journal import naming
from .space import Range

BEST_FILE = "best.json"
FIGURE_FILE = "search.png"
CURVES_SHOWN = 10  # the book shows the best 20; 10 stay readable beside the map
CURVE_COLUMNS = 5
MARGIN = 0.15  # decades shown beyond a log range, so that points on its edge stay visible


def ranking(records: Sequence[dict]) -> list[dict]:
    """The records, best validation accuracy first (diverged trials last, then by index),
    each with its ``rank`` (1 = best)."""
    order = sorted(
        records, key=lambda r: (r["val_acc"] is None, -(r["val_acc"] or 0.0), r["trial"])
    )
    return [{"rank": k + 1, **r} for k, r in enumerate(order)]


def summary(record: dict) -> dict:
    """A ranked record without its per-epoch curves."""
    return {k: v for k, v in record.items() if not k.endswith("_curve")}


def best(ranked: list[dict]) -> dict | None:
    """The best trial that finished without diverging; None when every trial diverged (a
    diverged trial has no accuracy, so it cannot be the best)."""
    return next((r for r in ranked if not r["diverged"]), None)


def write_best(out: Path, ranked: list[dict], settings: dict, top: int) -> Path:
    """``out/best.json``: the best trial (null when none finished without diverging), the
    ``top`` best, counts and the settings; strict JSON (no NaN, no Infinity)."""
    path = out / BEST_FILE
    winner = best(ranked)
    numbers = {
        "best": None if winner is None else summary(winner),
        "top": [summary(r) for r in ranked[:top]],
        "finished": len(ranked),
        "diverged": sum(r["diverged"] for r in ranked),
        "settings": settings,
    }
    text = json.dumps(numbers, indent=1, allow_nan=False)
    with naming(path):
        atomic_write(path, text.encode())
    return path


def table(ranked: list[dict], top: int) -> str:
    """The ``top`` best trials as a text table, and a last line saying so when no trial
    finished without diverging."""
    names = [k for k in (ranked[0]["params"] if ranked else {})]
    head = "rank  val acc  train acc  " + "".join(f"{n:>13}" for n in names)
    lines = [head + "  trial  seconds  worker"]
    for r in ranked[:top]:
        val = "diverged" if r["val_acc"] is None else f"{r['val_acc']:.4f}"
        train = "-" if r["train_acc"] is None else f"{r['train_acc']:.4f}"
        values = "".join(f"{r['params'][n]:13.3e}" for n in names)
        lines.append(
            f"{r['rank']:>4}  {val:>7}  {train:>9}  {values}  {r['trial']:>5}  "
            f"{r['seconds']:7.1f}  {r['worker']}"
        )
    if best(ranked) is None:
        lines.append(f"no trial finished: all {len(ranked)} diverged, so there is no best")
    return "\n".join(lines)


def draw(ranked: list[dict], space: Sequence[Range], title: str):
    """The figure: the best trials' accuracy per epoch (validation solid, training dashed),
    and every trial at its (lr, weight decay), coloured by validation accuracy."""
    from ..support.figures import pyplot

    plt = pyplot()
    shown = [r for r in ranked if not r["diverged"]][:CURVES_SHOWN]  # a diverged run has none
    rows = max(1, math.ceil(len(shown) / CURVE_COLUMNS))
    fig = plt.figure(figsize=(17, 3.1 * max(rows, 2)), layout="constrained")
    grid = fig.add_gridspec(max(rows, 2), CURVE_COLUMNS + 3)
    for k, r in enumerate(shown):
        ax = fig.add_subplot(grid[k // CURVE_COLUMNS, k % CURVE_COLUMNS])
        epochs = np.arange(1, len(r["val_acc_curve"]) + 1)
        ax.plot(epochs, r["val_acc_curve"], color="tab:blue", label="validation")
        ax.plot(epochs, r["train_acc_curve"], color="tab:orange", ls="--", label="training")
        val = "diverged" if r["val_acc"] is None else f"val {r['val_acc']:.3f}"
        ax.set_title(
            f"Best-{r['rank']} ({val})\n" + ", ".join(_short(n, v) for n, v in r["params"].items()),
            fontsize=8,
        )
        ax.set(ylim=(0, 1.02), xlim=(1, max(len(epochs), 2)))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.tick_params(labelsize=7)
        if k % CURVE_COLUMNS:
            ax.set_yticklabels([])
        else:
            ax.set_ylabel("accuracy", fontsize=8)
        if k // CURVE_COLUMNS == rows - 1:
            ax.set_xlabel("epoch", fontsize=8)
        if k == 0:
            ax.legend(fontsize=7, loc="lower right")
    if not shown:
        ax = fig.add_subplot(grid[:, :CURVE_COLUMNS])
        ax.text(0.5, 0.5, "every trial diverged", ha="center", va="center", fontsize=14)
        ax.set_axis_off()
    _draw_map(fig.add_subplot(grid[:, CURVE_COLUMNS:]), ranked, space, shown, fig)
    fig.suptitle(title)
    return fig


def _draw_map(ax, ranked: list[dict], space: Sequence[Range], shown: list[dict], fig) -> None:
    by_name = {r.name: r for r in space}
    x_range, y_range = by_name["lr"], by_name["weight_decay"]
    x = np.array([r["params"]["lr"] for r in ranked])
    y = np.array([r["params"]["weight_decay"] for r in ranked])
    acc = np.array([np.nan if r["val_acc"] is None else r["val_acc"] for r in ranked])
    ok = ~np.isnan(acc)
    sc = ax.scatter(x[ok], y[ok], c=acc[ok], cmap="viridis", vmin=0, vmax=1, s=36, zorder=2)
    fig.colorbar(sc, ax=ax, label="validation accuracy", shrink=0.9)
    if (~ok).any():
        ax.scatter(x[~ok], y[~ok], marker="x", color="red", s=30, label="diverged", zorder=2)
    if shown:
        ax.scatter(
            [r["params"]["lr"] for r in shown],
            [r["params"]["weight_decay"] for r in shown],
            s=140,
            facecolors="none",
            edgecolors="black",
            lw=1.0,
            label=f"best {len(shown)} (left)",
            zorder=3,
        )
    for axis, rng in (("x", x_range), ("y", y_range)):
        if rng.scale == "log":
            lim = (rng.low / 10**MARGIN, rng.high * 10**MARGIN)
        else:
            pad = (rng.high - rng.low) * 0.04
            lim = (rng.low - pad, rng.high + pad)
        getattr(ax, f"set_{axis}scale")("log" if rng.scale == "log" else "linear")
        getattr(ax, f"set_{axis}lim")(lim)
    ax.set(
        xlabel="learning rate",
        ylabel="weight decay \u03bb",
        title=f"{len(ranked)} trials: validation accuracy",
    )
    ax.grid(alpha=0.3, which="major")
    ax.legend(loc="lower left", fontsize=8)


def _short(name: str, value: float) -> str:
    return f"{'wd' if name == 'weight_decay' else name} {value:.2g}"


def save(fig, path: Path) -> None:
    """Write the figure as a PNG (atomically)."""
    from ..support.figures import save_figure

    with naming(path):
        save_figure(fig, path)
