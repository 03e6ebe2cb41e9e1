"""Pooling layers (ch7.5): max pooling and average pooling over windows of the image."""

from __future__ import annotations

import numpy as np

from ..columns import col2im, conv_output_size, im2col
from ..engine import max_pool, max_pool_backward
from ..engine.bands import new_in_order_of, pad_batch_last
from ..engine.pool import window_cell
from ..support.checks import check_positive_int
from .base import Layer, as_float_input, as_input, check_ndim


class _Pool(Layer):
    """Shared set-up of the pooling layers: window, stride, pad, their checks, and the
    strided slices ``xp[:, :, i::stride, j::stride]`` that visit each window position."""

    per_sample = True

    pad_value = 0.0

    def __init__(self, pool_h: int, pool_w: int, stride: int = 1, pad: int = 0) -> None:
        super().__init__()
        self.pool_h = check_positive_int("pool_h", pool_h)
        self.pool_w = check_positive_int("pool_w", pool_w)
        self.stride = check_positive_int("stride", stride)
        self.pad = check_positive_int("pad", pad, allow_zero=True)
        self.x_shape: tuple | None = None  # backward rebuilds an input-shaped gradient

    def _slices(self, OH: int, OW: int):
        """(k, (row slice, column slice)) of window cell k = i*pool_w + j, for every output."""
        s = self.stride
        for k, (i, j) in enumerate(np.ndindex(self.pool_h, self.pool_w)):
            yield k, (slice(None), slice(None), slice(i, i + s * OH, s), slice(j, j + s * OW, s))

    def _padded(self, x: np.ndarray) -> tuple[np.ndarray, int, int]:
        """(N, C, H + 2*pad, W + 2*pad) padded with ``pad_value`` (batch-last in memory
        where padded: the engine's one padding kernel), OH, OW."""
        OH, OW = self._output_size(x)
        if not self.pad:
            return x, OH, OW
        xp = pad_batch_last(x, self.pad, self._pad_value(x.dtype))
        return xp.transpose(3, 0, 1, 2), OH, OW

    def _pad_value(self, dtype: np.dtype) -> float:
        """``pad_value`` in ``dtype``: -inf becomes the lowest integer for integer input."""
        if dtype.kind != "f" and np.isinf(self.pad_value):
            return np.iinfo(dtype).min
        return self.pad_value

    def _output_size(self, x: np.ndarray) -> tuple[int, int]:
        check_ndim(self, x, 4, "(N, C, H, W)")
        N, C, H, W = x.shape
        OH = conv_output_size(H, self.pool_h, self.stride, self.pad)  # raises if it does not fit
        OW = conv_output_size(W, self.pool_w, self.stride, self.pad)
        self.x_shape = x.shape
        return OH, OW

    def _unpad(self, dxp: np.ndarray) -> np.ndarray:
        N, C, H, W = self.x_shape
        p = self.pad
        return dxp[:, :, p : p + H, p : p + W] if p else dxp

    def _padded_zeros(self, dout: np.ndarray, like: np.ndarray | None = None) -> np.ndarray:
        """Zeros of the padded input's shape, of dout's dtype, in the memory order of
        ``like`` (default: dout's)."""
        N, C, H, W = self.x_shape
        p = self.pad
        like = dout if like is None else like
        return new_in_order_of(like, (N, C, H + 2 * p, W + 2 * p), dout.dtype, zero=True)

    def extra_repr(self) -> str:
        return f"({self.pool_h}, {self.pool_w}), stride={self.stride}, pad={self.pad}"


class Pooling(_Pool):
    """Max pooling: each output is the largest value of its window; padding never wins.

    Backward routes dout to the (first) position of each window's maximum, which only a
    training forward (``train=True``) records. ``reference = True`` runs the book's code
    (``book_forward``, ``book_backward``: im2col, one window a row, its maximum); by default
    the engine's kernel (``engine.max_pool``) visits the windows cell by cell, in the input's
    memory order.
    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2*pad - pool_h) / stride + 1.
    """

    pad_value = -np.inf  # a padded cell can never be the maximum

    def __init__(self, pool_h: int, pool_w: int, stride: int = 1, pad: int = 0) -> None:
        super().__init__(pool_h, pool_w, stride, pad)
        # the window cell of each maximum: (N, C, OH, OW) on the fast path, one per row of
        # the book's columns on its path; None after an inference forward
        self.arg_max: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = as_input(self, x)
        if self.reference:
            return self.book_forward(x, train)
        xp, OH, OW = self._padded(x)
        out = np.empty_like(window_cell(xp, 0, 0, self.stride, OH, OW))  # in x's memory order
        index = np.uint8 if self.pool_h * self.pool_w <= 256 else np.int32
        self.arg_max = np.empty_like(out, dtype=index) if train else None
        max_pool(xp, self.pool_h, self.pool_w, self.stride, out, self.arg_max)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.arg_max is None:
            raise RuntimeError("Pooling.backward needs a forward pass with train=True first")
        if self.reference:
            return self.book_backward(dout)
        N, C, H, W = self.x_shape
        shape = (N, C, H + 2 * self.pad, W + 2 * self.pad)
        dxp = max_pool_backward(dout, self.arg_max, self.pool_h, self.pool_w, self.stride, shape)
        return self._unpad(dxp)

    def book_forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        """The book's forward pass: im2col, one window of one channel a row, its maximum."""
        N, C, H, W = x.shape
        OH, OW = self._output_size(x)
        p = self.pad  # padded here, never to win (the book pads with zeros, inside im2col)
        xp = np.pad(x, [(0, 0), (0, 0), (p, p), (p, p)], constant_values=self._pad_value(x.dtype))
        col = im2col(xp, self.pool_h, self.pool_w, self.stride, 0)
        col = col.reshape(-1, self.pool_h * self.pool_w)  # rows (n, oh, ow, c)
        self.arg_max = np.argmax(col, axis=1) if train else None  # the first maximum
        return np.max(col, axis=1).reshape(N, OH, OW, C).transpose(0, 3, 1, 2)

    def book_backward(self, dout: np.ndarray) -> np.ndarray:
        """The book's backward pass: each dout into its window's argmax column, col2im."""
        size = self.pool_h * self.pool_w
        dout = dout.transpose(0, 2, 3, 1)  # (N, OH, OW, C): the order of the rows
        dmax = np.zeros((dout.size, size), dtype=dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max] = dout.ravel()
        dcol = dmax.reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        N, C, H, W = self.x_shape
        padded = (N, C, H + 2 * self.pad, W + 2 * self.pad)
        return self._unpad(col2im(dcol, padded, self.pool_h, self.pool_w, self.stride, 0))


class AvgPooling(_Pool):
    """Average pooling: each output is the mean of its window (padded zeros count).

    Integer input gives float64 output, as numpy's ``mean`` does.
    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2*pad - pool_h) / stride + 1.
    """

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = as_float_input(self, x)  # a mean of integers is not an integer
        xp, OH, OW = self._padded(x)
        out = None
        for _, cell in self._slices(OH, OW):
            out = xp[cell].copy(order="K") if out is None else np.add(out, xp[cell], out=out)
        out *= x.dtype.type(1 / (self.pool_h * self.pool_w))
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.x_shape is None:
            raise RuntimeError("AvgPooling.backward needs a forward pass first")
        share = dout / (self.pool_h * self.pool_w)  # every window cell gets an equal share
        dxp = self._padded_zeros(dout)
        for _, cell in self._slices(*dout.shape[2:]):
            dxp[cell] += share
        return self._unpad(dxp)
