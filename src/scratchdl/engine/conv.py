"""The convolution, band by band: the book's im2col product on batch-last images.

Done literally, the im2col matrix of a batch is tens of MB: it goes out to memory between its
copy and its product. Here the matrix is built a band of output rows at a time
(``bands.band_im2col``), in a small buffer of the thread's ``scratch`` memory, and multiplied
while it is still in the CPU's cache; backward rebuilds each band from the kept padded input
instead of storing the whole FH*FW-times larger matrix. None of this alters the result beyond
the rounding of sums.

Band sizes fit BLAS's threads (``threads.blas_threads``): cache-sized bands where each product
runs on one thread, large bands where BLAS shares each product over threads (many small
products leave BLAS's spinning workers idle between them).
"""

from __future__ import annotations

import math

import numpy as np

from . import choice, threads, winograd
from .bands import Memory, add_windows, band_im2col, conv_output_size, pad_batch_last, scratch

# Bytes of one band's im2col matrix where each product runs on one BLAS thread: small enough
# to stay in the CPU's cache between its copy and its product (benchmarks/RESULTS.md).
BAND_BYTES = 2 << 20
# Bytes of one band where BLAS shares each product over threads: few, large products.
SHARED_BAND_BYTES = 64 << 20


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


class ConvEngine:
    """The fast path of one convolution layer. It keeps, in its own ``Memory``, the padded
    batch-last input of the latest forward (backward rebuilds its bands from it) and
    backward's padded dout. ``band_bytes`` and ``shared_band_bytes`` size the bands (see
    BAND_BYTES, SHARED_BAND_BYTES).

    Shape: x (N, C, H, W), W (FN, C, FH, FW), b (FN,) -> (N, FN, OH, OW), batch-last in memory.
    """

    def __init__(self, band_bytes: int = BAND_BYTES, shared_band_bytes: int = SHARED_BAND_BYTES):
        for name, value in (("band_bytes", band_bytes), ("shared_band_bytes", shared_band_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.band_bytes = band_bytes
        self.shared_band_bytes = shared_band_bytes
        self.memory = Memory()
        self.xp: np.ndarray | None = None  # the latest forward's padded input (C, Hp, Wp, N)

    def twin(self) -> ConvEngine:
        """An engine of the same band sizes and memory of its own (for a part of a batch that
        runs at the same time)."""
        return ConvEngine(self.band_bytes, self.shared_band_bytes)

    def keep_input(self, x: np.ndarray, pad: int, tail: int = 0) -> np.ndarray:
        """Pad ``x`` batch-last into this engine's memory and keep it for backward; return
        that memory, flat: the padded input, then ``tail`` zeros (which a band built from
        whole padded rows reads past the input's end)."""
        N, C, H, W = x.shape
        shape = (C, H + 2 * pad, W + 2 * pad, N)
        size = math.prod(shape)
        flat = self.memory.take("padded input", (size + tail,), x.dtype)
        flat[size:] = 0
        self.xp = pad_batch_last(x, pad, out=flat[:size].reshape(shape))
        return flat

    def padded_input(self) -> np.ndarray:
        """The padded input of the latest forward, or a RuntimeError before any."""
        if self.xp is None:
            raise RuntimeError("Convolution.backward needs a forward pass first")
        return self.xp

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
        return self.band_bytes if threads.blas_threads() == 1 else self.shared_band_bytes

    def band(self, xp: np.ndarray, FH: int, FW: int, stride: int, tile: tuple, OW: int):
        """im2col(x).T of one tile, (C*FH*FW, rows*OW*n), in the thread's scratch memory."""
        (r0, r1), (n0, n1) = tile
        v = xp if n1 - n0 == xp.shape[3] else xp[..., n0:n1]
        out = scratch("band", (v.shape[0] * FH * FW, (r1 - r0) * OW * (n1 - n0)), xp.dtype)
        return band_im2col(v, FH, FW, stride, (r0, r1), OW, out)

    def convolve(self, x, W, b, stride: int, pad: int) -> np.ndarray:
        """out = im2col(x) @ W_col.T + b, band by band; keeps the padded input."""
        FN, C, FH, FW = W.shape
        N, C, H, W_in = x.shape
        OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W_in, FW, stride, pad)
        self.keep_input(x, pad)
        xp = self.xp
        W_col = W.reshape(FN, -1)
        out = np.empty((FN, OH, OW, N), dtype=np.result_type(W, x))  # out.T, batch-last
        m = choice.algorithm("forward", W.shape, stride, (N, FN, OH, OW), out.dtype)
        if m:  # Winograd F(m, 3): fewer products (engine/choice.py says where it pays)
            winograd.convolve(xp, winograd.filter_transform(W, m, out.dtype), m, out, b)
            return out.transpose(3, 0, 1, 2)
        for tile in self.tiles(OH, OW, N, C * FH * FW, x.dtype):
            _matmul_into(W_col, self.band(xp, FH, FW, stride, tile, OW), out, tile)
        out += b[:, None, None, None]
        return out.transpose(3, 0, 1, 2)

    def filter_gradient(self, dout: np.ndarray, W: np.ndarray, stride: int):
        """(dW, db) of the latest forward: dW = dout_t @ im2col(x), summed band by band.

        Shape: dout (N, FN, OH, OW) -> dW like W, db (FN,).
        """
        FN, C, FH, FW = W.shape
        N, _, OH, OW = dout.shape
        xp = self.padded_input()
        # (FN, OH, OW, N): free when dout is batch-last (as a rule), else one copy
        dout4 = np.ascontiguousarray(dout.transpose(1, 2, 3, 0))
        m = choice.algorithm("filter", W.shape, stride, dout.shape, dout4.dtype)
        if m:  # Winograd F(m, 3), in the transformed domain
            return winograd.filter_gradient(xp, dout4, m), dout4.sum(axis=(1, 2, 3))
        # computed as (col.T @ dout_t.T).T: with few output channels the first form is
        # OpenBLAS's slow case (a 16-row left operand); the second is faster (RESULTS.md)
        dW_t = np.zeros((C * FH * FW, FN), dtype=np.result_type(W, dout))
        for tile in self.tiles(OH, OW, N, C * FH * FW, xp.dtype):
            dW_t += self.band(xp, FH, FW, stride, tile, OW) @ _tile(dout4, tile).T
        return dW_t.T.reshape(W.shape), dout4.sum(axis=(1, 2, 3))

    def input_gradient(self, dout: np.ndarray, W: np.ndarray, stride: int, pad: int):
        """dx of the latest forward: col2im(dout @ W_col), in whichever of two equal ways has
        the smaller intermediate matrix. Shape: dout (N, FN, OH, OW) -> (N, C, H, W)."""
        FN, C, FH, FW = W.shape
        N, _, OH, OW = dout.shape
        xp = self.padded_input()
        H, W_in = xp.shape[1] - 2 * pad, xp.shape[2] - 2 * pad
        dtype = np.result_type(W, dout)
        m = choice.algorithm("input", W.shape, stride, dout.shape, dtype, pad)
        if m:  # Winograd F(m, 3) of dout padded by 2 - pad, the filters turned
            shape = (FN, OH + 4 - 2 * pad, OW + 4 - 2 * pad, N)
            doutp = pad_batch_last(
                dout, 2 - pad, out=self.memory.take("padded dout", shape, dout.dtype)
            )
            dx = np.empty((C, H, W_in, N), dtype=dtype)
            U = winograd.filter_transform(winograd.turned(W), m, dtype)
            return winograd.convolve(doutp, U, m, dx).transpose(3, 0, 1, 2)
        if stride == 1 and FH == FW and pad < FH and FN * H * W_in <= C * OH * OW:
            # the convolution of dout, padded by FH-1-pad, with the filters turned by 180° and
            # their in/out channels swapped (the adjoint of the forward pass): equal to
            # col2im(dout @ W_col) without its FH*FW strided additions
            W_turned = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(C, -1)
            p = FH - 1 - pad
            shape = (FN, OH + 2 * p, OW + 2 * p, N)
            doutp = pad_batch_last(dout, p, out=self.memory.take("padded dout", shape, dout.dtype))
            dx = np.empty((C, H, W_in, N), dtype=dtype)
            for tile in self.tiles(H, W_in, N, FN * FH * FW, dout.dtype):
                _matmul_into(W_turned, self.band(doutp, FH, FW, 1, tile, W_in), dx, tile)
            return dx.transpose(3, 0, 1, 2)
        # dcol = dout @ W_col, (C*FH*FW, OH*OW*N) transposed, added back onto its windows
        dout4 = np.ascontiguousarray(dout.transpose(1, 2, 3, 0))
        dxp = np.zeros(xp.shape, dtype=dtype)
        W_col_t = W.reshape(FN, -1).T
        for tile in self.tiles(OH, OW, N, C * FH * FW, dtype):
            (r0, r1), (n0, n1) = tile
            d = _tile(dout4, tile)
            dcol_t = np.matmul(W_col_t, d, out=scratch("band", (C * FH * FW, d.shape[1]), dtype))
            col = dcol_t.reshape(C, FH, FW, r1 - r0, OW, n1 - n0)
            add_windows(col, dxp[..., n0:n1], stride, r0)
        return dxp[:, pad : pad + H, pad : pad + W_in].transpose(3, 0, 1, 2)
