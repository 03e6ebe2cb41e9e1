"""Shared test helpers: the one gradient-check helper every layer test uses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from scratchdl.gradient import gradient_check

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


SLICE_DIR = Path(__file__).parent / "data" / "mnist-slice"
SLICE_SHA256 = {
    "train-images-idx3-ubyte.gz": "d747f627e508234c9c7e49073a627f4195b719626ac15a67258d16f8371b9dd7",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "4857b7883e0731d51eb3acbd00b844f68d431ded9207b94c2bb8122152f83738",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "c38842f3fc122aeb56961328eacf41c4315fb33e95ce0e9d0c97f3bd3d5b62c6",  # noqa: E501
    "t10k-labels-idx1-ubyte.gz": "689b4d1da0ae1049125d2f91e157009a132a2a1e76b45a178dc0b359e1f74255",  # noqa: E501
}


def mnist_slice(flatten: bool = False):
    """The committed real MNIST slice: (x_train, t_train), (x_test, t_test), 2000 / 1000 rows.

    Images float32 in [0, 1], (N, 1, 28, 28) or (N, 784); labels int64.
    """
    from scratchdl.datasets import read_idx

    arrays = {}
    for name, digest in SLICE_SHA256.items():
        data = (SLICE_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{name} changed"
        arrays[name] = read_idx(data)
    shape = (-1, 784) if flatten else (-1, 1, 28, 28)

    def images(key):
        return (arrays[key].astype(np.float32) / 255).reshape(shape)

    return (
        (
            images("train-images-idx3-ubyte.gz"),
            arrays["train-labels-idx1-ubyte.gz"].astype(np.int64),
        ),
        (images("t10k-images-idx3-ubyte.gz"), arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64)),
    )
