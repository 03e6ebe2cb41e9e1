"""Data augmentation for digits: random shift, rotation, scaling and shear (book ch8).

Each image of a batch gets its own random affine transform, applied by the bilinear warp of
``scratchdl.augment.warp`` (whose docstring fixes the coordinates and the direction of each
parameter); the deterministic ``transform`` and ``warp_affine`` are re-exported here.

Intended use in a training loop (labels are unchanged; augmentation never touches ``t``)::

    augmenter = Augmenter(rng=0)
    for x_batch, t_batch in batches:
        x_batch = augmenter(x_batch)      # before the forward pass, training data only
        loss = model.loss(x_batch, t_batch)
"""

from __future__ import annotations

import numpy as np

from ..support.checks import as_rng, check_number, check_positive, check_probability
from .warp import (
    MNIST_SHAPE,
    ImageShape,
    affine_matrix,
    as_images,
    bilinear_warp,
    check_image_shape,
    like_input,
    transform,
    warp_affine,
)

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

MAX_ROTATION = 180.0  # degrees; a wider range only repeats angles
MAX_SHEAR = 60.0  # degrees; tan() grows without bound towards 90
N_DRAWS = 6  # uniforms drawn per image: dx, dy, rotation, scale, shear, keep-or-augment


def check_scale_range(scale: tuple[float, float]) -> tuple[float, float]:
    """Return ``scale`` as ``(lo, hi)`` with ``0 < lo <= hi``."""
    try:
        lo, hi = (check_positive("scale", v) for v in scale)
    except (TypeError, ValueError) as e:  # not a pair, or a bound that is not > 0
        raise ValueError(f"scale must be a pair (lo, hi) with 0 < lo <= hi, got {scale!r}") from e
    if lo > hi:
        raise ValueError(f"scale must be (lo, hi) with lo <= hi, got {scale!r}; swap the two")
    return lo, hi


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
    max_rotation = check_number("max_rotation", max_rotation, 0, MAX_ROTATION)
    max_shear = check_number("max_shear", max_shear, 0, MAX_SHEAR)
    lo, hi = check_scale_range(scale)
    p = check_probability("p", p)
    fill = check_number("fill", fill)
    rng = as_rng(rng)

    x = np.asarray(x)
    images = as_images(x, image_shape)
    N, _, H, W = images.shape
    u = rng.random((N, N_DRAWS))
    keep = u[:, 5] >= p  # these images get the identity: zero ranges map to exact 0 and 1
    on = np.where(keep, 0.0, 1.0)
    shift = (2 * u[:, 0:2] - 1) * (max_shift * on[:, None])
    rotation = (2 * u[:, 2] - 1) * (max_rotation * on)
    scale_ = 1 + (lo - 1 + (hi - lo) * u[:, 3]) * on
    shear = (2 * u[:, 4] - 1) * (max_shear * on)
    M = affine_matrix(H, W, shift, rotation, scale_, shear)
    return like_input(bilinear_warp(images, M, fill), x)


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
        self.max_rotation = check_number("max_rotation", max_rotation, 0, MAX_ROTATION)
        self.scale = check_scale_range(scale)
        self.max_shear = check_number("max_shear", max_shear, 0, MAX_SHEAR)
        self.p = check_probability("p", p)
        self.image_shape = None if image_shape is None else check_image_shape(image_shape)
        self.fill = check_number("fill", fill)
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
