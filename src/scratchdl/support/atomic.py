"""How the package writes files: atomically, with leftovers of killed runs found, with
a probe that finds a full or read-only folder before hours of work go into it, and with a
lock that keeps two runs out of one folder."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .checks import check_path

try:
    import fcntl
except ImportError:  # Windows has none: lock_folder then locks nothing (see there)
    fcntl = None

TEMP_SUFFIX = ".tmp"  # atomic_write's temporary files are named .<name>.<random>.tmp
PROBE_BYTES = 1 << 20  # a full disk shows up when this much cannot be written
LOCK_NAME = ".lock"  # lock_folder's lock file, inside the locked folder


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


class FolderLocked(OSError):
    """Another process holds the lock of ``lock_folder`` or ``lock_file``; the message names
    what is locked and the holder's process id."""


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if needed) for the ``with`` block.

    Another process (or another ``lock_folder`` of this one) that asks for the same folder
    meanwhile gets ``FolderLocked``, naming the folder and the holder's process id. The lock
    is ``fcntl.flock`` on ``folder/.lock``, so the operating system releases it when the
    holder dies, even by SIGKILL: once the lock is taken, files a dead run left behind
    (``stale_temp_files``) are safe to remove, and not before. The lock file is removed when
    the block ends. Where ``fcntl`` is missing (Windows) nothing is locked.
    """
    folder = check_path("folder", folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / LOCK_NAME, folder):
        yield folder


@contextlib.contextmanager
def lock_file(path: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on the file ``path`` for the ``with`` block, as ``lock_folder``
    does on a folder (the lock file is ``.<name>.lock`` beside it; ``path`` need not exist).

    For one file that a long job rewrites (a checkpoint), when other jobs may write other
    files into the same folder at the same time.
    """
    path = check_path("path", path)
    with _locked(path.parent / f".{path.name}{LOCK_NAME}", path):
        yield path


@contextlib.contextmanager
def _locked(lock: Path, what: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fd = _acquire(lock, what)
    try:
        yield
    finally:
        try:
            with contextlib.suppress(OSError):  # a folder gone or made read-only: keep it
                lock.unlink(missing_ok=True)  # while still locked: a waiting _acquire retries
        finally:
            os.close(fd)  # releases the flock


def _acquire(lock: Path, what: Path) -> int:
    """Open and flock ``lock``; return the descriptor."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise FolderLocked(
                errno.EAGAIN,
                f"{what} is in use by another run (process {holder}, lock {lock.name}); wait "
                "for it to end, or use another folder",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder before us unlinked the file as it let go: lock the one now there
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
