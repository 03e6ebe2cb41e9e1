"""Numerical differentiation, gradient descent and gradient checking (ch4-5)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np

from .support.checks import as_rng, check_positive, check_positive_int

H = 1e-4  # the book's step for central differences: small, but far above float64 round-off
# Gradients smaller than this compare by absolute error: a gradient that is zero in exact
# arithmetic (a bias in front of batch norm) has only round-off noise of ~1e-11 to show.
GRAD_FLOOR = 1e-6


def numerical_diff(f: Callable[[float], float], x: float, h: float = H) -> float:
    """Central difference: f'(x) ≈ (f(x + h) - f(x - h)) / 2h."""
    return (f(x + h) - f(x - h)) / (2 * h)


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = H) -> np.ndarray:
    """Gradient of the scalar function ``f`` at ``x`` by central differences, entry by entry.

    ``x`` may have any shape. A floating ``x`` is nudged in place and restored exactly
    afterwards (so ``f`` may read the array through another reference, as a model's loss
    does with its parameters). An integer ``x`` cannot hold x + h: ``f`` is then called with
    a float64 copy and ``x`` is never touched. Shape: x -> same (float).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    grad = np.zeros(x.shape, dtype=x.dtype)
    for idx in np.ndindex(*x.shape):
        tmp = x[idx]
        x[idx] = tmp + h
        fxh1 = f(x)
        x[idx] = tmp - h
        fxh2 = f(x)
        x[idx] = tmp  # restore exactly
        grad[idx] = (fxh1 - fxh2) / (2 * h)
    return grad


def gradient_descent(
    f: Callable[[np.ndarray], float], init_x: np.ndarray, lr: float = 0.01, step_num: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``f`` by x <- x - lr * grad f(x), ``step_num`` times, from ``init_x``.

    Returns the final point and the path (every point visited, the start included).
    ``init_x`` is not modified. Shape: init_x (...) -> x (...), path (step_num + 1, ...).
    """
    check_positive("lr", lr)
    check_positive_int("step_num", step_num, allow_zero=True)
    x = np.array(init_x, dtype=np.float64)
    path = [x.copy()]
    for _ in range(step_num):
        x -= lr * numerical_gradient(f, x)
        path.append(x.copy())
    return x, np.array(path)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b| / max(max|a|, max|b|, GRAD_FLOOR): the error relative to the gradient's size."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare gradients of shapes {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.abs(a).max(), np.abs(b).max(), GRAD_FLOOR)
    return float(np.abs(a - b).max() / scale)


def _is_model(obj) -> bool:
    return hasattr(obj, "numerical_gradient") and hasattr(obj, "gradient")


@contextlib.contextmanager
def _masks_held(obj) -> Iterator[None]:
    """Make the dropout of a layer or model reuse its current mask (the numerical gradient
    must differentiate one function, not a new random one at every evaluation); each
    layer's own setting is restored afterwards, on error too."""
    if _is_model(obj) and hasattr(obj, "set_dropout_mask_hold"):
        before = obj.set_dropout_mask_hold(True)
        try:
            yield
        finally:
            obj.set_dropout_mask_hold(before)
    elif hasattr(obj, "hold_mask"):
        before, obj.hold_mask = obj.hold_mask, True
        try:
            yield
        finally:
            obj.hold_mask = before
    else:
        yield


@contextlib.contextmanager
def _buffers_kept(obj) -> Iterator[None]:
    """Put the running statistics (``buffers``) back as they were: every training forward of
    the check moves them, and a check should leave the model as it found it."""
    saved = {k: v.copy() for k, v in getattr(obj, "buffers", {}).items()}
    try:
        yield
    finally:
        for k, v in saved.items():
            obj.buffers[k][...] = v


def _layer_gradients(layer, x, t, dout, rng, h):
    """Backprop and numerical gradients of a layer's dx and parameters, as two dicts.

    The forward on ``x`` comes first, so backward never reads a cache of another batch, and
    it draws the dropout mask that the numerical gradient then holds fixed.
    """
    if t is not None:  # a loss layer: f = dout * loss(x, t)
        layer.forward(x, t)
        if dout is None:
            dout = float(as_rng(rng).uniform(0.5, 2.0))

        def f(_):
            return dout * layer.forward(x, t)

    else:
        out = layer.forward(x, train=True)
        if dout is None:  # random, never all ones: some wrong backward passes agree on ones
            dout = as_rng(rng).standard_normal(out.shape).astype(out.dtype)

        def f(_):
            return float(np.sum(layer.forward(x, train=True) * dout))

    analytic = {"x": layer.backward(dout), **{k: v.copy() for k, v in layer.grads.items()}}
    with _masks_held(layer):
        # f reads x itself: x is nudged in place (it is floating, see gradient_check)
        numeric = {"x": numerical_gradient(f, x, h)}
        for key, p in layer.params.items():
            numeric[key] = numerical_gradient(f, p, h)
    return analytic, numeric


def gradient_check(
    obj,
    x: np.ndarray,
    t: np.ndarray | None = None,
    *,
    dout=None,
    rng=None,
    h: float | None = None,
) -> dict[str, float]:
    """Compare backprop with numerical gradients; return the relative error per parameter.

    ``obj`` is a model (anything with ``gradient(x, t)`` and ``numerical_gradient(x, t)``)
    or a layer. For a layer, ``f = sum(forward(x, train=True) * dout)`` with a random upstream
    gradient ``dout`` (drawn from ``rng`` unless given), and the report includes ``'x'`` for
    dx; for a loss layer ``f = dout * forward(x, t)``. The error of each entry of the report is
    ``relative_error(backprop, numerical)``. Run it in float64: float32 round-off swamps the
    central differences. ``h`` is the step (default ``H``); a model is asked for
    ``numerical_gradient(x, t, h=h)`` only when ``h`` is given.

    Backprop runs on ``x`` first (a cache of another batch is never used) and draws the
    dropout masks; they are held fixed while the numerical gradient is taken, and then each
    dropout's ``hold_mask`` and the running statistics (``buffers``) are put back as they were.
    """
    with _buffers_kept(obj):
        if _is_model(obj):
            analytic = {k: v.copy() for k, v in obj.gradient(x, t).items()}
            with _masks_held(obj):
                step = {} if h is None else {"h": h}
                numeric = obj.numerical_gradient(x, t, **step)
        else:
            x = np.asarray(x)
            if x.dtype.kind != "f":  # f nudges x in place: an int array cannot hold x + h
                x = x.astype(np.float64)
            analytic, numeric = _layer_gradients(obj, x, t, dout, rng, H if h is None else h)
    return {k: relative_error(analytic[k], numeric[k]) for k in numeric}
