"""Activation functions, output functions and losses of the book (ch3-4).

Every function takes NumPy arrays (or scalars), works on batches along the first axis and
keeps the input's floating dtype.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7  # keeps log() finite when a predicted probability is exactly 0


def identity(x: np.ndarray) -> np.ndarray:
    """Identity output function: y = x (used for regression)."""
    return x


def step_function(x: np.ndarray) -> np.ndarray:
    """Step function: y = 1 if x > 0 else 0, as int (the perceptron's activation)."""
    return (np.asarray(x) > 0).astype(np.int64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Sigmoid: y = 1 / (1 + exp(-x)), with no overflow for large |x|.

    For x >= 0 it computes 1 / (1 + exp(-x)); for x < 0 the equal form exp(x) / (1 + exp(x)),
    so exp() never sees a large positive argument.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    one = x.dtype.type(1)  # not the Python 1: numpy 1.x made float32 scalars float64 with it
    return np.where(x >= 0, one / (one + e), e / (one + e))


def relu(x: np.ndarray) -> np.ndarray:
    """ReLU: y = max(0, x)."""
    return np.maximum(x, 0)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent: y = (exp(x) - exp(-x)) / (exp(x) + exp(-x))."""
    return np.tanh(x)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis: y_k = exp(x_k) / sum_i exp(x_i).

    Shape: (..., K) -> (..., K); each row sums to 1. Stable for large inputs.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)  # exp overflows; softmax is shift-invariant
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def sum_squared_error(y: np.ndarray, t: np.ndarray) -> float:
    """Sum of squares error: E = 0.5 * sum((y - t)**2), summed over every element."""
    y, t = np.asarray(y), np.asarray(t)
    if y.shape != t.shape:
        raise ValueError(f"y and t must have the same shape, got {y.shape} and {t.shape}")
    return float(0.5 * np.sum((y - t) ** 2))


TARGET_SUM_TOL = 1e-3  # a target row may sum to 1 within this (float16 label smoothing does)


def check_targets(t: np.ndarray, y_shape: tuple[int, int]) -> np.ndarray:
    """Return t validated against outputs of shape y_shape (N, K): labels or target rows.

    Labels (N,) must be integers in [0, K); they come back as int64. Target rows (N, K) are
    any probability distribution per sample (one-hot, label smoothing, a teacher's softmax
    for distillation): finite, >= 0 and summing to 1 within ``TARGET_SUM_TOL``; they come
    back as floats. Raises ValueError naming the first bad row.
    """
    t = np.asarray(t)
    N, K = y_shape
    if t.shape == (N, K):
        return check_target_rows(t)
    if t.shape != (N,):
        raise ValueError(
            f"t must be labels of shape ({N},) or target rows of shape ({N}, {K}), got {t.shape}"
        )
    if not np.issubdtype(t.dtype, np.integer):
        if t.dtype.kind != "f" or not np.all(np.mod(t, 1) == 0):
            raise ValueError(f"labels must be integers, got dtype {t.dtype}")
        t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= K):
        raise ValueError(f"labels must lie in [0, {K - 1}], got values in [{t.min()}, {t.max()}]")
    return t.astype(np.int64, copy=False)


def check_target_rows(t: np.ndarray) -> np.ndarray:
    """Return the (N, K) target rows t as floats, or a ValueError naming the first row that
    is not a probability distribution (not finite, negative, or not summing to 1)."""
    t = np.asarray(t)
    if t.dtype.kind not in "iuf":
        raise ValueError(f"target rows must hold numbers, got dtype {t.dtype}")
    if t.dtype.kind != "f":
        t = t.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        sums = t.sum(axis=1, dtype=np.float64)
        bad = ~np.isfinite(t).all(axis=1) | (t < 0).any(axis=1)
        bad |= ~(np.abs(sums - 1) <= TARGET_SUM_TOL)
    if bad.any():
        n = int(np.argmax(bad))
        raise ValueError(
            f"target row t[{n}] must be a probability distribution (finite, >= 0, summing to "
            f"1), got {np.array2string(t[n], threshold=12)} (sum {sums[n]:.6g}); pass class "
            "labels (N,), or one-hot or soft-label rows that each sum to 1"
        )
    return t


def class_indices(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return t as class indices (N,): labels as they are, target rows by their most probable
    class (argmax; the first on a tie), after ``check_targets`` validated them.

    This is what ``accuracy`` compares predictions with; the losses use the rows themselves.
    """
    t = check_targets(t, y.shape)
    return t.argmax(axis=1) if t.ndim == 2 else t


def cross_entropy_error(y: np.ndarray, t: np.ndarray) -> float:
    """Cross-entropy error (the book's 4.2.2): E = -(1/N) sum_n sum_k t_nk log(y_nk + EPS).

    For labels t_n (or one-hot rows) this is -(1/N) sum_n log(y[n, t_n] + EPS); target rows may
    be any probability distribution (soft labels), checked by ``check_targets``.
    Shape: y (N, K) or (K,) probabilities; t labels (N,) / scalar or target rows like y.
    """
    y = np.asarray(y)
    if y.ndim == 1:
        y = y.reshape(1, -1)
        t = np.asarray(t).reshape(1, -1) if np.ndim(t) == 1 else np.asarray(t).reshape(1)
    if y.ndim != 2:
        raise ValueError(f"y must be (N, K) or (K,), got shape {y.shape}")
    t = check_targets(t, y.shape)
    N = y.shape[0]
    if t.ndim == 2:
        return float(-np.sum(t * np.log(y + EPS)) / N)
    return float(-np.sum(np.log(y[np.arange(N), t] + EPS)) / N)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log of softmax over the last axis, computed without forming exp(x) of large x."""
    x = np.asarray(x)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def softmax_loss(x: np.ndarray, t: np.ndarray) -> float:
    """Cross-entropy of softmax(x) against t, computed stably through log_softmax.

    E = -(1/N) sum_n sum_k t_nk log softmax(x)_nk. Shape: x (N, K) scores; t labels (N,) or
    target rows (N, K) (one-hot or soft, see ``check_targets``). Equals
    cross_entropy_error(softmax(x), t) up to the EPS the latter adds.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be (N, K) scores, got shape {x.shape}")
    t = check_targets(t, x.shape)
    N = x.shape[0]
    if t.ndim == 2:
        return float(-np.sum(t * log_softmax(x)) / N)
    return float(-log_softmax(x)[np.arange(N), t].mean())
