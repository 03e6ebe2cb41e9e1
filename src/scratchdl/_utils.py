"""Small helpers shared by the package: random generators, dtypes and argument checks."""

from __future__ import annotations

import errno
import glob
import numbers
import os
import tempfile
from pathlib import Path

import numpy as np

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
REPR_LIMIT = 200  # characters of a bad value quoted in an error message


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


def check_positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (>= 0 with allow_zero)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def check_positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    """Return ``value`` if it is an int > 0 (>= 0 with allow_zero); raise ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def check_fraction(name: str, value: object) -> float:
    """Return ``value`` if it lies in [0, 1); raise ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_path(name: str, value: object) -> Path:
    """Return ``value`` as a Path if it is a non-empty str or os.PathLike; raise ValueError."""
    if isinstance(value, (str, os.PathLike)) and os.fspath(value) not in ("", b""):
        return Path(value)
    raise ValueError(f"{name} must be a file path (a str or os.PathLike), got {value!r}")


TEMP_SUFFIX = ".tmp"  # atomic_write's temporary files are named .<name>.<random>.tmp


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """The temporary files that ``atomic_write(path, ...)`` left behind when it was killed."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"))


def atomic_write(path: str | os.PathLike, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    Writes a temporary file in the same folder, fsyncs it, renames it over ``path`` and
    fsyncs the folder; the temporary file is removed if anything fails.
    """
    path = check_path("path", path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, f"cannot write {path}: the folder {path.parent} does not exist"
        )
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"cannot write {path}: it is a folder")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the file the usual mode
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder; the rename is still atomic
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
