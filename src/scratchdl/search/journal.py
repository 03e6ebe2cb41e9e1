"""A search's folder: its settings (``search.json``) and the journal of its finished trials
(``trials.jsonl``), which is what makes a search resumable.

The journal is append-only, one JSON line per trial, written and fsynced the moment a result
comes back, so a search that is stopped (Ctrl-C, a lost scheduler, a power cut) keeps every
trial that finished. Running the same search into the same folder again reads the journal
and runs only the trials it lacks; a search with other settings is refused, naming them.
Reading changes nothing on disk: a last line without its newline is kept when it is a whole
record, and a last line cut short is set aside; either is mended by the first ``append``,
which comes only after every check has passed. Every record's values are checked as they are
read (a hand-edited journal is refused, naming the line), so what is ranked and written to
``best.json`` is what a trial could have returned.
The folder is expected to be locked (``scratchdl.support.atomic.lock_folder``) while a search writes
into it, so that no two searches append to one journal.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..support.atomic import atomic_write
from .trial import RECORD_KEYS

SETTINGS_FILE = "search.json"
JOURNAL_FILE = "trials.jsonl"
FORMAT = 1  # of search.json; a later layout of the folder would change it


class Contents(NamedTuple):
    """What ``read_journal`` found in ``trials.jsonl``."""

    finished: dict[int, dict]  # the records, by trial index (the first, if one appears twice)
    end: int  # bytes up to the end of the last record: where the next one goes
    newline: bool  # whether a newline must come first (the last record has none)
    torn: bytes  # a last line cut short (the search was killed while writing it), else b""


class Journal:
    """The finished trials of the search in ``out``: ``finished`` maps a trial's index to its
    record; ``append`` adds one, on disk first. ``torn`` is a last line that was cut short
    (set aside: the first ``append`` cuts it off), else b""."""

    def __init__(self, out: Path, contents: Contents) -> None:
        self.out = out
        self.path = out / JOURNAL_FILE
        self.finished = contents.finished
        self.torn = contents.torn
        self._mend: Contents | None = contents if contents.newline or contents.torn else None

    @classmethod
    def open(cls, out: str | os.PathLike, settings: dict) -> Journal:
        """The journal of the search in ``out``, whose ``settings`` (a JSON-able dict keyed
        by option) must be those recorded there; a new folder records them. Nothing in
        ``out`` changes unless they are.

        ValueError, naming each setting that differs (or the damaged file), otherwise.
        """
        out = Path(out)
        settings = json.loads(json.dumps(settings))  # as read back: lists, not tuples
        saved_path = out / SETTINGS_FILE
        contents = read_contents(out / JOURNAL_FILE)
        finished = contents.finished
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
            with naming(saved_path):
                atomic_write(saved_path, json.dumps(record, indent=1).encode())
        return cls(out, contents)

    def append(self, record: dict) -> None:
        """Add a trial's record to the journal (flushed and fsynced) and to ``finished``.

        The first append mends the end of the file as read: a torn last line is cut off, a
        last record without its newline gets one, so that this record has a line of its own.
        """
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        with naming(self.path):
            if self._mend is not None:
                if self._mend.torn:
                    with open(self.path, "r+b") as f:
                        f.truncate(self._mend.end)
                if self._mend.newline:
                    line = "\n" + line
                self._mend = None
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        self.finished[int(record["trial"])] = record


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Re-raise an OSError of the block (a full disk: ``[Errno 28]`` alone) naming ``path``."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or str(path) in str(e):
            raise  # it names a file already
        raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from e


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
    one appears twice); see ``read_contents``."""
    return read_contents(path).finished


def read_contents(path: Path) -> Contents:
    """What ``trials.jsonl`` holds, read without changing it.

    A last line without its newline is a record like any other when it parses as one, and
    is set aside (``torn``) when it does not: a search killed while writing it. Any other
    line that is not a record (``check_record``) raises ValueError naming it.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Contents({}, 0, False, b"")
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: b"" when the file ends with one
    finished: dict[int, dict] = {}
    for number, line in enumerate(lines, start=1):
        if line.strip():
            record = parse_record(path, number, line)
            finished.setdefault(record["trial"], record)
    end, newline, torn = len(data) - len(tail), False, tail
    if tail.strip():
        try:
            record = _loads(tail)
        except (json.JSONDecodeError, UnicodeDecodeError):  # cut short: set aside
            pass
        else:  # whole: a record like any other, without its newline
            record = parse_record(path, len(lines) + 1, tail, record)
            finished.setdefault(record["trial"], record)
            end, newline, torn = len(data), True, b""
    return Contents(finished, end, newline, torn)


def parse_record(path: Path, number: int, line: bytes, record=None) -> dict:
    """Line ``number`` of ``path`` (``record``: it parsed already) as a checked record;
    ValueError, naming the line, the reason and the fix, if it is not one."""
    try:
        if record is None:
            record = _loads(line)
        check_record(record)
    except ValueError as e:
        raise ValueError(
            f"{path}: line {number} is not the record of a trial ({e}); remove that line "
            "(its trial will run again) or use another --out"
        ) from None
    return record


def _loads(line: bytes):
    """``json.loads``, refusing NaN and Infinity (not JSON, and NaN would rank first) and
    nesting too deep to parse, each with a ValueError."""
    try:
        return json.loads(line, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def check_record(record) -> None:
    """ValueError, naming the first value that is wrong, unless ``record`` has the keys and
    the types of ``trial.run_trial``'s: a hand-edited journal must not reach the ranking."""
    if not isinstance(record, dict):
        raise ValueError(f"a JSON object is expected, got {_json(record)}")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    index = record["trial"]
    if not _is_int(index) or index < 0:
        raise ValueError(f"trial must be a whole number >= 0, got {_json(index)}")
    params = record["params"]
    if not isinstance(params, dict) or not all(_is_number(v) for v in params.values()):
        raise ValueError(f"params must map names to finite numbers, got {_json(params)}")
    if not isinstance(record["diverged"], bool):
        raise ValueError(f"diverged must be true or false, got {_json(record['diverged'])}")
    for key in ("val_acc", "train_acc"):
        value = record[key]
        if record["diverged"] and value is not None:
            raise ValueError(f"{key} must be null in a diverged trial, got {_json(value)}")
        if not record["diverged"] and not _is_accuracy(value):
            raise ValueError(f"{key} must be an accuracy from 0 to 1, got {_json(value)}")
    if not _is_number(record["seconds"]) or record["seconds"] < 0:
        raise ValueError(f"seconds must be a number >= 0, got {_json(record['seconds'])}")
    if not isinstance(record["worker"], str):
        raise ValueError(f"worker must be a string, got {_json(record['worker'])}")
    for key in ("val_acc_curve", "train_acc_curve"):
        curve = record[key]
        if not isinstance(curve, list) or not all(map(_is_accuracy, curve)):
            raise ValueError(f"{key} must be a list of accuracies from 0 to 1, got {_json(curve)}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """A finite float, or an int within float's range (compared as an int: math.isfinite
    overflows on one of 400 digits)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return _is_int(value) and abs(value) <= sys.float_info.max


def _is_accuracy(value) -> bool:
    return _is_number(value) and 0 <= value <= 1


def _json(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
