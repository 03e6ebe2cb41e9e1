"""Shared test helpers: the one gradient-check helper every layer test uses, and the book's
weight files, found as a user finds them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from scratchdl.files.book_weights import ENV_BOOK_WEIGHTS, find_book_weights
from scratchdl.gradient import gradient_check

# The book's weight files: the tests find them as users do, through $SCRATCHDL_BOOK_WEIGHTS,
# which points at the shared folder beside the repository when it is there and the variable
# is unset (set here, before the test modules are read, so that module constants see it).
SHARED_BOOK_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "book-weights"
if not os.environ.get(ENV_BOOK_WEIGHTS) and SHARED_BOOK_WEIGHTS.is_dir():
    os.environ[ENV_BOOK_WEIGHTS] = str(SHARED_BOOK_WEIGHTS)


def book_weights(book_path: str) -> Path:
    """Where the book's file (e.g. "ch07/params.pkl") is, or skip the test without it."""
    path = find_book_weights().get(book_path)
    if path is None:
        pytest.skip(f"the book's {book_path} is not here (set ${ENV_BOOK_WEIGHTS})")
    return path


TOL = 1e-6  # float64 central differences agree with backprop to ~1e-9; 1e-6 leaves margin


def check_layer_gradients(layer, x, t=None, *, rng=0, tol=TOL) -> dict[str, float]:
    """Assert a layer's dx and parameter gradients equal numerical ones, in float64.

    Uses a random upstream gradient (never all ones) and checks that backward leaves
    ``dout`` and ``x`` untouched. Returns the error report.
    """
    rng = np.random.default_rng(rng)
    assert x.dtype == np.float64, "gradient checks run in float64"
    if t is None:
        out = layer.forward(x, train=True)
        dout = rng.standard_normal(out.shape)
    else:
        dout = float(rng.uniform(0.5, 2.0))
    x_before = x.copy()
    dout_before = np.copy(dout)
    # backward must not write into dout or x: run it on the very arrays, then compare
    if t is None:
        layer.forward(x, train=True)
    else:
        layer.forward(x, t)
    layer.backward(dout)
    np.testing.assert_array_equal(np.asarray(dout), dout_before, err_msg="backward changed dout")
    np.testing.assert_array_equal(x, x_before, err_msg="forward/backward changed x")
    report = gradient_check(layer, x, t, dout=dout)
    np.testing.assert_array_equal(x, x_before, err_msg="the gradient check did not restore x")
    assert set(report) == {"x", *layer.params}, report
    bad = {k: v for k, v in report.items() if not v < tol}
    assert not bad, f"{type(layer).__name__}: gradient errors above {tol}: {bad}"
    return report


def mnist_slice(flatten: bool = False):
    """The real MNIST sample shipped with the package: 2000 training and 1000 test images."""
    from scratchdl.datasets import load_mnist_sample

    return load_mnist_sample(flatten=flatten)


def held_arrays(obj) -> list[np.ndarray]:
    """The arrays an object of the library keeps in its public attributes, and those of the
    library objects it holds (a fused layer's layers, an engine and its memory), but for a
    layer's reference to its input ``x`` (only read; a stale one may overlap a newer pass's
    input, which is harmless)."""
    found: list[np.ndarray] = []
    seen: set[int] = set()

    def walk(value, name: str = "") -> None:
        if id(value) in seen or name == "x" or name.startswith("_"):
            return
        seen.add(id(value))
        if isinstance(value, np.ndarray):
            found.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, str(key))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif type(value).__module__.startswith("scratchdl") and hasattr(value, "__dict__"):
            for key, item in vars(value).items():
                walk(item, key)

    walk(obj)
    return found
