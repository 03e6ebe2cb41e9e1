"""The tools of the exercises' checks: ``Mismatch`` (the first difference, with a hint),
``same`` and ``unchanged`` (which find it), and the registry that ``@task`` fills.

Messages are Japanese, in the book's terms, like the notebooks that show them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RTOL, ATOL = 1e-7, 1e-9  # the reader's float64 arithmetic may differ from ours in round-off


class Mismatch(Exception):
    """The first place where the reader's answer differs from the right one."""

    def __init__(self, what: str, details: tuple[str, ...] = (), hint: str | None = None):
        super().__init__(what)
        self.what, self.details, self.hint = what, details, hint


@dataclass(frozen=True)
class Task:
    """One exercise: ``run(candidate)`` returns what was right, or raises ``Mismatch``."""

    chapter: int
    title: str
    hint: str  # shown when no more specific hint applies
    run: Callable[[Callable], str]


TASKS: dict[str, Task] = {}  # name -> exercise, in the book's order


def task(chapter: int, title: str, hint: str) -> Callable[[Callable], Callable]:
    """Register the decorated check as exercise ``chapter``/``title`` under its own name."""

    def register(run: Callable[[Callable], str]) -> Callable[[Callable], str]:
        TASKS[run.__name__] = Task(chapter, title, hint, run)
        return run

    return register


def number(v) -> str:
    """A value as the messages show it: integers whole, floats to 8 significant digits."""
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, bool | int | np.integer):
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.8g}"
    return repr(v)


def same(what: str, expected, got, *, hint: str | None = None, rtol=RTOL, atol=ATOL) -> None:
    """Raise Mismatch unless ``got`` equals ``expected`` (shape first, then each entry)."""
    if got is None:
        raise Mismatch(f"{what}: 値が返っていません。", ("return を書き忘れていませんか。",), hint)
    expected = np.asarray(expected)
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise Mismatch(
            f"{what}: 数値の配列ではありません（{type(got).__name__}）。", (), hint
        ) from None
    if got.shape != expected.shape:
        raise Mismatch(
            f"{what}の形が違います。",
            (f"正しくは {expected.shape}、あなたの答えは {got.shape} です。",),
            hint,
        )
    close = np.isclose(got, expected, rtol=rtol, atol=atol)
    if close.all():
        return
    idx = tuple(int(i) for i in np.argwhere(~close)[0])
    where = f"位置 {idx} で" if idx else ""
    raise Mismatch(
        f"{what}が違います。",
        (
            f"{where}正しくは {number(expected[idx])}、あなたの答えは {number(got[idx])} です"
            f"（違う要素は {int((~close).sum())} / {close.size} 個）。",
        ),
        hint,
    )


def unchanged(what: str, before: np.ndarray, after: np.ndarray) -> None:
    """Raise Mismatch when the reader's code wrote into an input it was given."""
    if not np.array_equal(before, after):
        raise Mismatch(
            f"入力の {what} が書き換えられています。",
            ("入力の配列はそのままにして、新しい配列を返します。",),
            "x -= ... や x[...] = ... は渡された配列そのものを変えます。x = x - ... と書きます。",
        )
