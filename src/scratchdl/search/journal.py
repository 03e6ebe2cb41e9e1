"""A search's folder: its settings (``search.json``) and the journal of its finished trials
(``trials.jsonl``), which is what makes a search resumable.

The journal is append-only, one JSON line per trial, written and fsynced the moment a result
comes back, so a search that is stopped (Ctrl-C, a lost scheduler, a power cut) keeps every
trial that finished. Running the same search into the same folder again reads the journal
and runs only the trials it lacks; a search with other settings is refused, naming them.
The folder is expected to be locked (``scratchdl.atomic.lock_folder``) while a search writes
into it, so that no two searches append to one journal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import atomic_write
from .trial import RECORD_KEYS

SETTINGS_FILE = "search.json"
JOURNAL_FILE = "trials.jsonl"
FORMAT = 1  # of search.json; a later layout of the folder would change it


class Journal:
    """The finished trials of the search in ``out``: ``finished`` maps a trial's index to its
    record; ``append`` adds one, on disk first."""

    def __init__(self, out: Path, finished: dict[int, dict]) -> None:
        self.out = out
        self.path = out / JOURNAL_FILE
        self.finished = finished

    @classmethod
    def open(cls, out: str | os.PathLike, settings: dict) -> Journal:
        """The journal of the search in ``out``, whose ``settings`` (a JSON-able dict keyed
        by option) must be those recorded there; a new folder records them.

        ValueError, naming each setting that differs (or the damaged file), otherwise.
        """
        out = Path(out)
        settings = json.loads(json.dumps(settings))  # as read back: lists, not tuples
        saved_path = out / SETTINGS_FILE
        finished = read_journal(out / JOURNAL_FILE)
        if saved_path.exists():
            saved = read_settings(saved_path)
            if finished:  # with no trial finished, there is nothing to keep: new settings
                check_same(out, saved, settings)
        elif finished:
            raise ValueError(
                f"--out {out}: {JOURNAL_FILE} is there without {SETTINGS_FILE}, so its trials "
                "cannot be matched to these settings; use another --out"
            )
        if not saved_path.exists() or not finished:
            record = {"format": FORMAT, "settings": settings}
            atomic_write(saved_path, json.dumps(record, indent=1).encode())
        return cls(out, finished)

    def append(self, record: dict) -> None:
        """Add a trial's record to the journal (flushed and fsynced) and to ``finished``."""
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.finished[int(record["trial"])] = record


def read_settings(path: Path) -> dict:
    """The settings recorded in ``search.json``; ValueError if it is damaged."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved["format"] != FORMAT or not isinstance(saved["settings"], dict):
            raise ValueError("unknown format")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"--out {path.parent}: {path.name} is not the settings file of a search ({e}); "
            "use another --out"
        ) from None
    return saved["settings"]


def check_same(out: Path, saved: dict, given: dict) -> None:
    """ValueError naming every setting of ``given`` that differs from ``saved``."""
    keys = list(saved) + [k for k in given if k not in saved]
    differ = [
        f"{key} {_show(saved.get(key))} there, {_show(given.get(key))} here"
        for key in keys
        if saved.get(key) != given.get(key)
    ]
    if differ:
        raise ValueError(
            f"--out {out} holds a search with other settings ({'; '.join(differ)}); run it "
            "with its own settings to resume it, or choose another --out"
        )


def _show(value) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "none" if value is None else json.dumps(value)


def read_journal(path: Path) -> dict[int, dict]:
    """The records of ``trials.jsonl`` (``trial.run_trial``'s) by trial index (the first, if
    one appears twice).

    A last line cut short (the search was killed while writing it) is cut off the file, so
    that the next record starts on a line of its own; any other line that is not a record
    raises ValueError naming it.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    end = data.rfind(b"\n") + 1  # where the complete lines end
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    finished: dict[int, dict] = {}
    for number, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            missing = [key for key in RECORD_KEYS if key not in record]
            if missing:
                raise ValueError(f"no {', '.join(missing)}")
            index = record["trial"]
            if not isinstance(index, int) or index < 0 or not isinstance(record["params"], dict):
                raise ValueError(f"trial {index!r}, params {record['params']!r}")
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"{path}: line {number} is not the record of a trial ({e}); remove that line "
                "(its trial will run again) or use another --out"
            ) from None
        finished.setdefault(index, record)
    return finished
