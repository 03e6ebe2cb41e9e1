"""engine.bands: the batch-last bands equal the book's im2col columns, the window add is their
exact adjoint, bands that do not fit are refused, and scratch memory stays with its thread."""

from __future__ import annotations

import numpy as np
import pytest

from scratchdl import conv_output_size, im2col
from scratchdl.engine.bands import (
    Memory,
    add_windows,
    band_im2col,
    new_in_order_of,
    pad_batch_last,
    scratch,
)

RNG = np.random.default_rng(7)


BAND_CASES = [
    ((2, 3, 5, 5), 3, 3, 1, 1),
    ((3, 2, 7, 5), 3, 3, 2, 1),
    ((1, 1, 4, 6), 2, 3, 1, 2),
    ((2, 2, 6, 6), 2, 2, 2, 0),
    ((4, 1, 5, 5), 5, 5, 1, 0),
]


def test_pad_batch_last_moves_the_batch_last_and_fills_only_a_border():
    x = RNG.standard_normal((3, 2, 4, 5))
    xp = pad_batch_last(x, 2)
    assert xp.shape == (2, 8, 9, 3) and xp.flags.c_contiguous
    np.testing.assert_array_equal(xp[:, 2:6, 2:7].transpose(3, 0, 1, 2), x)
    xp[:, 2:6, 2:7] = 0
    assert not xp.any()
    # any memory order in, the same values out
    np.testing.assert_array_equal(pad_batch_last(np.asfortranarray(x), 1), pad_batch_last(x, 1))
    # a border of any value, written into memory that held something else
    out = np.full((2, 6, 7, 3), 7.0)
    assert pad_batch_last(x, 1, value=-np.inf, out=out) is out
    np.testing.assert_array_equal(out[:, 1:5, 1:6].transpose(3, 0, 1, 2), x)
    assert np.isneginf(out).sum() == out.size - x.size
    with pytest.raises(ValueError, match="out must be"):
        pad_batch_last(x, 1, out=np.empty((2, 6, 7, 4)))


@pytest.mark.parametrize("shape,FH,FW,stride,pad", BAND_CASES)
def test_bands_of_batch_last_columns_are_the_books_columns_reordered(shape, FH, FW, stride, pad):
    x = RNG.standard_normal(shape)
    N, C, H, W = shape
    OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W, FW, stride, pad)
    book = im2col(x, FH, FW, stride, pad).reshape(N, OH, OW, -1)  # rows (n, oh, ow)
    xp = pad_batch_last(x, pad)
    for r0, r1 in [(0, OH), (0, 1), (OH - 1, OH), (OH // 2, OH)]:
        out = np.full((C * FH * FW, (r1 - r0) * OW * N), np.nan)
        band = band_im2col(xp, FH, FW, stride, (r0, r1), OW, out)
        assert band is out
        # band columns are (oh, ow, n): the book's rows (n, oh, ow) of the same output rows
        expected = book[:, r0:r1].transpose(1, 2, 0, 3).reshape(-1, C * FH * FW).T
        np.testing.assert_array_equal(band, expected)


@pytest.mark.parametrize("shape,FH,FW,stride,pad", BAND_CASES)
def test_add_windows_is_the_adjoint_of_band_im2col(shape, FH, FW, stride, pad):
    N, C, H, W = shape
    OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W, FW, stride, pad)
    xp = pad_batch_last(RNG.standard_normal(shape), pad)
    rows = (OH // 3, OH)
    col = band_im2col(
        xp, FH, FW, stride, rows, OW, np.empty((C * FH * FW, (OH - rows[0]) * OW * N))
    )
    c = RNG.standard_normal(col.shape)
    start = RNG.standard_normal(xp.shape)
    dxp = start.copy()
    add_windows(c.reshape(C, FH, FW, OH - rows[0], OW, N), dxp, stride, rows[0])  # adds onto it
    np.testing.assert_allclose(np.sum(col * c), np.sum(xp * (dxp - start)), rtol=1e-12)


def test_band_im2col_refuses_rows_or_widths_outside_the_image():
    # it reads through a strided view: a band that does not fit must never be read
    xp = pad_batch_last(RNG.standard_normal((2, 1, 4, 4)), 1)  # 6x6 padded
    ok = np.empty((9, 4 * 2))
    band_im2col(xp, 3, 3, 1, (3, 4), 4, ok)
    for rows, OW in [((3, 5), 4), ((0, 1), 5), ((2, 2), 4), ((-1, 1), 4)]:
        with pytest.raises(ValueError, match="do not fit"):
            band_im2col(xp, 3, 3, 1, rows, OW, np.empty((9, max(1, rows[1] - rows[0]) * OW * 2)))
    with pytest.raises(ValueError, match="out must have shape"):
        band_im2col(xp, 3, 3, 1, (0, 1), 4, np.empty((9, 9)))


def test_scratch_memory_is_reused_within_a_thread_and_never_shared_between_threads():
    import threading

    a = scratch("test band", (3, 4), np.float32)
    b = scratch("test band", (2, 5), np.float32)  # smaller: the same memory again
    assert np.shares_memory(a, b) and b.shape == (2, 5) and b.flags.c_contiguous
    assert not np.shares_memory(a, scratch("other band", (3, 4), np.float32))
    assert scratch("test band", (3, 4), np.float64).dtype == np.float64
    seen = []
    thread = threading.Thread(target=lambda: seen.append(scratch("test band", (3, 4), np.float64)))
    thread.start()
    thread.join()
    assert not np.shares_memory(seen[0], scratch("test band", (3, 4), np.float64))


def test_memory_hands_out_the_same_array_for_a_name_and_grows_it_when_needed():
    memory = Memory()
    a = memory.take("cell", (4, 3), np.uint8)
    assert memory.take("cell", (2, 6), np.uint8).base is a.base  # the same memory again
    bigger = memory.take("cell", (5, 5), np.uint8)
    assert bigger.shape == (5, 5) and not np.shares_memory(bigger, a)
    assert memory.take("cell", (5, 5), np.float32).dtype == np.float32  # a new dtype: new memory


@pytest.mark.parametrize("axes", [(0, 1, 2, 3), (3, 0, 1, 2), (1, 2, 3, 0), (0, 2, 3, 1)])
def test_a_new_array_takes_the_memory_order_of_another(axes):
    like = np.empty((2, 3, 4, 5)).transpose(axes)  # some memory order
    shape = (6, 7, 8, 9)
    want = np.empty_like(like, dtype=np.float32, shape=shape)
    got = new_in_order_of(like, shape, np.float32)
    assert got.shape == shape and got.dtype == np.float32
    assert np.argsort(got.strides).tolist() == np.argsort(want.strides).tolist()
    zeros = new_in_order_of(like, shape, np.float64, zero=True)
    assert (
        not zeros.any() and np.argsort(zeros.strides).tolist() == np.argsort(want.strides).tolist()
    )
