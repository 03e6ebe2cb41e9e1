"""Max pooling with the window cell of each maximum, and its backward pass.

One kernel for the ``Pooling`` layer and for the fused Convolution -> ReLU -> pooling
(``fused.py``). Both work on (N, C, H, W) arrays of any memory order (the convolution stack
keeps them batch-last) through strided views, one per window cell ``k = i*pool_w + j``:
a running maximum over the pool_h*pool_w cells, each over the whole batch.
"""

from __future__ import annotations

import numpy as np

from .bands import in_order_of, new_in_order_of


def window_cell(xp: np.ndarray, i: int, j: int, stride: int, OH: int, OW: int) -> np.ndarray:
    """Cell (i, j) of every window of ``xp`` (N, C, Hp, Wp): a strided (N, C, OH, OW) view."""
    return xp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride]


def max_pool(
    xp: np.ndarray,
    pool_h: int,
    pool_w: int,
    stride: int,
    out: np.ndarray,
    cell: np.ndarray | None = None,
) -> None:
    """out = the largest value of each window of ``xp``; ``cell`` = the window cell k of its
    first maximum (a strict comparison: of equal values, the first keeps the gradient, as the
    book's ``np.argmax``). Written into ``out`` and ``cell``, both (N, C, OH, OW).
    """
    OH, OW = out.shape[2:]
    for k, (i, j) in enumerate(np.ndindex(pool_h, pool_w)):
        v = xp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride]  # window_cell
        if k == 0:
            np.copyto(out, v)
            if cell is not None:
                cell[...] = 0
        elif cell is None:
            np.maximum(out, v, out=out)
        else:
            bigger = v > out
            # cell = k where bigger (k only grows): arithmetic, several times faster than a
            # masked write
            np.maximum(cell, bigger * cell.dtype.type(k), out=cell)
            np.maximum(out, v, out=out)


def max_pool_backward(
    dout: np.ndarray, cell: np.ndarray, pool_h: int, pool_w: int, stride: int, shape: tuple
) -> np.ndarray:
    """The gradient at the pooling's (padded) input of ``shape``: each dout goes to the
    window cell ``cell`` names; a cell value that is no k (>= pool_h*pool_w) passes nothing.

    In the memory order of ``cell``. Shape: dout, cell (N, C, OH, OW) -> ``shape``.
    """
    dout = in_order_of(dout, cell)  # one copy, not pool_h*pool_w mixed-order passes
    OH, OW = dout.shape[2:]
    # windows that tile the input exactly: every input cell is written once, nothing added
    tiled = stride == pool_h == pool_w and tuple(shape[2:]) == (OH * stride, OW * stride)
    dxp = new_in_order_of(cell, shape, dout.dtype, zero=not tiled)
    for k, (i, j) in enumerate(np.ndindex(pool_h, pool_w)):
        window = dxp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride]
        if tiled:
            np.multiply(dout, cell == k, out=window)
        else:
            window += dout * (cell == k)
    return dxp
