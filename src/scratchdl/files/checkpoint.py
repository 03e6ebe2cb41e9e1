"""The Trainer's checkpoints: everything needed to continue a run bit for bit, in one file.

A checkpoint is a safetensors file (safetensors_file.py). Its tensors are the model's
``state_dict()`` under ``model/`` and the optimizer's under ``optimizer/``; its metadata holds
``format="scratchdl-checkpoint"``, the run's settings (``class``, ``config`` as JSON,
``optimizer``, ``mini_batch_size``, ``epochs``), the ``epoch`` completed, the ``history``
and the states of the random generators as JSON: the trainer's (``rng``), the model's Dropout
layers' (``model_rngs``) and, when an Augmenter draws from a generator of its own,
that one's (``augmenter_rng``).

The state goes in and comes out as one dict: ``model`` and ``optimizer`` (name -> array),
``rng``, ``model_rngs``, ``augmenter_rng`` (None when the run has no generator of its own for
augmentation), ``history`` and ``epoch``.
"""

from __future__ import annotations

import json
import os

from ..checks import short_repr as _short
from .safetensors_file import ModelFileError, check_finite_tensors, load_tensors, save_tensors

__all__ = ["CHECKPOINT_FORMAT", "HISTORY_KEYS", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FORMAT = "scratchdl-checkpoint"
HISTORY_KEYS = ("loss", "train_acc", "test_acc", "epoch_seconds")
PARTS = ("model", "optimizer")  # tensor name prefixes: "model/W1", "optimizer/m/W1"


def write_checkpoint(path: str | os.PathLike, state: dict, settings: dict) -> None:
    """Write a run's ``state`` and ``settings`` to ``path`` atomically (see the module docstring).

    ``settings``: ``class`` and ``optimizer`` (class names), ``config`` (the model's, JSON-able),
    ``mini_batch_size`` and ``epochs`` (ints).
    """
    tensors = {f"{part}/{k}": v for part in PARTS for k, v in state[part].items()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "class": settings["class"],
        "config": json.dumps(settings["config"]),
        "optimizer": settings["optimizer"],
        "epoch": str(state["epoch"]),
        "epochs": str(settings["epochs"]),
        "mini_batch_size": str(settings["mini_batch_size"]),
        "rng": json.dumps(state["rng"]),
        "model_rngs": json.dumps(state["model_rngs"]),
        "history": json.dumps(state["history"]),
    }
    if state.get("augmenter_rng") is not None:
        meta["augmenter_rng"] = json.dumps(state["augmenter_rng"])
    save_tensors(path, tensors, meta)


def read_checkpoint(path: str | os.PathLike, settings: dict) -> dict:
    """Read a checkpoint written by ``write_checkpoint`` and return its state.

    ``settings`` are those of the run that resumes: ``class``, ``config``, ``optimizer`` and
    ``mini_batch_size`` must equal the saved ones, and ``augmenter_rng`` (True when its
    Augmenter draws from a generator of its own) must match whether one was saved; else
    ValueError. A damaged or foreign file raises ModelFileError (a ValueError) naming it.
    Whether the arrays and generator states fit the model and optimizer is for the caller
    to find out when it sets them.
    """
    tensors, meta = load_tensors(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: not a scratchdl checkpoint (format {meta.get('format')!r})")
    try:
        saved = {
            "class": meta["class"],
            "config": json.loads(meta["config"]),
            "optimizer": meta["optimizer"],
            "mini_batch_size": int(meta["mini_batch_size"]),
        }
        epoch = int(meta["epoch"])
        state = {
            "rng": json.loads(meta["rng"]),
            "model_rngs": json.loads(meta["model_rngs"]),
            "augmenter_rng": (
                json.loads(meta["augmenter_rng"]) if "augmenter_rng" in meta else None
            ),
            "history": json.loads(meta["history"]),
            "epoch": epoch,
        }
    except (KeyError, ValueError, RecursionError) as e:
        raise ModelFileError(
            f"{path}: checkpoint metadata is incomplete or corrupt ({e!r})"
        ) from None
    for key, value in saved.items():
        want = settings[key]
        if value != want:
            raise ValueError(
                f"{path} was saved with {key} {value!r}, but this run has {want!r}; "
                f"resume with the same settings or start a new run"
            )
    own_rng = state["augmenter_rng"] is not None
    if own_rng != bool(settings.get("augmenter_rng")):
        was, has = ("an", "no") if own_rng else ("no", "an")
        raise ValueError(
            f"{path} was saved with {was} Augmenter that has a generator of its own, but this "
            f"run has {has} such Augmenter; resume with the same settings or start a new run"
        )
    check_finite_tensors(path, tensors)
    for part in PARTS:
        prefix = f"{part}/"
        state[part] = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        stray = sorted(k for k in tensors if not k.startswith(tuple(f"{p}/" for p in PARTS)))
        if stray:
            raise ValueError(f"unexpected tensors {stray}")
        _check_history(state["history"], epoch)
    except ValueError as e:
        raise ModelFileError(f"{path}: the checkpoint does not fit this run: {e}") from None
    return state


def _check_history(history: object, epoch: int) -> None:
    """Raise ValueError unless ``history`` holds the lists of HISTORY_KEYS, one per epoch."""
    if not isinstance(history, dict) or not all(
        isinstance(history.get(k), list) for k in HISTORY_KEYS
    ):
        raise ValueError(
            f"history must be a dict of the lists {HISTORY_KEYS}, got {_short(history)}"
        )
    for key in HISTORY_KEYS:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in history[key]):
            raise ValueError(f"history[{key!r}] must hold numbers, got {_short(history[key])}")
    counts = {k: len(history[k]) for k in HISTORY_KEYS[1:]}
    if epoch < 0 or any(n != epoch for n in counts.values()):
        raise ValueError(f"history has {counts} entries, but the checkpoint is of epoch {epoch}")
