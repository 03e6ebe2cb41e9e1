"""Winograd convolution F(m x m, 3 x 3): 3x3, stride-1 convolutions with fewer products.

A 3x3 convolution computes each m x m tile of its output from a T x T tile of its input
(T = m + 2). Winograd's minimal filtering (Lavin & Gray 2015, "Fast Algorithms for
Convolutional Neural Networks") computes it as

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, over the T x T cells)

so that, summed over input channels, each of the T*T cells is one matrix product
(FN x C) @ (C x tiles): T*T products per m*m outputs, where im2col needs 9 per output.
F(2x2, 3x3) does 16 per 4 outputs (2.25x fewer multiplications), F(4x4, 3x3) 36 per 16 (4x).

The transforms are short sums, and numpy's passes over memory are what they cost. So:

- the work runs band by band (tile rows, or tile columns of one, over the whole batch,
  ``tile_bands``) in the thread's scratch memory: a band's tiles, transformed, multiplied
  and transformed back, stay in the CPU's cache;
- a band's T x T input tiles are gathered in one copy (``copy_tiles``): numpy copies
  strided views as fast as contiguous ones, but runs arithmetic on them at about half speed
  (its buffered iterator), so everything after the copy is contiguous;
- each 2-D transform is two small matrix products, over the rows of every tile at once, then
  over their columns: one BLAS call each, where the sums written out as numpy passes took
  one call (and one pass) per term (benchmarks/RESULTS.md, Winograd).

The input gradient is the same forward algorithm on dout padded by 2 - pad, with the filters
turned by 180 degrees and their channels swapped (``turned``). The filter gradient runs in
the transformed domain: dU[k] = dM[k] @ V[k]^T for each cell k, dM = A dY A^T the adjoint of
the output transform, then dW = G^T dU G. Arrays are batch-last in memory: (C, H, W, N).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .bands import scratch

# The 1-D transforms of F(m, 3) with Lavin & Gray's interpolation points: 0, 1, -1 (and
# 2, -2 for m = 4) and infinity.
B_T = {
    2: [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    4: [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
}
G = {
    2: [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
    4: [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
}
A_T = {
    2: [[1, 1, 1, 0], [0, 1, -1, -1]],
    4: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
}
TILES = tuple(B_T)  # the output tile sizes m there are transforms for
# Bytes of one band's transformed input tiles, by tile: small enough that the band's arrays
# stay in the CPU's cache, large enough that numpy's cost per call stays small (measured with
# 256 kB to 4 MB, batches of 50 and 100: benchmarks/RESULTS.md, Winograd).
TILE_BAND_BYTES = {2: 1 << 20, 4: 512 << 10}


@functools.cache
def matrices(m: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """(B^T, G, A^T, A, G (x) G) of F(m, 3), in ``dtype``."""
    if m not in B_T:
        raise ValueError(f"the Winograd tile must be one of {TILES}, got {m!r}")
    BT, g, AT = (np.array(a[m], dtype=dtype) for a in (B_T, G, A_T))
    return BT, g, AT, np.ascontiguousarray(AT.T), np.kron(g, g)


def tile_counts(OH: int, OW: int, m: int) -> tuple[int, int]:
    """Tiles of m x m outputs that cover an OH x OW output: the last ones cropped."""
    return -(-OH // m), -(-OW // m)


def filter_transform(W: np.ndarray, m: int, dtype) -> np.ndarray:
    """U = G g G^T of every filter g, in float64 (the 1/6 and 1/24 of F(4, 3)), then ``dtype``:
    one product with G (x) G, (T*T, 9), the Kronecker product.

    Shape: W (FN, C, 3, 3) -> (T*T, FN, C), cell k*T + l of the T x T tile."""
    FN, C = W.shape[:2]
    U = matrices(m, np.dtype(np.float64))[4] @ W.reshape(FN * C, 9).astype(np.float64).T
    return U.astype(dtype).reshape(-1, FN, C)


def filter_gradient_back(dU: np.ndarray, m: int, dtype) -> np.ndarray:
    """dW = G^T dU G, the adjoint of ``filter_transform``.
    Shape: (T*T, FN, C) -> (FN, C, 3, 3)."""
    _, FN, C = dU.shape
    dW = dU.reshape(-1, FN * C).astype(np.float64).T @ matrices(m, np.dtype(np.float64))[4]
    return dW.astype(dtype).reshape(FN, C, 3, 3)


def turned(W: np.ndarray) -> np.ndarray:
    """The filters of the input gradient: turned by 180 degrees, in/out channels swapped.
    Shape: (FN, C, 3, 3) -> (C, FN, 3, 3)."""
    return W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)


def tile_bands(TH: int, TW: int, tile_bytes: int, budget: int) -> list[tuple]:
    """((t0, t1), (c0, c1)) bands of tiles, each over the whole batch, within ``budget``
    bytes where possible: whole tile rows, or, where one tile row is already larger, parts of
    one. Never parts of the batch: the batch is the run of memory every copy moves.
    ``tile_bytes``: one tile position (t, tw) of the whole batch, transformed."""
    if tile_bytes * TW <= budget:
        r = max(1, budget // (tile_bytes * TW))
        return [((t0, min(t0 + r, TH)), (0, TW)) for t0 in range(0, TH, r)]
    c = max(1, budget // tile_bytes)
    return [((t, t + 1), (c0, min(c0 + c, TW))) for t in range(TH) for c0 in range(0, TW, c)]


def copy_tiles(image: np.ndarray, tiles: np.ndarray, m: int, band: tuple, to_tiles: bool):
    """Between a batch-last image (K, H, W, N) and the w x w tiles of a band, (w, w, K,
    tile rows, tile columns, N): cell (a, b) of tile (t, tw) is pixel (m*t + a, m*tw + b).
    Cells beyond the image are zeros in the tiles (``to_tiles``) and are dropped on the way
    back. Only the last tile row and column can be cut: at most four copies, each one numpy
    call on strided views."""
    w, _, K, _, _, N = tiles.shape
    _, H, W, _ = image.shape
    sK, sH, sW, sN = image.strides
    (t0, t1), (c0, c1) = band
    cut = False
    # per axis: (first tile, tiles, cells) of the whole tiles, then of the cut last one
    axes = []
    for first, last, size in ((t0, t1, H), (c0, c1, W)):
        whole = max(0, min(last, (size - w) // m + 1) - first)
        axis = [(0, whole, w)] if whole else []
        if whole < last - first:
            axis.append((whole, 1, size - m * (first + whole)))
            cut = True
        axes.append(axis)
    if to_tiles and cut:
        tiles[...] = 0
    for r, rows, a in axes[0]:
        for c, cols, b in axes[1]:
            if a <= 0 or b <= 0:  # a tile wholly beyond the image: zeros
                continue
            view = as_strided(
                image[:, m * (t0 + r) :, m * (c0 + c) :],
                (a, b, K, rows, cols, N),
                (sH, sW, sK, m * sH, m * sW, sN),
                writeable=not to_tiles,
            )
            part = tiles[:a, :b, :, r : r + rows, c : c + cols]
            if to_tiles:
                np.copyto(part, view)
            else:
                np.copyto(view, part)


def transform_input(xp: np.ndarray, m: int, band: tuple) -> np.ndarray:
    """V = B^T d B of every input tile d of a band, in the thread's scratch memory.

    Shape: xp (C, Hp, Wp, N), padded -> (T*T, C, tiles), cell k*T + l, the tiles ordered
    (tile row, tile column, n)."""
    (t0, t1), (c0, c1) = band
    C, N, T = xp.shape[0], xp.shape[3], m + 2
    P = (t1 - t0) * (c1 - c0) * N
    BT = matrices(m, xp.dtype)[0]
    d = scratch("winograd tiles", (T, T, C, t1 - t0, c1 - c0, N), xp.dtype)
    copy_tiles(xp, d, m, band, to_tiles=True)
    R = scratch("winograd rows", (T, T, C * P), xp.dtype)
    np.matmul(BT, d.reshape(T, -1), out=R.reshape(T, -1))  # B^T d: rows k, columns b
    V = scratch("winograd V", (T * T, C, P), xp.dtype)
    np.matmul(BT, R, out=V.reshape(T, T, C * P))  # (B^T d) B, for every row k at once
    return V


def convolve(xp, U, m: int, out, bias=None, budget: int | None = None) -> np.ndarray:
    """out = the stride-1 3x3 convolution of the padded input ``xp`` with the transformed
    filters ``U`` (``filter_transform``), plus ``bias``: written into ``out`` band by band.

    Shape: xp (C, OH + 2, OW + 2, N), U (T*T, FN, C) -> out (FN, OH, OW, N), batch-last."""
    FN, OH, OW, N = out.shape
    C, T = xp.shape[0], m + 2
    if xp.shape[1:] != (OH + 2, OW + 2, N) or U.shape != (T * T, FN, C):
        raise ValueError(f"padded input {xp.shape}, filters {U.shape}, output {out.shape}")
    TH, TW = tile_counts(OH, OW, m)
    AT = matrices(m, out.dtype)[2]
    budget = budget or TILE_BAND_BYTES[m]
    for band in tile_bands(TH, TW, T * T * C * N * xp.dtype.itemsize, budget):
        (t0, t1), (c0, c1) = band
        P = (t1 - t0) * (c1 - c0) * N
        M = scratch("winograd M", (T * T, FN, P), out.dtype)
        np.matmul(U, transform_input(xp, m, band), out=M)
        if bias is not None:  # cell (1, 1) adds into every output of its tile with weight 1
            M[T + 1] += bias[:, None]
        Y = scratch("winograd out rows", (m, T, FN * P), out.dtype)
        np.matmul(AT, M.reshape(T, -1), out=Y.reshape(m, -1))  # A^T M: rows i, columns l
        y = scratch("winograd out", (m, m, FN, t1 - t0, c1 - c0, N), out.dtype)
        np.matmul(AT, Y, out=y.reshape(m, m, -1))  # (A^T M) A
        copy_tiles(out, y, m, band, to_tiles=False)
    return out


def filter_gradient(xp, dout4, m: int, budget: int | None = None) -> np.ndarray:
    """dW of the stride-1 3x3 convolution of the padded input ``xp``, in the transformed
    domain: dU[k] = dM[k] @ V[k]^T summed over the tiles, dM = A dY A^T from dout's tiles dY;
    then dW = G^T dU G.

    Shape: xp (C, OH + 2, OW + 2, N), dout4 (FN, OH, OW, N) -> (FN, C, 3, 3)."""
    FN, OH, OW, N = dout4.shape
    C, T = xp.shape[0], m + 2
    if xp.shape[1:] != (OH + 2, OW + 2, N):
        raise ValueError(f"padded input {xp.shape} does not match dout {dout4.shape}")
    TH, TW = tile_counts(OH, OW, m)
    A = matrices(m, dout4.dtype)[3]
    dU = np.zeros((T * T, FN, C), dtype=np.result_type(xp, dout4))
    budget = budget or TILE_BAND_BYTES[m]
    for band in tile_bands(TH, TW, T * T * max(C, FN) * N * xp.dtype.itemsize, budget):
        (t0, t1), (c0, c1) = band
        P = (t1 - t0) * (c1 - c0) * N
        V = transform_input(xp, m, band)
        dy = scratch("winograd out", (m, m, FN, t1 - t0, c1 - c0, N), dout4.dtype)
        copy_tiles(dout4, dy, m, band, to_tiles=True)
        R = scratch("winograd out rows", (T, m, FN * P), dout4.dtype)
        np.matmul(A, dy.reshape(m, -1), out=R.reshape(T, -1))  # A dY: rows k, columns j
        dM = scratch("winograd M", (T * T, FN, P), dout4.dtype)
        np.matmul(A, R, out=dM.reshape(T, T, -1))  # (A dY) A^T
        dU += np.matmul(dM, V.transpose(0, 2, 1))
    return filter_gradient_back(dU, m, dU.dtype)
