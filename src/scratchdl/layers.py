"""Layers with forward and backward passes (ch5-7).

Contract (every layer):
- ``forward(x, train=False) -> out`` and ``backward(dout) -> dx``; backward follows the most
  recent forward and never writes into ``dout``, ``x`` or a cache.
- ``params`` and ``grads``: dicts with the same keys and shapes (empty for layers without
  parameters); ``grads`` is filled by ``backward``.
- ``buffers``: state that is not learned but must be saved with a model (batch norm's running
  statistics).
- ``per_sample`` / ``splittable(train)``: True where each sample's output depends on that
  sample alone, so that a model may run parts of a batch through copies of the layer on
  threads (the copies share ``params`` and ``buffers``; every other array attribute is
  treated as a cache of the latest pass). False unless a class declares it.
Loss layers instead have ``forward(x, t) -> float`` and ``backward(dout=1.0) -> dx``, scaled by
``dout``.
"""

from __future__ import annotations

import math

import numpy as np

from . import _parallel as parallel
from . import functions as F
from .checks import as_rng, check_fraction, check_positive, check_positive_int
from .im2col import band_col2im_add, band_im2col, output_size, pad_batch_last, pad_images

BN_EPS = 1e-6  # the book's 10e-7: keeps 1/sqrt(var + eps) finite for a constant feature


class Layer:
    """Base class: empty ``params``/``grads``/``buffers`` and a readable ``__repr__``."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        # A model sets this on its first layer: nobody needs the gradient of the input data,
        # and for a convolution it is a third of the backward pass. backward then returns None.
        self.skip_dx = False

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # True where each sample's output depends on that sample alone, so that the forward pass
    # of a batch equals the forward passes of its parts, stacked (and so for backward);
    # Sequential then may run parts of a batch on threads. False unless a class says so.
    per_sample = False

    def splittable(self, train: bool) -> bool:
        """Whether parts of a batch may go through this layer separately (see per_sample)."""
        return self.per_sample


def _as_input(layer: Layer, x) -> np.ndarray:
    """``x`` as an array of numbers, or a ValueError naming what was received."""
    x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise ValueError(f"{type(layer).__name__} expects numbers, got an array of {x.dtype}")
    return x


def _in_order_of(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``a``, copied into the memory order of ``like`` (same shape) unless it has it already.

    numpy runs elementwise work on arrays of different memory orders several times slower
    than on arrays of one order (a convolution's batch-last output against an affine
    layer's row-major gradient, for instance).
    """
    if np.array_equal(np.argsort(a.strides), np.argsort(like.strides)):
        return a
    out = np.empty_like(like, dtype=a.dtype)
    out[...] = a
    return out


def _as_param(layer: Layer, name: str, value) -> np.ndarray:
    """A parameter as a floating array (it is updated in place by the optimizers)."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        got = (
            f"an array of {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        )
        raise ValueError(f"{type(layer).__name__} needs {name} as a float numpy array, got {got}")
    return value


def _check_ndim(layer: Layer, x: np.ndarray, ndim: int, what: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{type(layer).__name__} expects {what} input, got shape {x.shape}")


# --- activations -------------------------------------------------------------------------


class Relu(Layer):
    """ReLU: y = max(0, x); dx = dout where x > 0, else 0. Shape: any -> same."""

    per_sample = True

    def __init__(self) -> None:
        super().__init__()
        self.mask: np.ndarray | None = None  # x > 0: where backward lets the gradient through

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _as_input(self, x)
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        # dout * mask, not np.where(mask, dout, 0): on a conv output (not in C order) the masked
        # select measured 7 ms against 0.5 ms for the product (numpy 2.4, 100x30x24x24)
        return dout * self.mask


class Sigmoid(Layer):
    """Sigmoid: y = 1 / (1 + exp(-x)); dx = dout * y * (1 - y). Shape: any -> same."""

    per_sample = True

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None  # dy/dx = y(1 - y) needs only the output

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _as_input(self, x)
        self.out = F.sigmoid(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1 - self.out) * self.out


class Tanh(Layer):
    """Tanh: y = tanh(x); dx = dout * (1 - y**2). Shape: any -> same."""

    per_sample = True

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None  # dy/dx = 1 - y^2 needs only the output

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _as_input(self, x)
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1 - self.out**2)


# --- affine and shape ---------------------------------------------------------------------


class Affine(Layer):
    """Fully connected layer: y = x @ W + b, flattening N-D input to (N, D) first.

    Shape: x (N, ...) with prod(...) = D -> (N, M); W (D, M); b (M,); dx has x's shape.
    """

    per_sample = True

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        super().__init__()
        W, b = _as_param(self, "W", W), _as_param(self, "b", b)
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(f"Affine needs W (D, M) and b (M,), got {W.shape} and {b.shape}")
        self.params = {"W": W, "b": b}
        self.x: np.ndarray | None = None  # the flattened input: dW = x.T @ dout
        self.x_shape: tuple | None = None  # dx is returned in the input's own shape

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _as_input(self, x)
        W, b = self.params["W"], self.params["b"]
        if x.ndim < 2 or math.prod(x.shape[1:]) != W.shape[0]:
            raise ValueError(
                f"Affine expects input of shape (N, {W.shape[0]}) (or (N, ...) with "
                f"{W.shape[0]} values per sample), got {x.shape}"
            )
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ W + b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        W = self.params["W"]
        self.grads = {"W": self.x.T @ dout, "b": dout.sum(axis=0)}
        if self.skip_dx:
            return None
        return (dout @ W.T).reshape(self.x_shape)

    def extra_repr(self) -> str:
        D, M = self.params["W"].shape
        return f"{D}, {M}"


class Flatten(Layer):
    """Flatten all but the first axis. Shape: (N, ...) -> (N, prod(...))."""

    per_sample = True

    def __init__(self) -> None:
        super().__init__()
        self.x_shape: tuple | None = None  # backward restores this shape

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _as_input(self, x)
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout.reshape(self.x_shape)


# --- regularisation -------------------------------------------------------------------------


class BatchNormalization(Layer):
    """Batch normalization (Ioffe & Szegedy 2015): y = gamma * (x - mu) / sqrt(var + eps) + beta.

    Normalises per feature for 2-D input and per channel (over N, H, W) for 4-D input.
    Training uses the batch mean and (biased) variance and updates the running statistics:
    ``running = momentum * running + (1 - momentum) * batch_stat`` (the book's rule,
    momentum=0.9); inference uses the running statistics.

    Shape: (N, D) with gamma, beta (D,); or (N, C, H, W) with gamma, beta (C,).
    """

    def splittable(self, train: bool) -> bool:
        return not train  # in training it normalises by the statistics of the whole batch

    def __init__(
        self, gamma: np.ndarray, beta: np.ndarray, momentum: float = 0.9, eps: float = BN_EPS
    ) -> None:
        super().__init__()
        gamma, beta = _as_param(self, "gamma", gamma), _as_param(self, "beta", beta)
        if gamma.ndim != 1 or beta.shape != gamma.shape:
            raise ValueError(f"gamma and beta must be (D,), got {gamma.shape} and {beta.shape}")
        self.momentum = check_fraction("momentum", momentum)
        self.eps = check_positive("eps", eps)
        self.params = {"gamma": gamma, "beta": beta}
        self.buffers = {
            "running_mean": np.zeros_like(gamma),
            "running_var": np.ones_like(gamma),
        }
        self.xn: np.ndarray | None = None  # normalised input, (M, D): dgamma = sum(xn * dout)
        self.std: np.ndarray | None = None  # sqrt(var + eps) used in the forward, (D,)
        self.train: bool = False  # whether the forward normalised with batch statistics
        self.x_shape: tuple | None = None  # to undo the 4-D -> 2-D reshaping

    def _to_2d(self, a: np.ndarray) -> np.ndarray:
        if a.ndim == 4:  # per channel: every (n, h, w) position is one sample of channel c
            N, C, H, W = a.shape
            return a.transpose(0, 2, 3, 1).reshape(N * H * W, C)
        return a

    def _from_2d(self, a: np.ndarray) -> np.ndarray:
        if len(self.x_shape) == 4:
            N, C, H, W = self.x_shape
            return a.reshape(N, H, W, C).transpose(0, 3, 1, 2)
        return a

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _as_input(self, x)
        D = self.params["gamma"].shape[0]
        feature_axis = 1
        if x.ndim not in (2, 4) or x.shape[feature_axis] != D:
            raise ValueError(
                f"BatchNormalization expects (N, {D}) or (N, {D}, H, W) input, got {x.shape}"
            )
        self.x_shape, self.train = x.shape, train
        x2 = self._to_2d(x)
        if train:
            mu, var = x2.mean(axis=0), x2.var(axis=0)
            m, rm, rv = self.momentum, self.buffers["running_mean"], self.buffers["running_var"]
            rm[...] = m * rm + (1 - m) * mu
            rv[...] = m * rv + (1 - m) * var
        else:
            mu, var = self.buffers["running_mean"], self.buffers["running_var"]
        self.std = np.sqrt(var + self.eps)
        self.xn = (x2 - mu) / self.std
        out = self.params["gamma"] * self.xn + self.params["beta"]
        return self._from_2d(out.astype(x.dtype, copy=False))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        gamma = self.params["gamma"]
        d2 = self._to_2d(dout)
        dbeta = d2.sum(axis=0)
        dgamma = (self.xn * d2).sum(axis=0)
        self.grads = {"gamma": dgamma, "beta": dbeta}
        if self.train:  # mu and var depend on x: the batch-norm backward formula
            M = d2.shape[0]
            dx = (gamma / (M * self.std)) * (M * d2 - dbeta - self.xn * dgamma)
        else:  # fixed running statistics: an affine map
            dx = d2 * (gamma / self.std)
        return self._from_2d(dx.astype(dout.dtype, copy=False))

    def extra_repr(self) -> str:
        return f"{self.params['gamma'].shape[0]}, momentum={self.momentum}"


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014): y = x * mask / (1 - ratio) in training.

    Each unit is kept with probability 1 - ratio and scaled by 1 / (1 - ratio) so that its
    expected value is unchanged; at test time y = x exactly (deterministic). The book's
    Dropout is not inverted (it scales by 1 - ratio at test time instead).
    ``hold_mask = True`` reuses the current mask in later training forwards (for gradient
    checks). Shape: any -> same.
    """

    def splittable(self, train: bool) -> bool:
        return not train  # in training it draws one random mask for the whole batch

    def __init__(self, dropout_ratio: float = 0.5, *, rng=None) -> None:
        super().__init__()
        self.dropout_ratio = check_fraction("dropout_ratio", dropout_ratio)
        self.rng = as_rng(rng)
        self.hold_mask = False
        self.mask: np.ndarray | None = None  # kept units, scaled: dx = dout * mask

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _as_input(self, x)
        if not train:
            self.mask = None
            return x
        if not (self.hold_mask and self.mask is not None and self.mask.shape == x.shape):
            keep = 1 - self.dropout_ratio
            self.mask = (self.rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype)
            self.mask /= keep
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self.mask is None else dout * self.mask

    def extra_repr(self) -> str:
        return f"dropout_ratio={self.dropout_ratio}"


# --- convolution and pooling ---------------------------------------------------------------


class Convolution(Layer):
    """2-D convolution (cross-correlation) by im2col: out = col @ W_col.T + b.

    Works on "batch-last" images (memory ordered (C, H, W, N); see ``im2col.band_im2col``)
    and returns its output in that order, as an (N, FN, OH, OW) view. The im2col matrix is
    built a band of output rows at a time (``chunk_bytes``) in a small buffer and multiplied
    while it is still in the CPU's cache; backward rebuilds it from the kept (padded) input
    instead of keeping the whole 9x matrix.
    Shape: x (N, C, H, W) -> (N, FN, OH, OW), OH = (H + 2*pad - FH) / stride + 1;
    W (FN, C, FH, FW); b (FN,).
    """

    per_sample = True
    # Size of one band's im2col matrix. The whole batch's matrix (tens of MB) goes out to
    # memory between the copy and the product: DeepConvNet's 16->16 forward took 5.8 ms that
    # way and 2.9-3.3 ms in bands of 1-3 MB (one thread, 50 images); 2 MB was best in a full
    # training step (RESULTS.md, third round).
    chunk_bytes = 2 << 20
    # The band size where BLAS runs on several threads (a model not split over threads, or
    # no threadpoolctl): OpenBLAS's idle workers spin between products, and with many small
    # products they took the CPU from the copies; DeepConvNet steps flipped between 70 and
    # 150 ms from one process to the next, and took a steady 110 ms (as before the bands)
    # with bands of this size.
    shared_chunk_bytes = 64 << 20

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0) -> None:
        super().__init__()
        W, b = _as_param(self, "W", W), _as_param(self, "b", b)
        if W.ndim != 4 or b.shape != (W.shape[0],):
            raise ValueError(
                f"Convolution needs W (FN, C, FH, FW) and b (FN,), got {W.shape} and {b.shape}"
            )
        self.params = {"W": W, "b": b}
        self.stride = check_positive_int("stride", stride)
        self.pad = check_positive_int("pad", pad, allow_zero=True)
        self.xp: np.ndarray | None = None  # padded batch-last input: backward rebuilds col
        self.scratch: np.ndarray | None = None  # memory for one band's im2col matrix
        self.doutp: np.ndarray | None = None  # memory for backward's padded dout

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _as_input(self, x)
        W, b = self.params["W"], self.params["b"]
        FN, C, FH, FW = W.shape
        _check_ndim(self, x, 4, "(N, C, H, W)")
        if x.shape[1] != C:
            raise ValueError(
                f"Convolution expects (N, {C}, H, W) input for W of shape {W.shape}, got {x.shape}"
            )
        N, C, H, W_in = x.shape
        OH = output_size(H, FH, self.stride, self.pad)
        OW = output_size(W_in, FW, self.stride, self.pad)
        # (C, Hp, Wp, N); the layer's own copy, so the last step's memory is reused (a fresh
        # array of a few MB costs page faults, shared by the threads of a process)
        self.xp = xp = pad_batch_last(x, self.pad, out=self.xp)
        W_col = W.reshape(FN, -1)
        # out = col @ W_col.T + b, computed transposed: (FN, OH*OW*N), batch-last
        out = np.empty((FN, OH, OW, N), dtype=np.result_type(W, x))
        for rows, batch in self._tiles(OH, OW, N, C * FH * FW, x.dtype):
            col_t = self._band(xp, self.stride, rows, batch, OW)  # (C*FH*FW, rows*OW*n)
            _matmul_into(W_col, col_t, out, rows, batch)
        out += b[:, None, None, None]
        return out.transpose(3, 0, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.xp is None:
            raise RuntimeError("Convolution.backward needs a forward pass first")
        xp = self.xp
        W = self.params["W"]
        FN, C, FH, FW = W.shape
        N, _, OH, OW = dout.shape
        H, W_in = xp.shape[1] - 2 * self.pad, xp.shape[2] - 2 * self.pad
        # (FN, OH, OW, N): free when dout is batch-last (as a rule); else one copy here, not
        # one per tile in each of the loops below
        dout4 = np.ascontiguousarray(dout.transpose(1, 2, 3, 0))
        # dW = dout_t @ col, summed over bands; computed as (col.T @ dout_t.T).T: with few
        # output channels the first form is OpenBLAS's slow case (16 x n by n x 144 ran at
        # 28-33 GFLOP/s on one thread); the second measured 1.3-1.8x faster (RESULTS.md)
        dtype = np.result_type(W, dout)
        dW_t = np.zeros((C * FH * FW, FN), dtype=dtype)
        for rows, batch in self._tiles(OH, OW, N, C * FH * FW, xp.dtype):
            col_t = self._band(xp, self.stride, rows, batch, OW)
            dW_t += col_t @ _tile(dout4, rows, batch).T
        self.grads = {"W": dW_t.T.reshape(W.shape), "b": dout4.sum(axis=(1, 2, 3))}
        if self.skip_dx:
            return None
        # dx two equal ways; take the one with the smaller intermediate matrix
        if self.stride == 1 and FH == FW and self.pad < FH and FN * H * W_in <= C * OH * OW:
            # the convolution of dout, padded by FH-1-pad, with the filters turned by 180° and
            # their in/out channels swapped (the adjoint of the forward pass): equal to
            # col2im(dout @ W_col) without its FH*FW strided additions
            W_turned = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(C, -1)  # (C, FN*FH*FW)
            self.doutp = doutp = pad_batch_last(dout, FH - 1 - self.pad, out=self.doutp)
            dx = np.empty((C, H, W_in, N), dtype=dtype)
            for rows, batch in self._tiles(H, W_in, N, FN * FH * FW, dout.dtype):
                col_t = self._band(doutp, 1, rows, batch, W_in)
                _matmul_into(W_turned, col_t, dx, rows, batch)
            return dx.transpose(3, 0, 1, 2)
        # dcol = dout @ W_col, (C*FH*FW, OH*OW*N) transposed, added back onto its windows
        p = self.pad
        dxp = np.zeros(xp.shape, dtype=dtype)
        W_col_t = W.reshape(FN, -1).T
        for rows, batch in self._tiles(OH, OW, N, C * FH * FW, dtype):
            d = _tile(dout4, rows, batch)
            dcol_t = np.matmul(W_col_t, d, out=self._buffer((C * FH * FW, d.shape[1]), dtype))
            band_col2im_add(dcol_t, dxp[..., slice(*batch)], FH, FW, self.stride, rows)
        return dxp[:, p : p + H, p : p + W_in].transpose(3, 0, 1, 2)

    def _tiles(self, OH: int, OW: int, N: int, K: int, dtype) -> list[tuple]:
        """((r0, r1), (n0, n1)) tiles of the output whose im2col matrices, K rows each, fit
        ``chunk_bytes`` (``shared_chunk_bytes`` where BLAS has several threads): bands of
        whole rows over the whole batch, or, where one row of the whole batch is already too
        big, one row of part of the batch."""
        row = K * OW * np.dtype(dtype).itemsize  # bytes of one output row of one image
        budget = self.chunk_bytes if parallel.blas_threads() == 1 else self.shared_chunk_bytes
        if row * N <= budget:
            r = max(1, budget // (row * N))
            return [((r0, min(r0 + r, OH)), (0, N)) for r0 in range(0, OH, r)]
        n = max(1, budget // row)
        return [((r0, r0 + 1), (n0, min(n0 + n, N))) for r0 in range(OH) for n0 in range(0, N, n)]

    def _buffer(self, shape: tuple[int, int], dtype) -> np.ndarray:
        """A C-contiguous ``shape`` array in the layer's scratch memory (grown as needed)."""
        size = shape[0] * shape[1]
        if self.scratch is None or self.scratch.size < size or self.scratch.dtype != dtype:
            self.scratch = np.empty(size, dtype=dtype)
        return self.scratch[:size].reshape(shape)

    def _band(self, xp, stride, rows, batch, OW) -> np.ndarray:
        """im2col(x).T of one tile, (C*FH*FW, rows*OW*n), in the scratch memory."""
        FH, FW = self.params["W"].shape[2:]
        (r0, r1), (n0, n1) = rows, batch
        v = xp if n1 - n0 == xp.shape[3] else xp[..., n0:n1]
        out = self._buffer((v.shape[0] * FH * FW, (r1 - r0) * OW * (n1 - n0)), xp.dtype)
        return band_im2col(v, FH, FW, stride, rows, OW, out)

    def extra_repr(self) -> str:
        FN, C, FH, FW = self.params["W"].shape
        return f"{C}, {FN}, kernel=({FH}, {FW}), stride={self.stride}, pad={self.pad}"


def _tile(a4: np.ndarray, rows: tuple[int, int], batch: tuple[int, int]) -> np.ndarray:
    """Tile (rows, batch) of a batch-last (K, H, W, N) array as a (K, rows*W*n) matrix: a view
    when the tile spans the whole batch of a contiguous array, else a copy."""
    return a4[:, slice(*rows), :, slice(*batch)].reshape(a4.shape[0], -1)


def _matmul_into(A: np.ndarray, B: np.ndarray, out4: np.ndarray, rows, batch) -> None:
    """out4[:, rows, :, batch] = A @ B, for a batch-last (M, H, W, N) ``out4``."""
    (r0, r1), (n0, n1) = rows, batch
    M, _, W, N = out4.shape
    if n1 - n0 == N:  # whole rows of the batch: a block of columns, written in place
        np.matmul(A, B, out=out4.reshape(M, -1)[:, r0 * W * N : r1 * W * N])
    else:
        out4[:, r0:r1, :, n0:n1] = (A @ B).reshape(M, r1 - r0, W, n1 - n0)


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
        _check_ndim(self, x, 4, "(N, C, H, W)")
        N, C, H, W = x.shape
        OH = output_size(H, self.pool_h, self.stride, self.pad)  # raises if it does not fit
        OW = output_size(W, self.pool_w, self.stride, self.pad)
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
        x = _as_input(self, x)
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
        dout = _in_order_of(dout, self.arg_max)  # one copy, not four mixed-order passes
        for k, cell in self._slices(*dout.shape[2:]):
            dxp[cell] += dout * (self.arg_max == k)
        return self._unpad(dxp)


class AvgPooling(_Pool):
    """Average pooling: each output is the mean of its window (padded zeros count).

    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2*pad - pool_h) / stride + 1.
    """

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _as_input(self, x)
        xp, OH, OW = self._padded(x)
        out = None
        for _, cell in self._slices(OH, OW):
            out = xp[cell].copy(order="K") if out is None else np.add(out, xp[cell], out=out)
        out *= x.dtype.type(1 / (self.pool_h * self.pool_w))
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        share = dout / (self.pool_h * self.pool_w)  # every window cell gets an equal share
        dxp = self._padded_zeros(dout)
        for _, cell in self._slices(*dout.shape[2:]):
            dxp[cell] += share
        return self._unpad(dxp)


# --- losses ---------------------------------------------------------------------------------


class SoftmaxWithLoss(Layer):
    """Softmax followed by cross-entropy, mean over the batch.

    loss = -(1/N) sum_n log softmax(x)[n, t_n]; dx = dout * (softmax(x) - onehot(t)) / N.
    Shape: x (N, K) scores; t labels (N,) or one-hot (N, K).
    """

    def __init__(self) -> None:
        super().__init__()
        self.y: np.ndarray | None = None  # softmax output: dx = (y - onehot(t)) / N
        self.t: np.ndarray | None = None  # labels as class indices (N,)

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        x = _as_input(self, x)
        _check_ndim(self, x, 2, "(N, K) scores as")
        self.t = F._labels(t, x)
        logp = F.log_softmax(x)  # stable even where softmax underflows to 0
        self.y = np.exp(logp)
        return float(-logp[np.arange(x.shape[0]), self.t].mean())

    def backward(self, dout: float = 1.0) -> np.ndarray:
        N = self.y.shape[0]
        dx = self.y.copy()
        dx[np.arange(N), self.t] -= 1
        dx *= dout / N
        return dx


class IdentityWithLoss(Layer):
    """Identity output with the squared error for regression, mean over the batch.

    loss = (1/N) * 0.5 * sum((x - t)**2); dx = dout * (x - t) / N.
    Shape: x (N, K); t (N, K) (or (N,) when K = 1).
    """

    def __init__(self) -> None:
        super().__init__()
        self.diff: np.ndarray | None = None  # x - t: dx = diff / N

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        x = _as_input(self, x)
        t = np.asarray(t)
        if t.shape != x.shape and t.shape == x.shape[:1] and x.ndim == 2 and x.shape[1] == 1:
            t = t.reshape(x.shape)
        if t.shape != x.shape:
            raise ValueError(f"IdentityWithLoss expects t of shape {x.shape}, got {t.shape}")
        self.diff = x - t
        return float(0.5 * np.sum(self.diff**2) / x.shape[0])

    def backward(self, dout: float = 1.0) -> np.ndarray:
        return self.diff * (dout / self.diff.shape[0])


LOSS_LAYERS = (SoftmaxWithLoss, IdentityWithLoss)
