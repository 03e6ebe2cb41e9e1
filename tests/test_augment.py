"""Tests for scratchdl.augment (random affine augmentation) and scratchdl.augment.warp (the batch
affine warp with bilinear interpolation under it)."""

from __future__ import annotations

import numpy as np
import pytest

from scratchdl import augment
from scratchdl.augment import (
    Augmenter,
    as_augmenter,
    random_affine,
    random_rotation,
    random_scale,
    random_shift,
    warp,
)
from scratchdl.augment.warp import transform, warp_affine


def blob(H: int = 28, W: int = 28, centre: tuple[float, float] = (13.5, 13.5), sigma: float = 2.5):
    """A smooth Gaussian spot at ``centre`` = (x, y), well inside the image by default."""
    y, x = np.mgrid[0:H, 0:W]
    cx, cy = centre
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))


def centre_of_mass(img: np.ndarray) -> np.ndarray:
    """Return (x, y) of the intensity-weighted centre of a 2-D image."""
    y, x = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return np.array([(x * img).sum(), (y * img).sum()]) / img.sum()


def digits(N: int = 6, dtype=np.float32, seed: int = 0) -> np.ndarray:
    """Random MNIST-shaped flattened batch with values in [0, 1]."""
    return np.random.default_rng(seed).random((N, 784)).astype(dtype)


# --------------------------------------------------------------------------- shapes, dtypes


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8])
def test_flat_batch_keeps_shape_and_dtype(dtype):
    x = (digits(5) * 255).astype(dtype)
    y = random_affine(x, rng=0)
    assert y.shape == x.shape and y.dtype == x.dtype


def test_float32_and_uint8_agree_with_float64():
    x64 = digits(dtype=np.float64) * 255
    y64 = random_affine(x64, rng=0, max_shear=10)
    y32 = random_affine(x64.astype(np.float32), rng=0, max_shear=10)
    np.testing.assert_allclose(y32, y64, atol=1e-3)  # 255 * float32 eps, not float16 weights
    x8 = np.rint(x64).astype(np.uint8)
    y8 = random_affine(x8, rng=0, max_shear=10)
    expected = np.rint(random_affine(x8.astype(np.float64), rng=0, max_shear=10))
    assert np.mean(y8 == expected) > 0.999  # rounded to nearest, not truncated


def test_four_d_batch_keeps_shape_and_dtype_with_channels_and_non_square_images():
    x = np.random.default_rng(1).random((4, 3, 9, 13)).astype(np.float32)
    y = random_affine(x, rng=0, max_shear=10)
    assert y.shape == x.shape and y.dtype == np.float32
    # every channel of one image moves together: channel 1 was channel 0 times 2
    x[:, 1] = 2 * x[:, 0]
    y = random_affine(x, rng=0)
    np.testing.assert_allclose(y[:, 1], 2 * y[:, 0], rtol=1e-6)


def test_flat_input_uses_image_shape():
    x = np.random.default_rng(2).random((3, 2 * 5 * 7))
    flat = random_affine(x, rng=4, image_shape=(2, 5, 7))
    four_d = random_affine(x.reshape(3, 2, 5, 7), rng=4)
    np.testing.assert_array_equal(flat, four_d.reshape(3, -1))


def test_input_is_not_modified():
    x = digits()
    before = x.copy()
    random_affine(x, rng=0, max_shear=10)
    np.testing.assert_array_equal(x, before)


def test_empty_batch():
    x = np.zeros((0, 784), dtype=np.float32)
    assert random_affine(x, rng=0).shape == (0, 784)


# --------------------------------------------------------------------------- exactness


def test_identity_parameters_return_input_exactly():
    x = digits(dtype=np.float64)
    np.testing.assert_array_equal(transform(x), x)
    np.testing.assert_array_equal(
        random_affine(x, rng=0, max_shift=0, max_rotation=0, scale=(1, 1)), x
    )
    np.testing.assert_array_equal(random_affine(x, rng=0, p=0.0), x)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_integer_shift_equals_roll_of_a_padded_image(dtype):
    N, pad = 4, 3
    x = (np.random.default_rng(3).random((N, 1, 28, 28)) * 255).astype(dtype)
    shifts = np.array([[1, 0], [0, -2], [-3, 2], [2, 3]])  # (dx right, dy down)
    y = transform(x, shift=shifts)
    for n, (dx, dy) in enumerate(shifts):
        padded = np.pad(x[n, 0], pad)
        expected = np.roll(padded, (dy, dx), axis=(0, 1))[pad:-pad, pad:-pad]
        np.testing.assert_array_equal(y[n, 0], expected)


def test_warp_affine_with_one_matrix_for_the_batch_matches_transform():
    x = digits()
    matrix = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    np.testing.assert_array_equal(warp_affine(x, matrix), transform(x, shift=(2, -1)))


@pytest.mark.parametrize("angle, k", [(90, 1), (-90, -1), (180, 2), (270, 3)])
def test_right_angle_rotation_matches_rot90(angle, k):
    x = np.random.default_rng(4).random((3, 2, 11, 11))
    y = transform(x, rotation=angle)
    np.testing.assert_allclose(y, np.rot90(x, k, axes=(2, 3)), atol=1e-9)


def test_positive_rotation_turns_counter_clockwise_on_screen():
    x = np.zeros((1, 1, 29, 29))
    x[0, 0, 14, 24] = 1.0  # right of the centre (14, 14)
    y = transform(x, rotation=90)
    assert np.unravel_index(np.argmax(y), y.shape)[2:] == (4, 14)  # now above the centre


def test_shear_slants_along_x_in_proportion_to_y():
    x = blob(centre=(13.5, 20.5), sigma=1.5)[None, None]  # 7 px below the centre
    y = transform(x, shear=20)
    com = centre_of_mass(y[0, 0])
    np.testing.assert_allclose(com, [13.5 + np.tan(np.deg2rad(20)) * 7, 20.5], atol=0.05)


def test_per_image_parameters_match_one_image_at_a_time():
    x = digits(3, dtype=np.float64)
    params = dict(shift=[[0.5, -1.2], [2, 0], [0, 0]], rotation=[10, -30, 5], scale=[1, 0.9, 1.2])
    batch = transform(x, **params)
    for n in range(3):
        one = transform(x[n : n + 1], **{k: [v[n]] for k, v in params.items()})
        np.testing.assert_array_equal(batch[n : n + 1], one)


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_bilinear_reproduces_a_linear_ramp_under_any_affine_map(dtype, tol):
    H, W = 20, 24
    y, x = np.mgrid[0:H, 0:W]
    ramp = (0.7 * x - 0.4 * y + 3.0).astype(dtype)
    M = np.array([[0.9, 0.2, 1.3], [-0.15, 1.1, -0.6]])  # forward: input -> output
    out = warp_affine(ramp[None, None], M)[0, 0]
    # the output pixel p reads the input at M^-1 p, where the ramp is known exactly
    L, b = M[:, :2], M[:, 2]
    src = np.linalg.solve(L, np.stack([x.ravel(), y.ravel()]) - b[:, None])
    inside = np.all((src >= 0) & (src <= [[W - 1], [H - 1]]), axis=0).reshape(H, W)
    expected = 0.7 * src[0] - 0.4 * src[1] + 3.0
    assert inside.sum() > 200
    np.testing.assert_allclose(out[inside], expected.reshape(H, W)[inside], rtol=0, atol=tol)


@pytest.mark.parametrize("s", [0.8, 1.25])
def test_scaling_moves_the_centre_of_mass_in_proportion_about_the_image_centre(s):
    for centre in [(13.5, 13.5), (16.0, 11.0)]:
        x = blob(centre=centre)
        y = transform(x.reshape(1, -1), scale=s).reshape(28, 28)
        expected = 13.5 + s * (np.array(centre) - 13.5)
        np.testing.assert_allclose(centre_of_mass(y), expected, atol=0.05)
        assert y.sum() == pytest.approx(s**2 * x.sum(), rel=0.02)  # area grows as s**2


def test_small_transforms_roughly_conserve_mass():
    x = np.tile(blob().reshape(1, -1), (20, 1))
    y = random_affine(x, rng=5, max_shift=2, max_rotation=15, scale=(1, 1), max_shear=10)
    np.testing.assert_allclose(y.sum(axis=1), x.sum(axis=1), rtol=0.02)


def test_values_stay_within_the_range_of_input_and_fill():
    x = np.random.default_rng(6).uniform(-1.0, 3.0, size=(50, 784))
    y = random_affine(x, rng=7, max_shift=4, max_rotation=45, scale=(0.5, 2.0), max_shear=30)
    eps = 1e-12  # bilinear is a convex combination, up to rounding
    assert y.min() >= x.min() - eps and y.max() <= x.max() + eps
    y = random_affine(x, rng=7, max_shift=10, fill=5.0)
    assert y.max() <= 5.0 + eps and np.any(y == 5.0)


# --------------------------------------------------------------------------- randomness


def test_same_seed_same_output_different_seed_different_output():
    x = digits()
    np.testing.assert_array_equal(random_affine(x, rng=42), random_affine(x, rng=42))
    assert not np.array_equal(random_affine(x, rng=42), random_affine(x, rng=43))


def test_a_generator_advances_so_successive_batches_differ():
    x = digits()
    rng = np.random.default_rng(0)
    assert not np.array_equal(random_affine(x, rng=rng), random_affine(x, rng=rng))


def test_each_image_gets_its_own_transform():
    x = np.tile(blob().reshape(1, -1), (8, 1))
    y = random_affine(x, rng=0)
    assert len({row.tobytes() for row in y}) == 8


@pytest.mark.parametrize("fn", [random_shift, random_rotation, random_scale])
def test_convenience_functions_are_seeded_and_change_the_image(fn):
    x = np.tile(blob(sigma=1.5).reshape(1, -1), (4, 1))
    np.testing.assert_array_equal(fn(x, rng=1), fn(x, rng=1))
    assert not np.allclose(fn(x, rng=1), x)


def test_random_shift_only_shifts():
    x = blob(centre=(13.5, 13.5), sigma=1.5).reshape(1, -1)
    y = random_shift(x, rng=3, max_shift=2).reshape(28, 28)
    moved = centre_of_mass(y) - 13.5
    assert np.all(np.abs(moved) <= 2 + 1e-6) and np.any(np.abs(moved) > 0.01)
    assert y.sum() == pytest.approx(x.sum(), rel=1e-6)  # a shift inside the frame loses nothing


def test_p_leaves_some_images_exactly_as_they_were():
    x = np.tile(blob().reshape(1, -1), (40, 1))
    y = random_affine(x, rng=0, p=0.5)
    same = np.all(y == x, axis=1)
    assert 0 < same.sum() < 40


def test_global_random_state_is_untouched():
    # reading the legacy global state is the point of this test
    state = np.random.get_state()  # noqa: NPY002
    x = digits()
    random_affine(x, rng=0)
    random_affine(x)  # fresh entropy, still not the global generator
    Augmenter()(x)
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


# --------------------------------------------------------------------------- Augmenter


def test_augmenter_holds_its_rng_and_accepts_one_per_call():
    x = digits()
    a, b = Augmenter(rng=0), Augmenter(rng=0)
    first = a(x)
    np.testing.assert_array_equal(first, b(x))
    assert not np.array_equal(first, a(x))  # the held generator moves on
    np.testing.assert_array_equal(a(x, rng=9), random_affine(x, rng=9))


def test_augmenter_apply_returns_labels_unchanged():
    x, t = digits(), np.array([3, 1, 4, 1, 5, 9])
    t_before = t.copy()
    x_aug, t_aug = Augmenter(rng=0).apply(x, t)
    assert t_aug is t and np.array_equal(t, t_before)
    assert x_aug.shape == x.shape and not np.array_equal(x_aug, x)
    with pytest.raises(ValueError, match="6 and 5"):
        Augmenter().apply(x, t[:5])


def test_augmenter_repr_names_its_settings():
    text = repr(Augmenter(max_shift=3, max_rotation=10, scale=(0.8, 1.2), max_shear=5, p=0.5))
    for part in ["max_shift=3.0", "max_rotation=10.0", "(0.8, 1.2)", "max_shear=5.0", "p=0.5"]:
        assert part in text


def test_as_augmenter_turns_trainer_flags_into_augmenters():
    assert as_augmenter(False) is None and as_augmenter(None) is None
    assert isinstance(as_augmenter(True, rng=0), Augmenter)
    aug = Augmenter(max_rotation=5)
    assert as_augmenter(aug) is aug
    with pytest.raises(ValueError, match="'yes'"):
        as_augmenter("yes")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "shape, kwargs, match",
    [
        ((5, 783), {}, r"\(5, 783\)"),
        ((5, 28, 28), {}, r"\(5, 28, 28\)"),
        ((784,), {}, r"\(784,\)"),
        ((2, 1, 28, 28), {"image_shape": (1, 14, 56)}, r"\(1, 14, 56\)"),
        ((2, 784), {"image_shape": (28, 0)}, r"\(28, 0\)"),
    ],
)
def test_bad_shapes_raise_naming_the_shape(shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_affine(np.zeros(shape), rng=0, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_shift": -1}, "max_shift.*-1"),
        ({"max_rotation": -5}, "max_rotation.*-5"),
        ({"max_rotation": 200}, "max_rotation.*200"),
        ({"max_shear": 89}, "max_shear.*89"),
        ({"scale": (1.1, 0.9)}, r"scale.*\(1\.1, 0\.9\).*swap"),
        ({"scale": (0, 1)}, r"scale.*\(0, 1\)"),
        ({"scale": 1.0}, "scale.*1.0"),
        ({"p": 1.5}, "p.*1.5"),
        ({"fill": float("nan")}, "fill.*nan"),
        ({"rng": "seed"}, "rng.*'seed'"),
    ],
)
def test_bad_settings_raise_naming_the_value(kwargs, match):
    x = digits(2)
    with pytest.raises(ValueError, match=match):
        random_affine(x, **{"rng": 0, **kwargs})
    if "rng" not in kwargs:
        with pytest.raises(ValueError, match=match):
            Augmenter(**kwargs)


def test_augment_re_exports_the_deterministic_warps():
    assert augment.transform is warp.transform and augment.warp_affine is warp.warp_affine


@pytest.mark.parametrize(
    "image_shape, expected",
    [((28, 28), (1, 28, 28)), ((3, 9, 13), (3, 9, 13)), (np.array([2, 5, 7]), (2, 5, 7))],
)
def test_image_shape_without_channels_means_one(image_shape, expected):
    assert warp.check_image_shape(image_shape) == expected


@pytest.mark.parametrize("bad", [(28,), (1, 2, 3, 4), (1.5, 28), (True, 28), "28x28", 28])
def test_a_bad_image_shape_names_the_form_it_needs(bad):
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\) or \(H, W\)"):
        warp.check_image_shape(bad)


def test_bad_data_and_matrices_raise():
    with pytest.raises(ValueError, match="bool"):
        random_affine(np.zeros((2, 784), dtype=bool), rng=0)
    with pytest.raises(ValueError, match=r"singular"):
        warp_affine(digits(2), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        warp_affine(digits(2), np.eye(3))
    with pytest.raises(ValueError, match=r"scale must be > 0"):
        transform(digits(2), scale=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"rotation.*\(3,\)"):
        transform(digits(2), rotation=[1.0, 2.0, 3.0])
