"""The search space: which hyperparameters a search varies, over which ranges, and how each
trial's values are drawn (book ch6: the learning rate and the weight decay, log-uniform).

A trial's values are a function of the search seed and the trial's index alone
(``sample``), so a search is reproducible whatever order its trials finish in and whatever
workers run them, and a search extended to more trials keeps the trials it had.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# What a search may vary, and the book's ranges for them (fig. 6-24): 10**U(-6, -2) for the
# learning rate, 10**U(-8, -4) for the weight decay lambda.
PARAMETERS = {"lr": "the learning rate", "weight_decay": "the weight decay lambda"}
SCALES = ("log", "linear")
BOOK_SPACE = ("lr=1e-6:1e-2:log", "weight_decay=1e-8:1e-4:log")
FORM = "NAME=LOW:HIGH[:log|linear]"
PARAMS_STREAM = 0  # the generator of trial i's values is default_rng([seed, i, PARAMS_STREAM])
TRAINING_STREAM = 1  # ... and of its initial weights and mini-batches, [seed, i, TRAINING_STREAM]


@dataclass(frozen=True)
class Range:
    """One hyperparameter's range: ``low < high``, drawn uniformly on a log or linear scale."""

    name: str
    low: float
    high: float
    scale: str = "log"

    def __post_init__(self) -> None:
        if self.name not in PARAMETERS:
            raise ValueError(
                f"--space: unknown hyperparameter {self.name!r}; choices: {', '.join(PARAMETERS)}"
            )
        if self.scale not in SCALES:
            raise ValueError(
                f"--space {self.text()}: the scale must be one of {', '.join(SCALES)}, "
                f"got {self.scale!r}"
            )
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"--space {self.text()}: LOW and HIGH must be finite numbers")
        if self.low == self.high:
            raise ValueError(
                f"--space {self.text()}: the range is empty (LOW = HIGH = {self.low:g}); "
                f"give LOW < HIGH, or leave {self.name} out to keep the book's range"
            )
        if self.low > self.high:
            swapped = f"{self.name}={self.high:g}:{self.low:g}:{self.scale}"
            raise ValueError(
                f"--space {self.text()}: the range is inverted (LOW {self.low:g} > HIGH "
                f"{self.high:g}); give LOW first: {swapped}"
            )
        if self.low <= 0 and (self.scale == "log" or self.name == "lr"):
            why = "a log scale needs" if self.scale == "log" else "a learning rate needs"
            raise ValueError(f"--space {self.text()}: {why} LOW > 0, got {self.low:g}")
        if self.low < 0:
            raise ValueError(f"--space {self.text()}: {self.name} must be >= 0")

    def text(self) -> str:
        """The range as ``--space`` takes it, exactly: ``lr=1e-06:0.01:log``."""
        return f"{self.name}={float(self.low)!r}:{float(self.high)!r}:{self.scale}"

    def draw(self, rng: np.random.Generator) -> float:
        """One value: 10**U(log10 low, log10 high) on a log scale, else U(low, high)."""
        if self.scale == "log":
            return float(10 ** rng.uniform(math.log10(self.low), math.log10(self.high)))
        return float(rng.uniform(self.low, self.high))


def parse_range(text: str) -> Range:
    """``"lr=1e-6:1e-2:log"`` -> ``Range("lr", 1e-06, 0.01, "log")``; the scale defaults to log.

    ValueError, naming the entry and the fix, for anything else.
    """
    name, sep, bounds = text.partition("=")
    parts = bounds.split(":")
    if not sep or not name.strip() or len(parts) not in (2, 3):
        raise ValueError(f"--space takes {FORM}, e.g. lr=1e-6:1e-2:log, got {text!r}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(
            f"--space {text!r}: LOW and HIGH must be numbers, e.g. lr=1e-6:1e-2:log"
        ) from None
    scale = parts[2].strip().lower() if len(parts) == 3 else "log"
    return Range(name.strip().replace("-", "_"), low, high, scale)


def parse_space(entries: Iterable[str] | None = None) -> tuple[Range, ...]:
    """The book's space (BOOK_SPACE), with the ranges of ``entries`` replacing its own.

    Each hyperparameter at most once; the result is in the order of PARAMETERS.
    """
    given: dict[str, Range] = {}
    for text in entries or ():
        r = parse_range(text)
        if r.name in given:
            raise ValueError(
                f"--space names {r.name} twice ({given[r.name].text()} and {r.text()}); "
                "give each hyperparameter once"
            )
        given[r.name] = r
    book = {r.name: r for r in map(parse_range, BOOK_SPACE)}
    return tuple(given.get(name, book[name]) for name in PARAMETERS)


def check_seed(seed: int) -> int:
    """The search seed: an int >= 0 (numpy's SeedSequence takes no negative entropy)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed must be a whole number >= 0, got {seed!r}")
    return seed


def sample(space: Iterable[Range], seed: int, index: int) -> dict[str, float]:
    """Trial ``index``'s hyperparameters, drawn from ``default_rng([seed, index, 0])``."""
    rng = np.random.default_rng([check_seed(seed), index, PARAMS_STREAM])
    return {r.name: r.draw(rng) for r in space}


def sample_trials(space: Iterable[Range], seed: int, count: int) -> list[dict[str, float]]:
    """The hyperparameters of trials 0..count-1, drawn up front (see ``sample``)."""
    space = tuple(space)
    return [sample(space, seed, i) for i in range(count)]


def training_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of trial ``index``'s initial weights and mini-batches: the same on any
    worker, so a trial run again elsewhere (its worker died) gives the same result."""
    return np.random.default_rng([check_seed(seed), index, TRAINING_STREAM])
