"""The chapter notebooks (notebooks/ch01..ch08) and their table of contents: one notebook a
chapter, in Japanese and in the book's terms, public API only; each runs top to bottom in quick
mode (SCRATCHDL_QUICK=1); each piece a chapter builds is checked against the library by a cell
that fails when the piece is wrong; the sliders' functions draw at the ends of their ranges;
the first cell goes on without the font package; every link stays inside the repository."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

# nbformat and nbclient come with the notebooks extra (scripts/test installs it); they are
# imported in the tests, so that a venv without them can still collect and deselect these
pytestmark = pytest.mark.notebook

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
CHAPTERS = [f"ch0{k}" for k in range(1, 9)]
PATHS = sorted(NOTEBOOKS.glob("ch0*.ipynb"))
TOC = NOTEBOOKS / "README.md"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # kana and kanji
QUICK_CELL_TIMEOUT = 240  # seconds for one cell in quick mode
FONT_HINT = "pip install 'scratchdl[notebooks]'"

# Words the notebooks do not use: the book's terms are リンゴ/ミカン, 学習率, Weight decay
# （荷重減衰）, 本書, and one name each for クイックモード and フルモード.
OFF_TERMS = re.compile(
    r"りんご|みかん|学習係数|重み減衰|フル実行|本番モード|本の設定|full run"
    r"|(?<![\d 日基])本(の値|の図|と同じ|のとおり|は|では|が|の結論|のスクリプト|のコード)"
)
# a half-width bracket around Japanese text in prose (code spans and formulas removed first)
HALF_WIDTH = re.compile(r"\([^()]*[\u3040-\u30ff\u4e00-\u9fff][^()]*\)")

# The sliders: each widget calls a plain function of the notebook, which is called here at the
# ends of its range (each call draws one figure).
SLIDERS = {
    "ch04": {"draw_descent_path": ["draw_descent_path(1e-3, 1)", "draw_descent_path(1.12, 100)"]},
    "ch06": {
        "draw_activation_histograms": [
            "draw_activation_histograms(1e-3, 'ReLU')",
            "draw_activation_histograms(3.16, 'tanh')",
        ],
        "draw_dropout": ["draw_dropout(0.0)", "draw_dropout(0.8)"],
    },
    "ch07": {
        "draw_conv_output": [
            "draw_conv_output(H=12, FH=3, pad=1, stride=1)",
            "draw_conv_output(H=4, FH=7, pad=0, stride=1)",  # the window does not fit
            "draw_conv_output(H=12, FH=1, pad=3, stride=4)",  # does not tile: says why
        ]
    },
}

# A bug put into one piece of a notebook (old text -> new text, in the piece's cell): the
# notebook's check cell must then fail with an AssertionError.
BUGS = [
    ("ch03", "exp_a = np.exp(a - c)", "exp_a = np.exp(a)"),  # no overflow fix
    ("ch03", "return 1 / (1 + np.exp(-x))", "return 1 / (1 + np.exp(x))"),
    ("ch04", "grad[idx] = (fxh1 - fxh2) / (2 * h)", "grad[idx] = (fxh1 - fxh2) / h"),
    ("ch04", "x -= lr * grad", "x += lr * grad"),  # up the gradient
    ("ch04", "a1 = np.dot(x, W1) + b1", "a1 = np.dot(x, W1)"),
    ("ch05", "dx = dout * self.y", "dx = dout * self.x"),  # MulLayer without the swap
    ("ch05", "self.dW = np.dot(self.x.T, dout)", "self.dW = np.dot(self.x.T, dout) / 2"),
    ("ch05", "dx = dout * (1.0 - self.out) * self.out", "dx = dout * self.out"),
    ("ch05", "dx = (self.y - self.t) / batch_size", "dx = self.y - self.t"),
    ("ch06", "params[key] += self.v[key]", "params[key] -= self.v[key]"),
    ("ch06", "lr_t = self.lr * np.sqrt", "lr_t = self.lr  # * np.sqrt"),  # no bias correction
    ("ch06", "(m * dout - self.dbeta - self.xn * self.dgamma)", "(m * dout - self.dbeta)"),
    ("ch06", "grads[key] + weight_decay_lambda * params[key]", "grads[key]"),
    ("ch07", "col.transpose(0, 4, 5, 1, 2, 3)", "col.transpose(0, 4, 5, 1, 3, 2)"),
    ("ch07", "x_max:stride] += col", "x_max:stride] = col"),  # col2im must add up windows
    ("ch07", "out = np.max(col, axis=1)", "out = np.mean(col, axis=1)"),
    ("ch07", "dcol = np.dot(dout, self.col_W.T)", "dcol = np.dot(dout, self.col_W.T) * 0.5"),
    ("ch08", '"pad": 2', '"pad": 1'),  # the 4th convolution's padding
]  # fmt: skip


def read(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def tagged(nb, *tags: str) -> list:
    return [c for c in nb.cells if set(c.get("metadata", {}).get("tags", [])) & set(tags)]


def execute(nb, path: Path, timeout: int = QUICK_CELL_TIMEOUT) -> None:
    from nbclient import NotebookClient

    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path)}}
    )
    client.execute()  # a cell that raises fails with CellExecutionError


def notebook(chapter: str) -> Path:
    return next(p for p in PATHS if p.name.startswith(chapter))


def prose(text: str) -> str:
    """Markdown without code blocks, code spans, formulas and link targets."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", "", text, flags=re.S)
    return re.sub(r"\]\([^)]*\)", "]", text)


def test_there_is_one_notebook_per_chapter():
    assert [p.name[:4] for p in PATHS] == CHAPTERS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_reads_in_japanese_and_uses_the_public_api(path):
    nb = read(path)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert markdown and all(JAPANESE.search(text) for text in markdown if text.strip())
    record = [line for line in nb.cells[0].source.splitlines() if line.startswith("**実行記録**")]
    assert record and re.search(r"(フル|クイック)モード.*分$", record[0]), record
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                assert not (node.attr.startswith("_") and not node.attr.startswith("__")), (
                    f"{path.name}: private name {node.attr!r} in\n{cell.source}"
                )
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scratchdl"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name}: imports {private}"
        # the experiments draw their figures in Japanese when asked
        if "run_one(" in cell.source:
            assert 'lang="ja"' in cell.source, f"{path.name}: an experiment without lang='ja'"
    # the saved run has its outputs (figures included), so the notebook reads well on GitHub
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no figure"
    assert not [o for o in outputs if o.get("output_type") == "error"]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_speaks_with_one_voice(path):
    nb = read(path)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = prose(cell.source)
        else:  # strings in code: figure labels and printed lines
            text = " ".join(re.findall(r"\"[^\"\n]*\"", cell.source))
        off = OFF_TERMS.findall(text)
        assert not off, f"{path.name}: {off} in\n{cell.source[:300]}"
        if cell.cell_type == "markdown":
            half = HALF_WIDTH.findall(text)
            assert not half, f"{path.name}: half-width brackets {half}"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    headings = re.findall(r"^#{2,4} (\d+\.\d+(?:\.\d+)?)", markdown, flags=re.M)
    assert len(headings) == len(set(headings)), f"{path.name}: a section number twice {headings}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_has_two_exercises_that_check_themselves(path):
    from scratchdl.exercises import EXERCISES

    nb = read(path)
    chapter = int(path.name[3])
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    called = re.findall(r'check\("(\w+)", ', source)
    assert called == [n for n, (c, _) in EXERCISES.items() if c == chapter] and len(called) >= 2
    blanks = tagged(nb, "exercise")
    assert len(blanks) == len(called)
    assert all("raise NotImplementedError" in c.source for c in blanks)
    assert (NOTEBOOKS / "solutions" / f"ch0{chapter}.py").is_file()


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_ends_with_the_previous_and_next_chapter(path):
    last = read(path).cells[-1].source
    i = CHAPTERS.index(path.name[:4])
    neighbours = [PATHS[j].name for j in (i - 1, i + 1) if 0 <= j < len(PATHS)]
    for name in [*neighbours, "README.md"]:
        assert f"]({name})" in last, f"{path.name} does not end with a link to {name}"


def links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'href="([^"]+)"', text)


def test_every_link_in_the_notebooks_and_the_contents_leads_to_a_file_in_the_repository():
    sources = {TOC: TOC.read_text()}
    for path in PATHS:
        sources[path] = "\n".join(c.source for c in read(path).cells if c.cell_type == "markdown")
    followed = 0
    for path, text in sources.items():
        for link in links(text):
            assert not re.match(r"[a-z]+:", link), f"{path.name} links outside: {link}"
            target = (path.parent / link.split("#")[0]).resolve()
            assert target.is_relative_to(REPO), f"{path.name}: {link} leaves the repository"
            assert target.exists(), f"{path.name}: {link} leads nowhere"
            followed += 1
    assert followed > 100


def test_the_contents_lead_to_every_notebook_section_experiment_and_the_server():
    from scratchdl.experiments.registry import EXPERIMENTS

    text = TOC.read_text()
    for path in PATHS:
        assert f"]({path.name})" in text
    for name in EXPERIMENTS:
        assert f"scratchdl experiment {name} --lang ja" in text, name
    for chapter in range(1, 9):  # the book's sections, e.g. 4.5 for chapter 4
        assert re.search(rf"\| \[{chapter}\.1 ", text), chapter
    assert "](../docs/experiments.ja.md" in text
    assert "scratchdl serve" in text


def test_the_first_cell_goes_on_without_the_font_package():
    # every notebook's first code cell, with matplotlib_fontja made unimportable, then a
    # figure with a Japanese title: the hint is printed once, nothing fails, no glyph warning
    script = ["import sys, io, warnings", "sys.modules['matplotlib_fontja'] = None"]
    for path in PATHS:
        first = next(c for c in read(path).cells if c.cell_type == "code")
        script += [
            f"print('== {path.stem}')",
            f"exec({first.source!r}, {{}})",
            "import matplotlib.pyplot as plt",
            "fig, ax = plt.subplots(); ax.set_title('日本語のタイトル')",
            "fig.savefig(io.BytesIO(), format='png'); plt.close(fig)",
        ]
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", "\n".join(script)],
        capture_output=True,
        text=True,
        cwd=NOTEBOOKS,
        env={**__import__("os").environ, "MPLBACKEND": "Agg", "SCRATCHDL_QUICK": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parts = done.stdout.split("== ")[1:]
    assert [p.split("\n")[0] for p in parts] == [p.stem for p in PATHS]
    for part in parts:
        assert part.count(FONT_HINT) == 1, part


@pytest.mark.parametrize("path", [p for p in PATHS if p.name[:4] != "ch01"], ids=lambda p: p.stem)
def test_the_pieces_pass_their_checks_against_the_library(path):
    nb = read(path)
    pieces = tagged(nb, "setup", "piece", "check")
    assert tagged(nb, "piece") and tagged(nb, "check"), f"{path.name} builds nothing"
    nb.cells = pieces
    execute(nb, path.parent)


@pytest.mark.parametrize(
    "chapter, old, new", BUGS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BUGS)]
)
def test_a_bug_in_a_piece_fails_the_notebooks_check(chapter, old, new):
    from nbclient.exceptions import CellExecutionError

    path = notebook(chapter)
    nb = read(path)
    nb.cells = tagged(nb, "setup", "piece", "check")
    holding = [c for c in tagged(nb, "piece") if old in c.source]
    assert len(holding) == 1 and holding[0].source.count(old) == 1, f"{old!r} not in one piece"
    holding[0].source = holding[0].source.replace(old, new)
    with pytest.raises(CellExecutionError) as failed:
        execute(nb, path.parent)
    assert failed.value.ename == "AssertionError", failed.value
    # the cell that failed is a check, not the piece itself
    stopped = next(c for c in nb.cells if any(o.get("output_type") == "error" for o in c.outputs))
    assert "check" in stopped.metadata.get("tags", [])


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_in_quick_mode(path, monkeypatch):
    monkeypatch.setenv("SCRATCHDL_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    import nbformat

    nb = read(path)
    sliders = SLIDERS.get(path.name[:4], {})
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    calls = []
    for function, at_the_ends in sliders.items():
        assert re.search(rf"widgets\.interact\(\s*{function},", source), function
        calls += at_the_ends
    if calls:  # each slider's function, called at the ends of its range, draws one figure
        nb.cells.append(nbformat.v4.new_code_cell("\n".join(calls)))
    execute(nb, path.parent)
    figures = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert figures, f"{path.name} drew no figure in quick mode"
    if calls:
        drawn = [o for o in nb.cells[-1].outputs if "image/png" in o.get("data", {})]
        assert len(drawn) == len(calls), nb.cells[-1].outputs
