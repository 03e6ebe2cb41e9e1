"""The book's pickled weights: imported into our networks they predict as the book's own code
does (a transcription of its forward pass), and its test-time Dropout is folded into the weights."""

from __future__ import annotations

import hashlib
import pickle
import re

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from scratchdl.files import import_book_params
from scratchdl.layers import BN_EPS, Affine, Dropout, Relu, Sigmoid
from scratchdl.models import DeepConvNet, MultiLayerNet, Sequential, SimpleConvNet
from tests.conftest import (
    SHARED_BOOK_WEIGHTS,
    book_like_params,
    expect_error,
    pickle_file,
    small_convnet,
)

BOOK = SHARED_BOOK_WEIGHTS
needs_book = pytest.mark.skipif(not BOOK.is_dir(), reason=f"no book weights at {BOOK}")
SIMPLE_PKL = BOOK / "simple_convnet_params.pkl"
DEEP_PKL = BOOK / "deep_convnet_params.pkl"
RNG = np.random.default_rng(7)


def book_conv(x, W, b, stride=1, pad=0):
    """Convolution as the book defines it (cross-correlation), by a naive sliding window."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    FN, C, FH, FW = W.shape
    win = sliding_window_view(xp, (FH, FW), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,fcij->nfhw", win, W, optimize=True) + b[None, :, None, None]


def book_pool(x):
    """2x2 max pooling, stride 2."""
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))


def book_relu(x):
    return np.maximum(x, 0)


def book_simple_convnet(p, x):
    """The book's SimpleConvNet.predict: conv - relu - pool - affine - relu - affine."""
    h = book_pool(book_relu(book_conv(x, p["W1"], p["b1"])))
    h = book_relu(h.reshape(len(x), -1) @ p["W2"] + p["b2"])
    return h @ p["W3"] + p["b3"]


def book_deep_convnet(p, x, dropout_ratio=0.5):
    """The book's DeepConvNet.predict(train_flg=False): its Dropout multiplies by 1 - ratio."""
    h = x
    for i, pad in enumerate([1, 1, 1, 2, 1, 1]):
        h = book_relu(book_conv(h, p[f"W{i + 1}"], p[f"b{i + 1}"], 1, pad))
        if i % 2 == 1:
            h = book_pool(h)
    h = book_relu(h.reshape(len(x), -1) @ p["W7"] + p["b7"]) * (1 - dropout_ratio)
    return (h @ p["W8"] + p["b8"]) * (1 - dropout_ratio)


def _synthetic_digits(n, seed=0):
    """Deterministic digit-like images: a few thick random strokes on a blank 28x28 canvas."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, 28, 28), dtype=np.float32)
    yy, xx = np.mgrid[0:28, 0:28]
    for img in x:
        for _ in range(rng.integers(1, 4)):
            (r0, c0), (r1, c1) = rng.uniform(5, 23, size=(2, 2))
            for s in np.linspace(0, 1, 12):
                r, c = r0 + s * (r1 - r0), c0 + s * (c1 - c0)
                img[0] = np.maximum(img[0], np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 2.0))
    return x, None


@pytest.fixture(scope="module")
def digits():
    """The first 1000 MNIST test images and labels if the data is here, else synthetic ones."""
    try:
        from scratchdl.datasets import load_mnist, where

        if where("mnist")["mnist"]["used"] is None:  # never download in a test
            raise FileNotFoundError("no MNIST here")
        (_, _), (x, t) = load_mnist(flatten=False, progress=False)
        return x[:1000], t[:1000]
    except Exception:
        return _synthetic_digits(200)


def _raw_book_params(path):
    with open(path, "rb") as f:
        return pickle.load(f)  # the book's own file, in the test only: trusted, hash-checked


@needs_book
def test_book_files_match_their_readme_sha256():
    readme = (BOOK / "README.md").read_text()
    listed = dict(re.findall(r"`([\w.]+\.pkl)`.*?\b([0-9a-f]{64})\b", readme))
    assert {SIMPLE_PKL.name, DEEP_PKL.name} <= set(listed)  # the README may list more files
    for name, sha in listed.items():
        assert hashlib.sha256((BOOK / name).read_bytes()).hexdigest() == sha, name


@needs_book
@pytest.mark.parametrize(
    "path, cls, reference, min_accuracy",
    [
        # measured on the first 1000 MNIST test images: 0.961 and 0.976 (the book's text
        # reports 98.9 % / 99.3 % for its own training runs; these files give less)
        (SIMPLE_PKL, SimpleConvNet, book_simple_convnet, 0.95),
        (DEEP_PKL, DeepConvNet, book_deep_convnet, 0.97),
    ],
    ids=["SimpleConvNet", "DeepConvNet"],
)
def test_imported_book_weights_predict_like_the_books_code(
    path, cls, reference, min_accuracy, digits
):
    raw = _raw_book_params(path)
    x, t = digits
    x64 = x[:100].astype(np.float64)
    expected = reference(raw, x64)

    model64 = cls(dtype=np.float64)
    report = import_book_params(path, model64)
    assert report["model"] == cls.__name__
    assert report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report["params"] == {k: list(v.shape) for k, v in raw.items()}
    assert report["dtype"] == "float64 -> float64"
    scores = model64.predict(x64)
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    np.testing.assert_array_equal(scores.argmax(axis=1), expected.argmax(axis=1))

    model32 = cls()  # float32, as models are trained and served
    assert import_book_params(path, model32)["dtype"] == "float64 -> float32"
    scores32 = model32.predict(x[:100])
    assert scores32.dtype == np.float32
    np.testing.assert_allclose(scores32, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    if t is not None:
        assert model32.accuracy(x, t) >= min_accuracy


@needs_book
def test_deep_convnet_dropout_is_folded_into_the_last_affine():
    raw = _raw_book_params(DEEP_PKL)
    model = DeepConvNet(dtype=np.float64)
    report = import_book_params(DEEP_PKL, model)
    assert report["dropout_scaling"] == {"W8": 0.25, "b8": 0.5}
    np.testing.assert_array_equal(model.params["W8"], 0.25 * raw["W8"])
    np.testing.assert_array_equal(model.params["b8"], 0.5 * raw["b8"])
    for name in ("W1", "b1", "W7", "b7"):
        np.testing.assert_array_equal(model.params[name], raw[name])


@needs_book
def test_book_files_that_do_not_fit_the_model_are_refused():
    expect_error(
        lambda: import_book_params(SIMPLE_PKL, DeepConvNet()),
        SIMPLE_PKL,
        "do not fit this DeepConvNet",
        "missing ['W4'",
    )
    expect_error(
        lambda: import_book_params(SIMPLE_PKL, SimpleConvNet(hidden_size=50)),
        SIMPLE_PKL,
        "W2 is (4320, 100) in the file but (4320, 50) here",
        "W3",
    )


@needs_book
def test_truncated_book_files_are_refused(tmp_path):
    raw = SIMPLE_PKL.read_bytes()
    for cut in (0, 1, 2, 11, 60, 200, len(raw) // 2, len(raw) - 1):
        path = tmp_path / f"cut{cut}.pkl"
        path.write_bytes(raw[:cut])
        message = expect_error(lambda p=path: import_book_params(p, SimpleConvNet()), path)
        assert "truncated" in message or "empty" in message, message


@pytest.mark.parametrize("protocol", [3, 4, 5])  # 5: Python 3.14's default, via _frombuffer
def test_pickles_of_plain_float_arrays_are_imported(tmp_path, protocol):
    model = small_convnet(np.float32)
    params = book_like_params(model)
    params["W2"] = np.asfortranarray(params["W2"])  # numpy pickles its bytes in Fortran order
    path = pickle_file(tmp_path, params, protocol=protocol)
    report = import_book_params(path, model)
    assert report["dropout_scaling"] == {}
    for name, value in params.items():
        np.testing.assert_array_equal(model.params[name], value.astype(np.float32), err_msg=name)


def test_import_keeps_buffers_and_folds_dropout_of_a_multilayer_net(tmp_path):
    model = MultiLayerNet(
        5, [4, 3], 2, use_batchnorm=True, use_dropout=True, dropout_ratio=0.2, rng=0,
        dtype=np.float64,
    )  # fmt: skip
    x = RNG.standard_normal((6, 5))
    model.loss(x, RNG.integers(0, 2, 6), train=True)
    buffers = {k: v.copy() for k, v in model.buffers.items()}
    params = book_like_params(model, seed=1)
    report = import_book_params(pickle_file(tmp_path, params), model)
    assert report["dropout_scaling"] == {"W2": pytest.approx(0.8), "W3": pytest.approx(0.8)}
    for name, value in buffers.items():
        np.testing.assert_array_equal(model.buffers[name], value, err_msg=name)
    # the book's MultiLayerNetExtend at test time: Affine - BN - ReLU - Dropout(x 0.8) - ...
    h = x
    for i in (1, 2):
        h = h @ params[f"W{i}"] + params[f"b{i}"]
        rm, rv = buffers[f"running_mean{i}"], buffers[f"running_var{i}"]
        h = params[f"gamma{i}"] * (h - rm) / np.sqrt(rv + BN_EPS) + params[f"beta{i}"]
        h = book_relu(h) * 0.8
    expected = h @ params["W3"] + params["b3"]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10, atol=1e-12)


def test_dropout_cannot_be_folded_through_a_non_homogeneous_layer(tmp_path):
    def net(layers):
        return Sequential(layers, dtype=np.float64)

    before_sigmoid = net(
        [
            Affine(np.ones((2, 2)), np.zeros(2)),
            Dropout(0.5),
            Sigmoid(),
            Affine(np.ones((2, 2)), np.zeros(2)),
        ]
    )
    after_sigmoid = net([Affine(np.ones((2, 2)), np.zeros(2)), Sigmoid(), Dropout(0.5)])
    for model in (before_sigmoid, after_sigmoid):
        path = pickle_file(tmp_path, book_like_params(model))
        with pytest.raises(ValueError, match="cannot fold the book's test-time Dropout"):
            import_book_params(path, model)
    trailing = net([Affine(np.ones((2, 2)), np.zeros(2)), Relu(), Dropout(0.25)])
    params = book_like_params(trailing)
    assert import_book_params(pickle_file(tmp_path, params), trailing)["dropout_scaling"] == {
        "W1": 0.75,
        "b1": 0.75,
    }
