"""The training runs under ``--runs``: their learning curves, while they train and after.

A run folder of ``scratchdl train`` holds ``checkpoint.safetensors`` from its first epoch on
and ``history.json`` once training ends (cli_train.RUN_FILES). A finished run's curves come
from history.json; a running one's from its latest checkpoint, whose metadata holds the
accuracies and whose ``history/loss`` tensor the loss of every iteration. Both are written
atomically, but a folder may hold anything, so every read is guarded: a file that is missing,
half-written or not ours makes the run show as unreadable, never an error of the server.

A request names a run by its folder name, which must be one of ``list_runs``: never a path.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import numpy as np

from .safety import ClientError

HISTORY = "history.json"
CHECKPOINT = "checkpoint.safetensors"
MAX_RUNS = 200  # folders listed, the most recently changed first
MAX_HISTORY_BYTES = 20_000_000  # a history.json of 10^6 iterations is ~20 MB
MAX_POINTS = 400  # loss points sent for a curve (averaged over equal spans of iterations)
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ACCURACY_KEYS = ("train_acc", "test_acc")


def list_runs(root: Path) -> list[dict]:
    """The run folders directly under ``root`` (name, state, epochs, accuracy), newest first."""
    try:
        folders = [p for p in root.iterdir() if RUN_NAME.fullmatch(p.name) and p.is_dir()]
    except OSError:  # no runs folder yet: nothing to list
        return []
    found = []
    for folder in folders:
        files = [folder / HISTORY, folder / CHECKPOINT]
        times = [f.stat().st_mtime for f in files if f.is_file()]
        if times:
            found.append((max(times), folder))
    found.sort(reverse=True)
    return [summary(folder, mtime) for mtime, folder in found[:MAX_RUNS]]


def summary(folder: Path, mtime: float) -> dict:
    run = read_run(folder)  # cached while its files stay as they are: the page polls
    return {
        "name": folder.name,
        "state": run["state"],
        "epochs_done": len(run.get("test_acc", [])),
        "epochs": run.get("epochs"),
        "test_acc": (run.get("test_acc") or [None])[-1],
        "modified": mtime,
    }


def find_run(root: Path, name: str) -> Path:
    """The folder of the run ``name`` from the listing, or ClientError 404."""
    folder = root / name
    if RUN_NAME.fullmatch(name) and any(
        (folder / f).is_file() for f in (HISTORY, CHECKPOINT)
    ):  # the name cannot leave root: no separator, no leading dot
        return folder
    raise ClientError(
        404, f"no run {name[:80]!r} under the runs folder; choose a name from GET /api/runs"
    )


def read_run(folder: Path) -> dict:
    """A run's curves: ``state`` ("finished", "training" or "unreadable"), ``loss`` (at most
    MAX_POINTS averages, with ``loss_iterations``, the iteration each ends at), the accuracies
    and seconds per epoch, ``epochs`` planned and ``final_test_acc`` when known."""
    stamps = []
    for name in (HISTORY, CHECKPOINT):
        try:
            st = (folder / name).stat()
            stamps.append((name, st.st_mtime_ns, st.st_size))
        except OSError:
            pass
    return dict(read_files(str(folder), tuple(stamps)))


@functools.lru_cache(maxsize=2 * MAX_RUNS)
def read_files(folder: str, stamps: tuple) -> dict:
    """read_run's work, once per state of the run's files (``stamps``: name, time, size)."""
    folder = Path(folder)
    try:
        if (folder / HISTORY).is_file():
            return from_history(folder / HISTORY)
        return from_checkpoint(folder / CHECKPOINT)
    except (OSError, ValueError, KeyError, TypeError) as e:  # half-written, foreign, damaged
        return {"state": "unreadable", "reason": f"{type(e).__name__}: {e}"[:300]}


def from_history(path: Path) -> dict:
    if path.stat().st_size > MAX_HISTORY_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_HISTORY_BYTES:,} bytes")
    history = json.loads(path.read_bytes())
    run = curves(history)
    run["state"] = "finished" if "final_test_acc" in history else "training"
    run["epochs"] = len(run["test_acc"])
    final = history.get("final_test_acc")
    if isinstance(final, (int, float)) and not isinstance(final, bool):
        run["final_test_acc"] = float(final)
    return run


def from_checkpoint(path: Path) -> dict:
    from ..files import load_tensors

    tensors, meta = load_tensors(path)  # checked before anything is allocated
    history = json.loads(meta["history"])
    loss = tensors.get("history/loss")
    history["loss"] = [] if loss is None else loss.tolist()
    run = curves(history)
    run["state"] = "training"
    run["epochs"] = int(meta["epochs"])
    return run


def curves(history: dict) -> dict:
    """The lists of a history, checked to be numbers, the loss cut down to MAX_POINTS."""
    run = {}
    for key in (*ACCURACY_KEYS, "epoch_seconds", "loss"):
        values = history.get(key, [])
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        ):
            raise ValueError(f"history[{key!r}] is not a list of numbers")
        run[key] = [float(v) if np.isfinite(v) else None for v in values]
    loss = np.array([np.nan if v is None else v for v in run["loss"]], dtype=np.float64)
    n = len(loss)
    ends = np.unique(np.linspace(0, n, min(n, MAX_POINTS) + 1).astype(int))
    spans = [loss[a:b][np.isfinite(loss[a:b])] for a, b in zip(ends[:-1], ends[1:], strict=True)]
    run["loss"] = [round(float(s.mean()), 5) if s.size else None for s in spans]
    run["loss_iterations"] = [int(b) for b in ends[1:]]
    run["iterations"] = n
    return run


def runs_root(path: str | os.PathLike) -> Path:
    """The runs folder as given (it may not exist yet: a first run will create it)."""
    return Path(path).expanduser().resolve()
