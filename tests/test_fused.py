"""The fused Convolution -> ReLU (-> max pooling) layer equals the book's layers, one by one.

``model.reference = True`` runs every layer on its own, the book's code: the reference.
Scores, loss and every gradient must agree to the rounding of sums (float64), with and
without threads, and the fused layers must really be used where they apply and nowhere else.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchdl import DeepConvNet, SimpleConvNet, get_num_threads, set_num_threads
from scratchdl.engine import fusable_pool
from scratchdl.layers import Affine, AvgPooling, Convolution, ConvReluPool, Dropout, Pooling, Relu
from scratchdl.models import Sequential

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def restore_threads():
    before = get_num_threads()
    yield
    set_num_threads(before)


def conv(C, FN, k, stride=1, pad=0):
    return Convolution(
        RNG.standard_normal((FN, C, k, k)) * 0.5, RNG.standard_normal(FN) * 0.1, stride, pad
    )


def affine(D, K):
    return Affine(RNG.standard_normal((D, K)) * 0.3, RNG.standard_normal(K) * 0.1)


def models():
    """(name, model) pairs covering each kind of block and the layers left alone."""
    yield "simple", SimpleConvNet(
        (1, 12, 12), {"filter_num": 5, "filter_size": 3, "pad": 0, "stride": 1}, 8, 4,
        weight_init_std=0.3, rng=1, dtype=np.float64,
    )  # fmt: skip
    yield (
        "deep",
        DeepConvNet((1, 12, 12), hidden_size=8, output_size=3, rng=2, dtype=np.float64),
    )
    yield "stride 2, pad 1, pool 3", Sequential(
        [conv(2, 3, 3, stride=2, pad=1), Relu(), Pooling(3, 3, 3), affine(3 * 2 * 2, 4)],
        input_shape=(2, 11, 11), dtype=np.float64,
    )  # fmt: skip
    yield "conv-relu, no pool", Sequential(
        [conv(1, 3, 3, pad=1), Relu(), conv(3, 2, 3), Relu(), affine(2 * 5 * 5, 3)],
        input_shape=(1, 7, 7), dtype=np.float64,
    )  # fmt: skip
    yield "overlapping and average pooling", Sequential(
        [conv(1, 3, 3), Relu(), Pooling(2, 2, 1), conv(3, 2, 2), Relu(), AvgPooling(2, 2, 2),
         affine(2 * 2 * 2, 3)],
        input_shape=(1, 8, 8), dtype=np.float64,
    )  # fmt: skip


def blocks(model) -> list[ConvReluPool]:
    return [s for s in model.plan.stages(model.layers) if isinstance(s, ConvReluPool)]


def run(model, x, t, fuse: bool, masks=()):
    """Scores (inference, training), loss and gradients, with every Dropout's mask set to
    ``masks`` (an inference forward drops the masks, so they are set before each use)."""
    dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]

    def hold():
        for layer, mask in zip(dropouts, masks, strict=True):
            layer.mask, layer.hold_mask = mask, True

    model.reference = not fuse
    hold()
    grads = {k: v.copy() for k, v in model.gradient(x, t).items()}
    loss = model.last_loss
    hold()
    scores_train = model.predict(x, train=True)
    return model.predict(x), scores_train, loss, grads


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name, model", list(models()), ids=[n for n, _ in models()])
def test_fused_stages_equal_the_layers_one_by_one(name, model, threads):
    set_num_threads(threads)
    x = RNG.standard_normal((6, *model.input_shape))
    t = RNG.integers(0, model.output_size, 6)
    model.predict(x, train=True)  # draws dropout masks: the same for both runs
    masks = [layer.mask for layer in model.layers if isinstance(layer, Dropout)]
    plain = run(model, x, t, fuse=False, masks=masks)
    assert blocks(model) == []
    fused = run(model, x, t, fuse=True, masks=masks)
    assert blocks(model), "no fused block was used"
    for a, b in zip(plain[:2], fused[:2], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    assert fused[2] == pytest.approx(plain[2], rel=1e-13)
    assert fused[3].keys() == plain[3].keys()
    for key in plain[3]:
        np.testing.assert_allclose(
            fused[3][key], plain[3][key], rtol=1e-11, atol=1e-13, err_msg=key
        )


def test_blocks_are_made_where_they_apply_and_nowhere_else():
    _, deep = next((n, m) for n, m in models() if n.startswith("deep"))
    kinds = [len(b.layers) for b in blocks(deep)]
    assert kinds == [2, 3, 2, 3, 2, 3]  # conv-relu, conv-relu-pool, three times
    _, mixed = next((n, m) for n, m in models() if n.startswith("overlapping"))
    stages = mixed.plan.stages(mixed.layers)
    assert [type(s).__name__ for s in stages] == [
        "ConvReluPool",
        "Pooling",
        "ConvReluPool",
        "AvgPooling",
        "Affine",
    ]
    assert all(b.pool is None for b in blocks(mixed))  # overlapping / average: not fused
    assert (
        not fusable_pool(2, 2, 2, 1) and not fusable_pool(2, 3, 2, 0) and fusable_pool(3, 3, 3, 0)
    )


def test_the_fused_gradient_matches_the_numerical_gradient():
    _, model = next((n, m) for n, m in models() if n.startswith("stride 2"))
    x = RNG.standard_normal((3, *model.input_shape))
    t = RNG.integers(0, model.output_size, 3)
    grads = model.gradient(x, t)
    assert blocks(model)
    numeric = model.numerical_gradient(x, t)
    for key, g in grads.items():
        np.testing.assert_allclose(g, numeric[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_ties_and_windows_below_zero_route_the_gradient_as_the_layers_do():
    # a filter of zeros and a bias: every window ties (positive bias) or is <= 0 (negative)
    W = np.zeros((2, 1, 1, 1))
    layers = [Convolution(W, np.array([0.5, -0.5])), Relu(), Pooling(2, 2, 2), affine(2 * 2 * 2, 3)]
    model = Sequential(layers, input_shape=(1, 4, 4), dtype=np.float64)
    x = RNG.standard_normal((2, 1, 4, 4))
    t = np.array([0, 2])
    plain, fused = run(model, x, t, fuse=False), run(model, x, t, fuse=True)
    assert blocks(model)
    for key in plain[3]:  # a tie routed elsewhere would differ by a whole dout, not round-off
        np.testing.assert_allclose(fused[3][key], plain[3][key], rtol=1e-12, atol=1e-15)


def test_float32_training_step_equals_the_layers():
    model = SimpleConvNet(rng=0)  # the book's network, float32, as trained
    x = RNG.random((20, 1, 28, 28), dtype=np.float32)
    t = RNG.integers(0, 10, 20)
    plain, fused = run(model, x, t, fuse=False), run(model, x, t, fuse=True)
    assert fused[0].dtype == np.float32
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-5, atol=1e-6)
    for key in plain[3]:
        np.testing.assert_allclose(fused[3][key], plain[3][key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_a_fused_backward_needs_a_training_forward():
    model = SimpleConvNet(
        (1, 8, 8), {"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1}, 4, 3, rng=0
    )
    block = blocks(model)[0]
    out = block.forward(np.zeros((1, 1, 8, 8), np.float32), train=False)
    with pytest.raises(RuntimeError, match="train=True"):
        block.backward(np.ones_like(out))


def test_small_batches_on_wide_maps_take_whole_padded_rows_and_equal_the_layers(monkeypatch):
    # a batch of 2 on 18-pixel rows: the fused engine copies whole padded rows (wide_band)
    from scratchdl.engine import fused

    set_num_threads(1)  # the whole batch in one part
    calls = []
    wide_band = fused.wide_band
    monkeypatch.setattr(fused, "wide_band", lambda *a: calls.append(a[1]) or wide_band(*a))
    model = Sequential(
        [conv(2, 3, 3, pad=1), Relu(), Pooling(2, 2, 2), conv(3, 2, 3, pad=1), Relu(),
         affine(2 * 9 * 9, 3)],
        input_shape=(2, 18, 18), dtype=np.float64,
    )  # fmt: skip
    x = RNG.standard_normal((2, 2, 18, 18))
    t = np.array([1, 2])
    plain, fused = run(model, x, t, fuse=False), run(model, x, t, fuse=True)
    assert calls and calls[0] == (2, 20, 20, 2)  # the padded input, batch-last
    for a, b in zip(plain[:2], fused[:2], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    for key in plain[3]:
        np.testing.assert_allclose(
            fused[3][key], plain[3][key], rtol=1e-11, atol=1e-13, err_msg=key
        )


def test_the_fused_layer_keeps_the_layer_contract_and_calls_the_convolutions_backward():
    conv = Convolution(RNG.standard_normal((3, 2, 3, 3)), RNG.standard_normal(3))
    block = ConvReluPool(conv, Relu(), Pooling(2, 2, 2))
    assert block.params is conv.params and block.splittable(True)
    x = RNG.standard_normal((2, 2, 6, 6))
    dout = RNG.standard_normal(block.forward(x, train=True).shape)
    dx = block.backward(dout)
    assert block.grads is conv.grads and set(block.grads) == {"W", "b"}
    # the layers one by one, the book's code
    plain = ConvReluPool(conv.twin(), Relu(), Pooling(2, 2, 2))
    plain.reference = True
    for layer in plain.layers:
        layer.reference = True
    np.testing.assert_allclose(plain.forward(x, train=True), block.forward(x, train=True))
    np.testing.assert_allclose(plain.backward(dout), dx, rtol=1e-12, atol=1e-14)
    for key in conv.grads:
        np.testing.assert_allclose(plain.grads[key], block.grads[key], rtol=1e-12)
    twin = block.twin()
    assert twin.params["W"] is conv.params["W"] and twin.conv is not conv
    assert twin.engine is not block.engine


@pytest.mark.parametrize(
    "pool",
    [Pooling(2, 2, 2, pad=1), Pooling(2, 2, 1), Pooling(2, 3, 2), AvgPooling(2, 2, 2)],
    ids=["padded", "overlapping", "not square", "average"],
)
def test_what_cannot_be_fused_is_refused_by_name(pool):
    conv = Convolution(RNG.standard_normal((3, 1, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="ConvReluPool needs"):
        ConvReluPool(conv, Relu(), pool)
    with pytest.raises(ValueError, match="ConvReluPool needs"):
        ConvReluPool(conv, Pooling(2, 2, 2))  # no ReLU between


def test_a_layer_set_to_reference_is_not_fused():
    model = SimpleConvNet(
        (1, 8, 8), {"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1}, 4, 3, rng=0
    )
    assert len(blocks(model)) == 1
    model.layers[0].reference = True  # the book's code for this convolution
    assert blocks(model) == []
    model.layers[0].reference = False
    assert len(blocks(model)) == 1
