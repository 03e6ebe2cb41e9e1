"""Every layer: gradient check, contract, shapes, and equality with naive loops."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from scratchdl import layers as L
from scratchdl.engine import ConvEngine
from tests.conftest import check_layer_gradients

RNG = np.random.default_rng(1234)


def randn(*shape):
    return RNG.standard_normal(shape)


def conv_layer(FN=3, C=2, FH=3, FW=3, stride=1, pad=0):
    return L.Convolution(randn(FN, C, FH, FW), randn(FN), stride=stride, pad=pad)


def bn(D):
    return L.BatchNormalization(RNG.uniform(0.5, 1.5, D), randn(D))


def dropout_fixed_mask(shape):
    layer = L.Dropout(0.3, rng=5)
    layer.forward(np.zeros(shape), train=True)  # draw one mask, then keep it
    layer.hold_mask = True
    return layer


# (id, layer factory, input, labels or None). Every layer class needs at least one case.
CASES = [
    ("Relu", L.Relu, lambda: randn(4, 5), None),
    ("Sigmoid", L.Sigmoid, lambda: randn(4, 5), None),
    ("Tanh", L.Tanh, lambda: randn(4, 5), None),
    ("Affine-2d", lambda: L.Affine(randn(5, 3), randn(3)), lambda: randn(4, 5), None),
    ("Affine-4d", lambda: L.Affine(randn(12, 3), randn(3)), lambda: randn(2, 3, 2, 2), None),
    ("Flatten", L.Flatten, lambda: randn(2, 3, 2, 2), None),
    ("BatchNormalization-2d", lambda: bn(5), lambda: randn(6, 5) * 3 + 1, None),
    ("BatchNormalization-4d", lambda: bn(3), lambda: randn(4, 3, 3, 2) * 2 - 1, None),
    ("Dropout", lambda: dropout_fixed_mask((4, 6)), lambda: randn(4, 6), None),
    # a mask not held: the check itself must hold the mask it draws
    ("Dropout-fresh-mask", lambda: L.Dropout(0.3, rng=5), lambda: randn(4, 6), None),
    ("Convolution", conv_layer, lambda: randn(2, 2, 5, 5), None),
    ("Convolution-pad", lambda: conv_layer(pad=1), lambda: randn(2, 2, 5, 4), None),
    ("Convolution-pad-2", lambda: conv_layer(pad=2), lambda: randn(2, 2, 4, 4), None),
    ("Convolution-pad-3-col2im", lambda: conv_layer(pad=3), lambda: randn(1, 2, 3, 3), None),
    (
        "Convolution-stride-pad",
        lambda: conv_layer(stride=2, pad=1),
        lambda: randn(2, 2, 5, 5),
        None,
    ),
    (
        "Convolution-rect",
        lambda: conv_layer(FN=2, C=1, FH=2, FW=3, pad=1),
        lambda: randn(2, 1, 4, 5),
        None,
    ),
    ("Pooling", lambda: L.Pooling(2, 2, stride=2), lambda: randn(2, 3, 4, 4), None),
    (
        "Pooling-overlap-pad",
        lambda: L.Pooling(3, 3, stride=1, pad=1),
        lambda: randn(2, 2, 4, 4),
        None,
    ),
    (  # windows with gaps between them: the cells no window covers get no gradient
        "Pooling-gaps-pad",
        lambda: L.Pooling(2, 2, stride=3, pad=1),
        lambda: randn(2, 2, 6, 6),
        None,
    ),
    ("AvgPooling", lambda: L.AvgPooling(2, 2, stride=2), lambda: randn(2, 3, 4, 4), None),
    (  # the fused block: convolution, ReLU and max pooling in one pass over the bands
        "ConvReluPool",
        lambda: L.ConvReluPool(conv_layer(pad=1), L.Relu(), L.Pooling(2, 2, stride=2)),
        lambda: randn(2, 2, 4, 6),
        None,
    ),
    (
        "ConvReluPool-no-pool",
        lambda: L.ConvReluPool(conv_layer(stride=2), L.Relu()),
        lambda: randn(2, 2, 5, 5),
        None,
    ),
    (
        "AvgPooling-gaps",
        lambda: L.AvgPooling(2, 1, stride=3),
        lambda: randn(2, 2, 5, 4),
        None,
    ),
    (
        "AvgPooling-overlap-pad",
        lambda: L.AvgPooling(3, 2, stride=1, pad=1),
        lambda: randn(2, 2, 4, 3),
        None,
    ),
    (
        "SoftmaxWithLoss-labels",
        L.SoftmaxWithLoss,
        lambda: randn(5, 4),
        lambda: RNG.integers(0, 4, 5),
    ),
    (
        "SoftmaxWithLoss-onehot",
        L.SoftmaxWithLoss,
        lambda: randn(5, 4),
        lambda: np.eye(4)[RNG.integers(0, 4, 5)],
    ),
    (  # soft labels: dx = (y - t) / N for any target distribution
        "SoftmaxWithLoss-soft",
        L.SoftmaxWithLoss,
        lambda: randn(5, 4),
        lambda: RNG.dirichlet(np.ones(4), size=5),
    ),
    ("IdentityWithLoss", L.IdentityWithLoss, lambda: randn(5, 3), lambda: randn(5, 3)),
]


@pytest.mark.parametrize("name,make,make_x,make_t", CASES, ids=[c[0] for c in CASES])
def test_gradient_check(name, make, make_x, make_t):
    check_layer_gradients(make(), make_x(), None if make_t is None else make_t())


def test_batchnorm_eval_mode_gradient():
    layer = bn(4)
    layer.buffers["running_mean"][:] = randn(4)
    layer.buffers["running_var"][:] = RNG.uniform(0.5, 2, 4)
    x, dout = randn(3, 4), randn(3, 4)
    from scratchdl.gradient import numerical_gradient

    layer.forward(x, train=False)
    dx = layer.backward(dout)
    num = numerical_gradient(lambda _: float(np.sum(layer.forward(x, train=False) * dout)), x)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "name,make,make_x,make_t",
    [case for case in CASES if case[0] != "Dropout"],  # that one forwards to fix its mask
    ids=[case[0] for case in CASES if case[0] != "Dropout"],
)
def test_backward_before_forward_is_one_clear_error(name, make, make_x, make_t):
    layer = make()
    dout = 1.0 if make_t is not None else make_x()  # any dout: nothing is computed
    cls = type(layer).__name__
    with pytest.raises(RuntimeError, match=rf"^{cls}\.backward needs a forward pass"):
        layer.backward(dout)  # was an AttributeError or TypeError; Dropout returned dout
    if layer.params:  # a model's first layer gets backward_params
        with pytest.raises(RuntimeError, match=rf"^{cls}\.backward needs a forward pass"):
            layer.backward_params(dout)


def test_dropout_backward_after_an_inference_forward_passes_dout_through():
    layer, x, dout = L.Dropout(0.5, rng=0), randn(3, 4), randn(3, 4)
    layer.forward(x, train=False)
    np.testing.assert_array_equal(layer.backward(dout), dout)


def test_every_layer_class_has_a_gradient_case():
    classes = {
        name
        for name, obj in vars(L).items()
        if inspect.isclass(obj)
        and issubclass(obj, L.Layer)
        and obj is not L.Layer
        and not name.startswith("_")
    }
    covered = {case[0].split("-")[0] for case in CASES}
    assert classes - covered == set(), f"layers without a gradient-check case: {classes - covered}"


# --- naive references ------------------------------------------------------------------------


def naive_conv(x, W, b, stride, pad):
    N, C, H, Wd = x.shape
    FN, _, FH, FW = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = (H + 2 * pad - FH) // stride + 1, (Wd + 2 * pad - FW) // stride + 1
    out = np.zeros((N, FN, OH, OW))
    for n in range(N):
        for f in range(FN):
            for i in range(OH):
                for j in range(OW):
                    patch = xp[n, :, i * stride : i * stride + FH, j * stride : j * stride + FW]
                    out[n, f, i, j] = np.sum(patch * W[f]) + b[f]
    return out


def naive_pool(x, PH, PW, stride, pad, reduce):
    N, C, H, W = x.shape
    fill = -np.inf if reduce is np.max else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    OH, OW = (H + 2 * pad - PH) // stride + 1, (W + 2 * pad - PW) // stride + 1
    out = np.zeros((N, C, OH, OW))
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    out[n, c, i, j] = reduce(
                        xp[n, c, i * stride : i * stride + PH, j * stride : j * stride + PW]
                    )
    return out


@pytest.mark.parametrize(
    "stride,pad,FH,FW,H,W",
    [(1, 0, 3, 3, 8, 8), (2, 1, 3, 3, 9, 7), (1, 2, 2, 3, 6, 5), (3, 0, 2, 2, 8, 5)],
)
def test_convolution_equals_naive_loops(stride, pad, FH, FW, H, W):
    x, W, b = randn(2, 3, H, W), randn(4, 3, FH, FW), randn(4)
    out = L.Convolution(W, b, stride, pad).forward(x)
    np.testing.assert_allclose(out, naive_conv(x, W, b, stride, pad), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cls,reduce", [(L.Pooling, np.max), (L.AvgPooling, np.mean)])
@pytest.mark.parametrize(
    "P,stride,pad,size", [(2, 2, 0, 6), (3, 1, 1, 5), (3, 2, 1, 7), (2, 1, 0, 5)]
)
def test_pooling_equals_naive_loops(cls, reduce, P, stride, pad, size):
    x = randn(2, 3, size, size)
    out = cls(P, P, stride=stride, pad=pad).forward(x)
    np.testing.assert_allclose(out, naive_pool(x, P, P, stride, pad, reduce), rtol=1e-12)


def test_max_pool_padding_never_wins():
    x = -np.abs(randn(1, 1, 4, 4)) - 1  # every value negative: a zero pad would win
    out = L.Pooling(3, 3, stride=1, pad=1).forward(x)
    assert np.all(out < 0)


def test_max_pool_backward_routes_to_first_maximum_only():
    x = np.zeros((1, 1, 2, 2))  # a 4-way tie
    layer = L.Pooling(2, 2, stride=2)
    layer.forward(x, train=True)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    assert dx.sum() == 1 and dx[0, 0, 0, 0] == 1


# --- contract and dtype ----------------------------------------------------------------------


def test_loss_layer_backward_scales_by_dout():
    layer = L.SoftmaxWithLoss()
    x, t = randn(4, 3), np.array([0, 1, 2, 1])
    layer.forward(x, t)
    np.testing.assert_allclose(layer.backward(2.5), 2.5 * layer.backward(1.0))


def test_softmax_with_loss_matches_formula_and_is_stable():
    x = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    loss = L.SoftmaxWithLoss().forward(x, np.array([0, 2]))
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, (0.0 + np.log(3)) / 2)


def test_softmax_with_loss_of_soft_targets_is_the_books_formula():
    x, t = randn(4, 3), RNG.dirichlet(np.ones(3), size=4)
    layer = L.SoftmaxWithLoss()
    y = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    assert layer.forward(x, t) == pytest.approx(-np.sum(t * np.log(y)) / 4, rel=1e-10)
    np.testing.assert_allclose(layer.backward(1.0), (y - t) / 4, rtol=1e-10, atol=1e-15)
    # float64 target rows do not turn a float32 network's gradient into float64
    layer.forward(x.astype(np.float32), t)
    assert layer.backward(1.0).dtype == np.float32
    with pytest.raises(ValueError, match=r"t\[0\]"):
        layer.forward(x, np.zeros((4, 3)))


def test_dropout_is_inverted_and_deterministic_at_test_time():
    layer = L.Dropout(0.5, rng=0)
    x = np.ones((2000, 50))
    np.testing.assert_array_equal(layer.forward(x, train=False), x)
    y = layer.forward(x, train=True)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert abs(y.mean() - 1.0) < 0.02  # the expectation is kept


def test_batchnorm_running_statistics_follow_the_momentum_rule():
    layer = bn(3)
    x = randn(50, 3) * 2 + 5
    layer.forward(x, train=True)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(layer.buffers["running_var"], 0.9 + 0.1 * x.var(axis=0))
    y = layer.forward(x, train=False)  # inference uses the running statistics
    g, b = layer.params["gamma"], layer.params["beta"]
    rm, rv = layer.buffers["running_mean"], layer.buffers["running_var"]
    np.testing.assert_allclose(y, g * (x - rm) / np.sqrt(rv + layer.eps) + b)


def test_batchnorm_4d_normalises_per_channel():
    layer = L.BatchNormalization(np.ones(3), np.zeros(3))
    y = layer.forward(randn(8, 3, 4, 4) * 5 + 2, train=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-10)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_keep_dtype(dtype):
    x = randn(2, 2, 6, 6).astype(dtype)
    conv = L.Convolution(randn(3, 2, 3, 3).astype(dtype), np.zeros(3, dtype), pad=1)
    seq = [
        conv,
        bn(3),
        L.Relu(),
        L.Pooling(2, 2, 2),
        L.AvgPooling(1, 1),
        L.Sigmoid(),
        L.Tanh(),
        L.Flatten(),
        L.Dropout(0.5, rng=0),
        L.Affine(randn(27, 4).astype(dtype), np.zeros(4, dtype)),
    ]
    seq[1] = L.BatchNormalization(np.ones(3, dtype), np.zeros(3, dtype))
    for layer in seq:
        x = layer.forward(x, train=True)
        assert x.dtype == dtype, f"{layer!r} changed dtype to {x.dtype}"
    dout = np.ones_like(x)
    for layer in reversed(seq):
        dout = layer.backward(dout)
        assert dout.dtype == dtype, f"{layer!r} backward changed dtype to {dout.dtype}"
        assert all(g.dtype == dtype for g in layer.grads.values()), repr(layer)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
def test_avg_pooling_of_integers_is_the_mean(dtype):
    x = RNG.integers(200, 256, (2, 3, 4, 4)).astype(dtype)  # uint8 sums overflow: 4 * 200 > 255
    out = L.AvgPooling(2, 2, stride=2).forward(x)
    assert out.dtype == np.float64  # as numpy's mean
    np.testing.assert_allclose(out, x.reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5)), rtol=1e-15)
    assert np.any(out % 1 != 0)  # the means are not all integers: nothing was rounded


def seeded(make):
    """A factory whose every call gives a layer of the very same parameters and random state."""
    return lambda: make(np.random.default_rng(7))


# layers whose output is exact in integers keep them; the rest compute in float64
INT_CASES = [
    ("Relu", seeded(lambda r: L.Relu()), True),
    ("Flatten", seeded(lambda r: L.Flatten()), True),
    ("Pooling", seeded(lambda r: L.Pooling(2, 2, stride=2)), True),
    ("AvgPooling", seeded(lambda r: L.AvgPooling(2, 2, stride=2, pad=1)), False),
    ("Sigmoid", seeded(lambda r: L.Sigmoid()), False),
    ("Tanh", seeded(lambda r: L.Tanh()), False),
    ("Affine", seeded(lambda r: L.Affine(r.standard_normal((48, 2)), r.standard_normal(2))), False),
    (
        "Convolution",
        seeded(lambda r: L.Convolution(r.standard_normal((2, 3, 3, 3)), r.standard_normal(2))),
        False,
    ),
    (
        "BatchNormalization",
        seeded(lambda r: L.BatchNormalization(r.uniform(0.5, 1.5, 3), r.standard_normal(3))),
        False,
    ),
    ("Dropout", seeded(lambda r: L.Dropout(0.5, rng=r)), False),
]


@pytest.mark.parametrize("make,exact", [c[1:] for c in INT_CASES], ids=[c[0] for c in INT_CASES])
@pytest.mark.parametrize("train", [False, True])
def test_integer_input_gives_what_its_float64_copy_gives(make, exact, train):
    x = RNG.integers(-9, 10, (2, 3, 4, 4))
    out = make().forward(x, train=train)
    expected = make().forward(x.astype(np.float64), train=train)
    assert out.dtype == (x.dtype if exact else np.float64)
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=1e-15)


# --- bad input -------------------------------------------------------------------------------


def test_convolution_rejects_non_4d_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(3, 8, 8\)"):
        conv_layer().forward(randn(3, 8, 8))


def test_convolution_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\).*\(1, 3, 8, 8\)"):
        conv_layer().forward(randn(1, 3, 8, 8))


@pytest.mark.parametrize("P,stride,size", [(5, 1, 4), (2, 2, 5)])
def test_pool_that_does_not_fit_is_refused(P, stride, size):
    with pytest.raises(ValueError, match=str(size)):
        L.Pooling(P, P, stride=stride).forward(randn(1, 1, size, size))


def test_affine_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"\(N, 5\).*\(4, 6\)"):
        L.Affine(randn(5, 3), randn(3)).forward(randn(4, 6))


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_dropout_ratio_outside_unit_interval_is_refused(ratio):
    with pytest.raises(ValueError, match=str(ratio)):
        L.Dropout(ratio)


def test_layer_reprs_name_the_configuration():
    assert repr(conv_layer(stride=2, pad=1)) == "Convolution(2, 3, kernel=(3, 3), stride=2, pad=1)"
    assert repr(L.Pooling(2, 2, stride=2)) == "Pooling((2, 2), stride=2, pad=0)"
    assert repr(L.Dropout(0.25)) == "Dropout(dropout_ratio=0.25)"


@pytest.mark.parametrize(
    "make,shape",
    [(conv_layer, (2, 2, 5, 5)), (lambda: L.Affine(randn(5, 3), randn(3)), (4, 5))],
)
def test_backward_params_gives_the_same_parameter_gradients_as_backward(make, shape):
    layer = make()
    x = randn(*shape)
    dout = randn(*layer.forward(x).shape)
    assert layer.backward(dout).shape == x.shape
    full = {k: v.copy() for k, v in layer.grads.items()}
    layer.grads = {}
    assert layer.backward_params(dout) is None
    for k in full:
        np.testing.assert_array_equal(layer.grads[k], full[k])


@pytest.mark.parametrize(
    "make,shape",
    [(conv_layer, (2, 2, 5, 5)), (lambda: L.Affine(randn(5, 3), randn(3)), (4, 5))],
)
def test_a_model_leaves_the_layers_it_is_given_usable_on_their_own(make, shape):
    # a model skips its first layer's input gradient, but never by changing that layer:
    # whoever else uses the layer still gets dx from backward
    from scratchdl.models import Sequential

    layer = make()
    x = randn(*shape)
    model = Sequential([layer, L.Flatten()], input_shape=shape[1:], dtype=np.float64)
    model.gradient(x, np.zeros(len(x), dtype=int))
    y = layer.forward(x)
    dx = layer.backward(randn(*y.shape))
    assert dx is not None and dx.shape == x.shape


@pytest.mark.parametrize("pad", [0, 1, 2])
@pytest.mark.parametrize("FN,C", [(2, 4), (4, 2)])  # dx by full convolution / by col2im
def test_convolution_dx_equals_col2im_of_dout_times_W(pad, FN, C):
    from scratchdl import col2im

    layer = conv_layer(FN=FN, C=C, pad=pad)
    x = randn(2, C, 6, 5)
    dout = randn(*layer.forward(x).shape)
    FH, FW = layer.params["W"].shape[2:]
    dcol = dout.transpose(0, 2, 3, 1).reshape(-1, FN) @ layer.params["W"].reshape(FN, -1)
    expected = col2im(dcol, x.shape, FH, FW, 1, pad)
    np.testing.assert_allclose(layer.backward(dout), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "FN,C,stride,pad", [(2, 4, 1, 1), (4, 2, 1, 1), (3, 2, 2, 1), (2, 3, 1, 0), (3, 3, 2, 2)]
)
@pytest.mark.parametrize("chunk_bytes", [1, 300, 2000])  # 1 byte: one row of one image a tile
def test_convolution_in_small_tiles_equals_one_tile(FN, C, stride, pad, chunk_bytes):
    # the layer builds its im2col matrix in tiles of chunk_bytes: bands of output rows over
    # the whole batch, or one row of part of the batch; every tiling gives the same result
    x = randn(5, C, 7, 7)
    whole, tiled = conv_layer(FN=FN, C=C, stride=stride, pad=pad), None
    tiled = L.Convolution(whole.params["W"], whole.params["b"], stride=stride, pad=pad)
    whole.engine = ConvEngine(band_bytes=1 << 30, shared_band_bytes=1 << 30)
    tiled.engine = ConvEngine(band_bytes=chunk_bytes, shared_band_bytes=chunk_bytes)  # any BLAS
    y = whole.forward(x)
    np.testing.assert_allclose(tiled.forward(x), y, rtol=1e-12, atol=1e-12)
    dout = randn(*y.shape)
    np.testing.assert_allclose(tiled.backward(dout), whole.backward(dout), rtol=1e-12, atol=1e-12)
    for k in whole.grads:
        np.testing.assert_allclose(tiled.grads[k], whole.grads[k], rtol=1e-12, atol=1e-12)
    assert len(tiled.engine.tiles(*y.shape[2:], 5, C * 9, x.dtype)) > (chunk_bytes < 2000)


def test_convolution_output_is_batch_last_and_pooling_keeps_the_input_order():
    # the memory order that keeps the copies fast (engine.bands.band_im2col) flows through the
    # conv stack: convolution output (C, H, W, N) in memory; pooling keeps its input's order
    y = conv_layer(FN=3, C=2, pad=1).forward(randn(4, 2, 6, 6))
    assert y.transpose(1, 2, 3, 0).flags.c_contiguous
    pool = L.Pooling(2, 2, stride=2)
    out = pool.forward(y, train=True)
    assert out.transpose(1, 2, 3, 0).flags.c_contiguous
    # and its gradient comes back in that order whatever order dout arrives in
    dx = pool.backward(np.ascontiguousarray(randn(*out.shape)))
    assert dx.transpose(1, 2, 3, 0).flags.c_contiguous


def test_convolution_backward_needs_a_forward_pass():
    with pytest.raises(RuntimeError, match="forward pass first"):
        conv_layer().backward(randn(1, 3, 2, 2))


def test_max_pool_inference_forward_equals_training_forward_and_blocks_backward():
    layer = L.Pooling(2, 2, stride=2)
    x = randn(2, 3, 4, 4)
    np.testing.assert_array_equal(layer.forward(x, train=False), layer.forward(x, train=True))
    layer.forward(x, train=False)
    with pytest.raises(RuntimeError, match="train=True"):
        layer.backward(randn(2, 3, 2, 2))
