"""Winograd F(2x2, 3x3) and F(4x4, 3x3) in the engine: the book's convolution and both its
gradients within round-off (float64), a stated float32 error, and the choice between it and
im2col-GEMM (engine.choice)."""

from __future__ import annotations

import numpy as np
import pytest

from scratchdl import DeepConvNet
from scratchdl.engine import conv_algorithm, get_conv_algorithm, set_conv_algorithm, winograd
from scratchdl.engine.choice import ENV_CONV, GEMM, algorithm, rule
from scratchdl.layers import Convolution, ConvReluPool, Pooling, Relu
from tests.conftest import check_layer_gradients

EXACT = 1e-10  # float64: Winograd equals the book's im2col product within round-off
# float32 against float64, relative to the largest output: measured 2-5e-7 for F(2, 3) (as
# GEMM's 2-5e-7) and 1.5-6e-6 for F(4, 3), whose transforms' 4s, 8s and 1/24s cost about
# 10x (benchmarks/RESULTS.md); the bounds leave a margin of about 10x
FLOAT32_BOUND = {2: 5e-6, 4: 5e-5}

# (N, C, FN, H, W, pad): odd sizes (outputs not a multiple of the tile), every pad, batch 1,
# and DeepConvNet's six convolutions (a batch of 2)
SHAPES = [
    (3, 2, 3, 5, 7, 0),
    (2, 3, 4, 6, 9, 1),
    (1, 2, 3, 7, 5, 2),
    (1, 3, 2, 1, 2, 1),
    (2, 1, 16, 28, 28, 1),
    (2, 16, 16, 28, 28, 1),
    (2, 16, 32, 14, 14, 1),
    (2, 32, 32, 14, 14, 2),
    (2, 32, 64, 8, 8, 1),
    (2, 64, 64, 8, 8, 1),
]


def relative_error(a, reference) -> float:
    return float(np.abs(a - reference).max() / np.abs(reference).max())


def reference_pass(W, b, pad, x, dout):
    """The book's convolution (im2col, one product, col2im): y, dx, dW, db."""
    conv = Convolution(W, b, 1, pad)
    conv.reference = True
    y = conv.forward(x, train=True)
    dx = conv.backward(dout)
    return y, dx, conv.grads["W"], conv.grads["b"]


def random_case(shape, rng, dtype=np.float64):
    N, C, FN, H, W_in, pad = shape
    x = rng.standard_normal((N, C, H, W_in))
    W = rng.standard_normal((FN, C, 3, 3)) * np.sqrt(2 / (9 * C))  # He, as the networks
    b = rng.standard_normal(FN)
    dout = rng.standard_normal((N, FN, H + 2 * pad - 2, W_in + 2 * pad - 2))
    return [a.astype(dtype) for a in (x, W, b, dout)]


@pytest.mark.parametrize("m", winograd.TILES)
def test_the_transforms_compute_a_1d_correlation(m):
    # A^T [(G g) * (B^T d)] = the m outputs of sliding g over d: the matrices themselves
    BT, G, AT = (winograd.matrices(m, np.dtype(np.float64))[i] for i in range(3))
    rng = np.random.default_rng(m)
    d, g = rng.standard_normal(m + 2), rng.standard_normal(3)
    expected = np.correlate(d, g, mode="valid")
    np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("setting", ["winograd2", "winograd4"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-C{}-FN{}-{}x{}-pad{}".format(*s))
def test_winograd_equals_the_books_convolution_in_float64(shape, setting):
    x, W, b, dout = random_case(shape, np.random.default_rng(sum(shape)))
    y, dx, dW, db = reference_pass(W, b, shape[-1], x, dout)
    with conv_algorithm(setting):
        conv = Convolution(W, b, 1, shape[-1])
        y2 = conv.forward(x, train=True)
        dx2 = conv.backward(dout)
    assert relative_error(y2, y) <= EXACT
    assert relative_error(dx2, dx) <= EXACT
    assert relative_error(conv.grads["W"], dW) <= EXACT
    assert relative_error(conv.grads["b"], db) <= EXACT


@pytest.mark.parametrize("m", winograd.TILES)
def test_the_fused_block_runs_winograd_as_the_layers_do(m):
    # DeepConvNet's second block (conv - relu - pool) and a conv - relu without pooling
    rng = np.random.default_rng(m)
    for pool in (True, False):
        x, W, b, _ = random_case((3, 16, 16, 14, 14, 1), rng)
        layers = [Convolution(W, b, 1, 1), Relu(), Pooling(2, 2, stride=2) if pool else None]
        reference = ConvReluPool(*layers)
        reference.reference = True
        y = reference.forward(x, train=True)
        dout = rng.standard_normal(y.shape)
        dx = reference.backward(dout)
        with conv_algorithm(f"winograd{m}"):
            block = ConvReluPool(
                Convolution(W, b, 1, 1), Relu(), Pooling(2, 2, 2) if pool else None
            )
            y2 = block.forward(x, train=True)
            dx2 = block.backward(dout)
        assert relative_error(y2, y) <= EXACT
        assert relative_error(dx2, dx) <= EXACT
        assert relative_error(block.grads["W"], reference.conv.grads["W"]) <= EXACT


@pytest.mark.parametrize("m", winograd.TILES)
def test_winograd_layer_gradients_equal_numerical_ones(m):
    rng = np.random.default_rng(7)
    W = rng.standard_normal((3, 2, 3, 3))
    with conv_algorithm(f"winograd{m}"):
        check_layer_gradients(
            Convolution(W, rng.standard_normal(3), 1, 1), rng.random((2, 2, 5, 6))
        )


@pytest.mark.parametrize("m", winograd.TILES)
def test_float32_error_against_float64_is_within_its_bound(m):
    # float64's result stands for the exact one; GEMM in float32 is shown beside for scale
    errors = {}
    for shape in SHAPES[5:]:
        x, W, b, dout = random_case(shape, np.random.default_rng(1))
        x = np.maximum(x, 0)  # a ReLU's output, as every convolution after the first sees
        exact = reference_pass(W, b, shape[-1], x, dout)[:3]
        with conv_algorithm(f"winograd{m}"):
            conv = Convolution(W.astype(np.float32), b.astype(np.float32), 1, shape[-1])
            y = conv.forward(x.astype(np.float32), train=True)
            dx = conv.backward(dout.astype(np.float32))
        for got, want in zip((y, dx, conv.grads["W"]), exact, strict=True):
            assert got.dtype == np.float32
            errors[shape] = max(errors.get(shape, 0), relative_error(got, want))
    assert max(errors.values()) <= FLOAT32_BOUND[m], errors
    assert max(errors.values()) > 1e-8  # it really ran in float32


def test_bands_of_any_size_give_the_same_result():
    # a budget of 1 byte: one tile a band, cut tiles at the bottom and right of the output
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 11))
    W, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    xp = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))).transpose(1, 2, 3, 0))
    dout4 = rng.standard_normal((4, 9, 11, 2))
    for m in winograd.TILES:
        U = winograd.filter_transform(W, m, x.dtype)
        outs = [
            winograd.convolve(xp, U, m, np.empty((4, 9, 11, 2)), b, budget) for budget in (1, None)
        ]
        dWs = [winograd.filter_gradient(xp, dout4, m, budget) for budget in (1, None)]
        assert len(winograd.tile_bands(*winograd.tile_counts(9, 11, m), 100, 1)) > 1
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dWs[0], dWs[1], rtol=1e-12, atol=1e-12)


def test_training_steps_follow_the_same_curve():
    # DeepConvNet in float32, the same weights and batches: 4 Adam steps with GEMM and with
    # Winograd F(4, 3) everywhere; the losses agree to float32's round-off, not bit for bit
    from scratchdl.optimizers import Adam

    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 8)
    losses = {}
    for setting in ("gemm", "winograd4"):
        with conv_algorithm(setting):
            net, adam = DeepConvNet(rng=0, dropout_ratio=0.0), Adam(lr=0.001)
            losses[setting] = []
            for _ in range(4):
                grads = net.gradient(x, t)
                losses[setting].append(net.last_loss)
                adam.update(net.params, grads)
    assert losses["gemm"][-1] < losses["gemm"][0]  # it learns
    np.testing.assert_allclose(losses["winograd4"], losses["gemm"], rtol=1e-4)


# -- the choice ---------------------------------------------------------------------------


@pytest.fixture
def fresh_setting():
    set_conv_algorithm(None)
    yield
    set_conv_algorithm(None)


def test_the_setting_comes_from_the_environment_and_can_be_forced(monkeypatch, fresh_setting):
    monkeypatch.setenv(ENV_CONV, " Winograd4 ")
    set_conv_algorithm(None)  # read anew
    assert get_conv_algorithm() == "winograd4"
    with conv_algorithm("gemm"):
        assert get_conv_algorithm() == "gemm"
        assert algorithm("forward", (16, 16, 3, 3), 1, (100, 16, 28, 28), np.float32) == GEMM
    assert get_conv_algorithm() == "winograd4"  # the block's setting undone
    monkeypatch.setenv(ENV_CONV, "fast")
    set_conv_algorithm(None)
    with pytest.raises(ValueError, match=r"SCRATCHDL_CONV must be one of auto, gemm.*'fast'"):
        get_conv_algorithm()
    with pytest.raises(ValueError, match="winograd8"):
        set_conv_algorithm("winograd8")
    with pytest.raises(ValueError, match="kind must be one of"):
        algorithm("backward", (16, 16, 3, 3), 1, (100, 16, 28, 28), np.float32)


@pytest.mark.parametrize(
    "W_shape, stride, pad, kind, dtype",
    [
        ((30, 1, 5, 5), 1, 0, "forward", np.float32),  # SimpleConvNet's 5x5
        ((16, 16, 3, 3), 2, 1, "forward", np.float32),  # a stride
        ((16, 16, 3, 3), 1, 3, "input", np.float32),  # dout would need a pad of -1
        ((16, 16, 3, 3), 1, 1, "forward", np.int64),  # not floating point
    ],
)
def test_what_winograd_cannot_compute_runs_as_gemm_whatever_is_forced(
    W_shape, stride, pad, kind, dtype, fresh_setting
):
    for setting in ("winograd", "winograd2", "winograd4"):
        with conv_algorithm(setting):
            assert algorithm(kind, W_shape, stride, (100, W_shape[0], 24, 24), dtype, pad) == GEMM


def test_auto_takes_winograd_only_where_it_was_measured_faster(fresh_setting):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"), conv_algorithm("auto"):
        # DeepConvNet's 64-channel convolution, one thread's half of a batch of 100
        assert algorithm("forward", (64, 64, 3, 3), 1, (50, 64, 8, 8), np.float32, 1) == 4
        assert algorithm("input", (64, 64, 3, 3), 1, (50, 64, 8, 8), np.float32, 1) == 4
        assert rule(64, 64, 8, 8, 50) == 4
        assert rule(1, 16, 28, 28, 50) == GEMM  # the first layer: one input channel
        assert rule(64, 64, 8, 8, 1) == GEMM  # batch 1: numpy's cost per call dominates
        assert rule(64, 64, 4, 4, 100) == GEMM  # smaller than measured
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        if blas and blas[0]["num_threads"] == 2:  # BLAS shares each product: not measured
            assert rule(64, 64, 8, 8, 50) == GEMM
