"""The training runs under ``--runs``: their learning curves, while they train and after.

A run folder of ``scratchdl train`` holds ``checkpoint.safetensors`` from its first epoch on
and ``history.json`` once training ends (cli_train.RUN_FILES). A finished run's curves come
from history.json; a running one's from its latest checkpoint, whose metadata holds the
accuracies and whose ``history/loss`` tensor the loss of every iteration. Both are written
atomically, but a folder may hold anything, so every read is guarded: a file that is missing,
half-written or not ours makes the run show as unreadable, never an error of the server.

A run stopped by Ctrl-C writes history.json with ``"stopped": true`` (cli_train); one killed
shows as stopped once no live process holds its folder and its files have long been still
(``as_of_now``).

A request names a run by its folder name, which must be one of ``list_runs``: never a path.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..support.atomic import LOCK_NAME
from .safety import ClientError

try:
    import fcntl  # only to know whether scratchdl.support.atomic's locks exist here
except ImportError:  # Windows
    fcntl = None

HISTORY = "history.json"
CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"  # the trained model a run leaves (cli_train.RUN_FILES)
MAX_RUNS = 200  # folders listed, the most recently changed first
MAX_RUN_MODELS = 20  # runs' models offered, the newest first: each is held in memory
MAX_HISTORY_BYTES = 20_000_000  # a history.json of 10^6 iterations is ~20 MB
MAX_POINTS = 400  # loss points sent for a curve (averaged over equal spans of iterations)
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ACCURACY_KEYS = ("train_acc", "test_acc")
# a run whose files have not changed for this long (and for 3 of its longest epochs), and
# that no live process holds, has stopped; a Ctrl-C says so at once (cli_train)
STALE_SECONDS = 600
LOCK_FILES = (LOCK_NAME, f".{CHECKPOINT}{LOCK_NAME}")  # atomic.lock_folder's, .lock_file's


def list_runs(root: Path) -> list[dict]:
    """The run folders directly under ``root`` (name, state, epochs, accuracy), newest first.

    Only what resolves inside ``root`` counts: a run folder, history.json or checkpoint that
    is a link to somewhere else (``/etc/passwd``, another user's folder) is neither listed
    nor read. Slow (it may parse many large files): call it off the event loop."""
    real_root = root.resolve()
    try:
        names = [p.name for p in root.iterdir() if RUN_NAME.fullmatch(p.name)]
    except OSError:  # no runs folder yet: nothing to list
        return []
    found = []
    for name in names:
        files = run_files(real_root, name)
        if files:
            found.append((max(st.st_mtime for _, st in files.values()), name, files))
    found.sort(reverse=True)
    listed = []
    for mtime, name, files in found[:MAX_RUNS]:
        run = read_files(real_root, name, files)  # cached while its files stay as they are
        if run["state"] == "unreadable" and not run_files(real_root, name):
            continue  # deleted while it was read: gone, not damaged
        listed.append(summary(name, as_of_now(run, real_root / name, files), mtime))
    return listed


def real_path(root: Path, path: Path) -> Path | None:
    """``path`` with every link resolved, if that lies inside ``root`` (itself resolved);
    None for a link that leads out of the runs folder, a loop of links, or a path gone."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a loop of links on Python 3.10-3.12
        return None
    return real if real.is_relative_to(root) else None


def run_files(
    root: Path, name: str, file_names: tuple[str, ...] = (HISTORY, CHECKPOINT)
) -> dict[str, tuple[Path, os.stat_result]]:
    """The ``file_names`` in the folder ``name`` under ``root`` (resolved): file name ->
    (real path, stat), only those that are regular files and resolve inside ``root``."""
    folder = inside(root, root / name)
    if folder is None or not stat.S_ISDIR(folder[1].st_mode):
        return {}
    files = {}
    for file_name in file_names:
        found = inside(root, folder[0] / file_name)
        if found is not None and stat.S_ISREG(found[1].st_mode):  # not a FIFO, a device...
            files[file_name] = found
    return files


def inside(root: Path, path: Path) -> tuple[Path, os.stat_result] | None:
    """(real path, stat) of ``path``, whose parent is a real folder inside ``root``, if it
    is there and resolves inside ``root``; a link is resolved, anything else needs only an
    lstat (a listing looks at hundreds of folders every few seconds)."""
    try:
        st = path.lstat()
        if not stat.S_ISLNK(st.st_mode):
            return path, st
        real = real_path(root, path)
        return (real, real.stat()) if real is not None else None
    except OSError:  # gone between two looks: not there
        return None


def model_files(root: Path) -> dict[str, tuple[Path, os.stat_result]]:
    """The model file (MODEL) of the run folders under ``root`` that have one, the
    MAX_RUN_MODELS newest, newest first: run name -> (real path, stat); as run_files, only
    regular files that resolve inside ``root``."""
    real_root = root.resolve()
    try:
        names = [p.name for p in root.iterdir() if RUN_NAME.fullmatch(p.name)]
    except OSError:
        return {}
    found = []
    for name in names:
        for real, st in run_files(real_root, name, (MODEL,)).values():
            found.append((st.st_mtime, name, real, st))
    found.sort(reverse=True)
    return {name: (real, st) for _, name, real, st in found[:MAX_RUN_MODELS]}


def summary(name: str, run: dict, mtime: float) -> dict:
    return {
        "name": name,
        "state": run["state"],
        "epochs_done": len(run.get("test_acc", [])),
        "epochs": run.get("epochs"),
        "test_acc": (run.get("test_acc") or [None])[-1],
        "modified": mtime,
    }


def find_run(root: Path, name: str) -> dict:
    """The run files (as run_files gives them) of the run ``name`` from the listing, or
    ClientError 404."""
    files = run_files(root.resolve(), name) if RUN_NAME.fullmatch(name) else {}
    if files:  # the name cannot leave root: no separator, no leading dot; links are resolved
        return files
    raise ClientError(
        404, f"no run {name[:80]!r} under the runs folder; choose a name from GET /api/runs"
    )


def read_run(root: Path, name: str) -> dict:
    """The curves of the run ``name`` under ``root``: ``state`` ("finished", "training",
    "stopped" or "unreadable", with a ``reason``), ``loss`` (at most MAX_POINTS averages, with
    ``loss_iterations``, the iteration each ends at), the accuracies and seconds per epoch,
    ``epochs`` planned and ``final_test_acc`` when known; ClientError 404 for a name that is
    not a run. Call it off the event loop, as list_runs."""
    real_root = root.resolve()
    files = find_run(root, name)
    run = read_files(real_root, name, files)
    if run["state"] == "unreadable":
        find_run(root, name)  # 404 if it was deleted while it was read
    return as_of_now(run, real_root / name, files)


def as_of_now(run: dict, folder: Path, files: dict[str, tuple[Path, os.stat_result]]) -> dict:
    """``run`` (read_files) with its state as of now: a run that a live process holds is
    "training" (one stopped, then resumed, too); a "training" run that none holds, whose
    files have not changed for STALE_SECONDS nor for 3 of its longest epochs, has "stopped"
    (killed, or ended by an error). Where there are no locks to see (Windows), a run stays
    as its files say."""
    if run["state"] not in ("training", "stopped"):
        return run
    held = writer_alive(folder)
    if held:
        return {**run, "state": "training"}
    if run["state"] == "training" and held is False:
        quiet = time.time() - max(st.st_mtime for _, st in files.values())
        slowest = max((v for v in run.get("epoch_seconds", []) if v is not None), default=0)
        if quiet > max(STALE_SECONDS, 3 * slowest):
            reason = f"no process holds it, and its files have not changed for {quiet / 60:.0f} min"
            return {**run, "state": "stopped", "reason": reason}
    return run


def writer_alive(folder: Path) -> bool | None:
    """Whether a live process holds ``folder``: scratchdl train's lock on the folder, or a
    Trainer's on its checkpoint (scratchdl.support.atomic), each a file naming its holder's process
    id, removed when the holder lets go. None where there are no such locks (no fcntl).

    A lock file left by a killed holder names a process that is gone. Conservative: any
    doubt (a file being written, a process of another user) counts as alive."""
    if fcntl is None:
        return None
    for name in LOCK_FILES:
        try:
            text = read_regular(folder / name, 64)
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return True
        pid = text.decode("ascii", "replace").strip()
        if not pid.isdigit() or int(pid) <= 0:  # os.kill(0, ...) would mean our own group
            return True
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except (ProcessLookupError, OverflowError):
            continue
        except OSError:  # PermissionError: it exists, and is another user's
            return True
        return True
    return False


# the runs read, by (runs folder, run name): (the state of its files, the curves)
_read: OrderedDict[tuple[str, str], tuple[tuple, dict]] = OrderedDict()
_reading = threading.Lock()


def read_files(root: Path, name: str, files: dict[str, tuple[Path, os.stat_result]]) -> dict:
    """A run's curves from its run files (run_files), read once per state of the files
    (modification time and size: the page polls every few seconds).

    One reader at a time: a second poll that arrives while a large history is parsed waits,
    then finds it read, instead of parsing it again beside the first."""
    stamps = tuple(
        (file, str(real), st.st_mtime_ns, st.st_size) for file, (real, st) in files.items()
    )
    key = (str(root), name)
    with _reading:
        cached = _read.get(key)
        if cached is not None and cached[0] == stamps:
            _read.move_to_end(key)
            return dict(cached[1])
        run = read_curves(root, files)
        _read[key] = (stamps, run)
        _read.move_to_end(key)
        while len(_read) > 2 * MAX_RUNS:
            _read.popitem(last=False)
    return dict(run)


def read_curves(root: Path, files: dict[str, tuple[Path, os.stat_result]]) -> dict:
    """read_files' work: the curves from history.json if there is one (but a stopped run's
    when a newer checkpoint says it was resumed), else from the checkpoint; a run that
    cannot be read is "unreadable", with the reason."""
    try:
        if HISTORY in files:
            run = from_history(files[HISTORY][0])
            resumed = (
                CHECKPOINT in files
                and files[CHECKPOINT][1].st_mtime_ns > files[HISTORY][1].st_mtime_ns
            )
            if run["state"] != "stopped" or not resumed:
                return run
        return from_checkpoint(files[CHECKPOINT][0])
    except Exception as e:  # a folder may hold anything: half-written, foreign, damaged,
        # nested deeper than the parser goes; then the run is unreadable, never the server
        reason = relative_text(f"{type(e).__name__}: {e}", root)
        return {"state": "unreadable", "reason": reason[:300]}


# an absolute path in a message: "/" after a space, quote or bracket, then names and slashes
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/(?:[^\s/:'\"(),;]+/)*([^\s/:'\"(),;]+)")


def relative_text(text: str, root: Path) -> str:
    """``text`` (an error's message) for a client, who was given the runs folder's name and
    the run names: paths under ``root`` relative to it, and any other absolute path reduced
    to its last name; the server's folders are its own business."""
    text = text.replace(str(root) + os.sep, "").replace(str(root), root.name)
    return ABSOLUTE_PATH.sub(r"\1", text)


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (its real path: no link is followed now, in
    case one was put there since), at most ``limit`` of them, or OSError / ValueError."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)  # O_NONBLOCK: a FIFO put there since cannot block the open
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{path.name} is larger than {limit:,} bytes")
        return f.read(limit + 1)


def from_history(path: Path) -> dict:
    history = json.loads(read_regular(path, MAX_HISTORY_BYTES))
    if not isinstance(history, dict):
        raise ValueError(f"{HISTORY} holds a JSON {type(history).__name__}, not an object")
    run = curves(history)
    if "final_test_acc" in history:
        run["state"] = "finished"
    else:  # scratchdl train writes "stopped" on Ctrl-C (cli_train)
        run["state"] = "stopped" if history.get("stopped") is True else "training"
    run["epochs"] = len(run["test_acc"])
    final = history.get("final_test_acc")
    if isinstance(final, (int, float)) and not isinstance(final, bool):
        run["final_test_acc"] = float(final)
    return run


def from_checkpoint(path: Path) -> dict:
    from ..files import load_tensors

    tensors, meta = load_tensors(path)  # checked before anything is allocated
    history = json.loads(meta["history"])
    if not isinstance(history, dict):
        raise ValueError(f"{CHECKPOINT}'s history is a {type(history).__name__}, not an object")
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
        try:  # an integer of 400 digits is a number, but no float
            floats = [float(v) for v in values]
        except OverflowError:
            raise ValueError(f"history[{key!r}] holds a number too large for a float") from None
        run[key] = [v if math.isfinite(v) else None for v in floats]
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
