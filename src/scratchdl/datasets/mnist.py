"""The book's ``load_mnist`` (ch3), ``load_fashion_mnist``, and the MNIST sample shipped offline.

The loaders turn the verified IDX files into the book's arrays: pixels normalized to [0, 1] or
kept as uint8, images flattened to rows of 784 or kept as (N, 1, 28, 28), labels as integers
or one-hot rows. Where the files come from is ``scratchdl.datasets.download``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .download import ensure
from .idx import parse_idx, read_idx
from .store import ChecksumError

__all__ = [
    "SAMPLE_DIR",
    "SAMPLE_SHA256",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_sample",
]

IMAGE_SHAPE = (28, 28)
N_CLASSES = 10

SAMPLE_DIR = Path(__file__).parent.parent / "data" / "mnist-sample"
SAMPLE_SHA256 = {  # of the gzipped files shipped in SAMPLE_DIR
    "train-images-idx3-ubyte": "d747f627e508234c9c7e49073a627f4195b719626ac15a67258d16f8371b9dd7",
    "train-labels-idx1-ubyte": "4857b7883e0731d51eb3acbd00b844f68d431ded9207b94c2bb8122152f83738",
    "t10k-images-idx3-ubyte": "c38842f3fc122aeb56961328eacf41c4315fb33e95ce0e9d0c97f3bd3d5b62c6",
    "t10k-labels-idx1-ubyte": "689b4d1da0ae1049125d2f91e157009a132a2a1e76b45a178dc0b359e1f74255",
}


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
    found = ensure(name, data_dir, progress, None)
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


# ------------------------------------------------------------------------- array shaping


def _images(x: np.ndarray, normalize: bool, flatten: bool) -> np.ndarray:
    """uint8 images (N, 28, 28) as the book's x: normalized or not, flat rows or (N, 1, 28, 28)."""
    N, H, W = x.shape
    if normalize:
        out = x.astype(np.float32)
        out /= np.float32(255)  # the book's x / 255.0, in place: no float64 temporary
    else:
        out = x.copy()  # writable, and detached from the file's bytes
    return out.reshape(N, H * W) if flatten else out.reshape(N, 1, H, W)


def _labels(t: np.ndarray, one_hot_label: bool) -> np.ndarray:
    """Labels 0..9 as the book's t: int64, or float32 one-hot rows (N, 10)."""
    if t.size and t.max() >= N_CLASSES:
        raise ValueError(f"labels must be 0..{N_CLASSES - 1}, got {t.max()}")
    if not one_hot_label:
        return t.astype(np.int64)
    T = np.zeros((t.size, N_CLASSES), dtype=np.float32)
    T[np.arange(t.size), t] = 1
    return T
