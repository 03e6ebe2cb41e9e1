"""Logic gates as perceptrons, and why XOR needs two layers (book ch2, figures 2-6 to 2-8).

Three perceptrons of the book (AND, NAND, OR) each draw one straight line through the input
plane; the four inputs (0,0), (1,0), (0,1), (1,1) fall on the side that matches their
output. XOR's outputs cannot be split by one line, which a grid search over (w1, w2, b)
confirms; the two-layer perceptron XOR = AND(NAND, OR) computes it (book section 2.5).

JSON keys:
    inputs                          the four input pairs, in the book's order
    truth_tables                    gate -> its four outputs (AND, NAND, OR, XOR)
    truth_tables_match_logic        gate -> whether the outputs equal Python's logic operators
    perceptrons                     AND/NAND/OR -> {"w", "b", "decision_line": [slope, intercept]}
    separable                       gate -> whether one perceptron reproduces its truth table
                                    (``scratchdl.perceptron.separable``, a grid search)
    found_perceptrons               gate -> {"w", "b"} found by the search, or null
    xor_separable_by_one_perceptron separable["XOR"], computed
    xor_layers                      {"s1": NAND outputs, "s2": OR outputs, "y": AND(s1, s2)}
    search_grid                     number of values in [-1, 1] tried for each of w1, w2, b
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..perceptron import AND, NAND, OR, TRUTH_TABLE_INPUTS, XOR, find_perceptron
from ..support.figures import labels, language, pyplot
from . import common
from .common import count

NAME = "gates"
CHAPTER = 2
TITLE = "AND, NAND, OR as single perceptrons; XOR needs two layers"
EXPLANATION = """The book's first network: a perceptron outputs 1 when b + w1*x1 + w2*x2 > 0,
so it splits the input plane with one straight line. Each of the first three panels shows one
of the book's gates (AND, NAND, OR) with its line, the shaded side where it outputs 1 and the
four inputs coloured by the gate's output: every point lies on the side that matches. The last
panel shows XOR: no single line separates its two 1s from its two 0s (a search over weights
and biases finds none), but stacking perceptrons works: the NAND and OR lines (dashed) bound
a band, and AND of the two is 1 exactly inside it."""
KEY_NUMBERS = ("truth_tables", "separable", "xor_separable_by_one_perceptron")

SETTINGS = {
    # values from -1 to 1 tried for each of w1, w2 and b; the search holds grid**3 candidates
    # at once, so 201 (8 million: seconds and about a GB) is the most it takes
    "search_grid": count(21, low=2, high=201),
}

GATES = {"AND": AND, "NAND": NAND, "OR": OR}
LOGIC = {  # what each gate must compute, from Python's operators, to check the tables
    "AND": lambda a, b: a & b,
    "NAND": lambda a, b: 1 - (a & b),
    "OR": lambda a, b: a | b,
    "XOR": lambda a, b: a ^ b,
}
LIMITS = (-0.5, 1.5)  # the unit square with a margin, so the lines are visible

# The figure's words, in each language (``run(lang=...)``).
LABELS = {
    "en": {
        "title": TITLE,
        "decision_line": "decision line",
        "gate": "{name}\nw=({w1:g}, {w2:g}), b={b:g}",
        "nand_line": "NAND line",
        "or_line": "OR line",
        "xor": "XOR = AND(NAND, OR)\n({verdict})",
        "separable": "one line suffices",
        "not_separable": "no single line separates it",
        "output": "output {value}",
        "suptitle": "Perceptrons on the unit square (shaded: where the gate outputs 1)",
    },
    "ja": {
        "title": "AND、NAND、OR は 1 つのパーセプトロン、XOR には 2 層が必要",
        "decision_line": "境界の直線",
        "gate": "{name}\nw=({w1:g}, {w2:g}), b={b:g}",
        "nand_line": "NAND の直線",
        "or_line": "OR の直線",
        "xor": "XOR = AND(NAND, OR)\n（{verdict}）",
        "separable": "1 本の直線で分けられる",
        "not_separable": "1 本の直線では分けられない",
        "output": "出力 {value}",
        "suptitle": "単位正方形の上のパーセプトロン（色のついた側: ゲートが 1 を出力する領域）",
    },
}


def run(
    out: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    lang: str = "en",
    **options,
) -> dict:
    """Truth tables, decision lines and the separability search; writes gates.png/json."""
    text = labels(LABELS, lang)
    opts = common.options(options, SETTINGS, NAME, quick=quick)
    n = opts["search_grid"]
    grid = np.linspace(-1.0, 1.0, n).round(12)  # 0.6, not 0.6000000000000001, in the JSON
    x1, x2 = TRUTH_TABLE_INPUTS.T
    gates = {**GATES, "XOR": XOR}
    tables = {name: gate(TRUTH_TABLE_INPUTS).tolist() for name, gate in gates.items()}
    found = {name: find_perceptron(table, grid) for name, table in tables.items()}
    s1, s2 = NAND(TRUTH_TABLE_INPUTS), OR(TRUTH_TABLE_INPUTS)
    numbers = {
        "inputs": TRUTH_TABLE_INPUTS.tolist(),
        "truth_tables": tables,
        "truth_tables_match_logic": {
            name: bool(np.array_equal(tables[name], LOGIC[name](x1, x2))) for name in gates
        },
        "perceptrons": {
            name: {"w": p.w.tolist(), "b": p.b, "decision_line": list(p.decision_line())}
            for name, p in GATES.items()
        },
        "separable": {name: p is not None for name, p in found.items()},
        "found_perceptrons": {
            name: None if p is None else {"w": p.w.tolist(), "b": p.b} for name, p in found.items()
        },
        "xor_separable_by_one_perceptron": found["XOR"] is not None,
        "xor_layers": {"s1": s1.tolist(), "s2": s2.tolist(), "y": AND(s1, s2).tolist()},
        "search_grid": n,
    }
    with language(lang):
        fig = _figure(tables, numbers["separable"], text)
        return common.save_result(out, NAME, fig, numbers)


def _figure(tables: dict, separable: dict, text: dict):
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(13, 4.4), sharey=True, layout="constrained")
    u = np.linspace(*LIMITS, 401)
    g1, g2 = np.meshgrid(u, u)
    line_x = np.array(LIMITS)
    for ax, name in zip(axes, ("AND", "NAND", "OR", "XOR"), strict=True):
        gate = GATES.get(name, XOR)
        region = gate(g1, g2)  # the gate's output over the plane: the shaded side is 1
        ax.contourf(g1, g2, region, levels=[-0.5, 0.5, 1.5], colors=["white", "#cfe3f7"])
        if name in GATES:
            slope, c = gate.decision_line()
            ax.plot(line_x, slope * line_x + c, color="tab:blue", lw=2, label=text["decision_line"])
            title = text["gate"].format(name=name, w1=gate.w[0], w2=gate.w[1], b=gate.b)
            ax.set_title(title, fontsize=10)
        else:
            for p, style, label in ((NAND, "--", text["nand_line"]), (OR, ":", text["or_line"])):
                slope, c = p.decision_line()
                ax.plot(line_x, slope * line_x + c, "k", ls=style, lw=1.5, label=label)
            verdict = text["separable"] if separable["XOR"] else text["not_separable"]
            ax.set_title(text["xor"].format(verdict=verdict), fontsize=10)
        y = np.asarray(tables[name])
        for value, colour, marker in ((0, "tab:red", "o"), (1, "tab:green", "s")):
            sel = y == value
            ax.scatter(
                *TRUTH_TABLE_INPUTS[sel].T,
                s=90,
                c=colour,
                marker=marker,
                edgecolors="k",
                zorder=3,
                label=text["output"].format(value=value),
            )
        ax.set(xlim=LIMITS, ylim=LIMITS, xlabel="$x_1$", aspect="equal")
        ax.set_xticks([0, 1])
        ax.set_yticks([0, 1])
    axes[0].set_ylabel("$x_2$")
    handles = {}
    for ax in axes:  # one legend for all panels, below them, so no point is hidden
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.suptitle(text["suptitle"])
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=len(handles))
    return fig
