"""The engine equals the book's code: ``reference = True`` runs each layer as the book does
(Convolution: im2col, one product, reshape, col2im; Pooling: im2col and argmax), and the fast
path must agree with it within float64 round-off, for every layer with two paths and for every
book network, forward and gradients, on one thread and on two."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from scratchdl import (
    DeepConvNet,
    MultiLayerNet,
    SimpleConvNet,
    TwoLayerNet,
    get_num_threads,
    set_num_threads,
)
from scratchdl.layers import Convolution, ConvReluPool, Pooling, Relu

RNG = np.random.default_rng(22)
RTOL, ATOL = 1e-12, 1e-13  # float64: sums in another order, nothing more


@pytest.fixture(autouse=True)
def restore_threads():
    before = get_num_threads()
    yield
    set_num_threads(before)


def randn(*shape):
    return RNG.standard_normal(shape)


def conv(FN=3, C=2, FH=3, FW=3, stride=1, pad=0):
    return Convolution(randn(FN, C, FH, FW), randn(FN), stride=stride, pad=pad)


LAYERS = [
    ("conv", lambda: conv(), (2, 2, 6, 5)),
    ("conv pad 1", lambda: conv(pad=1), (3, 2, 5, 5)),
    ("conv pad 3 (col2im)", lambda: conv(pad=3), (1, 2, 3, 3)),
    ("conv stride 2 pad 1", lambda: conv(stride=2, pad=1), (2, 2, 7, 7)),
    ("conv 2x3 filters", lambda: conv(FN=2, C=1, FH=2, FW=3, pad=1), (2, 1, 4, 5)),
    ("conv 1x1", lambda: conv(FN=4, C=3, FH=1, FW=1), (2, 3, 4, 4)),
    ("max pool 2x2", lambda: Pooling(2, 2, stride=2), (2, 3, 4, 6)),
    ("max pool 3x3 stride 1 pad 1", lambda: Pooling(3, 3, stride=1, pad=1), (2, 2, 4, 4)),
    ("max pool with gaps", lambda: Pooling(2, 2, stride=3, pad=1), (2, 2, 6, 6)),
    ("max pool 2x3", lambda: Pooling(2, 3, stride=1), (2, 2, 4, 5)),
    (
        "fused conv-relu-pool",
        lambda: ConvReluPool(conv(pad=1), Relu(), Pooling(2, 2, stride=2)),
        (3, 2, 6, 4),
    ),
    ("fused conv-relu", lambda: ConvReluPool(conv(stride=2), Relu()), (2, 2, 7, 7)),
]


def set_reference(layer, value: bool) -> None:
    layer.reference = value
    for inner in getattr(layer, "layers", ()):
        inner.reference = value


@pytest.mark.parametrize("make, shape", [c[1:] for c in LAYERS], ids=[c[0] for c in LAYERS])
def test_every_layer_with_a_fast_path_equals_the_books_code(make, shape):
    fast = make()
    book = fast.twin()  # the same parameters, caches of its own
    set_reference(book, True)
    x = randn(*shape)
    y = book.forward(x, train=True)
    np.testing.assert_allclose(fast.forward(x, train=False), y, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(fast.forward(x, train=True), y, rtol=RTOL, atol=ATOL)
    dout = randn(*y.shape)
    np.testing.assert_allclose(fast.backward(dout), book.backward(dout), rtol=RTOL, atol=ATOL)
    assert fast.grads.keys() == book.grads.keys() == fast.params.keys()
    for key in fast.grads:
        np.testing.assert_allclose(fast.grads[key], book.grads[key], rtol=RTOL, atol=ATOL)


def test_the_books_convolution_is_im2col_and_one_product():
    # the reference path itself: against a plain loop over every output
    layer = conv(FN=2, C=2, stride=2, pad=1)
    layer.reference = True
    x = randn(2, 2, 5, 5)
    W, b = layer.params["W"], layer.params["b"]
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    want = np.empty((2, 2, 3, 3))
    for n, f, i, j in np.ndindex(*want.shape):
        want[n, f, i, j] = np.sum(xp[n, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * W[f]) + b[f]
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
def test_max_pooling_of_integers_with_padding_is_exact_on_both_paths(dtype):
    x = RNG.integers(0, 200, (2, 2, 5, 5)).astype(dtype)
    fast, book = Pooling(3, 3, stride=2, pad=1), Pooling(3, 3, stride=2, pad=1)
    book.reference = True
    y = fast.forward(x, train=True)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, book.forward(x, train=True))
    dout = randn(*y.shape)
    np.testing.assert_array_equal(fast.backward(dout), book.backward(dout))


def networks():
    yield "TwoLayerNet", TwoLayerNet(6, 5, 3, weight_init_std=0.5, rng=0, dtype=np.float64)
    yield "MultiLayerNet+BN+dropout+decay", MultiLayerNet(
        6, [5, 4], 3, use_batchnorm=True, use_dropout=True, dropout_ratio=0.3,
        weight_decay_lambda=0.1, rng=1, dtype=np.float64,
    )  # fmt: skip
    yield "SimpleConvNet", SimpleConvNet(
        (1, 10, 10), {"filter_num": 4, "filter_size": 3, "pad": 1, "stride": 1}, 6, 3,
        weight_init_std=0.3, rng=2, dtype=np.float64,
    )  # fmt: skip
    yield (
        "DeepConvNet",
        DeepConvNet((1, 12, 12), hidden_size=8, output_size=3, rng=3, dtype=np.float64),
    )


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name, model", list(networks()), ids=[n for n, _ in networks()])
def test_every_book_network_equals_its_book_code(name, model, threads):
    # two copies, the same random generators: the same dropout masks, drawn in turn
    book = copy.deepcopy(model)
    book.reference = True
    assert book.reference and not model.reference
    assert all(layer.reference for layer in book.layers)
    assert len(book.plan.stages(book.layers)) == len(book.layers)  # nothing fused
    N = 6
    x = RNG.standard_normal((N, *model.input_shape))
    t = RNG.integers(0, model.output_size, N)
    set_num_threads(threads)
    for step in range(2):  # the second step after an optimizer-free change of the weights
        g_fast, g_book = model.gradient(x, t), book.gradient(x, t)
        assert model.last_loss == pytest.approx(book.last_loss, rel=1e-13)
        assert g_fast.keys() == g_book.keys() == model.params.keys()
        for key in g_fast:
            np.testing.assert_allclose(
                g_fast[key], g_book[key], rtol=1e-11, atol=1e-13, err_msg=f"{key}, step {step}"
            )
            model.params[key] -= 0.1 * g_fast[key]
            book.params[key] -= 0.1 * g_fast[key]
    for key in model.buffers:  # batch norm's running statistics saw the same batches
        np.testing.assert_allclose(model.buffers[key], book.buffers[key], rtol=1e-12)
    np.testing.assert_allclose(model.predict(x), book.predict(x), rtol=1e-12, atol=1e-13)


def test_the_reference_gradient_is_the_numerical_gradient():
    model = SimpleConvNet(
        (2, 7, 7), {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 2}, 5, 3,
        weight_init_std=0.3, rng=4, dtype=np.float64,
    )  # fmt: skip
    model.reference = True
    x, t = RNG.standard_normal((3, 2, 7, 7)), np.array([0, 2, 1])
    grads = model.gradient(x, t)
    numeric = model.numerical_gradient(x, t)
    for key in grads:
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_reference_is_a_flag_and_refuses_anything_else():
    model = TwoLayerNet(4, 3, 2, rng=0)
    with pytest.raises(ValueError, match="reference must be True or False"):
        model.reference = "yes"
    model.reference = True
    model.reference = False
    assert not any(layer.reference for layer in model.layers)
