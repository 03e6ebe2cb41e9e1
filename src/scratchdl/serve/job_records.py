"""The record of one Train-tab job: what its worker reported, and the files it keeps.

``Job`` holds a job's settings, state and everything its worker said (the loss of every
iteration, the accuracies of every epoch, the latest histograms and filters); ``take`` turns
one of the worker's messages into the events the page's stream sends. Each job's run folder
holds ``job.json`` (its settings and label) beside the Trainer's files, so that ``recover``
finds, after a restart, the jobs that a stop left with a checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..files import load_tensors
from ..files.run_folder import run_finished
from ..support.atomic import atomic_write
from . import job_settings
from .job_worker import CHECKPOINT, LOSS_DIGITS
from .safety import ClientError

MAX_POINTS = 2000  # loss points of a job in a snapshot (means over equal spans)
MAX_JOB_FILE_BYTES = 64 * 1024
MAX_LABEL = 40  # characters of a label, and of a run folder's name made from it
JOB_FILE = "job.json"
JOB_FORMAT = "scratchdl-serve-job"
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # as runs.py lists them
ENDED = ("stopped", "finished", "diverged", "failed")
RESUMABLE = ("stopped", "diverged", "failed")
EMPTY_CURVES = {"loss": [], "loss_iterations": [], "train_acc": [], "test_acc": []}


@dataclass(eq=False)
class Job:
    """One training run started from the page or the API, and what it has reported."""

    id: str  # the run folder's name
    settings: dict
    label: str
    group: str  # the jobs one request started (a preset's runs) share it
    created: float
    state: str = "queued"
    message: str = ""
    resume: bool = False
    epoch: int = 0
    iterations_per_epoch: int = 0
    parameters: int = 0
    loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    histograms: dict | None = None
    filters: dict | None = None
    final_test_acc: float | None = None
    checkpoint: bool = False
    end: dict | None = None  # the worker's last message
    process: object = None
    conn: object = None
    stop: object = None
    closed_by_server: bool = False

    def summary(self, position: int | None = None) -> dict:
        per_epoch, planned = job_settings.iterations(self.settings)
        return {
            "id": self.id,
            "label": self.label,
            "group": self.group,
            "state": self.state,
            "message": self.message,
            "queue_position": position,
            "settings": self.settings,
            "created": self.created,
            "epoch": self.epoch,
            "epochs": self.settings["epochs"],
            "iteration": len(self.loss),
            "iterations": planned,
            "iterations_per_epoch": per_epoch,
            "parameters": self.parameters or job_settings.parameter_count(self.settings),
            "train_acc": self.train_acc[-1] if self.train_acc else None,
            "test_acc": self.test_acc[-1] if self.test_acc else None,
            "final_test_acc": self.final_test_acc,
            "checkpoint": self.checkpoint,
        }

    def detail(self, position: int | None = None) -> dict:
        ends, means = spans(self.loss, MAX_POINTS)
        curves = {"loss": means, "loss_iterations": ends}
        curves.update(train_acc=list(self.train_acc), test_acc=list(self.test_acc))  # copies:
        # the watcher thread appends to them while a stream writes this out
        return {
            **self.summary(position),
            "curves": curves,
            "histograms": self.histograms,
            "filters": self.filters,
        }

    def take(self, m: dict) -> tuple[list[dict], bool]:
        """Take the worker's message ``m``: the events for the stream, and whether the job's
        summary changed."""
        kind = m.get("type")
        if kind == "loss":
            del self.loss[m["from"] :]  # a resumed run's history starts where the record does
            self.loss.extend(m["values"])
            return [
                {"type": "loss", "id": self.id, "from": m["from"], "values": m["values"]}
            ], False
        if kind == "epoch":
            self.epoch = m["epoch"]
            self.train_acc.append(m["train_acc"])
            self.test_acc.append(m["test_acc"])
            return [{**m, "id": self.id}], True
        if kind in ("histograms", "filters"):
            setattr(self, kind, {k: v for k, v in m.items() if k != "type"})
            return [{**m, "id": self.id}], False
        if kind == "restored":
            self.loss, self.train_acc, self.test_acc = m["loss"], m["train_acc"], m["test_acc"]
            self.epoch = len(self.test_acc)
            ends, means = spans(self.loss, MAX_POINTS)
            return [{**m, "id": self.id, "loss": means, "loss_iterations": ends}], True
        if kind == "started":
            self.epoch, self.parameters, self.message = m["epoch"], m["parameters"], ""
            return [], True
        if kind == "end":
            self.end = m
        return [], False

    def forget_curves(self) -> dict:
        """Start over (nothing kept to resume from); the event that clears the page's curves."""
        self.loss, self.train_acc, self.test_acc, self.epoch = [], [], [], 0
        self.histograms = self.filters = None
        return {"type": "restored", "id": self.id, **EMPTY_CURVES}


def spans(values: list, points: int) -> tuple[list[int], list]:
    """At most ``points`` means of ``values`` over equal spans, and the index each span ends
    at (1-based); None values (a diverged step) are left out of a mean."""
    n = len(values)
    if n <= points:
        return list(range(1, n + 1)), list(values)
    ends = [round(n * (k + 1) / points) for k in range(points)]
    means, start = [], 0
    for end in ends:
        part = [v for v in values[start:end] if v is not None]
        means.append(round(sum(part) / len(part), LOSS_DIGITS) if part else None)
        start = end
    return ends, means


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")[:MAX_LABEL] or "run"


def new_folder(runs_dir: Path, base: str) -> str:
    """A new run folder's name under ``runs_dir``: ``base``, or ``base-2``, ... where that is
    taken (by a run of scratchdl train too); the folder is made, so it stays ours."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        name = base if k == 1 else f"{base}-{k}"
        with contextlib.suppress(FileExistsError):
            (runs_dir / name).mkdir()
            return name
    raise ClientError(409, f"cannot find a free run folder name for {base!r}")


def write_job_file(runs_dir: Path, job: Job) -> None:
    record = {"format": JOB_FORMAT, "label": job.label, "settings": job.settings}
    atomic_write(runs_dir / job.id / JOB_FILE, json.dumps(record, indent=1).encode())


def recover(runs_dir: Path, limit: int) -> list[Job]:
    """The jobs an earlier server left stopped with a checkpoint (the newest ``limit``): a
    folder with job.json and a checkpoint, whose run did not finish (no history.json, or a
    stopped one's; a finished run the Runs tab shows). Links are passed over: only what a
    server wrote here counts."""
    try:
        folders = [p for p in runs_dir.iterdir() if RUN_NAME.fullmatch(p.name)]
    except OSError:
        return []
    found = []
    for folder in folders:
        job_file, checkpoint = folder / JOB_FILE, folder / CHECKPOINT
        if folder.is_symlink() or job_file.is_symlink() or checkpoint.is_symlink():
            continue
        if (folder / "history.json").is_symlink() or run_finished(folder):
            continue
        if not checkpoint.is_file():
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if job_file.stat().st_size > MAX_JOB_FILE_BYTES:
                continue
            record = json.loads(job_file.read_bytes())
            # checked as new, but the data set: a missing one fails the resumed job, clearly
            settings = job_settings.check_settings(record["settings"], available=lambda _: True)
            found.append((checkpoint.stat().st_mtime, folder.name, settings, record))
    jobs = []
    for mtime, name, settings, record in sorted(found)[-limit:]:
        job = Job(name, settings, str(record.get("label", ""))[:MAX_LABEL], "earlier", mtime)
        job.state, job.checkpoint = "stopped", True
        job.message = "stopped when an earlier server stopped; resume it to go on"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            tensors, meta = load_tensors(runs_dir / name / CHECKPOINT)
            history = json.loads(meta["history"])
            job.loss = [round(float(v), LOSS_DIGITS) for v in tensors["history/loss"]]
            job.train_acc = [float(v) for v in history["train_acc"]]
            job.test_acc = [float(v) for v in history["test_acc"]]
            job.epoch = len(job.test_acc)
        jobs.append(job)
    return jobs
