"""im2col / col2im, the book's (ch7.4.3): layout, exact adjointness, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from scratchdl import col2im, conv_output_size, im2col

RNG = np.random.default_rng(7)


@pytest.mark.parametrize(
    "shape,FH,FW,stride,pad",
    [
        ((2, 3, 5, 5), 3, 3, 1, 0),
        ((2, 2, 7, 5), 3, 3, 2, 1),
        ((1, 1, 4, 6), 2, 3, 1, 2),
        ((3, 2, 6, 6), 2, 2, 2, 0),
        ((2, 1, 5, 5), 5, 5, 1, 0),
        ((1, 2, 4, 4), 1, 1, 1, 1),
    ],
)
def test_col2im_is_the_adjoint_of_im2col(shape, FH, FW, stride, pad):
    # <im2col(x), c> == <x, col2im(c)> for every x and c defines the adjoint
    x = RNG.standard_normal(shape)
    col = im2col(x, FH, FW, stride, pad)
    c = RNG.standard_normal(col.shape)
    lhs = np.sum(col * c)
    rhs = np.sum(x * col2im(c, shape, FH, FW, stride, pad))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_im2col_layout_matches_the_book():
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)
    col = im2col(x, 2, 2, stride=1, pad=0)
    assert col.shape == (2 * 2 * 2, 2 * 2 * 2)
    # row (n=1, oh=0, ow=1), columns (c, fh, fw)
    np.testing.assert_array_equal(col[1 * 4 + 0 * 2 + 1], x[1, :, 0:2, 1:3].ravel())


def test_im2col_pads_with_zeros():
    x = np.ones((1, 1, 2, 2))
    col = im2col(x, 3, 3, stride=1, pad=1)
    assert col.shape == (4, 9)
    assert col.sum() == 4 * 4  # each window sees the 4 ones, the rest is padding


def test_im2col_result_is_column_major_and_independent_of_input():
    x = RNG.standard_normal((2, 2, 4, 4))
    col = im2col(x, 2, 2)
    assert col.T.flags.c_contiguous  # the layout the convolution's product wants
    col[:] = 0
    assert np.abs(x).sum() > 0


def test_col2im_counts_overlaps():
    col = np.ones((4, 4))  # 2x2 windows, stride 1, over a 3x3 single-channel image
    dx = col2im(col, (1, 1, 3, 3), 2, 2)
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_conv_output_size_and_errors():
    assert conv_output_size(28, 5, 1, 0) == 24
    assert conv_output_size(28, 3, 1, 2) == 30
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(2, 5, 1, 0)
    with pytest.raises(ValueError, match="integer"):
        conv_output_size(6, 3, 2, 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        im2col(np.zeros((3, 4, 4)), 2, 2)
    with pytest.raises(ValueError, match="col must have shape"):
        col2im(np.zeros((3, 4)), (1, 1, 3, 3), 2, 2)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_is_kept(dtype):
    x = RNG.standard_normal((1, 2, 4, 4)).astype(dtype)
    col = im2col(x, 3, 3, pad=1)
    assert col.dtype == dtype
    assert col2im(col, x.shape, 3, 3, pad=1).dtype == dtype


def test_the_package_gives_the_books_functions_by_their_names():
    # ``from scratchdl import im2col`` once gave the module: calling it raised TypeError
    import scratchdl

    x = RNG.standard_normal((1, 1, 3, 3))
    assert callable(scratchdl.im2col) and callable(scratchdl.col2im)
    np.testing.assert_array_equal(scratchdl.im2col(x, 3, 3), x.reshape(1, 9))
    np.testing.assert_array_equal(scratchdl.col2im(x.reshape(1, 9), x.shape, 3, 3), x)
