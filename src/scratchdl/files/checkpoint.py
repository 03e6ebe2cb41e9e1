"""The Trainer's checkpoints: everything needed to continue a run bit for bit, in one file.

A checkpoint is a safetensors file (safetensors_file.py). Its tensors are the model's
``state_dict()`` under ``model/``, the optimizer's under ``optimizer/`` and the loss of every
iteration as ``history/loss`` (float64: millions of iterations stay small and exact). Its
metadata holds ``format="scratchdl-checkpoint"``, ``format_version``, the run's settings
(``class``, ``config`` as JSON, ``optimizer``, ``mini_batch_size``, ``epochs``,
``lr_decay_epochs``, ``lr_decay``, and ``settings``: those the caller chose, such as the data
set and seed of a command line, as JSON), the ``epoch`` completed, the rest of the
``history`` and the states of the random generators as JSON: the trainer's (``rng``), the
model's Dropout layers' (``model_rngs``) and, when an Augmenter draws from a generator of its
own, that one's (``augmenter_rng``). Checkpoints of format_version 1 (the loss in the JSON
history, no lr decay or caller settings recorded) are read too.

The state goes in and comes out as one dict: ``model`` and ``optimizer`` (name -> array),
``rng``, ``model_rngs``, ``augmenter_rng`` (None when the run has no generator of its own for
augmentation), ``history`` and ``epoch``; ``read_checkpoint`` adds ``epochs``, the epochs the
saved run was set to train.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..support.checks import short_repr as _short
from .safetensors_file import (
    ModelFileError,
    check_finite_tensors,
    load_tensors,
    save_tensors,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "HISTORY_KEYS",
    "read_checkpoint",
    "write_checkpoint",
]

CHECKPOINT_FORMAT = "scratchdl-checkpoint"
CHECKPOINT_VERSION = "2"  # 2: the loss history as a tensor; lr decay and caller settings
HISTORY_KEYS = ("loss", "train_acc", "test_acc", "epoch_seconds")
PARTS = ("model", "optimizer")  # tensor name prefixes: "model/W1", "optimizer/m/W1"
LOSS_TENSOR = "history/loss"
# the Trainer's own settings, compared in this order; config only when the class is the same
TRAINER_SETTINGS = (
    "class",
    "config",
    "optimizer",
    "mini_batch_size",
    "lr_decay_epochs",
    "lr_decay",
)


def write_checkpoint(path: str | os.PathLike, state: dict, settings: dict) -> None:
    """Write a run's ``state`` and ``settings`` to ``path`` atomically (see the module docstring).

    ``settings``: ``class`` and ``optimizer`` (class names), ``config`` (the model's, JSON-able),
    ``mini_batch_size`` and ``epochs`` (ints), ``lr_decay_epochs`` (ints), ``lr_decay`` (a
    float) and ``settings`` (a JSON-able dict of the caller's). NaN or infinite weights or
    optimizer state raise ValueError and write nothing: the previous checkpoint stays.
    """
    tensors = {f"{part}/{k}": v for part in PARTS for k, v in state[part].items()}
    check_finite_tensors(path, tensors, writing=True)
    history = {k: v for k, v in state["history"].items() if k != "loss"}
    tensors[LOSS_TENSOR] = np.asarray(state["history"]["loss"], dtype=np.float64)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "class": settings["class"],
        "config": _json(settings["config"]),
        "optimizer": settings["optimizer"],
        "epoch": str(state["epoch"]),
        "epochs": str(settings["epochs"]),
        "mini_batch_size": str(settings["mini_batch_size"]),
        "lr_decay_epochs": _json(list(settings["lr_decay_epochs"])),
        "lr_decay": _json(settings["lr_decay"]),
        "settings": _json(settings["settings"]),
        "rng": _json(state["rng"]),
        "model_rngs": _json(state["model_rngs"]),
        "history": _json(history),
    }
    if state.get("augmenter_rng") is not None:
        meta["augmenter_rng"] = _json(state["augmenter_rng"])
    save_tensors(path, tensors, meta)


def _json(value: object) -> str:
    """Deterministic JSON (sorted keys): the same run state gives the same file."""
    return json.dumps(value, sort_keys=True, allow_nan=False)


def read_checkpoint(path: str | os.PathLike, settings: dict) -> dict:
    """Read a checkpoint written by ``write_checkpoint`` and return its state.

    ``settings`` are those of the run that resumes, as ``write_checkpoint`` takes them, plus
    ``augmenter_rng`` (True when its Augmenter draws from a generator of its own). The
    caller's ``settings`` are compared first, in its own words, then the Trainer's own
    (``TRAINER_SETTINGS``): any that differ from the saved ones raise ValueError naming each
    of them with the saved and the given value, as does an ``augmenter_rng`` that does not
    match whether one was saved. ``epochs`` may differ (a run can be extended). A damaged or
    foreign file raises ModelFileError (a ValueError) naming it. Whether the arrays and
    generator states fit the model and optimizer is for the caller to find out when it sets
    them.
    """
    tensors, meta = load_tensors(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: not a scratchdl checkpoint (format {meta.get('format')!r})")
    version = meta.get("format_version", "1")
    if version not in ("1", CHECKPOINT_VERSION):
        raise ModelFileError(
            f"{path}: checkpoint format_version {_short(version)} is not supported (this "
            f"scratchdl reads 1 and {CHECKPOINT_VERSION}); upgrade scratchdl"
        )
    try:
        saved = {
            "class": meta["class"],
            "config": json.loads(meta["config"]),
            "optimizer": meta["optimizer"],
            "mini_batch_size": int(meta["mini_batch_size"]),
        }
        for key in ("lr_decay_epochs", "lr_decay", "settings"):  # format_version 2 on
            if version != "1":
                saved[key] = json.loads(meta[key])
        if not isinstance(saved.get("settings", {}), dict):
            raise ValueError(f"settings must be a JSON object, got {_short(saved['settings'])}")
        state = {
            "rng": json.loads(meta["rng"]),
            "model_rngs": json.loads(meta["model_rngs"]),
            "augmenter_rng": (
                json.loads(meta["augmenter_rng"]) if "augmenter_rng" in meta else None
            ),
            "history": json.loads(meta["history"]),
            "epoch": int(meta["epoch"]),
            "epochs": int(meta["epochs"]),
        }
        if state["epochs"] < 1:
            raise ValueError(f"epochs must be >= 1, got {state['epochs']}")
    except (KeyError, ValueError, RecursionError) as e:
        raise ModelFileError(
            f"{path}: checkpoint metadata is incomplete or corrupt ({e!r})"
        ) from None
    differences = _differences(saved, settings)
    if differences:
        raise ValueError(
            f"{path} was saved with other settings: {'; '.join(differences)}; resume with "
            "the saved settings or start a new run"
        )
    own_rng = state["augmenter_rng"] is not None
    if own_rng != bool(settings.get("augmenter_rng")):
        was, has = ("an", "no") if own_rng else ("no", "an")
        raise ValueError(
            f"{path} was saved with {was} Augmenter that has a generator of its own, but this "
            f"run has {has} such Augmenter; resume with the same settings or start a new run"
        )
    check_finite_tensors(path, tensors)
    loss = tensors.pop(LOSS_TENSOR, None)
    for part in PARTS:
        prefix = f"{part}/"
        state[part] = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        stray = sorted(k for k in tensors if not k.startswith(tuple(f"{p}/" for p in PARTS)))
        if stray:
            raise ValueError(f"unexpected tensors {stray}")
        history = state["history"]
        if not isinstance(history, dict):
            raise ValueError(f"history must be a dict, got {_short(history)}")
        if (version == "1") != (loss is None) or (loss is not None and "loss" in history):
            raise ValueError(
                f"the loss history must be the tensor {LOSS_TENSOR!r} (format_version 2) or "
                "a list in the JSON history (format_version 1), once"
            )
        if loss is not None:
            if loss.dtype != np.float64 or loss.ndim != 1:
                raise ValueError(
                    f"{LOSS_TENSOR} must be a 1-D float64 tensor, got {loss.dtype} {loss.shape}"
                )
            history["loss"] = loss.tolist()
        _check_history(history, state["epoch"], checked={"loss"} if loss is not None else ())
    except ValueError as e:
        raise ModelFileError(f"{path}: the checkpoint does not fit this run: {e}") from None
    return state


def _differences(saved: dict, settings: dict) -> list[str]:
    """'name saved (this run: given)' for each setting that differs: the caller's first;
    the Trainer's own only when the caller's all agree (they may name the same thing)."""
    found = []
    if "settings" in saved:  # format_version 1 recorded none
        own = saved["settings"]
        given = json.loads(_json(settings.get("settings", {})))  # tuples as lists, as saved
        for key in sorted(set(own) | set(given)):
            if own.get(key) != given.get(key):
                was, now = own.get(key, "(not set)"), given.get(key, "(not set)")
                found.append(f"{key} {_short(was)} (this run: {_short(now)})")
    if found:
        return found
    for key in TRAINER_SETTINGS:
        if key not in saved or key not in settings:
            continue
        if key == "config" and saved["class"] != settings.get("class"):
            continue
        want = settings[key]
        if key in ("config", "lr_decay_epochs"):
            want = json.loads(_json(list(want) if key == "lr_decay_epochs" else want))
        if saved[key] != want:
            found.append(f"{key} {_short(saved[key])} (this run: {_short(want)})")
    return found


def _check_history(history: dict, epoch: int, checked=()) -> None:
    """Raise ValueError unless ``history`` holds the lists of HISTORY_KEYS, one per epoch.

    ``checked``: keys whose lists came from a typed tensor and need no element check.
    """
    if not all(isinstance(history.get(k), list) for k in HISTORY_KEYS):
        raise ValueError(
            f"history must be a dict of the lists {HISTORY_KEYS}, got {_short(history)}"
        )
    for key in HISTORY_KEYS:
        if key in checked:
            continue
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in history[key]):
            raise ValueError(f"history[{key!r}] must hold numbers, got {_short(history[key])}")
    counts = {k: len(history[k]) for k in HISTORY_KEYS[1:]}
    if epoch < 0 or any(n != epoch for n in counts.values()):
        raise ValueError(f"history has {counts} entries, but the checkpoint is of epoch {epoch}")
