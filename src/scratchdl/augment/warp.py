"""Affine warps of image batches with bilinear interpolation: the core under ``augment``.

Every function works on a whole mini-batch at once: one sampling grid of N x H x W source
coordinates is built with broadcasting, and the four bilinear neighbours are gathered with
fancy indexing, so there is no Python loop over images.

Coordinates are pixel indices, ``x`` to the right (columns) and ``y`` down (rows), with the
origin at the centre of the top-left pixel. A transform maps an input pixel to its place in
the output, about the image centre ``((W - 1) / 2, (H - 1) / 2)``::

    p_out = R(rotation) @ Shear(shear) @ (scale * (p_in - centre)) + centre + shift

A positive rotation turns the image counter-clockwise as it is displayed (like
``np.rot90``), ``shift = (dx, dy)`` moves it right and down, ``scale > 1`` enlarges it.
Each output pixel is read back from ``p_in`` by bilinear interpolation; pixels that come
from outside the image are ``fill`` (0, the MNIST background). Identity parameters and
integer shifts reproduce the input exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..support.checks import check_number, check_sizes, short_repr

__all__ = [
    "MNIST_SHAPE",
    "affine_matrix",
    "as_images",
    "bilinear_warp",
    "check_image_shape",
    "invert_affine",
    "like_input",
    "transform",
    "warp_affine",
]

MNIST_SHAPE = (1, 28, 28)  # (C, H, W) assumed for flattened (N, 784) input
SINGULAR = 1e-12  # |determinant| below which an affine map cannot be undone

ImageShape = Sequence[int]


def check_image_shape(image_shape: ImageShape) -> tuple[int, int, int]:
    """Return ``image_shape`` as ``(C, H, W)``; ``(H, W)`` means one channel."""
    try:
        shape = check_sizes("image_shape", image_shape)
    except ValueError:
        shape = ()  # not sizes at all: the message below says what is wanted
    if len(shape) not in (2, 3):
        raise ValueError(
            f"image_shape must be (C, H, W) or (H, W) of positive ints, "
            f"got {short_repr(image_shape)}"
        )
    C, H, W = shape if len(shape) == 3 else (1, *shape)
    return C, H, W


def as_images(x: np.ndarray, image_shape: ImageShape | None) -> np.ndarray:
    """Return ``x`` viewed as a batch of images (N, C, H, W).

    Shape: x (N, C*H*W) with ``image_shape`` (default MNIST_SHAPE), or (N, C, H, W).
    """
    if x.dtype == np.bool_ or not (
        np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
    ):
        raise ValueError(f"x must hold floats or integers (e.g. uint8 pixels), got {x.dtype}")
    if x.ndim == 2:
        C, H, W = check_image_shape(MNIST_SHAPE if image_shape is None else image_shape)
        N, D = x.shape
        if D != C * H * W:
            raise ValueError(
                f"x has shape {x.shape} but image_shape {(C, H, W)} needs (N, {C * H * W}); "
                f"pass image_shape=(C, H, W) matching the data"
            )
        return x.reshape(N, C, H, W)
    if x.ndim == 4:
        if image_shape is not None and check_image_shape(image_shape) != x.shape[1:]:
            raise ValueError(
                f"x has shape {x.shape} but image_shape is {tuple(image_shape)!r}; "
                f"leave image_shape=None for (N, C, H, W) input"
            )
        return x
    raise ValueError(
        f"x must be (N, C*H*W) or (N, C, H, W), got shape {x.shape}; "
        f"reshape single images to (1, ...) and (N, H, W) to (N, 1, H, W)"
    )


def like_input(out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Return ``out`` with the shape and dtype of ``x``; integers are rounded to nearest."""
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(x.dtype, copy=False).reshape(x.shape)


def affine_matrix(
    H: int, W: int, shift: np.ndarray, rotation: np.ndarray, scale: np.ndarray, shear: np.ndarray
) -> np.ndarray:
    """Forward maps input pixel -> output pixel about the image centre (see module docstring).

    Shape: shift (N, 2) as (dx, dy); rotation, scale, shear (N,) in degrees / factor;
    returns (N, 2, 3).
    """
    theta, phi = np.deg2rad(rotation), np.deg2rad(shear)
    cos, sin, tan = np.cos(theta), np.sin(theta), np.tan(phi)
    # L = R @ Shear @ (scale * I); R turns counter-clockwise on screen because y points down
    L = np.empty((len(scale), 2, 2))
    L[:, 0, 0] = scale * cos
    L[:, 0, 1] = scale * (cos * tan + sin)
    L[:, 1, 0] = scale * -sin
    L[:, 1, 1] = scale * (cos - sin * tan)
    centre = np.array([(W - 1) / 2, (H - 1) / 2])
    M = np.empty((len(scale), 2, 3))
    M[:, :, :2] = L
    M[:, :, 2] = centre - L @ centre + shift  # exactly `shift` when L is the identity
    return M


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Return the inverse affine maps; exact for the identity and pure translations.

    Shape: M (N, 2, 3) -> (N, 2, 3).
    """
    a, b, c = M[:, 0, 0], M[:, 0, 1], M[:, 0, 2]
    d, e, f = M[:, 1, 0], M[:, 1, 1], M[:, 1, 2]
    det = a * e - b * d
    bad = ~(np.abs(det) > SINGULAR)  # also catches NaN
    if np.any(bad):
        n = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"matrix[{n}] is singular (determinant {float(det[n])!r}); it cannot be undone"
        )
    inv = np.empty_like(M)
    inv[:, 0, 0], inv[:, 0, 1] = e / det, -b / det
    inv[:, 1, 0], inv[:, 1, 1] = -d / det, a / det
    inv[:, 0, 2] = -(inv[:, 0, 0] * c + inv[:, 0, 1] * f)
    inv[:, 1, 2] = -(inv[:, 1, 0] * c + inv[:, 1, 1] * f)
    return inv


def bilinear_warp(images: np.ndarray, M: np.ndarray, fill: float) -> np.ndarray:
    """Resample every image through its own forward map with bilinear interpolation.

    Shape: images (N, C, H, W), M (N, 2, 3) -> (N, C, H, W) in the blending dtype.
    """
    N, C, H, W = images.shape
    # Blend in float32 unless the data is float64: uint8 and float16 would lose precision.
    dtype = np.float64 if images.dtype == np.float64 else np.float32
    # Pad by 1 before and 2 after so that, once source coordinates are clipped to [-1, W]
    # (every point outside that range sees only fill anyway), all four neighbours exist.
    Hp, Wp = H + 3, W + 3
    padded = np.full((N, C, Hp, Wp), fill, dtype=dtype)
    padded[:, :, 1 : H + 1, 1 : W + 1] = images
    flat = padded.reshape(-1)

    # Inverse map: where in the input does each output pixel (xo, yo) come from?
    A = invert_affine(M)
    xo = np.arange(W, dtype=np.float64)
    yo = np.arange(H, dtype=np.float64)[:, None]
    src_x = A[:, None, None, 0, 0] * xo + (A[:, None, None, 0, 1] * yo + A[:, None, None, 0, 2])
    src_y = A[:, None, None, 1, 0] * xo + (A[:, None, None, 1, 1] * yo + A[:, None, None, 1, 2])
    np.clip(src_x, -1, W, out=src_x)
    np.clip(src_y, -1, H, out=src_y)
    x0 = np.floor(src_x)
    y0 = np.floor(src_y)
    fx = (src_x - x0).astype(dtype)[:, None]  # 0 for integer coordinates: exact copies
    fy = (src_y - y0).astype(dtype)[:, None]

    # Flat index of the top-left neighbour in `padded`, for every image and channel.
    local = (y0.astype(np.intp) + 1) * Wp + (x0.astype(np.intp) + 1)  # (N, H, W)
    base = np.arange(N * C, dtype=np.intp).reshape(N, C, 1, 1) * (Hp * Wp)
    i00 = base + local[:, None]  # (N, C, H, W)
    v00, v01 = flat[i00], flat[i00 + 1]
    v10, v11 = flat[i00 + Wp], flat[i00 + Wp + 1]
    top = v00 + fx * (v01 - v00)
    bottom = v10 + fx * (v11 - v10)
    return top + fy * (bottom - top)


def warp_affine(
    x: np.ndarray,
    matrix: np.ndarray,
    *,
    image_shape: ImageShape | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Apply one forward affine map per image (input pixel -> output pixel), bilinearly.

    Shape: x (N, C*H*W) with ``image_shape`` (default (1, 28, 28)) or (N, C, H, W);
    matrix (2, 3) for every image or (N, 2, 3), acting on (x_col, y_row, 1) pixel
    coordinates; returns the shape and dtype of x (integer input is rounded to nearest).
    """
    x = np.asarray(x)
    images = as_images(x, image_shape)
    N = images.shape[0]
    M = np.asarray(matrix, dtype=np.float64)
    if M.shape not in ((2, 3), (N, 2, 3)):
        raise ValueError(f"matrix must have shape (2, 3) or ({N}, 2, 3), got {M.shape}")
    M = np.broadcast_to(M, (N, 2, 3))
    return like_input(bilinear_warp(images, M, check_number("fill", fill)), x)


def transform(
    x: np.ndarray,
    *,
    shift: ArrayLike = (0.0, 0.0),
    rotation: ArrayLike = 0.0,
    scale: ArrayLike = 1.0,
    shear: ArrayLike = 0.0,
    image_shape: ImageShape | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Shift, rotate, scale and shear images by given amounts, the same or per image.

    Shape: x (N, C*H*W) with ``image_shape`` (default (1, 28, 28)) or (N, C, H, W);
    shift (2,) or (N, 2) as (dx right, dy down) in pixels; rotation (counter-clockwise) and
    shear (x += tan(shear) * y) in degrees and scale, each scalar or (N,); returns the shape
    and dtype of x.
    """
    x = np.asarray(x)
    images = as_images(x, image_shape)
    N, _, H, W = images.shape
    scale = _per_image("scale", scale, N)
    if np.any(scale <= 0):
        raise ValueError(f"scale must be > 0, got {float(scale.min())!r}")
    M = affine_matrix(
        H,
        W,
        _per_image("shift", shift, N, (2,)),
        _per_image("rotation", rotation, N),
        scale,
        _per_image("shear", shear, N),
    )
    return like_input(bilinear_warp(images, M, check_number("fill", fill)), x)


def _per_image(name: str, value: object, N: int, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Broadcast a scalar (or one ``shape``-sized value) or a per-image array to (N, *shape)."""
    arr = np.asarray(value, dtype=np.float64)
    try:
        arr = np.broadcast_to(arr, (N, *shape))
    except ValueError as e:
        raise ValueError(
            f"{name} must have shape {shape} or {(N, *shape)} for a batch of {N}, "
            f"got shape {arr.shape}"
        ) from e
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr
