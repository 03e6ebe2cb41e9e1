"""Batch-last images, their windows and bands, and the memory the engine reuses.

The book's convolution is ``out = im2col(x) @ W_col.T + b``. The engine computes the same
products with images kept "batch-last": memory ordered (C, H, W, N). One row of a window
cell over the whole batch, (OW, N), is then one run of memory, so the copies that build the
columns move long runs. A convolution returns its output as an (N, FN, OH, OW) view of
(FN, OH, OW, N) memory, and the layers after it keep that order (``in_order_of``).

Here, each written once and used by every kernel of the engine:

- ``conv_output_size``: how many windows fit (the book's formula, with its check);
- ``pad_batch_last``: the one padding kernel (any memory order in, batch-last out);
- ``band_im2col``: the book's columns of a band of output rows, ordered (oh, ow, n);
- ``add_windows``: the one col2im add, each window's column added back onto its window;
- ``Memory`` and ``scratch``: the one way memory is reused from step to step.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided


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


def pad_batch_last(
    x: np.ndarray, pad: int, value: float = 0.0, out: np.ndarray | None = None
) -> np.ndarray:
    """(N, C, H, W) of any memory order -> (C, H + 2*pad, W + 2*pad, N), contiguous, with a
    border of ``pad`` cells of ``value``; written into ``out`` where given (C-contiguous, of
    that shape and x's dtype)."""
    N, C, H, W = x.shape
    shape = (C, H + 2 * pad, W + 2 * pad, N)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {x.dtype} array of shape {shape}")
    if pad:  # only the border is filled: the inside is written once, below
        out[:, :pad] = value
        out[:, H + pad :] = value
        out[:, pad : H + pad, :pad] = value
        out[:, pad : H + pad, W + pad :] = value
    out[:, pad : H + pad, pad : W + pad] = x.transpose(1, 2, 3, 0)
    return out


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
    if xp.flags.c_contiguous:  # a view built by ndarray itself: cheaper than as_strided
        cells = np.ndarray(shape, xp.dtype, xp, r0 * stride * sH, strides)  # bounds checked
    else:  # part of a batch: not a buffer of its own
        cells = as_strided(xp[:, r0 * stride :], shape, strides, writeable=False)
    np.copyto(out.reshape(C, FH, FW, r1 - r0, OW, N), cells)
    return out


def add_windows(col: np.ndarray, dxp: np.ndarray, stride: int, r0: int = 0) -> None:
    """The col2im add: each window's values ``col`` (C, FH, FW, rows, OW, N) added back onto
    its window of ``dxp`` (C, Hp, Wp, N), in place, for output rows r0, r0 + 1, ...
    (overlapping windows add up). Both of any strides."""
    C, FH, FW, R, OW, N = col.shape
    for i in range(FH):  # FH*FW strided adds, each over the whole band
        h = r0 * stride + i
        for j in range(FW):
            dxp[:, h : h + stride * R : stride, j : j + stride * OW : stride] += col[:, i, j]


def in_order_of(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``a``, copied into the memory order of ``like`` (same shape) unless it has it already.

    numpy runs elementwise work on arrays of different memory orders several times slower
    than on arrays of one order (a convolution's batch-last output against an affine
    layer's row-major gradient, for instance).
    """
    axes = range(a.ndim)  # the axes from the smallest stride up, compared as plain lists
    if sorted(axes, key=a.strides.__getitem__) == sorted(axes, key=like.strides.__getitem__):
        return a
    out = np.empty_like(like, dtype=a.dtype)
    out[...] = a
    return out


def new_in_order_of(like: np.ndarray, shape: tuple, dtype, zero: bool = False) -> np.ndarray:
    """A new array of ``shape`` (as many axes as ``like``) and ``dtype``, its axes laid out in
    memory in the order of ``like``'s, as ``np.empty_like(like, dtype, shape=shape)`` makes it;
    zeroed when ``zero``. Built from ``np.empty``/``np.zeros``: numpy 1.24's ``*_like(shape=)``
    releases the dtype twice when the allocation fails, and a MemoryError then ended with
    numpy's "reference count error" on stderr."""
    slowest_first = sorted(range(like.ndim), key=lambda axis: -like.strides[axis])
    a = (np.zeros if zero else np.empty)([shape[axis] for axis in slowest_first], dtype=dtype)
    return a.transpose(np.argsort(slowest_first))


class Memory:
    """Named arrays reused from one use to the next: a fresh array of a few MB costs a page
    fault per 4 kB, every step. ``take`` hands out a C-contiguous view of the array of that
    name, grown as needed; its content is whatever the last use left.

    An engine object keeps one for what lives from its forward to its backward pass (a
    convolution's padded input, a pooling's window cells); each thread keeps one for what
    lives only while one band is computed (``scratch``).
    """

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        size = math.prod(shape)
        a = self.arrays.get(name)
        if a is None or a.size < size or a.dtype != dtype:
            a = self.arrays[name] = np.empty(size, dtype=dtype)
        return a[:size].reshape(shape)


_local = threading.local()  # each thread's scratch memory


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """``Memory.take`` from this thread's own memory, for a band that lives only while one
    layer's loop handles it.

    One thread never needs two bands of a name at once, whatever layer it runs, so one set
    of bands per thread serves every convolution (memory per layer held a few MB per layer
    and thread). Threads that run parts of a batch at once (``threads.BatchParts``) each
    have their own.
    """
    memory = getattr(_local, "memory", None)
    if memory is None:
        memory = _local.memory = Memory()
    return memory.take(name, shape, dtype)
