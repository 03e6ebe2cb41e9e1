"""Pooling layers (ch7.5): max pooling and average pooling over windows of the image."""

from __future__ import annotations

import numpy as np

from ..checks import check_positive_int
from ..conv_bands import in_order_of
from ..im2col import conv_output_size, pad_images
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
        check_ndim(self, x, 4, "(N, C, H, W)")
        N, C, H, W = x.shape
        OH = conv_output_size(H, self.pool_h, self.stride, self.pad)  # raises if it does not fit
        OW = conv_output_size(W, self.pool_w, self.stride, self.pad)
        self.x_shape = x.shape
        return pad_images(x, self.pad, self.pad_value), OH, OW

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
        return np.zeros_like(like, dtype=dout.dtype, shape=(N, C, H + 2 * p, W + 2 * p))

    def extra_repr(self) -> str:
        return f"({self.pool_h}, {self.pool_w}), stride={self.stride}, pad={self.pad}"


class Pooling(_Pool):
    """Max pooling: each output is the largest value of its window; padding never wins.

    Backward routes dout to the (first) position of each window's maximum, which only a
    training forward (``train=True``) records.
    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2*pad - pool_h) / stride + 1.
    """

    pad_value = -np.inf  # a padded cell can never be the maximum

    def __init__(self, pool_h: int, pool_w: int, stride: int = 1, pad: int = 0) -> None:
        super().__init__(pool_h, pool_w, stride, pad)
        self.arg_max: np.ndarray | None = None  # window cell k of each maximum, (N, C, OH, OW)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = as_input(self, x)
        xp, OH, OW = self._padded(x)
        index = np.uint8 if self.pool_h * self.pool_w <= 256 else np.int32
        out = None
        self.arg_max = None  # inference does not track where the maxima are
        for k, cell in self._slices(OH, OW):  # a running maximum over the window cells
            v = xp[cell]
            if out is None:
                out = v.copy(order="K")  # in x's memory order
                if train:
                    self.arg_max = np.zeros_like(out, dtype=index)  # in x's memory order
                continue
            if not train:
                np.maximum(out, v, out=out)
                continue
            bigger = v > out  # strict: the first maximum keeps the gradient
            # arg_max = k where bigger (k only grows); arithmetic is ~10x faster than a
            # masked write in numpy
            np.maximum(self.arg_max, bigger * index(k), out=self.arg_max)
            np.maximum(out, v, out=out)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.arg_max is None:
            raise RuntimeError("Pooling.backward needs a forward pass with train=True first")
        dxp = self._padded_zeros(dout, like=self.arg_max)  # dx in x's memory order
        dout = in_order_of(dout, self.arg_max)  # one copy, not four mixed-order passes
        for k, cell in self._slices(*dout.shape[2:]):
            dxp[cell] += dout * (self.arg_max == k)
        return self._unpad(dxp)


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
