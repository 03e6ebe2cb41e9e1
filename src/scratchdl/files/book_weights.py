"""Where the book's weight files are: found by the names the book's repository gives them.

The book's sample code ships three trained networks as pickles, which ``load_book_model``
reads (never running them as pickles):

- ``ch03/sample_weight.pkl``: chapter 3's inference network (784-50-100-10, sigmoid);
- ``ch07/params.pkl``: SimpleConvNet (often kept as ``simple_convnet_params.pkl``, since
  "params.pkl" says little once it leaves its folder);
- ``ch08/deep_convnet_params.pkl``: DeepConvNet.

They are looked for in ``$SCRATCHDL_BOOK_WEIGHTS``, then in ``book-weights/`` inside the data
folder (``~/.cache/scratchdl/book-weights``, or ``$SCRATCHDL_DATA/book-weights``). Each folder
may hold the files side by side or as the book's repository lays them out (``ch07/params.pkl``),
so the variable may name a clone of that repository as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "BOOK_FOLDER",
    "BOOK_WEIGHT_FILES",
    "ENV_BOOK_WEIGHTS",
    "book_weight_file",
    "book_weight_folders",
    "find_book_weights",
]

ENV_BOOK_WEIGHTS = "SCRATCHDL_BOOK_WEIGHTS"
BOOK_FOLDER = "book-weights"  # inside the data folder
# the file's path in the book's repository -> the names it is looked for under, in order
BOOK_WEIGHT_FILES = {
    "ch03/sample_weight.pkl": ("ch03/sample_weight.pkl", "sample_weight.pkl"),
    "ch07/params.pkl": ("ch07/params.pkl", "params.pkl", "simple_convnet_params.pkl"),
    "ch08/deep_convnet_params.pkl": (
        "ch08/deep_convnet_params.pkl",
        "deep_convnet_params.pkl",
    ),
}


def book_weight_folders() -> list[tuple[Path, str]]:
    """The folders searched, in order, each with where its choice came from."""
    from ..datasets.store import data_root

    folders = []
    if os.environ.get(ENV_BOOK_WEIGHTS):
        folders.append((Path(os.environ[ENV_BOOK_WEIGHTS]).expanduser(), f"${ENV_BOOK_WEIGHTS}"))
    try:
        root, origin = data_root(None)
    except OSError:  # the data folder is a file: it holds no weights either
        pass
    else:
        folders.append((root / BOOK_FOLDER, f"the data folder ({origin})"))
    return folders


def find_book_weights() -> dict[str, Path]:
    """{the file's path in the book's repository: where it is here} for each file found."""
    found = {}
    for book_path, names in BOOK_WEIGHT_FILES.items():
        for folder, _ in book_weight_folders():
            path = next((folder / n for n in names if (folder / n).is_file()), None)
            if path is not None:
                found[book_path] = path
                break
    return found


def book_weight_file(book_path: str) -> Path:
    """Where one of the book's weight files is, e.g. ``book_weight_file("ch07/params.pkl")``.

    Raises FileNotFoundError naming the folders searched and where to put the file.
    """
    if book_path not in BOOK_WEIGHT_FILES:
        raise ValueError(
            f"unknown book weight file {book_path!r}; choose one of: {', '.join(BOOK_WEIGHT_FILES)}"
        )
    path = find_book_weights().get(book_path)
    if path is None:
        folders = book_weight_folders()
        searched = ", ".join(f"{f} (from {origin})" for f, origin in folders) or "no folder"
        names = " or ".join(BOOK_WEIGHT_FILES[book_path])
        put = folders[-1][0] if folders else Path(f"${ENV_BOOK_WEIGHTS}")
        raise FileNotFoundError(
            f"the book's {book_path} is not here: looked for {names} in {searched}; copy it "
            f"from the book's repository into {put}, or set ${ENV_BOOK_WEIGHTS} to its folder"
        )
    return path
