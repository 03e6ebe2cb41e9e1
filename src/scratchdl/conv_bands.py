"""The engine below ``Convolution``: the book's im2col product, done fast.

``Convolution`` is the book's idea, ``out = im2col(x) @ W_col.T + b``. Done literally, the
im2col matrix of a batch is tens of MB: it goes out to memory between its copy and its
product, and the copies move rows of a few pixels. Here the same product is computed with
three changes, none of which alters the result beyond the rounding of sums:

- Images are kept "batch-last": memory ordered (C, H, W, N). One row of a window cell over
  the whole batch, (OW, N), is then one run of memory, so the copies move long runs. A
  convolution returns its output as an (N, FN, OH, OW) view of (FN, OH, OW, N) memory, and
  the layers after it keep that order (``in_order_of``).
- The im2col matrix is built a band of output rows at a time (``band_im2col``: the book's
  columns, ordered (oh, ow, n), rows (c, fh, fw) as in the book), in a small buffer, and
  multiplied while it is still in the CPU's cache. Backward rebuilds each band from the
  kept padded input instead of storing the whole 9x matrix.
- Buffers (the padded input, a band, backward's padded dout) live in a ``Workspace`` per
  layer and are reused from step to step: a fresh array of a few MB costs page faults.

Band sizes fit BLAS's threads (``threads.blas_threads``): cache-sized bands where each
product runs on one thread, large bands where BLAS shares each product over threads.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import threads
from .im2col import conv_output_size

# Size of one band's im2col matrix. The whole batch's matrix (tens of MB) goes out to memory
# between the copy and the product: DeepConvNet's 16->16 forward took 5.8 ms that way and
# 2.9-3.3 ms in bands of 1-3 MB (one thread, 50 images); 2 MB was best in a full training
# step (RESULTS.md, third round).
CHUNK_BYTES = 2 << 20
# The band size where BLAS runs on several threads (a model not split over threads, or no
# threadpoolctl): OpenBLAS's idle workers spin between products, and with many small products
# they took the CPU from the copies; DeepConvNet steps flipped between 70 and 150 ms from one
# process to the next, and took a steady 110 ms (as before the bands) with bands this large.
SHARED_CHUNK_BYTES = 64 << 20


# --- batch-last images and their bands -----------------------------------------------------


def pad_batch_last(x: np.ndarray, pad: int, out: np.ndarray | None = None) -> np.ndarray:
    """(N, C, H, W) of any memory order -> (C, H + 2*pad, W + 2*pad, N), contiguous, with a
    border of ``pad`` zeros; written into ``out`` when it has that shape and dtype."""
    N, C, H, W = x.shape
    shape = (C, H + 2 * pad, W + 2 * pad, N)
    ok = out is not None and out.shape == shape and out.dtype == x.dtype and out.flags.c_contiguous
    xp = out if ok else np.empty(shape, dtype=x.dtype)
    if pad:  # only the border is zeroed: the inside is written once, below
        xp[:, :pad] = 0
        xp[:, H + pad :] = 0
        xp[:, pad : H + pad, :pad] = 0
        xp[:, pad : H + pad, W + pad :] = 0
    xp[:, pad : H + pad, pad : W + pad] = x.transpose(1, 2, 3, 0)
    return xp


def band_im2col(
    xp: np.ndarray, FH: int, FW: int, stride: int, rows: tuple[int, int], OW: int, out: np.ndarray
) -> np.ndarray:
    """The im2col matrix, transposed, of output rows ``rows = (r0, r1)`` of a padded
    batch-last image ``xp`` (C, Hp, Wp, N): ``out`` (C*FH*FW, (r1 - r0)*OW*N), filled."""
    C, Hp, Wp, N = xp.shape
    r0, r1 = rows
    if not (0 <= r0 < r1 and (r1 - 1) * stride + FH <= Hp and (OW - 1) * stride + FW <= Wp):
        raise ValueError(f"rows {rows} and OW={OW} do not fit a padded image of {Hp}x{Wp}")
    if out.shape != (C * FH * FW, (r1 - r0) * OW * N):
        raise ValueError(
            f"out must have shape {(C * FH * FW, (r1 - r0) * OW * N)}, got {out.shape}"
        )
    sC, sH, sW, sN = xp.strides
    # every window cell of the band as one read-only view, copied in one call (numpy merges
    # the (ow, n) axes of stride 1 into one run)
    shape = (C, FH, FW, r1 - r0, OW, N)
    strides = (sC, sH, sW, sH * stride, sW * stride, sN)
    if xp.flags.c_contiguous:  # a view built by ndarray itself: 1 us, as_strided's 10 us
        cells = np.ndarray(shape, xp.dtype, xp, r0 * stride * sH, strides)  # bounds checked
    else:  # part of a batch: not a buffer of its own
        cells = as_strided(xp[:, r0 * stride :], shape, strides, writeable=False)
    np.copyto(out.reshape(C, FH, FW, r1 - r0, OW, N), cells)
    return out


def band_col2im_add(
    dcol: np.ndarray, dxp: np.ndarray, FH: int, FW: int, stride: int, rows: tuple[int, int]
) -> None:
    """Adjoint of ``band_im2col``: add each column of ``dcol`` (C*FH*FW, (r1 - r0)*OW*N)
    back onto its window of ``dxp`` (C, Hp, Wp, N), in place."""
    C, _, _, N = dxp.shape
    r0, r1 = rows
    OW = dcol.shape[1] // ((r1 - r0) * N)
    col = dcol.reshape(C, FH, FW, r1 - r0, OW, N)
    for i in range(FH):
        h = r0 * stride + i
        for j in range(FW):
            dxp[:, h : h + stride * (r1 - r0) : stride, j : j + stride * OW : stride] += col[
                :, i, j
            ]


def in_order_of(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``a``, copied into the memory order of ``like`` (same shape) unless it has it already.

    numpy runs elementwise work on arrays of different memory orders several times slower
    than on arrays of one order (a convolution's batch-last output against an affine
    layer's row-major gradient, for instance: up to 17x, RESULTS.md).
    """
    if np.array_equal(np.argsort(a.strides), np.argsort(like.strides)):
        return a
    out = np.empty_like(like, dtype=a.dtype)
    out[...] = a
    return out


# --- the convolution, band by band ---------------------------------------------------------


class Workspace:
    """A convolution layer's memory between its forward and backward passes, and from one
    step to the next: the padded batch-last input (backward rebuilds its bands from it) and
    backward's padded dout; its bands go to the thread's ``scratch`` memory. ``chunk_bytes`` and
    ``shared_chunk_bytes`` size the bands (see CHUNK_BYTES, SHARED_CHUNK_BYTES)."""

    def __init__(self) -> None:
        self.xp: np.ndarray | None = None  # padded batch-last input of the latest forward
        self.doutp: np.ndarray | None = None  # memory for backward's padded dout
        self.chunk_bytes = CHUNK_BYTES
        self.shared_chunk_bytes = SHARED_CHUNK_BYTES

    def tiles(self, OH: int, OW: int, N: int, K: int, dtype) -> list[tuple]:
        """((r0, r1), (n0, n1)) tiles of an output whose im2col matrices, K rows each, fit
        the band size: bands of whole rows over the whole batch, or, where one row of the
        whole batch is already too big, one row of part of the batch."""
        row = K * OW * np.dtype(dtype).itemsize  # bytes of one output row of one image
        budget = self.band_budget()
        if row * N <= budget:
            r = max(1, budget // (row * N))
            return [((r0, min(r0 + r, OH)), (0, N)) for r0 in range(0, OH, r)]
        n = max(1, budget // row)
        return [((r0, r0 + 1), (n0, min(n0 + n, N))) for r0 in range(OH) for n0 in range(0, N, n)]

    def band_budget(self) -> int:
        """Bytes of one band's im2col matrix: cache-sized where each product runs on one
        BLAS thread, large where BLAS shares each product over threads."""
        return self.chunk_bytes if threads.blas_threads() == 1 else self.shared_chunk_bytes

    def band(self, xp: np.ndarray, FH: int, FW: int, stride: int, tile: tuple, OW: int):
        """im2col(x).T of one tile, (C*FH*FW, rows*OW*n), in the scratch memory."""
        (r0, r1), (n0, n1) = tile
        v = xp if n1 - n0 == xp.shape[3] else xp[..., n0:n1]
        out = self.buffer((v.shape[0] * FH * FW, (r1 - r0) * OW * (n1 - n0)), xp.dtype)
        return band_im2col(v, FH, FW, stride, (r0, r1), OW, out)

    def buffer(self, shape: tuple[int, int], dtype) -> np.ndarray:
        """A C-contiguous ``shape`` array for one band (``scratch("band", ...)``)."""
        return scratch("band", shape, dtype)


_local = threading.local()  # each thread's scratch memory (see ``scratch``)


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A C-contiguous ``shape`` array of memory that this thread reuses for every band it
    computes, under ``name`` (grown as needed; the content is whatever the last use left).

    A band lives only while one layer's loop handles it, so one thread never needs two bands
    of a name at once, whatever layer it runs; memory per layer instead held 2-3 MB per
    convolution and thread, a third of DeepConvNet's training memory. Threads that run parts
    of a batch at once (``threads.BatchParts``) each have their own.
    """
    held = getattr(_local, "arrays", None)
    if held is None:
        held = _local.arrays = {}
    size = math.prod(shape)
    a = held.get(name)
    if a is None or a.size < size or a.dtype != dtype:
        a = held[name] = np.empty(size, dtype=dtype)
    return a[:size].reshape(shape)


def _tile(a4: np.ndarray, tile: tuple) -> np.ndarray:
    """Tile (rows, batch) of a batch-last (K, H, W, N) array as a (K, rows*W*n) matrix: a view
    when the tile spans the whole batch of a contiguous array, else a copy."""
    rows, batch = tile
    return a4[:, slice(*rows), :, slice(*batch)].reshape(a4.shape[0], -1)


def _matmul_into(A: np.ndarray, B: np.ndarray, out4: np.ndarray, tile: tuple) -> None:
    """out4[:, rows, :, batch] = A @ B, for a batch-last (M, H, W, N) ``out4``."""
    (r0, r1), (n0, n1) = tile
    M, _, W, N = out4.shape
    if n1 - n0 == N:  # whole rows of the batch: a block of columns, written in place
        np.matmul(A, B, out=out4.reshape(M, -1)[:, r0 * W * N : r1 * W * N])
    else:
        out4[:, r0:r1, :, n0:n1] = (A @ B).reshape(M, r1 - r0, W, n1 - n0)


def convolve(x, W, b, stride: int, pad: int, work: Workspace) -> np.ndarray:
    """out = im2col(x) @ W_col.T + b, band by band; keeps the padded input in ``work``.

    Shape: x (N, C, H, W), W (FN, C, FH, FW), b (FN,) -> (N, FN, OH, OW), batch-last in memory.
    """
    FN, C, FH, FW = W.shape
    N, C, H, W_in = x.shape
    OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W_in, FW, stride, pad)
    work.xp = xp = pad_batch_last(x, pad, out=work.xp)  # (C, Hp, Wp, N), memory reused
    W_col = W.reshape(FN, -1)
    out = np.empty((FN, OH, OW, N), dtype=np.result_type(W, x))  # out.T, batch-last
    for tile in work.tiles(OH, OW, N, C * FH * FW, x.dtype):
        _matmul_into(W_col, work.band(xp, FH, FW, stride, tile, OW), out, tile)
    out += b[:, None, None, None]
    return out.transpose(3, 0, 1, 2)


def filter_gradient(dout: np.ndarray, W: np.ndarray, stride: int, work: Workspace):
    """(dW, db) of the latest ``convolve``: dW = dout_t @ im2col(x), summed band by band.

    Shape: dout (N, FN, OH, OW) -> dW like W, db (FN,).
    """
    FN, C, FH, FW = W.shape
    N, _, OH, OW = dout.shape
    xp = work.xp
    # (FN, OH, OW, N): free when dout is batch-last (as a rule), else one copy
    dout4 = np.ascontiguousarray(dout.transpose(1, 2, 3, 0))
    # computed as (col.T @ dout_t.T).T: with few output channels the first form is
    # OpenBLAS's slow case (16 x n by n x 144 ran at 28-33 GFLOP/s on one thread); the
    # second measured 1.3-1.8x faster (RESULTS.md)
    dW_t = np.zeros((C * FH * FW, FN), dtype=np.result_type(W, dout))
    for tile in work.tiles(OH, OW, N, C * FH * FW, xp.dtype):
        dW_t += work.band(xp, FH, FW, stride, tile, OW) @ _tile(dout4, tile).T
    return dW_t.T.reshape(W.shape), dout4.sum(axis=(1, 2, 3))


def input_gradient(dout: np.ndarray, W: np.ndarray, stride: int, pad: int, work: Workspace):
    """dx of the latest ``convolve``: col2im(dout @ W_col), in whichever of two equal ways
    has the smaller intermediate matrix. Shape: dout (N, FN, OH, OW) -> (N, C, H, W)."""
    FN, C, FH, FW = W.shape
    N, _, OH, OW = dout.shape
    xp = work.xp
    H, W_in = xp.shape[1] - 2 * pad, xp.shape[2] - 2 * pad
    dtype = np.result_type(W, dout)
    if stride == 1 and FH == FW and pad < FH and FN * H * W_in <= C * OH * OW:
        # the convolution of dout, padded by FH-1-pad, with the filters turned by 180° and
        # their in/out channels swapped (the adjoint of the forward pass): equal to
        # col2im(dout @ W_col) without its FH*FW strided additions
        W_turned = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(C, -1)  # (C, FN*FH*FW)
        work.doutp = doutp = pad_batch_last(dout, FH - 1 - pad, out=work.doutp)
        dx = np.empty((C, H, W_in, N), dtype=dtype)
        for tile in work.tiles(H, W_in, N, FN * FH * FW, dout.dtype):
            _matmul_into(W_turned, work.band(doutp, FH, FW, 1, tile, W_in), dx, tile)
        return dx.transpose(3, 0, 1, 2)
    # dcol = dout @ W_col, (C*FH*FW, OH*OW*N) transposed, added back onto its windows
    dout4 = np.ascontiguousarray(dout.transpose(1, 2, 3, 0))
    dxp = np.zeros(xp.shape, dtype=dtype)
    W_col_t = W.reshape(FN, -1).T
    for tile in work.tiles(OH, OW, N, C * FH * FW, dtype):
        d = _tile(dout4, tile)
        dcol_t = np.matmul(W_col_t, d, out=work.buffer((C * FH * FW, d.shape[1]), dtype))
        band_col2im_add(dcol_t, dxp[..., slice(*tile[1])], FH, FW, stride, tile[0])
    return dxp[:, pad : pad + H, pad : pad + W_in].transpose(3, 0, 1, 2)
