"""The book's block, Convolution -> ReLU (-> max pooling), computed band by band in one pass.

Run as three layers, the block writes the convolution's whole output (a few MB for a batch),
reads it back for ReLU, writes ReLU's output and its mask, and reads those again for the
pooling: passes that only move memory, and took about half of SimpleConvNet's step. Here
each band of output rows of ``conv_bands`` is pooled and rectified while it is still in the
CPU's cache, and only the pooled maps leave it. Nothing changes in the arithmetic:

- the convolution is the same product of the same im2col band, plus the bias, as
  ``conv_bands.convolve``;
- max pooling and ReLU commute (``max(relu(a)) == relu(max(a))``), so the band is pooled
  first and ReLU runs on the pooled maps, a quarter of the values for 2x2 windows;
- backward routes each pooled gradient to its window's first maximum, where that maximum
  is > 0, exactly as ``Pooling.backward`` followed by ``Relu.backward`` would.

Only non-overlapping windows without padding are fused (``pool_h == pool_w == stride``,
``pad == 0``): the book's pooling. ``Sequential`` groups its layers into these blocks
(``models/stages.py``) and the plain layers stay the reference the tests hold them to.

Arrays are batch-last in memory, as in ``conv_bands``: (C, H, W, N).
"""

from __future__ import annotations

import math

import numpy as np

from .conv_bands import Workspace, pad_batch_last, scratch
from .im2col import conv_output_size

NO_GRADIENT = 255  # window cell of a pooled output whose maximum is <= 0: ReLU stops it
# Below this many values in one output row of the batch (OW * N), the band is built from
# whole padded rows (``wide_band``): a batch of one image otherwise copies runs of a few
# pixels (28 x 28 maps: 48 us against 27 us, for a product of 60 us). Only where the
# padded width adds little to the product: at most 1/WIDE_EXTRA more columns (on 8 x 8
# maps the extra quarter cost what the copy saved).
WIDE_ROW, WIDE_EXTRA = 64, 8


def fusable_pool(pool_h: int, pool_w: int, stride: int, pad: int) -> bool:
    """Whether a max pooling of these settings can be fused: non-overlapping square windows
    without padding, at most 255 cells (the window cell is kept in a uint8)."""
    return pool_h == pool_w == stride and pad == 0 and pool_h * pool_w < NO_GRADIENT


class FusedState:
    """What the backward pass of the latest forward needs: the window cell of each pooled
    maximum (``NO_GRADIENT`` where ReLU stops the gradient), or ReLU's mask when there is
    no pooling; and the convolution's output shape, batch-last."""

    def __init__(self) -> None:
        self.cell: np.ndarray | None = None  # (FN, OHp, OWp, N) uint8, with pooling
        self.mask: np.ndarray | None = None  # (FN, OH, OW, N) bool, without pooling
        self.conv_shape: tuple[int, int, int, int] | None = None  # (FN, OH, OW, N)
        self.flat: np.ndarray | None = None  # the padded input and a tail, for wide bands
        self.held: dict[str, np.ndarray] = {}  # memory reused from step to step (``held``)


def held(state: FusedState, name: str, shape: tuple, dtype) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` that ``state`` keeps from one step to the next
    (its content is whatever the last use left): a fresh array of a few MB costs a page
    fault per 4 kB, every step."""
    a = state.held.get(name)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = state.held[name] = np.empty(shape, dtype=dtype)
    return a


def row_bands(rows: int, OW: int, N: int, K: int, dtype, work: Workspace, multiple: int):
    """Bands ``(r0, r1)`` of ``rows`` output rows over the whole batch, each a multiple of
    ``multiple`` rows and, where that allows, within the workspace's band size."""
    row = K * OW * N * np.dtype(dtype).itemsize  # bytes of one row's im2col matrix
    if row * rows <= work.chunk_bytes:  # one band, whatever BLAS's threads (a small batch)
        return [(0, rows)]
    budget = work.band_budget()
    r = max(multiple, budget // row // multiple * multiple)
    return [(r0, min(r0 + r, rows)) for r0 in range(0, rows, r)]


def forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    stride: int,
    pad: int,
    pool: int,
    work: Workspace,
    state: FusedState,
    train: bool,
) -> np.ndarray:
    """relu(convolution(x)), max-pooled in ``pool`` x ``pool`` windows (``pool`` 1: none).

    Shape: x (N, C, H, W), W (FN, C, FH, FW), b (FN,) -> (N, FN, OH // pool, OW // pool),
    batch-last in memory. Keeps the padded input in ``work`` and the pooling's window cells
    (or ReLU's mask) in ``state`` when ``train``.
    """
    FN, C, FH, FW = W.shape
    N, _, H, W_in = x.shape
    OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W_in, FW, stride, pad)
    # the pooling's windows must tile the convolution's output, as Pooling requires
    OHp, OWp = conv_output_size(OH, pool, pool, 0), conv_output_size(OW, pool, pool, 0)
    wide = stride == 1 and OW * N < WIDE_ROW and (FW - 1) * WIDE_EXTRA <= OW
    if wide:  # rows computed over the padded width: OW valid columns, Wp - OW not read
        work.xp = xp = pad_batch_last(x, pad, out=_padded_with_tail(state, x, pad, FW))
        cols = xp.shape[2]
    else:
        work.xp = xp = pad_batch_last(x, pad, out=work.xp)
        cols = OW
    W_col = W.reshape(FN, -1)
    dtype = np.result_type(W, x)
    out = np.empty((FN, OHp, OWp, N), dtype=dtype)
    state.conv_shape = (FN, OH, OW, N)
    state.cell = held(state, "cell", out.shape, np.uint8) if train and pool > 1 else None
    state.mask = held(state, "mask", out.shape, bool) if train and pool == 1 else None
    bias = b.astype(dtype, copy=False)[:, None, None, None]
    for r0, r1 in row_bands(OH, cols, N, C * FH * FW, x.dtype, work, pool):
        if wide:
            band = wide_band(state.flat, xp.shape, FH, FW, (r0, r1), work)
        else:
            band = work.band(xp, FH, FW, stride, ((r0, r1), (0, N)), OW)
        y = scratch("conv output band", (FN, r1 - r0, cols, N), dtype)
        np.matmul(W_col, band, out=y.reshape(FN, -1))
        y += bias
        y = y[:, :, :OW]  # a view; all of y unless wide
        p0, p1 = r0 // pool, r1 // pool
        if pool == 1:
            np.maximum(y, 0, out=out[:, r0:r1])
            if train:
                np.greater(y, 0, out=state.mask[:, r0:r1])
            continue
        _pool_band(y, out[:, p0:p1], None if state.cell is None else state.cell[:, p0:p1], pool)
    if pool > 1:
        if train:  # where the maximum is <= 0, ReLU passes no gradient back
            np.copyto(state.cell, NO_GRADIENT, where=out <= 0)
        np.maximum(out, 0, out=out)
    return out.transpose(3, 0, 1, 2)


def _padded_with_tail(state: FusedState, x: np.ndarray, pad: int, FW: int) -> np.ndarray:
    """Memory for the padded batch-last input (C, Hp, Wp, N), followed by the (FW - 1) * N
    zeros that the last row of ``wide_band`` reads past its end."""
    N, C, H, W = x.shape
    shape = (C, H + 2 * pad, W + 2 * pad, N)
    size, tail = math.prod(shape), (FW - 1) * N
    if state.flat is None or state.flat.size != size + tail or state.flat.dtype != x.dtype:
        state.flat = np.zeros(size + tail, dtype=x.dtype)  # the tail stays zero
    return state.flat[:size].reshape(shape)


def wide_band(
    flat: np.ndarray, shape: tuple, FH: int, FW: int, rows: tuple[int, int], work: Workspace
) -> np.ndarray:
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
    out = work.buffer((C * FH * FW, length), flat.dtype)
    step = flat.itemsize
    strides = (Hp * Wp * N * step, Wp * N * step, N * step, step)
    runs = np.ndarray((C, FH, FW, length), flat.dtype, flat, r0 * Wp * N * step, strides)
    np.copyto(out.reshape(C, FH, FW, length), runs)
    return out


def _pool_band(y: np.ndarray, out: np.ndarray, cell: np.ndarray | None, pool: int) -> None:
    """Max over the ``pool`` x ``pool`` windows of a band ``y`` (FN, rows, OW, N) into ``out``
    (FN, rows // pool, OWp, N), and the window cell of each (first) maximum into ``cell``."""
    for k, (i, j) in enumerate(np.ndindex(pool, pool)):
        v = y[:, i::pool, j::pool]
        if k == 0:
            np.copyto(out, v)
            if cell is not None:
                cell[...] = 0
        elif cell is None:
            np.maximum(out, v, out=out)
        else:
            bigger = v > out  # strict: the first maximum keeps the gradient, as in Pooling
            np.maximum(cell, bigger * np.uint8(k), out=cell)  # k only grows
            np.maximum(out, v, out=out)


def conv_output_gradient(dout: np.ndarray, pool: int, state: FusedState) -> np.ndarray:
    """The gradient at the convolution's output, from the gradient ``dout`` at the block's
    output: through ReLU and the pooling, as their backward passes compute it. In memory
    that ``state`` reuses: it is valid until the block's next backward pass.

    Shape: dout (N, FN, OHp, OWp) -> (N, FN, OH, OW), batch-last in memory.
    """
    d = np.ascontiguousarray(dout.transpose(1, 2, 3, 0))  # free when dout is batch-last
    if pool == 1:
        if state.mask is None:
            raise RuntimeError("the fused block's backward needs a forward with train=True")
        dy = d * state.mask
        return dy.transpose(3, 0, 1, 2)
    if state.cell is None:
        raise RuntimeError("the fused block's backward needs a forward with train=True")
    FN, OHp, OWp, N = d.shape
    dy = np.empty(state.conv_shape, dtype=d.dtype)  # every cell is written below
    for k, (i, j) in enumerate(np.ndindex(pool, pool)):
        np.multiply(d, state.cell == k, out=dy[:, i::pool, j::pool])
    return dy.transpose(3, 0, 1, 2)
