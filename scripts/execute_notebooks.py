"""Run the chapter notebooks top to bottom and save them with their outputs, so that they read
well on GitHub; the first cell's run record (the line starting with RECORD_MARK) is rewritten,
in Japanese, with the date, the mode, the machine and the time of this run.

    .venv/bin/python scripts/execute_notebooks.py                 # every notebook, full mode
    .venv/bin/python scripts/execute_notebooks.py ch05 ch06       # some of them
    .venv/bin/python scripts/execute_notebooks.py --quick ch07    # quick mode, not saved
    .venv/bin/python scripts/execute_notebooks.py --quick --save ch07   # quick mode, saved

A slider's live view (an ipywidgets output) is not saved: without a kernel it shows only a
line of text, and the figure drawn with the default setting just above it stays. The book's
weight files are found as the notebooks say (SCRATCHDL_BOOK_WEIGHTS or the data folder's
book-weights/). The test suite runs the same notebooks in quick mode (tests/test_notebooks.py)
without saving them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
RECORD_MARK = "**実行記録**"  # the first cell's line that this script rewrites
CELL_TIMEOUT = 1800  # seconds for one cell of a full run (ch08 trains for minutes)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # a live slider: needs a kernel


def run(path: Path, *, quick: bool, timeout: int = CELL_TIMEOUT) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` in its own folder; raise on the first failing cell."""
    nb = nbformat.read(path, as_version=4)
    if quick:
        os.environ["SCRATCHDL_QUICK"] = "1"
    else:
        os.environ.pop("SCRATCHDL_QUICK", None)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def record(nb: nbformat.NotebookNode, seconds: float, *, quick: bool) -> None:
    """Rewrite the run record in the first cell: date, mode, machine, time."""
    cell = nb.cells[0]
    lines = cell.source.splitlines()
    mode = "クイックモード（SCRATCHDL_QUICK=1）" if quick else "フルモード（SCRATCHDL_QUICK なし）"
    stamp = (
        f"{RECORD_MARK}: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC、"
        f"{mode}、{platform.processor() or platform.machine()}、"
        f"{os.cpu_count()} コア、Python {platform.python_version()}、"
        f"{seconds / 60:.1f} 分"
    )
    marked = [i for i, line in enumerate(lines) if line.startswith(RECORD_MARK)]
    if not marked:
        raise SystemExit(f"the first cell has no line starting with {RECORD_MARK}")
    lines[marked[0]] = stamp
    cell.source = "\n".join(lines)


def drop_live_widgets(nb: nbformat.NotebookNode) -> None:
    """Remove the sliders' live views, which only a running kernel can show."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="e.g. ch05 (default: every notebook)")
    parser.add_argument("--quick", action="store_true", help="quick mode (not saved unless --save)")
    parser.add_argument("--save", action="store_true", help="save a quick-mode run too")
    args = parser.parse_args()
    save = args.save or not args.quick
    paths = sorted(NOTEBOOKS.glob("ch*.ipynb"))
    if args.names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in args.names)]
    if not paths:
        raise SystemExit(f"no notebook matches {args.names} in {NOTEBOOKS}")
    for path in paths:
        start = time.perf_counter()
        nb = run(path, quick=args.quick)
        seconds = time.perf_counter() - start
        if save:
            record(nb, seconds, quick=args.quick)
            drop_live_widgets(nb)
            nbformat.write(nb, path)
        print(f"{path.name}: {seconds:.0f} s{', saved' if save else ''}", file=sys.stderr)


if __name__ == "__main__":
    main()
