"""Data augmentation for digits: random shift, rotation, scaling and shear (book ch8).

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

Intended use in a training loop (labels are unchanged; augmentation never touches ``t``)::

    augmenter = Augmenter(rng=0)
    for x_batch, t_batch in batches:
        x_batch = augmenter(x_batch)      # before the forward pass, training data only
        loss = model.loss(x_batch, t_batch)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .checks import as_rng, check_positive

__all__ = [
    "MNIST_SHAPE",
    "Augmenter",
    "as_augmenter",
    "random_affine",
    "random_rotation",
    "random_scale",
    "random_shift",
    "transform",
    "warp_affine",
]

MNIST_SHAPE = (1, 28, 28)  # (C, H, W) assumed for flattened (N, 784) input
MAX_ROTATION = 180.0  # degrees; a wider range only repeats angles
MAX_SHEAR = 60.0  # degrees; tan() grows without bound towards 90
N_DRAWS = 6  # uniforms drawn per image: dx, dy, rotation, scale, shear, keep-or-augment

ImageShape = Sequence[int]


# --------------------------------------------------------------------------- checks


def _check_image_shape(image_shape: ImageShape) -> tuple[int, int, int]:
    """Return ``image_shape`` as ``(C, H, W)``; ``(H, W)`` means one channel."""
    shape = tuple(image_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(
            f"image_shape must be (C, H, W) or (H, W) of positive ints, got {image_shape!r}"
        )
    C, H, W = (int(s) for s in shape)
    return C, H, W


def _as_images(x: np.ndarray, image_shape: ImageShape | None) -> np.ndarray:
    """Return ``x`` viewed as a batch of images (N, C, H, W).

    Shape: x (N, C*H*W) with ``image_shape`` (default MNIST_SHAPE), or (N, C, H, W).
    """
    if x.dtype == np.bool_ or not (
        np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
    ):
        raise ValueError(f"x must hold floats or integers (e.g. uint8 pixels), got {x.dtype}")
    if x.ndim == 2:
        C, H, W = _check_image_shape(MNIST_SHAPE if image_shape is None else image_shape)
        N, D = x.shape
        if D != C * H * W:
            raise ValueError(
                f"x has shape {x.shape} but image_shape {(C, H, W)} needs (N, {C * H * W}); "
                f"pass image_shape=(C, H, W) matching the data"
            )
        return x.reshape(N, C, H, W)
    if x.ndim == 4:
        if image_shape is not None and _check_image_shape(image_shape) != x.shape[1:]:
            raise ValueError(
                f"x has shape {x.shape} but image_shape is {tuple(image_shape)!r}; "
                f"leave image_shape=None for (N, C, H, W) input"
            )
        return x
    raise ValueError(
        f"x must be (N, C*H*W) or (N, C, H, W), got shape {x.shape}; "
        f"reshape single images to (1, ...) and (N, H, W) to (N, 1, H, W)"
    )


def _check_fill(fill: float) -> float:
    if isinstance(fill, bool) or not isinstance(fill, numbers.Real) or not np.isfinite(fill):
        raise ValueError(f"fill must be a finite number, got {fill!r}")
    return float(fill)


def _check_range(name: str, value: float, upper: float) -> float:
    """Return ``value`` as a float if it lies in [0, upper]."""
    value = check_positive(name, value, allow_zero=True)
    if value > upper:
        raise ValueError(f"{name} must be <= {upper}, got {value!r}")
    return value


def _check_scale(scale: tuple[float, float]) -> tuple[float, float]:
    """Return ``scale`` as ``(lo, hi)`` with ``0 < lo <= hi``."""
    try:
        lo, hi = scale
    except (TypeError, ValueError) as e:
        raise ValueError(f"scale must be a pair (lo, hi) with 0 < lo <= hi, got {scale!r}") from e
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v <= 0:
            raise ValueError(f"scale must be a pair (lo, hi) with 0 < lo <= hi, got {scale!r}")
    if lo > hi:
        raise ValueError(f"scale must be (lo, hi) with lo <= hi, got {scale!r}; swap the two")
    return float(lo), float(hi)


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    return float(p)


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


# --------------------------------------------------------------------------- core


def _affine_matrix(
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


def _invert(M: np.ndarray) -> np.ndarray:
    """Return the inverse affine maps; exact for the identity and pure translations.

    Shape: M (N, 2, 3) -> (N, 2, 3).
    """
    a, b, c = M[:, 0, 0], M[:, 0, 1], M[:, 0, 2]
    d, e, f = M[:, 1, 0], M[:, 1, 1], M[:, 1, 2]
    det = a * e - b * d
    bad = ~(np.abs(det) > 1e-12)  # also catches NaN
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


def _warp(images: np.ndarray, M: np.ndarray, fill: float) -> np.ndarray:
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
    A = _invert(M)
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


def _restore(out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Return ``out`` with the shape and dtype of ``x``; integers are rounded to nearest."""
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(x.dtype, copy=False).reshape(x.shape)


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
    images = _as_images(x, image_shape)
    N = images.shape[0]
    M = np.asarray(matrix, dtype=np.float64)
    if M.shape not in ((2, 3), (N, 2, 3)):
        raise ValueError(f"matrix must have shape (2, 3) or ({N}, 2, 3), got {M.shape}")
    M = np.broadcast_to(M, (N, 2, 3))
    return _restore(_warp(images, M, _check_fill(fill)), x)


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
    images = _as_images(x, image_shape)
    N, _, H, W = images.shape
    scale = _per_image("scale", scale, N)
    if np.any(scale <= 0):
        raise ValueError(f"scale must be > 0, got {float(scale.min())!r}")
    M = _affine_matrix(
        H,
        W,
        _per_image("shift", shift, N, (2,)),
        _per_image("rotation", rotation, N),
        scale,
        _per_image("shear", shear, N),
    )
    return _restore(_warp(images, M, _check_fill(fill)), x)


# --------------------------------------------------------------------------- random


def random_affine(
    x: np.ndarray,
    *,
    rng: np.random.Generator | int | None = None,
    max_shift: float = 2.0,
    max_rotation: float = 15.0,
    scale: tuple[float, float] = (0.9, 1.1),
    max_shear: float = 0.0,
    p: float = 1.0,
    image_shape: ImageShape | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Apply an independent random affine transform to each image of a batch.

    Per image: dx, dy ~ U(-max_shift, max_shift) pixels, rotation ~ U(-max_rotation,
    max_rotation) and shear ~ U(-max_shear, max_shear) degrees, scale ~ U(*scale); with
    probability 1 - p the image is left exactly as it is. Each call draws 6 * N uniforms
    from ``rng``, whatever the settings. Shape: x (N, C*H*W) with ``image_shape``
    (default (1, 28, 28)) or (N, C, H, W); returns the shape and dtype of x.
    """
    max_shift = check_positive("max_shift", max_shift, allow_zero=True)
    max_rotation = _check_range("max_rotation", max_rotation, MAX_ROTATION)
    max_shear = _check_range("max_shear", max_shear, MAX_SHEAR)
    lo, hi = _check_scale(scale)
    p = _check_p(p)
    fill = _check_fill(fill)
    rng = as_rng(rng)

    x = np.asarray(x)
    images = _as_images(x, image_shape)
    N, _, H, W = images.shape
    u = rng.random((N, N_DRAWS))
    keep = u[:, 5] >= p  # these images get the identity: zero ranges map to exact 0 and 1
    on = np.where(keep, 0.0, 1.0)
    shift = (2 * u[:, 0:2] - 1) * (max_shift * on[:, None])
    rotation = (2 * u[:, 2] - 1) * (max_rotation * on)
    scale_ = 1 + (lo - 1 + (hi - lo) * u[:, 3]) * on
    shear = (2 * u[:, 4] - 1) * (max_shear * on)
    M = _affine_matrix(H, W, shift, rotation, scale_, shear)
    return _restore(_warp(images, M, fill), x)


def random_shift(
    x: np.ndarray,
    *,
    rng: np.random.Generator | int | None = None,
    max_shift: float = 2.0,
    image_shape: ImageShape | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Shift each image by its own dx, dy ~ U(-max_shift, max_shift) pixels.

    Shape: x (N, C*H*W) with ``image_shape`` or (N, C, H, W); returns the shape of x.
    """
    return random_affine(
        x,
        rng=rng,
        max_shift=max_shift,
        max_rotation=0.0,
        scale=(1.0, 1.0),
        image_shape=image_shape,
        fill=fill,
    )


def random_rotation(
    x: np.ndarray,
    *,
    rng: np.random.Generator | int | None = None,
    max_rotation: float = 15.0,
    image_shape: ImageShape | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Rotate each image about its centre by its own angle ~ U(-max_rotation, max_rotation)°.

    Shape: x (N, C*H*W) with ``image_shape`` or (N, C, H, W); returns the shape of x.
    """
    return random_affine(
        x,
        rng=rng,
        max_shift=0.0,
        max_rotation=max_rotation,
        scale=(1.0, 1.0),
        image_shape=image_shape,
        fill=fill,
    )


def random_scale(
    x: np.ndarray,
    *,
    rng: np.random.Generator | int | None = None,
    scale: tuple[float, float] = (0.9, 1.1),
    image_shape: ImageShape | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Scale each image about its centre by its own factor ~ U(*scale).

    Shape: x (N, C*H*W) with ``image_shape`` or (N, C, H, W); returns the shape of x.
    """
    return random_affine(
        x,
        rng=rng,
        max_shift=0.0,
        max_rotation=0.0,
        scale=scale,
        image_shape=image_shape,
        fill=fill,
    )


class Augmenter:
    """Random affine augmentation of training batches, with MNIST defaults and its own rng.

    ``x_batch = augmenter(x_batch)`` before the forward pass, on training batches only;
    the labels ``t`` are unchanged (``augmenter.apply(x, t)`` returns them as given).
    Shape: x (N, C*H*W) with ``image_shape`` (default (1, 28, 28)) or (N, C, H, W);
    returns the shape and dtype of x.
    """

    def __init__(
        self,
        *,
        max_shift: float = 2.0,
        max_rotation: float = 15.0,
        scale: tuple[float, float] = (0.9, 1.1),
        max_shear: float = 0.0,
        p: float = 1.0,
        image_shape: ImageShape | None = None,
        fill: float = 0.0,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        # Check everything now, so a bad setting fails when built, not mid-training.
        self.max_shift = check_positive("max_shift", max_shift, allow_zero=True)
        self.max_rotation = _check_range("max_rotation", max_rotation, MAX_ROTATION)
        self.scale = _check_scale(scale)
        self.max_shear = _check_range("max_shear", max_shear, MAX_SHEAR)
        self.p = _check_p(p)
        self.image_shape = None if image_shape is None else _check_image_shape(image_shape)
        self.fill = _check_fill(fill)
        self.rng = as_rng(rng)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Return a randomly transformed copy of the batch ``x`` (``rng`` overrides self.rng).

        Shape: x (N, C*H*W) or (N, C, H, W) -> same shape and dtype.
        """
        return random_affine(
            x,
            rng=self.rng if rng is None else as_rng(rng),
            max_shift=self.max_shift,
            max_rotation=self.max_rotation,
            scale=self.scale,
            max_shear=self.max_shear,
            p=self.p,
            image_shape=self.image_shape,
            fill=self.fill,
        )

    def apply(
        self, x: np.ndarray, t: np.ndarray, rng: np.random.Generator | int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(augmented x, t)``; the labels are passed through untouched.

        Shape: x (N, ...) and t (N,) or (N, classes) -> the same shapes.
        """
        x = np.asarray(x)
        if len(t) != len(x):
            raise ValueError(
                f"x and t must hold the same number of samples, got {len(x)} and {len(t)}"
            )
        return self(x, rng), t

    def __repr__(self) -> str:
        return (
            f"Augmenter(max_shift={self.max_shift}, max_rotation={self.max_rotation}, "
            f"scale={self.scale}, max_shear={self.max_shear}, p={self.p}, "
            f"image_shape={self.image_shape}, fill={self.fill})"
        )


def as_augmenter(
    augment: bool | Augmenter | None, *, rng: np.random.Generator | int | None = None
) -> Augmenter | None:
    """Turn a Trainer's ``augment=`` argument into an Augmenter, or None for no augmentation.

    ``True`` gives ``Augmenter(rng=rng)`` (MNIST defaults); ``False``/``None`` give None;
    an Augmenter is returned as it is, with its own rng.
    """
    if augment is None or augment is False:
        return None
    if augment is True:
        return Augmenter(rng=rng)
    if isinstance(augment, Augmenter):
        return augment
    raise ValueError(f"augment must be True, False, None or an Augmenter, got {augment!r}")
