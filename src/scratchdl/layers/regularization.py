"""Batch normalization (ch6.3) and dropout (ch6.4)."""

from __future__ import annotations

import numpy as np

from ..support.checks import as_rng, check_fraction, check_positive
from .base import Layer, as_float_input, as_param

BN_EPS = 1e-6  # the book's 10e-7: keeps 1/sqrt(var + eps) finite for a constant feature


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
        gamma, beta = as_param(self, "gamma", gamma), as_param(self, "beta", beta)
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
        x = as_float_input(self, x)
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
        if self.xn is None:
            raise RuntimeError("BatchNormalization.backward needs a forward pass first")
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
        self.train: bool | None = None  # the latest forward's mode (eval: dx = dout); None: none

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = as_float_input(self, x)
        self.train = bool(train)
        if not train:
            self.mask = None
            return x
        if not (self.hold_mask and self.mask is not None and self.mask.shape == x.shape):
            keep = 1 - self.dropout_ratio
            self.mask = (self.rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype)
            self.mask /= keep
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.train is None:
            raise RuntimeError("Dropout.backward needs a forward pass first")
        return dout if self.mask is None else dout * self.mask

    def extra_repr(self) -> str:
        return f"dropout_ratio={self.dropout_ratio}"
