"""The files of a finished training run, as ``scratchdl train`` and the page's Train tab
write them into the run folder (beside ``checkpoint.safetensors``, written every epoch)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

RUN_FILES = ("model.safetensors", "learning_curve.png", "history.json")  # written in this order
# what each file of a finished run is, for the list printed at the end
WRITTEN = {
    "model.safetensors": "the trained network: predict, evaluate, serve and export take it",
    "learning_curve.png": "accuracy on the training and test data, epoch by epoch",
    "history.json": "the numbers behind the curve, the loss of every step, the settings",
    "checkpoint.safetensors": "the whole state after the last epoch, for --resume",
}


def write_run_files(trainer, out: Path, title: str) -> None:
    """Write RUN_FILES of ``trainer``'s run into ``out`` in order, history.json (the record
    that all were written) last. An OSError names the file it could not write."""
    from ..support import figures as plots
    from .model_file import save

    writers = {
        "model.safetensors": lambda path: save(trainer.network, path),
        "learning_curve.png": lambda path: plots.learning_curve(trainer.history, path, title),
        "history.json": trainer.save_history,
    }
    for name in RUN_FILES:
        try:
            writers[name](out / name)
        except OSError as e:
            raise OSError(e.errno, f"cannot write {out / name}: {e.strerror or e}") from e


def mark_stopped(out: Path, history: dict) -> None:
    """Write the history.json of a run that was stopped (Ctrl-C, or Stop on the page): its
    curves so far and ``"stopped": true``, so that the Runs tab does not show it as training
    for ever; the checkpoint beside it resumes it. A full disk is let pass: the checkpoint is
    still there."""
    from ..support.atomic import atomic_write

    text = json.dumps({**history, "stopped": True}, indent=1)
    with contextlib.suppress(OSError):
        atomic_write(out / "history.json", text.encode())


def run_finished(out: Path) -> bool:
    """True if the run in ``out`` finished: its history.json holds the final test accuracy
    (a stopped run's holds ``"stopped": true`` instead)."""
    try:
        return "final_test_acc" in json.loads((out / "history.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def run_files_written(out: Path, epoch: int) -> bool:
    """True if RUN_FILES of a run finished at ``epoch`` were all written (by its history.json)."""
    try:
        history = json.loads((out / "history.json").read_text())
        written = len(history["test_acc"]) == epoch and "final_test_acc" in history
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return written and (out / "model.safetensors").exists()
