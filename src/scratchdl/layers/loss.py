"""Output layers with their loss (ch5.6.3): softmax with cross-entropy, and the identity
with the squared error."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from .base import Layer, as_input, check_ndim


class SoftmaxWithLoss(Layer):
    """Softmax followed by cross-entropy, mean over the batch.

    loss = -(1/N) sum_n sum_k t_nk log softmax(x)_nk; dx = dout * (softmax(x) - t) / N, with
    t one row per sample: the one-hot row of a label, or any target distribution (soft
    labels; see ``functions.check_targets``, which refuses a row that is not one).
    Shape: x (N, K) scores; t labels (N,) or target rows (N, K).
    """

    def __init__(self) -> None:
        super().__init__()
        self.y: np.ndarray | None = None  # softmax output: dx = (y - t) / N
        self.t: np.ndarray | None = None  # labels (N,) or target rows (N, K), as given

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        x = as_input(self, x)
        check_ndim(self, x, 2, "(N, K) scores as")
        t = F.check_targets(t, x.shape)
        logp = F.log_softmax(x)  # stable even where softmax underflows to 0
        self.y = np.exp(logp)
        N = x.shape[0]
        if t.ndim == 2:
            self.t = t.astype(self.y.dtype, copy=False)  # float64 rows must not promote dx
            return float(-np.sum(self.t * logp) / N)
        self.t = t
        return float(-logp[np.arange(N), t].mean())

    def backward(self, dout: float = 1.0) -> np.ndarray:
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss.backward needs a forward pass first")
        N = self.y.shape[0]
        if self.t.ndim == 2:
            dx = self.y - self.t
        else:
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
        x = as_input(self, x)
        t = np.asarray(t)
        if t.shape != x.shape and t.shape == x.shape[:1] and x.ndim == 2 and x.shape[1] == 1:
            t = t.reshape(x.shape)
        if t.shape != x.shape:
            raise ValueError(f"IdentityWithLoss expects t of shape {x.shape}, got {t.shape}")
        self.diff = x - t
        return float(0.5 * np.sum(self.diff**2) / x.shape[0])

    def backward(self, dout: float = 1.0) -> np.ndarray:
        if self.diff is None:
            raise RuntimeError("IdentityWithLoss.backward needs a forward pass first")
        return self.diff * (dout / self.diff.shape[0])


LOSS_LAYERS = (SoftmaxWithLoss, IdentityWithLoss)
