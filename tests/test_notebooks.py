"""The chapter notebooks (notebooks/ch02..ch08): one per chapter, in Japanese, using the
public API only, and each runs top to bottom in quick mode (SCRATCHDL_QUICK=1)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

# nbformat and nbclient come with the notebooks extra (scripts/test installs it); they are
# imported in the tests, so that a venv without them can still collect and deselect these
pytestmark = pytest.mark.notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CHAPTERS = [f"ch0{k}" for k in range(2, 9)]
PATHS = sorted(NOTEBOOKS.glob("ch0*.ipynb"))
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # kana and kanji
QUICK_CELL_TIMEOUT = 240  # seconds for one cell in quick mode


def test_there_is_one_notebook_per_chapter():
    assert [p.name[:4] for p in PATHS] == CHAPTERS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_reads_in_japanese_and_uses_the_public_api(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    prose = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert prose and all(JAPANESE.search(text) for text in prose if text.strip())
    assert "**実行記録**" in nb.cells[0].source  # the date and settings of the saved run
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
    # the saved run has its outputs (figures included), so the notebook reads well on GitHub
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no figure"
    assert not [o for o in outputs if o.get("output_type") == "error"]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_in_quick_mode(path, monkeypatch):
    monkeypatch.setenv("SCRATCHDL_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=QUICK_CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # a cell that raises fails the test (CellExecutionError)
    figures = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert figures, f"{path.name} drew no figure in quick mode"
