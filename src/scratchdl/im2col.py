"""im2col / col2im (ch7): the only place in the package with index tricks.

``im2col`` lays every filter-sized window of a batch of images out as one row, so that a
convolution becomes one matrix product; ``col2im`` is its exact adjoint: it adds each row back
onto the window it came from (overlapping windows add up), which is what backward needs.

Column layout (the book's): row ``(n, oh, ow)``, column ``(c, fh, fw)``, i.e.
``col`` has shape ``(N*OH*OW, C*FH*FW)``.

Both work without Python loops over the batch: ``im2col`` is a strided view of the padded
input followed by one contiguous copy; ``col2im`` is ``FH*FW`` strided accumulations.

``im2col`` stores its matrix column-major: ``col.T`` is a contiguous (C*FH*FW, N*OH*OW)
array, the operand shape BLAS multiplies fastest. Everything here takes arrays of any
strides.

The ``Convolution`` layer computes the same product through ``conv_bands``, which builds
this matrix with its columns in (oh, ow, n) order from images kept "batch-last" in memory,
a band of output rows at a time. The book's functions stay the reference it is tested
against.
"""

from __future__ import annotations

import numpy as np


def conv_output_size(size: int, filter_size: int, stride: int, pad: int) -> int:
    """Output length along one axis: (size + 2*pad - filter_size) / stride + 1.

    Raises ValueError unless the windows tile the padded input exactly (the book, 7.2.3).
    """
    span = size + 2 * pad - filter_size
    if span < 0:
        raise ValueError(
            f"a window of {filter_size} does not fit an input of {size} with pad {pad}; "
            f"use a smaller window or more padding"
        )
    if span % stride:
        raise ValueError(
            f"(size + 2*pad - window) / stride must be an integer, got ({size} + 2*{pad} - "
            f"{filter_size}) / {stride}; change stride or pad so the windows tile the input"
        )
    return span // stride + 1


def pad_images(x: np.ndarray, pad: int, value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of (N, C, H, W) by ``pad`` on each side with ``value``.

    The padded array keeps the memory order of ``x`` (see the module docstring).
    """
    if pad == 0:
        return x
    N, C, H, W = x.shape
    xp = np.full_like(x, value, shape=(N, C, H + 2 * pad, W + 2 * pad))
    xp[:, :, pad : pad + H, pad : pad + W] = x
    return xp


def accumulate_windows(dwin: np.ndarray, padded_shape: tuple, stride: int) -> np.ndarray:
    """Add each window's values back onto the padded image (the adjoint of cutting a padded
    batch into its windows).

    Shape: dwin (N, C, OH, OW, FH, FW) -> (N, C, Hp, Wp), in the memory order of dwin's
    first four axes.
    """
    N, C, OH, OW, FH, FW = dwin.shape
    dxp = np.zeros_like(dwin[..., 0, 0], shape=padded_shape)
    for i in range(FH):  # FH*FW strided adds, each over the whole batch
        for j in range(FW):
            dxp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride] += dwin[
                :, :, :, :, i, j
            ]
    return dxp


def im2col(
    x: np.ndarray, FH: int, FW: int, stride: int = 1, pad: int = 0, *, out: np.ndarray | None = None
) -> np.ndarray:
    """Lay out every FH×FW window of ``x`` as one row.

    The result is the book's matrix, stored column-major: ``col.T`` is a contiguous
    (C*FH*FW, N*OH*OW) array, the operand shape BLAS multiplies fastest. ``out``, an array
    of that transposed shape, is filled and reused instead of allocating a new one (a layer
    keeps it between steps: a fresh array of tens of MB costs more in page faults than
    the copy itself).
    Shape: (N, C, H, W) -> (N*OH*OW, C*FH*FW), OH = (H + 2*pad - FH) / stride + 1.
    """
    if x.ndim != 4:
        raise ValueError(f"im2col expects (N, C, H, W) input, got shape {x.shape}")
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W, FW, stride, pad)
    shape = (C * FH * FW, N * OH * OW)
    if out is None or out.shape != shape or out.dtype != x.dtype:
        out = np.empty(shape, dtype=x.dtype)
    col = out.reshape(C, FH, FW, N, OH, OW)
    xp = pad_images(x, pad)
    for i in range(FH):  # FH*FW slice copies, each over the whole batch (as in the book)
        for j in range(FW):
            window_cell = xp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride]
            col[:, i, j] = window_cell.transpose(1, 0, 2, 3)
    return out.T


def col2im(
    col: np.ndarray, input_shape: tuple, FH: int, FW: int, stride: int = 1, pad: int = 0
) -> np.ndarray:
    """Adjoint of ``im2col``: sum each row back onto its window, then drop the padding.

    Fastest when ``col.T`` is contiguous, as ``im2col`` returns it.
    Shape: (N*OH*OW, C*FH*FW) -> input_shape = (N, C, H, W).
    """
    N, C, H, W = input_shape
    OH, OW = conv_output_size(H, FH, stride, pad), conv_output_size(W, FW, stride, pad)
    if col.shape != (N * OH * OW, C * FH * FW):
        raise ValueError(
            f"col must have shape {(N * OH * OW, C * FH * FW)} for input {input_shape}, "
            f"got {col.shape}"
        )
    dwin = col.T.reshape(C, FH, FW, N, OH, OW).transpose(3, 0, 4, 5, 1, 2)
    dxp = accumulate_windows(dwin, (N, C, H + 2 * pad, W + 2 * pad), stride)
    return dxp[:, :, pad : pad + H, pad : pad + W] if pad else dxp
