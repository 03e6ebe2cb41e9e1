"""Reading a photo or scan of a digit and preparing it the way MNIST's digits were prepared.

MNIST's digits are light ink on a black background, cropped to their ink, scaled so that the
longer side is 20 pixels and placed in a 28x28 field with their centre of mass at its centre
(LeCun et al., "The MNIST database"). ``prepare_image`` does the same to an image of any
size, so a network trained on MNIST can classify it. Reading needs Pillow.
"""

from __future__ import annotations

import os

import numpy as np

MNIST_SIZE = 28  # pixels on each side of an MNIST image
DIGIT_SIZE = 20  # pixels on the longer side of the digit inside it
INK_LEVEL = 0.2  # a pixel is ink above this fraction of the brightest one
LIGHT_BACKGROUND = 0.5  # a border brighter than this (in [0, 1]) is paper, not MNIST's black


class ImageError(ValueError):
    """An image that cannot be read, or holds nothing to classify."""


def prepare_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image of any size and turn it into a 28x28 MNIST-like array in [0, 1].

    Grayscale; inverted when the background is light (a dark digit on paper); cropped to the
    ink, scaled so the longer side is 20 pixels, and centred by its centre of mass in a 28x28
    field, as MNIST's digits were prepared. Raises ImageError (a ValueError) for a missing,
    unreadable or blank image. Shape: -> (1, 1, 28, 28) float32.
    """
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(
            "reading images needs Pillow, a dependency of scratchdl: pip install Pillow"
        ) from e
    gray = _read_gray(path)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > LIGHT_BACKGROUND:  # a dark digit on paper: MNIST's is light on black
        gray, border = 1.0 - gray, 1.0 - border
    gray = np.clip(gray - np.median(border), 0, 1)  # the background becomes 0
    ink = gray > INK_LEVEL * gray.max()  # all False for an all-black image
    if not ink.any():
        raise ImageError(f"{path}: the image is blank; nothing to classify")
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = DIGIT_SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.LANCZOS)
    digit = np.asarray(small, dtype=np.float32) / 255.0
    field = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    top, left = (MNIST_SIZE - digit.shape[0]) // 2, (MNIST_SIZE - digit.shape[1]) // 2
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return _centre_of_mass_to_centre(field).reshape(1, 1, MNIST_SIZE, MNIST_SIZE)


def _read_gray(path: str | os.PathLike) -> np.ndarray:
    """The image at ``path`` in grayscale, in [0, 1]. Shape: -> (H, W) float32."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError as e:
        raise ImageError(f"no such image: {path}") from e
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise ImageError(f"cannot read {path} as an image: {e}") from e


def _centre_of_mass_to_centre(field: np.ndarray) -> np.ndarray:
    """``field`` shifted by whole pixels so that its centre of mass is at its centre."""
    total = field.sum()
    if total <= 0:
        return field
    H, W = field.shape
    yy, xx = np.mgrid[0:H, 0:W]
    dy = int(round((H - 1) / 2 - (yy * field).sum() / total))
    dx = int(round((W - 1) / 2 - (xx * field).sum() / total))
    return np.roll(field, (dy, dx), axis=(0, 1))
