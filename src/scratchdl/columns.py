"""im2col and col2im (ch7.4.3): a batch of images laid out as columns, and back.

``im2col`` lays every filter-sized window of a batch of images out as one row, so that a
convolution becomes one matrix product; ``col2im`` is its exact adjoint: it adds each row back
onto the window it came from (overlapping windows add up), which is what backward needs.

Column layout (the book's): row ``(n, oh, ow)``, column ``(c, fh, fw)``, i.e. ``col`` has
shape ``(N*OH*OW, C*FH*FW)``. Both loop over the FH*FW window cells, each a strided slice of
the whole batch, as in the book. ``im2col`` stores its matrix column-major: ``col.T`` is a
contiguous (C*FH*FW, N*OH*OW) array, the operand shape BLAS multiplies fastest.

These are the reference the layers' book path runs (``Convolution``, ``Pooling`` with
``reference = True``); the engine (``scratchdl.engine``) computes the same products a band of
output rows at a time, and the tests hold it to these.
"""

from __future__ import annotations

import numpy as np

from .engine.bands import add_windows, conv_output_size

__all__ = ["col2im", "conv_output_size", "im2col"]


def im2col(x: np.ndarray, FH: int, FW: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Lay out every FH×FW window of ``x`` as one row of the book's matrix (stored so that
    ``col.T`` is contiguous), padding with zeros.

    Shape: (N, C, H, W) -> (N*OH*OW, C*FH*FW), OH = (H + 2*pad - FH) / stride + 1.
    """
    if x.ndim != 4:
        raise ValueError(f"im2col expects (N, C, H, W) input, got shape {x.shape}")
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W, FW, stride, pad)
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.empty((C, FH, FW, N, OH, OW), dtype=x.dtype)
    for y in range(FH):  # FH*FW slice copies, each over the whole batch (as in the book)
        for x_ in range(FW):
            window_cell = img[:, :, y : y + stride * OH : stride, x_ : x_ + stride * OW : stride]
            col[:, y, x_] = window_cell.transpose(1, 0, 2, 3)
    return col.reshape(C * FH * FW, N * OH * OW).T


def col2im(
    col: np.ndarray, input_shape: tuple, FH: int, FW: int, stride: int = 1, pad: int = 0
) -> np.ndarray:
    """Adjoint of ``im2col``: add each row back onto its window, then drop the padding.

    Shape: (N*OH*OW, C*FH*FW) -> input_shape = (N, C, H, W).
    """
    N, C, H, W = input_shape
    OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W, FW, stride, pad)
    if col.shape != (N * OH * OW, C * FH * FW):
        raise ValueError(
            f"col must have shape {(N * OH * OW, C * FH * FW)} for input {input_shape}, "
            f"got {col.shape}"
        )
    # (C, FH, FW, OH, OW, N) and (C, Hp, Wp, N) views: the engine's window add
    windows = col.reshape(N, OH, OW, C, FH, FW).transpose(3, 4, 5, 1, 2, 0)
    img = np.zeros((C, H + 2 * pad, W + 2 * pad, N), dtype=col.dtype)
    add_windows(windows, img, stride)
    return img[:, pad : pad + H, pad : pad + W].transpose(3, 0, 1, 2)
