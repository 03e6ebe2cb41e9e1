"""Reading a photo or scan of a digit and preparing it the way MNIST's digits were prepared.

MNIST's digits are light ink on a black background, cropped to their ink, scaled so that the
longer side is 20 pixels and placed in a 28x28 field with their centre of mass at its centre
(LeCun et al., "The MNIST database"). ``prepare_image`` does the same to an image of any
size, so a network trained on MNIST can classify it. Reading needs Pillow.

Gray levels by the range of the image's mode: 8 bits by 255; 16 bits by 65535; 32-bit
integers (TIFF) by their brightest level, since they have no common white (cameras store 12
or 16 bits in them); floats (TIFF mode F) as they are when they lie in [0, 1] (0 black, 1
white), else by their brightest level. NaN or infinite levels, and negative ones, are
refused. An image of several frames (an animated GIF, PNG or WebP, a multi-page TIFF) is
refused: which frame holds the digit is not ours to guess. A phone's MPO photo is one
picture and its previews, and is read as its first frame.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from contextlib import nullcontext

import numpy as np

from ..support.checks import open_regular_file

MNIST_SIZE = 28  # pixels on each side of an MNIST image
DIGIT_SIZE = 20  # pixels on the longer side of the digit inside it
INK_LEVEL = 0.2  # a pixel is ink above this fraction of the brightest one
LIGHT_BACKGROUND = 0.5  # a border brighter than this (in [0, 1]) is paper, not MNIST's black
# Larger images are refused from their header, before decoding: 40 MP is 160 MB as RGBA
# and above a 600 dpi scan of an A4 page (35 MP); JPEG photos decode smaller (DECODE_SIDE).
MAX_PIXELS = 40_000_000
DECODE_SIDE = 1024  # a JPEG decodes at 1/2, 1/4 or 1/8 scale while both sides keep this many
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")  # Pillow's modes with an alpha channel
WIDE_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")  # 16-bit grayscale (PNG, TIFF)
WIDE_MAX = 65535  # the white of a 16-bit image
TIFF_BITS, TIFF_SAMPLE_FORMAT = 258, 339  # TIFF tags: bits per sample; 1 uint, 2 int, 3 float
# The formats an image of a digit comes in. Others are never opened: Pillow's EPS reader, for
# one, hands the file to Ghostscript.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")  # a phone's MPO opens as JPEG


class ImageError(ValueError):
    """An image that cannot be read, or holds nothing to classify."""


def prepare_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image of any size and turn it into a 28x28 MNIST-like array in [0, 1].

    Turned upright by its EXIF orientation; 16-bit levels scaled, not clipped; transparency
    composited on white (or on black for light ink); grayscale; inverted when the background
    is light (a dark digit on paper); cropped to the ink, scaled so the longer side is 20
    pixels, and centred by its centre of mass in a 28x28 field, as MNIST's digits were
    prepared. Raises ImageError (a ValueError, its message naming the file) for a missing,
    unreadable, blank or too large (MAX_PIXELS) image, one of several frames, or levels that
    are NaN, infinite or negative (see the module docstring for how levels are scaled).
    Shape: -> (1, 1, 28, 28) float32.
    """
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(
            "reading images needs Pillow, a dependency of scratchdl: pip install Pillow"
        ) from e
    gray = _read_gray(path)
    border = _border(gray)
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
    """The image at ``path`` in grayscale, in [0, 1], upright and without transparency.

    ``path`` may be a file object; a path that is not a regular file (a FIFO, a folder, a
    device) is refused before anything is read. The size is checked against MAX_PIXELS from
    the header, before anything is decoded; a JPEG is decoded at the smallest of its
    built-in scales (1/2, 1/4, 1/8) that keeps both sides at least DECODE_SIDE.
    Shape: -> (H, W) float32.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        named = isinstance(path, (str, os.PathLike))
        with open_regular_file(path, error=ImageError) if named else nullcontext(path) as f:
            with warnings.catch_warnings():
                # Pillow warns above its own limit; MAX_PIXELS, checked below, is lower
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                Image.init()  # registers every format's plugin, so FORMATS can be named
                im = Image.open(f, formats=FORMATS)  # reads the header only
            return _read_opened(path, im)
    except FileNotFoundError as e:
        raise ImageError(f"no such image: {path}") from e
    except IsADirectoryError as e:
        raise ImageError(e.strerror) from e
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # beyond Pillow's own limit Image.open refuses, so its message is all that tells the size
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(found[1]):,} pixels" if found else f"too many pixels ({e})"
        raise ImageError(
            f"{path}: the image has {pixels}, more than the limit of {MAX_PIXELS:,} pixels; "
            "scale it down first"
        ) from e
    except UnidentifiedImageError as e:  # Pillow's message names the file object, not the path
        raise ImageError(f"cannot read {path} as an image: not a {', '.join(FORMATS)} file") from e
    except (OSError, SyntaxError, EOFError, ValueError, struct.error) as e:
        # what Pillow raises for a damaged file depends on the format and where it breaks
        raise ImageError(f"cannot read {path} as an image: {e}") from e


def _read_opened(path, im) -> np.ndarray:
    """The gray levels of ``im``, opened by Pillow: its size and frames checked before it
    is decoded, then turned upright."""
    from PIL import Image, ImageOps

    with im:
        size = im.size
        im.draft("L", (DECODE_SIDE, DECODE_SIDE))  # JPEG decodes small; elsewhere a no-op
        _check_pixels(path, size, im.size)
        _check_one_frame(path, im)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.load()
        ImageOps.exif_transpose(im, in_place=True)  # a phone's portrait photo stands up
        return _gray_levels(path, im)


def _check_pixels(path, size: tuple[int, int], decoded: tuple[int, int]) -> None:
    """Raise ImageError if an image of ``size`` that decodes at ``decoded`` is too large."""
    w, h = decoded
    if w * h <= MAX_PIXELS:
        return
    W, H = size
    at = f", {w * h:,} at the smallest scale its format decodes" if decoded != size else ""
    raise ImageError(
        f"{path}: the image has {W}x{H} = {W * H:,} pixels{at}, more than the limit of "
        f"{MAX_PIXELS:,} pixels; scale it down first"
    )


def _check_one_frame(path, im) -> None:
    """Raise ImageError for an image of several frames (MPO's previews excepted)."""
    if im.format in ("JPEG", "MPO") or not getattr(im, "is_animated", False):
        return
    what = "pages" if im.format == "TIFF" else "frames"
    raise ImageError(
        f"{path}: the {im.format} image has {im.n_frames} {what}, not one; save the one that "
        "shows the digit as an image of its own"
    )


def _gray_levels(path, im) -> np.ndarray:
    """A loaded Pillow image as gray levels in [0, 1]. Shape: -> (H, W) float32."""
    if im.mode == "F":  # convert("L") would clip levels of 0..1 to black and white
        return _float_levels(path, np.asarray(im, dtype=np.float32))
    if im.mode in WIDE_MODES:  # convert("L") would clip every level above 255 to white
        return _wide_levels(path, im)
    if im.mode in ALPHA_MODES or "transparency" in im.info:
        return _flatten_alpha(im)
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def _wide_levels(path, im) -> np.ndarray:
    """16- or 32-bit integer levels in [0, 1]: 16 bits by 65535; 32 bits by the brightest.

    Pillow reads every such image as int32 (mode "I") or uint16; an unsigned 32-bit TIFF
    comes as int32 with levels from 2**31 up wrapped to negative, so its bits are read again
    as uint32 here. A PNG has no TIFF tags: its mode "I" is 16 bits (older Pillow).
    """
    tags = getattr(im, "tag_v2", {})
    bits = tags.get(TIFF_BITS, (16,))[0]
    levels = np.asarray(im)
    if bits == 32 and tags.get(TIFF_SAMPLE_FORMAT, (1,))[0] == 1 and levels.dtype == np.int32:
        levels = levels.view(np.uint32)
    if levels.size and levels.min() < 0:
        raise ImageError(
            f"{path}: the image has negative gray levels (down to {levels.min()}); gray levels "
            "must be >= 0 (0 is black)"
        )
    white = WIDE_MAX if bits <= 16 else max(int(levels.max(initial=0)), 1)
    return np.clip(levels.astype(np.float64) / white, 0, 1).astype(np.float32)


def _float_levels(path, levels: np.ndarray) -> np.ndarray:
    """Float levels in [0, 1]: as they are when they lie in [0, 1], else by the brightest."""
    finite = np.isfinite(levels)
    if not finite.all():
        raise ImageError(
            f"{path}: {int(levels.size - finite.sum()):,} pixels of the float image are NaN or "
            f"infinite (the first {levels[~finite].flat[0]}); every gray level must be a number"
        )
    lo, hi = float(levels.min(initial=0)), float(levels.max(initial=0))
    if lo < 0:
        raise ImageError(
            f"{path}: the float image has gray levels from {lo:.4g} to {hi:.4g}; they must be "
            ">= 0 (0 black, 1 white)"
        )
    return levels if hi <= 1 else (levels / np.float32(hi)).astype(np.float32)


def _flatten_alpha(im) -> np.ndarray:
    """An image with transparency composited on white or on black, whichever shows its
    opaque part best: a dark digit on a transparent canvas goes on white, a light one on
    black. Shape: -> (H, W) float32 in [0, 1].
    """
    from PIL import Image

    rgba = im.convert("RGBA")  # P and L with a transparent colour get an alpha channel too
    gray, alpha = rgba.convert("L"), rgba.getchannel("A")
    candidates = []
    for level in (255, 0):  # white first: it wins a tie (an image with nothing transparent)
        flat = Image.new("L", im.size, level)
        flat.paste(gray, mask=alpha)  # gray * alpha + level * (1 - alpha)
        candidates.append(np.asarray(flat))
    return max(candidates, key=_contrast).astype(np.float32) / 255.0


def _contrast(gray: np.ndarray) -> float:
    """How far the levels of ``gray`` reach from the median level of its border."""
    paper = float(np.median(_border(gray)))
    return max(float(gray.max()) - paper, paper - float(gray.min()))


def _border(gray: np.ndarray) -> np.ndarray:
    """The pixels on the four edges of an image. Shape: (H, W) -> (2H + 2W,)."""
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


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
