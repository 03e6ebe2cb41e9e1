"""Helpers shared by the experiment modules: settings, results, data, progress."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np

from ..support.atomic import atomic_write
from ..support.checks import is_real, short_repr
from ..support.figures import save_figure

KINDS = (int, float, str)  # what a setting can be; its default's type says which


@dataclass(frozen=True)
class Setting:
    """One setting of an experiment: its default, its quick-mode value and what it accepts.

    The kind is the default's type: an int or a float must be finite and lie in low..high
    (closed unless ``low_open`` / ``high_open``); a str must be one of ``choices`` if given,
    and with ``file`` either "" (none) or the path of an existing file. The default and the
    quick value (None: the default) are checked here, so neither can leave the range.
    """

    default: int | float | str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    quick: int | float | str | None = None
    choices: tuple[str, ...] = ()
    file: bool = False

    def __post_init__(self) -> None:
        if type(self.default) not in KINDS:
            raise TypeError(f"a setting is an int, a float or a str, got {self.default!r}")
        if self.kind is str and not (self.choices or self.file):
            raise TypeError("a str setting needs its choices, or file=True for a file path")
        self.check("default", self.default)
        if self.quick is not None:
            self.check("quick", self.quick)

    @property
    def kind(self) -> type:
        return type(self.default)

    def value(self, quick: bool = False) -> int | float | str:
        """The value of this mode: the quick one in ``quick`` mode (if set), else the default."""
        return self.quick if quick and self.quick is not None else self.default

    def accepts(self) -> str:
        """What it accepts, in words: ``an integer >= 1``, ``a finite number in [0, 1)``."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.file:
            return "the path of an existing file, or empty for none"
        what = "an integer" if self.kind is int else "a finite number"
        if self.low == -math.inf and self.high == math.inf:
            return what
        if self.high == math.inf:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if self.low == -math.inf:
            return f"{what} {'<' if self.high_open else '<='} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{what} in {left}{self.low:g}, {self.high:g}{right}"

    def check(self, label: str, value: object) -> int | float | str:
        """``value``, or its text as the command line gives it, as this setting's kind.

        Raises ValueError ``<label> must be <what it accepts>, got <value>`` for a value of
        another kind, out of range, NaN or infinite.
        """
        try:
            converted = self._convert(value)
        except ValueError:
            raise ValueError(f"{label} must be {self.accepts()}, got {short_repr(value)}") from None
        if not self._accepted(converted):
            raise ValueError(f"{label} must be {self.accepts()}, got {short_repr(converted)}")
        return converted

    def _accepted(self, value: int | float | str) -> bool:
        if self.choices:
            return value in self.choices
        if self.file:
            return value == "" or _is_file(value)
        if self.kind is float and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below  # an int is compared exactly, however large

    def _convert(self, value: object) -> int | float | str:
        if self.kind is str:
            if isinstance(value, str | os.PathLike):
                return str(os.fspath(value))
        elif isinstance(value, str):
            return self.kind(value)  # int("2.5"), float("fast") raise ValueError
        elif self.kind is int:
            if isinstance(value, Integral) and not isinstance(value, bool):
                return int(value)  # never a float: int(2.5) would quietly become 2
        elif is_real(value):
            return float(value)
        raise ValueError(f"not a {self.kind.__name__}")


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte: no file of that name
        return False


def count(
    default: int, *, quick: int | None = None, low: int = 1, high: float = math.inf
) -> Setting:
    """An integer setting >= ``low`` (1 unless given): a size, a number of steps."""
    return Setting(default, low, high, quick=quick)


def positive(default: float, *, quick: float | None = None) -> Setting:
    """A finite number > 0: a learning rate, a weight scale."""
    return Setting(default, 0, low_open=True, quick=quick)


def options(
    given: Mapping[str, object], settings: Mapping[str, Setting], name: str, *, quick: bool = False
) -> dict:
    """The values of ``settings`` in this mode (``quick`` or the book's), updated by ``given``
    (Python values, or the text of ``--set``), each converted to its kind and checked.

    Call it first: a bad value raises ValueError naming the experiment, the setting, the value
    and what the setting accepts before anything is computed or written; an unknown setting
    raises one naming the accepted ones.
    """
    unknown = sorted(set(given) - set(settings))
    if unknown:
        accepted = ", ".join(f"{k}={s.value(quick)!r}" for k, s in settings.items())
        raise ValueError(
            f"experiment {name} has no option {', '.join(unknown)}; options: {accepted or 'none'}"
        )
    values = {key: s.value(quick) for key, s in settings.items()} | dict(given)
    return {
        key: settings[key].check(f"experiment {name}: setting {key}", value)
        for key, value in values.items()
    }


def check_order(name: str, opts: Mapping, low_key: str, high_key: str) -> None:
    """ValueError unless setting ``low_key`` <= setting ``high_key`` (the two ends of a range)."""
    if opts[low_key] > opts[high_key]:
        raise ValueError(
            f"experiment {name}: setting {low_key} must be <= {high_key}, "
            f"got {opts[low_key]!r} and {opts[high_key]!r}"
        )


def check_at_most(name: str, key: str, value: int, limit: int, what: str) -> None:
    """ValueError unless ``value`` <= ``limit``: a bound known only once the data is loaded."""
    if value > limit:
        raise ValueError(
            f"experiment {name}: setting {key} must be <= {limit} ({what}), got {value!r}"
        )


def save_result(out: str | os.PathLike, name: str, fig, numbers: dict) -> dict:
    """Write ``out/name.png`` and ``out/name.json`` (both atomically); return ``numbers``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out / f"{name}.png")
    atomic_write(out / f"{name}.json", json.dumps(plain(numbers), indent=1).encode())
    return numbers


def plain(value):
    """numpy scalars and arrays -> JSON-able Python values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def progress(iterable: Iterable, *, total: int | None = None, desc: str = "", enable: bool = True):
    """A tqdm progress bar over ``iterable`` when tqdm is installed and ``enable``."""
    if enable:
        try:
            from tqdm.auto import tqdm

            return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
        except ImportError:
            pass
    return iterable


def mnist(*, flatten: bool = True, quick: bool = False, progress: bool = True):
    """MNIST for an experiment: the full set, or in ``quick`` mode the 2000/1000-image sample
    shipped with the package (offline, no download)."""
    from ..datasets import load_mnist, load_mnist_sample

    if quick:
        return load_mnist_sample(flatten=flatten)
    return load_mnist(flatten=flatten, progress=progress)
