"""The package's argument checks, in one place: every public function and class validates
its arguments with these, so a bad value gets the same kind of message everywhere.

Each ``check_*`` returns the value in its plain form (a float, an int, a Path, ...) or raises
``ValueError`` naming the argument, the value it got and what it needs.
"""

from __future__ import annotations

import errno
import numbers
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
REPR_LIMIT = 200  # characters of a bad value quoted in an error message
FINITE_CHUNK = 10_000  # samples checked for NaN at a time: no full-size temporary


def short_repr(value: object) -> str:
    """``repr(value)``, cut to REPR_LIMIT characters for an error message."""
    text = repr(value)
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."


def as_rng(rng: np.random.Generator | int | None = None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` for ``rng`` (a Generator, a seed or None)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy.random.Generator, an int seed or None, got {rng!r}")


def float_dtype(dtype: object) -> np.dtype:
    """Return ``dtype`` as a NumPy floating dtype, or raise ValueError naming the choices."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise ValueError(f"dtype must be float16, float32 or float64, got {dtype!r}") from e
    if dt.type not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float16, float32 or float64, got {dtype!r}")
    return dt


def is_real(value: object) -> bool:
    """True for a real number that is not a bool (``True`` would pass as 1)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(
    name: str,
    value: object,
    low: float = -np.inf,
    high: float = np.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is a finite number in the range low..high.

    The range is closed unless ``low_open`` / ``high_open`` say otherwise.
    """
    if not is_real(value) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        if high == np.inf:
            bound = f"> {low}" if low_open else f">= {low}"
        elif low == -np.inf:
            bound = f"< {high}" if high_open else f"<= {high}"
        else:
            bound = f"in {left}{low}, {high}{right}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def check_positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (>= 0 with allow_zero)."""
    return check_number(name, value, 0, low_open=not allow_zero)


def check_fraction(name: str, value: object) -> float:
    """Return ``value`` if it lies in [0, 1); raise ValueError otherwise."""
    if not is_real(value) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_probability(name: str, value: object) -> float:
    """Return ``value`` if it lies in [0, 1]; raise ValueError otherwise."""
    if not is_real(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    """Return ``value`` if it is an int > 0 (>= 0 with allow_zero); raise ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def check_flag(name: str, value: object) -> bool:
    """Return ``value`` if it is True or False (``"no"`` would be truthy); else ValueError."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; the error lists them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_sizes(name: str, value: object, length: int | None = None) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ints > 0 (of ``length`` entries, if given)."""
    if not isinstance(value, (Sequence, np.ndarray)) or isinstance(value, str):
        raise ValueError(f"{name} must be a sequence of sizes, got {short_repr(value)}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must hold {length} sizes, got {short_repr(value)}")
    return tuple(check_positive_int(name, v) for v in value)


def check_path(name: str, value: object) -> Path:
    """Return ``value`` as a Path if it is a non-empty str or os.PathLike; raise ValueError."""
    if isinstance(value, (str, os.PathLike)) and os.fspath(value) not in ("", b""):
        return Path(value)
    raise ValueError(f"{name} must be a file path (a str or os.PathLike), got {value!r}")


def check_finite(name: str, x: np.ndarray, *, fix: str = "clean or drop that sample") -> None:
    """Raise ValueError unless every value of ``x`` is finite, naming the first bad sample.

    Works through ``x`` FINITE_CHUNK samples at a time, so a data set needs no full-size
    temporary. Integer arrays are always finite.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fc":
        return
    if x.ndim == 0:
        if not np.isfinite(x):
            raise ValueError(f"{name} must be finite, got {x}; {fix}")
        return
    for i in range(0, len(x), FINITE_CHUNK):
        chunk = x[i : i + FINITE_CHUNK]
        ok = np.isfinite(chunk).reshape(len(chunk), -1).all(axis=1)
        if not ok.all():
            n = i + int(np.argmin(ok))
            bad = x[n][~np.isfinite(x[n])].flat[0] if x.ndim > 1 else x[n]
            raise ValueError(f"{name}[{n}] holds {bad}: the values must be finite; {fix}")


# what a path that is not a regular file is, for open_regular_file's message
FILE_KINDS = (
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def open_regular_file(path: str | os.PathLike, *, error: type[Exception] = ValueError) -> BinaryIO:
    """Open ``path`` to read its bytes; raise ``error`` naming it unless it is a regular file
    (IsADirectoryError for a folder, as ``open`` raises).

    Opened without blocking (O_NONBLOCK) and checked on the very file opened (fstat, so
    nothing can swap it in between): opening a FIFO would wait for a writer forever, and a
    device may have no end to read to.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, f"{path} is a folder, not a file; name a file")
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in FILE_KINDS if test(mode)), "special file")
            raise error(f"{path} is not a regular file but a {kind}; name a file")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)  # reads of the file itself as usual
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
