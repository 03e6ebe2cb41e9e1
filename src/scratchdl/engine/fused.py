"""The book's block, Convolution -> ReLU (-> max pooling), computed band by band in one pass.

Run as three layers, the block writes the convolution's whole output (a few MB for a batch),
reads it back for ReLU, writes ReLU's output and its mask, and reads those again for the
pooling: passes that only move memory. Here each band of output rows of the convolution is
pooled and rectified while it is still in the CPU's cache, and only the pooled maps leave it.
Nothing changes in the arithmetic:

- the convolution is the same product of the same im2col band, plus the bias, as
  ``ConvEngine.convolve``, on the same engine (which keeps the padded input for the
  convolution's backward);
- max pooling and ReLU commute (``max(relu(a)) == relu(max(a))``), so the band is pooled
  first (``pool.max_pool``) and ReLU runs on the pooled maps, a quarter of the values for
  2x2 windows;
- backward routes each pooled gradient to its window's first maximum, where that maximum
  is > 0 (``pool.max_pool_backward``), exactly as the pooling's backward followed by ReLU's.

Only non-overlapping windows without padding are fused (``fusable_pool``): the book's pooling.
Arrays are batch-last in memory: (C, H, W, N).
"""

from __future__ import annotations

import math

import numpy as np

from . import choice, winograd
from .bands import Memory, conv_output_size, scratch
from .conv import ConvEngine
from .pool import max_pool, max_pool_backward

NO_GRADIENT = 255  # window cell of a pooled output whose maximum is <= 0: ReLU stops it
# Below this many values in one output row of the batch (OW * N), a band is built from whole
# padded rows (``wide_band``): a small batch otherwise copies runs of a few pixels. Only
# where the padded width adds little to the product: at most 1/WIDE_EXTRA more columns
# (benchmarks/RESULTS.md).
WIDE_ROW, WIDE_EXTRA = 64, 8


def fusable_pool(pool_h: int, pool_w: int, stride: int, pad: int) -> bool:
    """Whether a max pooling of these settings can be fused: non-overlapping square windows
    without padding, at most 254 cells (the window cell is kept in a uint8 beside
    NO_GRADIENT)."""
    return pool_h == pool_w == stride and pad == 0 and pool_h * pool_w < NO_GRADIENT


def row_bands(rows: int, row_bytes: int, conv: ConvEngine, multiple: int) -> list:
    """Bands ``(r0, r1)`` of ``rows`` output rows of ``row_bytes`` each (their im2col
    matrix), each a multiple of ``multiple`` rows and, where that allows, within the band
    size of ``conv``."""
    if row_bytes * rows <= conv.band_bytes:  # one band, whatever BLAS's threads (small batch)
        return [(0, rows)]
    budget = conv.band_budget()
    r = max(multiple, budget // row_bytes // multiple * multiple)
    return [(r0, min(r0 + r, rows)) for r0 in range(0, rows, r)]


def wide_band(flat: np.ndarray, shape: tuple, FH: int, FW: int, rows: tuple) -> np.ndarray:
    """The im2col matrix of output rows ``rows`` of a stride-1 convolution, over the padded
    width: (C*FH*FW, (r1 - r0)*Wp*N), columns ordered (oh, w, n) with w < Wp, of which the
    first OW = Wp - FW + 1 are the convolution's; the others are never read.

    Batch-last, window cell (i, j) of output (oh, w) is the input at (oh + i, w + j): for all
    the band's columns at once, one run of memory from (r0 + i, j) on. So each row of the
    matrix is one contiguous copy, instead of (r1 - r0) * OW runs of N values. ``flat`` holds
    the padded input (C, Hp, Wp, N) and a tail of zeros for the last run.
    """
    C, Hp, Wp, N = shape
    r0, r1 = rows
    length = (r1 - r0) * Wp * N
    out = scratch("band", (C * FH * FW, length), flat.dtype)
    step = flat.itemsize
    strides = (Hp * Wp * N * step, Wp * N * step, N * step, step)
    runs = np.ndarray((C, FH, FW, length), flat.dtype, flat, r0 * Wp * N * step, strides)
    np.copyto(out.reshape(C, FH, FW, length), runs)
    return out


class FusedConv:
    """relu(convolution(x)), max-pooled in ``pool`` x ``pool`` windows (``pool`` 1: none), on
    the convolution's own engine ``conv``. Keeps, in its own ``Memory``, what backward needs:
    the window cell of each pooled maximum (NO_GRADIENT where ReLU stops the gradient), or
    ReLU's mask when there is no pooling.

    Shape: x (N, C, H, W), W (FN, C, FH, FW), b (FN,) -> (N, FN, OH // pool, OW // pool),
    batch-last in memory.
    """

    def __init__(self, conv: ConvEngine, pool: int = 1) -> None:
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
            raise ValueError(f"pool must be an int >= 1, got {pool!r}")
        if pool > 1 and not fusable_pool(pool, pool, pool, 0):
            raise ValueError(f"a pool of {pool}x{pool} cells is too large to fuse")
        self.conv = conv
        self.pool = pool
        self.memory = Memory()
        self.cell: np.ndarray | None = None  # (FN, OHp, OWp, N) uint8, with pooling
        self.mask: np.ndarray | None = None  # (FN, OH, OW, N) bool, without pooling
        self.conv_shape: tuple | None = None  # (N, FN, OH, OW) of the latest forward

    def forward(self, x, W, b, stride: int, pad: int, train: bool) -> np.ndarray:
        """The block's output; keeps the window cells (or ReLU's mask) when ``train``."""
        FN, C, FH, FW = W.shape
        N, _, H, W_in = x.shape
        pool = self.pool
        OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W_in, FW, stride, pad)
        # the pooling's windows must tile the convolution's output, as Pooling requires
        OHp, OWp = conv_output_size(OH, pool, pool, 0), conv_output_size(OW, pool, pool, 0)
        m = choice.algorithm("forward", W.shape, stride, (N, FN, OH, OW), np.result_type(W, x))
        wide = not m and stride == 1 and OW * N < WIDE_ROW and (FW - 1) * WIDE_EXTRA <= OW
        # rows computed over the padded width where wide: OW valid columns, Wp - OW not read
        flat = self.conv.keep_input(x, pad, tail=(FW - 1) * N if wide else 0)
        xp = self.conv.xp
        cols = xp.shape[2] if wide else OW
        W_col = W.reshape(FN, -1)
        dtype = np.result_type(W, x)
        out = np.empty((FN, OHp, OWp, N), dtype=dtype)
        self.conv_shape = (N, FN, OH, OW)
        take = self.memory.take  # reused from step to step
        self.cell = take("cell", out.shape, np.uint8) if train and pool > 1 else None
        self.mask = take("mask", out.shape, bool) if train and pool == 1 else None
        bias = b.astype(dtype, copy=False)[:, None, None, None]
        row_bytes = C * FH * FW * cols * N * x.dtype.itemsize
        conv = self.conv
        U = winograd.filter_transform(W, m, dtype) if m else None
        for r0, r1 in row_bands(OH, row_bytes, conv, math.lcm(pool, m or 1)):
            y = scratch("conv output band", (FN, r1 - r0, cols, N), dtype)
            if m:  # Winograd F(m, 3) of the band's input rows (engine/choice.py)
                winograd.convolve(xp[:, r0 : r1 + FH - 1], U, m, y, b)
            elif wide:
                band = wide_band(flat, xp.shape, FH, FW, (r0, r1))
            else:
                band = conv.band(xp, FH, FW, stride, ((r0, r1), (0, N)), OW)
            if not m:
                np.matmul(W_col, band, out=y.reshape(FN, -1))
                y += bias
            y = y[:, :, :OW]  # a view; all of y unless wide
            if pool == 1:
                np.maximum(y, 0, out=out[:, r0:r1])
                if train:
                    np.greater(y, 0, out=self.mask[:, r0:r1])
                continue
            p0, p1 = r0 // pool, r1 // pool
            pooled = out[:, p0:p1].transpose(3, 0, 1, 2)  # (N, FN, rows, OWp) views
            cell = None if self.cell is None else self.cell[:, p0:p1].transpose(3, 0, 1, 2)
            max_pool(y.transpose(3, 0, 1, 2), pool, pool, pool, pooled, cell)
        if pool > 1:
            if train:  # where the maximum is <= 0, ReLU passes no gradient back
                np.copyto(self.cell, NO_GRADIENT, where=out <= 0)
            np.maximum(out, 0, out=out)
        return out.transpose(3, 0, 1, 2)

    def conv_output_gradient(self, dout: np.ndarray) -> np.ndarray:
        """The gradient at the convolution's output, from the gradient ``dout`` at the block's
        output, through ReLU and the pooling. Shape: dout (N, FN, OHp, OWp) -> (N, FN, OH,
        OW), batch-last in memory."""
        kept = self.mask if self.pool == 1 else self.cell
        if kept is None:
            raise RuntimeError("ConvReluPool.backward needs a forward pass with train=True first")
        if self.pool == 1:
            d = np.ascontiguousarray(dout.transpose(1, 2, 3, 0))  # free when dout is batch-last
            return (d * self.mask).transpose(3, 0, 1, 2)
        p = self.pool
        return max_pool_backward(dout, self.cell.transpose(3, 0, 1, 2), p, p, p, self.conv_shape)

    def filter_gradient(self, dout: np.ndarray, W: np.ndarray, stride: int):
        """(dW, db) of the convolution, from the gradient ``dout`` at the block's output:
        back through ReLU and the pooling, then ``ConvEngine.filter_gradient`` (for the
        first block of a model, whose input needs no gradient).

        Shape: dout (N, FN, OHp, OWp) -> dW like W, db (FN,).
        """
        return self.conv.filter_gradient(self.conv_output_gradient(dout), W, stride)
