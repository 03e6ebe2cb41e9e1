"""How the package writes files: atomically, with leftovers of killed runs found, and with
a probe that finds a full or read-only folder before hours of work go into it."""

from __future__ import annotations

import errno
import glob
import os
import tempfile
from pathlib import Path

from .checks import check_path

TEMP_SUFFIX = ".tmp"  # atomic_write's temporary files are named .<name>.<random>.tmp
PROBE_BYTES = 1 << 20  # a full disk shows up when this much cannot be written


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


def check_writable(folder: str | os.PathLike, nbytes: int = PROBE_BYTES) -> Path:
    """Create ``folder`` and write (then remove) a probe of ``nbytes`` there.

    Raises OSError naming the folder when it cannot take a file: read-only, full, or not a
    folder. Call it before long work whose result goes there.
    """
    folder = check_path("folder", folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * nbytes)
                f.flush()
                os.fsync(f.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"cannot write into {folder}: {e.strerror or e}") from e
    return folder
