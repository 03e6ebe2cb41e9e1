"""``scratchdl info``: what a bug report needs, in lines to paste into it.

Versions (scratchdl, Python, numpy, every dependency and the extras' packages), the BLAS numpy
runs on and its kernel, the threads, the data folder and what it holds, the font of the
Japanese figures, and the book's weight files found. Nothing is fetched, hashed or written:
``scratchdl data verify`` checks the data's sha256.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

MAX_LISTED = 20  # entries of the data folder named; more are counted
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def add_command(sub) -> None:
    """Add the info subcommand to the subparsers ``sub`` of cli.make_parser."""
    p = sub.add_parser(
        "info",
        help="versions, BLAS, threads, data and weights found: what a bug report needs",
        description=(
            "Print the versions of scratchdl, Python, numpy and the dependencies, the BLAS and "
            "its kernel, the threads, the data folder and what is in it, the font of the "
            "Japanese figures and the book's weight files found. Paste it into a bug report."
        ),
    )
    p.add_argument("--data-dir", help="the data folder to describe (default $SCRATCHDL_DATA)")
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    for line in info_lines(args.data_dir):
        print(line)
    return 0


def info_lines(data_dir: str | None = None) -> list[str]:
    """The report, one line each."""
    return [
        *_versions(),
        *_blas(),
        _threads(),
        _convolutions(),
        *_data(data_dir),
        _japanese_font(),
        *_book_weights(),
    ]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _requirements() -> tuple[list[str], dict[str, list[str]]]:
    """The names of scratchdl's dependencies, and of each extra's own packages."""
    base, extras = [], {}
    for requirement in metadata.requires("scratchdl") or ():
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group()
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
        if name == "scratchdl":
            continue  # an extra that names others (dev = test + notebooks)
        if extra:
            extras.setdefault(extra.group(1), []).append(name)
        else:
            base.append(name)
    return base, extras


def _versions() -> list[str]:
    from ..files.model_file import scratchdl_version

    python = f"{platform.python_implementation()} {platform.python_version()}"
    lines = [
        f"scratchdl {scratchdl_version()} ({Path(__file__).parent})",
        f"Python {python} ({sys.executable}) on {platform.platform()}",
        f"numpy {_version('numpy')}",
    ]
    try:
        base, extras = _requirements()
    except metadata.PackageNotFoundError:  # a source tree that pip never installed
        return [*lines, "dependencies: unknown (scratchdl is not installed: pip install .)"]
    deps = ", ".join(f"{n} {_version(n)}" for n in base if n != "numpy")
    lines.append(f"dependencies: {deps}")
    for extra, names in extras.items():
        lines.append(f"extra {extra}: " + ", ".join(f"{n} {_version(n)}" for n in names))
    return lines


def _blas() -> list[str]:
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl then finds)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["BLAS: unknown (threadpoolctl is not installed)"]
    lines = []
    for lib in threadpool_info():
        kernel = lib.get("architecture") or lib.get("corename") or "kernel unknown"
        layer = f", {lib['threading_layer']}" if lib.get("threading_layer") else ""
        lines.append(
            f"{lib.get('user_api', '?').upper()}: {lib.get('internal_api', '?')} "
            f"{lib.get('version') or '(version unknown)'} (kernel {kernel}{layer}, "
            f"{lib.get('num_threads', '?')} threads) {lib.get('filepath', '')}"
        )
    return lines or ["BLAS: none found by threadpoolctl"]


def _threads() -> str:
    from ..engine.threads import ENV_THREADS, get_num_threads

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        usable = os.cpu_count()
    env = ", ".join(f"{k}={os.environ[k]}" for k in (ENV_THREADS, *BLAS_ENV) if k in os.environ)
    return (
        f"threads: {get_num_threads()} for the CNNs' batch parts; {usable} usable cores of "
        f"{os.cpu_count()}; {env or f'{ENV_THREADS} and the BLAS variables unset'}"
    )


def _convolutions() -> str:
    """The convolution algorithm in force: Winograd changes float32 results in the last bits."""
    from ..engine import choice

    name = choice.get_conv_algorithm()
    source = (
        f"{choice.ENV_CONV}={os.environ[choice.ENV_CONV]}"
        if choice.ENV_CONV in os.environ
        else "the default"
    )
    rule = (
        f"; auto takes Winograd F(4,3) for 3x3 stride-1 passes of >= "
        f"{choice.MIN_CHANNELS[choice.avx512_products()]} channels on one BLAS thread, else GEMM"
        if name == "auto"
        else ""
    )
    return f"convolutions: {name} ({source}){rule}"


def _data(data_dir: str | None) -> list[str]:
    from ..datasets import where

    try:
        places = where(data_dir=data_dir)
    except OSError as e:  # the data folder is a file
        return [f"data folder: {e.strerror or e}"]
    first = next(iter(places.values()))
    root = Path(first["data_dir"])
    lines = [f"data folder: {root} (from {first['data_dir_from']})"]
    for name, place in places.items():
        present = [f for f, p in place["files"].items() if p is not None]
        if place["used"]:
            state = f"found in {place['used']} (scratchdl data verify checks the sha256)"
        elif present:
            state = f"incomplete: {len(present)} of {len(place['files'])} files"
        else:
            state = f"absent (scratchdl data fetch {name} gets it)"
        lines.append(f"  {name}: {state}")
    try:
        entries = sorted(root.iterdir()) if root.is_dir() else []
    except OSError as e:
        return [*lines, f"  cannot list it: {e.strerror or e}"]
    shown = [p.name + ("/" if p.is_dir() else "") for p in entries[:MAX_LISTED]]
    more = f" and {len(entries) - MAX_LISTED} more" if len(entries) > MAX_LISTED else ""
    contents = ", ".join(shown) + more if entries else "nothing (it does not exist yet)"
    return [*lines, f"  holds: {contents}"]


def _japanese_font() -> str:
    fontja = _version("matplotlib-fontja")
    try:
        from ..support.figures import japanese_font

        font = japanese_font()
    except ImportError as e:  # no matplotlib
        return f"Japanese figures: font unknown ({e}); matplotlib-fontja {fontja}"
    source = (
        f"matplotlib-fontja {fontja}"
        if fontja != "not installed"
        else "matplotlib-fontja not installed: pip install 'scratchdl[notebooks]'"
    )
    return f"Japanese figures: font {font or 'none (Japanese labels will not show)'} ({source})"


def _book_weights() -> list[str]:
    from ..files.book_weights import BOOK_WEIGHT_FILES, book_weight_folders, find_book_weights

    found = find_book_weights()
    folders = [
        f"{folder} (from {origin}{'' if folder.is_dir() else '; it does not exist'})"
        for folder, origin in book_weight_folders()
    ]
    lines = ["book weights: searched " + ", ".join(folders)]
    for book_path in BOOK_WEIGHT_FILES:
        lines.append(f"  {book_path}: {found.get(book_path, 'not found')}")
    return lines
