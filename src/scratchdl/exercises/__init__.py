"""The notebooks' exercises (練習問題) that check themselves.

A notebook asks the reader to fill in a cell, then calls::

    from scratchdl.exercises import check
    check("rmsprop", MyRMSprop)

``check`` runs the reader's answer on the exercise's inputs beside the library's own answer.
It prints, in Japanese, what is right, or the first difference (where, the right value, the
reader's value) and a hint, and returns a ``Verdict`` (true when right; a notebook shows
nothing more for it, the message being printed already). A wrong answer, an unfinished one
(``raise NotImplementedError``) and an answer that raises are all reported, never raised:
a notebook keeps running. ``EXERCISES`` lists every name with its chapter and title; the
solutions are in ``notebooks/solutions/``.

Importing this module loads numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

from . import tasks  # noqa: F401  (registers every exercise in TASKS)
from .checks import TASKS, Mismatch

__all__ = ["EXERCISES", "Verdict", "check"]

# name -> (chapter, title in Japanese), in the book's order
EXERCISES: dict[str, tuple[int, str]] = {
    name: (task.chapter, task.title) for name, task in TASKS.items()
}
OK_MARK, NG_MARK = "✔", "✘"


class Verdict:
    """What ``check`` found: ``ok`` (also the truth value) and the ``message`` it printed."""

    def __init__(self, name: str, ok: bool, message: str) -> None:
        self.name, self.ok, self.message = name, ok, message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"Verdict({self.name!r}, ok={self.ok})"

    def _ipython_display_(self) -> None:
        """Show nothing more in a notebook: the message is printed already."""


def check(name: str, candidate: Callable) -> Verdict:
    """Check the reader's ``candidate`` for exercise ``name``; print the verdict in Japanese."""
    task = TASKS.get(name) if isinstance(name, str) else None
    if task is None:
        raise ValueError(f"unknown exercise {name!r}; choose one of: {', '.join(TASKS)}")
    head = f"練習問題「{name}」（第{task.chapter}章 {task.title}）"
    hint = task.hint
    try:
        lines = [f"{OK_MARK} {head}: 正解です。{task.run(candidate)}"]
    except Mismatch as miss:
        lines = [f"{NG_MARK} {head}: {miss.what}", *(f"  {d}" for d in miss.details)]
        hint = miss.hint or hint
    except NotImplementedError:
        lines = [f"{NG_MARK} {head}: まだ書かれていません（NotImplementedError）。"]
    except Exception as error:  # the reader's code raised: report it, keep the notebook going
        lines = [f"{NG_MARK} {head}: あなたのコードがエラーを出しました: "]
        lines[0] += f"{type(error).__name__}: {error}"
    ok = lines[0].startswith(OK_MARK)
    if not ok:
        lines.append(f"  ヒント: {hint}")
    message = "\n".join(lines)
    print(message)
    return Verdict(name, ok, message)
