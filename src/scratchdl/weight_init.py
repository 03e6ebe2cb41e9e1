"""Weight initialisers (ch6): a given std, Xavier and He.

Each draws from a normal distribution N(0, std**2) with the given ``rng``:
- ``std_normal(shape, std)``: std as given (the book's ``weight_init_std=0.01``);
- ``xavier(shape, fan_in)``: std = sqrt(1 / fan_in) (Glorot & Bengio 2010, the book's form);
- ``he(shape, fan_in)``: std = sqrt(2 / fan_in) (He et al. 2015), for ReLU.
``fan_in`` is the number of inputs to one unit: the rows of an Affine W, C*FH*FW of a filter.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
from collections.abc import Iterator

import numpy as np

from .support.checks import as_rng, check_positive, check_positive_int, float_dtype

INIT_NAMES = ("relu", "he", "sigmoid", "xavier")

# [values the initialisers may still draw, values allowed in all], or None: see value_budget.
_BUDGET: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "scratchdl_init_budget", default=None
)


@contextlib.contextmanager
def value_budget(n: int) -> Iterator[None]:
    """Within this block the initialisers draw at most ``n`` values in all, else ValueError.

    ``files.load`` builds a model from a file's config inside one, sized to the values the
    file holds: a forged config then fails before it can allocate more than the file's size.
    """
    n = check_positive_int("n", n, allow_zero=True)
    token = _BUDGET.set([n, n])
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _check_shape(shape) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, numbers.Integral) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        dims = None
    if dims is None or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0 for d in dims
    ):
        raise ValueError(f"shape must be a tuple of sizes >= 0, got {shape!r}")
    return tuple(int(d) for d in dims)


def std_normal(shape, std: float, *, rng=None, dtype=np.float32) -> np.ndarray:
    """Normal weights with the given std. Shape: ``shape``."""
    std = check_positive("std", std)
    shape = _check_shape(shape)
    budget = _BUDGET.get()
    if budget is not None:
        n = math.prod(shape)
        if n > budget[0]:
            raise ValueError(
                f"weights of shape {shape} need {n} values, more than the {budget[0]} left of "
                f"the {budget[1]} allowed"
            )
        budget[0] -= n
    dtype = float_dtype(dtype)
    with np.errstate(over="ignore"):  # an overflow is reported once, below
        W = (as_rng(rng).standard_normal(shape) * std).astype(dtype)
    if not np.isfinite(W).all():
        raise ValueError(f"std {std!r} is too large for {dtype.name} weights: they overflow")
    return W


def xavier_std(fan_in: int) -> float:
    """Xavier std: sqrt(1 / fan_in)."""
    return float(np.sqrt(1.0 / check_positive_int("fan_in", fan_in)))


def he_std(fan_in: int) -> float:
    """He std: sqrt(2 / fan_in)."""
    return float(np.sqrt(2.0 / check_positive_int("fan_in", fan_in)))


def xavier(shape, fan_in: int, *, rng=None, dtype=np.float32) -> np.ndarray:
    """Xavier-initialised weights, std = sqrt(1 / fan_in). Shape: ``shape``."""
    return std_normal(shape, xavier_std(fan_in), rng=rng, dtype=dtype)


def he(shape, fan_in: int, *, rng=None, dtype=np.float32) -> np.ndarray:
    """He-initialised weights, std = sqrt(2 / fan_in). Shape: ``shape``."""
    return std_normal(shape, he_std(fan_in), rng=rng, dtype=dtype)


def resolve_std(weight_init_std: float | str, fan_in: int) -> float:
    """The std for ``weight_init_std``: a number, 'relu'/'he' (He) or 'sigmoid'/'xavier'."""
    if isinstance(weight_init_std, str):
        name = weight_init_std.lower()
        if name in ("relu", "he"):
            return he_std(fan_in)
        if name in ("sigmoid", "xavier"):
            return xavier_std(fan_in)
        raise ValueError(
            f"weight_init_std must be a number or one of {INIT_NAMES}, got {weight_init_std!r}"
        )
    return check_positive("weight_init_std", weight_init_std)
