"""The book's networks: backprop equals numerical gradients, contracts, bad input, learning."""

from __future__ import annotations

import numpy as np
import pytest

from scratchdl.gradient import gradient_check
from scratchdl.models import (
    DeepConvNet,
    MultiLayerNet,
    Sequential,
    SimpleConvNet,
    TwoLayerNet,
    model_from_config,
)
from scratchdl.optimizers import Adam

TOL = 1e-6
RNG = np.random.default_rng(99)


def assert_gradients_match(model, x, t, tol=TOL):
    report = gradient_check(model, x, t)
    assert set(report) == set(model.params)
    bad = {k: v for k, v in report.items() if not v < tol}
    assert not bad, f"{type(model).__name__}: gradient errors above {tol}: {bad}"


def test_two_layer_net_gradient():
    model = TwoLayerNet(6, 5, 3, weight_init_std=0.5, rng=0, dtype=np.float64)
    x, t = RNG.standard_normal((4, 6)), RNG.integers(0, 3, 4)
    assert_gradients_match(model, x, t)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_multi_layer_net_with_batchnorm_dropout_and_weight_decay(activation):
    model = MultiLayerNet(
        6,
        [5, 4],
        3,
        activation=activation,
        weight_init_std=0.5,
        weight_decay_lambda=0.1,
        use_dropout=True,
        dropout_ratio=0.3,
        use_batchnorm=True,
        rng=1,
        dtype=np.float64,
    )
    assert {"W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"} == set(
        model.params
    )
    x, t = RNG.standard_normal((5, 6)), RNG.integers(0, 3, 5)
    # the masks are not held beforehand: gradient_check holds those it draws, then lets go
    assert_gradients_match(model, x, t)
    assert [layer.hold_mask for layer in model.layers if hasattr(layer, "hold_mask")] == [
        False,
        False,
    ]


def test_simple_conv_net_gradient():
    model = SimpleConvNet(
        (2, 6, 6),
        {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1},
        hidden_size=4,
        output_size=3,
        weight_init_std=0.3,
        rng=2,
        dtype=np.float64,
    )
    x, t = RNG.standard_normal((3, 2, 6, 6)), RNG.integers(0, 3, 3)
    assert_gradients_match(model, x, t)


def test_deep_conv_net_gradient_on_a_random_subset_of_entries():
    model = DeepConvNet((1, 12, 12), hidden_size=6, output_size=4, rng=3, dtype=np.float64)
    x, t = RNG.standard_normal((2, 1, 12, 12)), RNG.integers(0, 4, 2)
    model.loss(x, t, train=True)
    model.set_dropout_mask_hold(True)
    grads = {k: v.copy() for k, v in model.gradient(x, t).items()}
    h = 1e-5
    rng = np.random.default_rng(4)
    for name, p in model.params.items():
        for flat in rng.choice(p.size, size=min(4, p.size), replace=False):
            idx = np.unravel_index(flat, p.shape)
            old = p[idx]
            p[idx] = old + h
            up = model.loss(x, t)
            p[idx] = old - h
            down = model.loss(x, t)
            p[idx] = old
            num = (up - down) / (2 * h)
            scale = max(abs(num), abs(grads[name][idx]), 1e-6)
            assert abs(num - grads[name][idx]) / scale < 1e-5, (name, idx, num, grads[name][idx])


def small_deep_conv_net(rng=3):
    """DeepConvNet's layers (two dropouts included) with 2 filters a convolution: every
    entry of every parameter is cheap enough to differentiate numerically."""
    small = {"filter_num": 2, "filter_size": 3, "pad": 1, "stride": 1}
    convs = {f"conv_param_{i}": dict(small) for i in range(1, 7)}
    convs["conv_param_4"]["pad"] = 2
    model = DeepConvNet(
        (1, 12, 12), **convs, hidden_size=6, output_size=4, rng=rng, dtype=np.float64
    )
    # biases away from zero: with zero biases, a window that sees only padding sums to exactly
    # 0, the kink of ReLU, where central differences give 1/2 and backprop 0
    for name, p in model.params.items():
        if name.startswith("b"):
            p[...] = np.random.default_rng(rng).uniform(0.1, 0.3, p.shape)
    return model


def test_deep_conv_net_gradient_check_on_every_entry():
    model = small_deep_conv_net()
    # an input of its own: one that puts no ReLU input within a step h of its kink
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((3, 1, 12, 12)), rng.integers(0, 4, 3)
    assert_gradients_match(model, x, t)  # the dropout masks are not held beforehand


def test_gradient_check_passes_its_step_to_a_model():
    model = TwoLayerNet(3, 4, 2, weight_init_std=0.5, rng=0, dtype=np.float64)
    x, t = np.random.default_rng(1).standard_normal((4, 3)), np.array([0, 1, 1, 0])
    fine, coarse = gradient_check(model, x, t), gradient_check(model, x, t, h=0.5)
    assert max(fine.values()) < TOL < max(coarse.values())  # a coarse step is visibly off


def test_gradient_check_restores_each_dropout_hold_even_on_error():
    model = MultiLayerNet(4, [3, 3], 2, use_dropout=True, rng=0, dtype=np.float64)
    x, t = RNG.standard_normal((3, 4)), RNG.integers(0, 2, 3)
    assert model.set_dropout_mask_hold([True, False]) == [False, False]
    gradient_check(model, x, t)
    assert model.set_dropout_mask_hold([True, False]) == [True, False]

    def fail(x, t):
        assert [layer.hold_mask for layer in model.layers if hasattr(layer, "hold_mask")] == [
            True,
            True,
        ]  # held while the numerical gradient runs
        raise RuntimeError("boom")

    model.numerical_gradient = fail
    with pytest.raises(RuntimeError, match="boom"):
        gradient_check(model, x, t)
    assert model.set_dropout_mask_hold(False) == [True, False]
    with pytest.raises(ValueError, match="one per Dropout"):
        model.set_dropout_mask_hold([True])


def test_gradient_check_leaves_a_models_running_statistics_alone():
    model = MultiLayerNet(4, [3], 2, use_batchnorm=True, rng=0, dtype=np.float64)
    x, t = RNG.standard_normal((5, 4)), RNG.integers(0, 2, 5)
    model.loss(x * 2 + 1, t)  # running statistics away from their initial values
    before = {k: v.copy() for k, v in model.buffers.items()}
    gradient_check(model, x, t)
    for k, v in before.items():
        np.testing.assert_array_equal(model.buffers[k], v, err_msg=k)


def test_deep_conv_net_is_the_books_architecture():
    model = DeepConvNet(rng=0)
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes["W1"] == (16, 1, 3, 3) and shapes["W4"] == (32, 32, 3, 3)
    assert shapes["W6"] == (64, 64, 3, 3) and shapes["W7"] == (64 * 4 * 4, 50)
    assert shapes["W8"] == (50, 10) and len(model.params) == 16
    from scratchdl.layers import Convolution

    assert [c.pad for c in model.layers if isinstance(c, Convolution)] == [1, 1, 1, 2, 1, 1]
    # He initialisation: std = sqrt(2 / fan_in)
    assert model.params["W6"].std() == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.05)
    assert model.predict(RNG.random((3, 1, 28, 28))).shape == (3, 10)


def test_params_are_the_very_arrays_the_layers_use():
    model = TwoLayerNet(4, 3, 2, rng=0)
    assert model.params["W1"] is model.layers[0].params["W"]
    x = RNG.random((2, 4))
    before = model.predict(x)
    model.params["W2"] *= 0  # an in-place change reaches the layer
    assert not np.allclose(before, model.predict(x))


def test_optimizer_step_on_model_params_lowers_the_loss():
    model = TwoLayerNet(4, 8, 3, weight_init_std=0.5, rng=0)
    x = RNG.random((20, 4))
    t = x[:, :3].argmax(axis=1)  # a learnable rule
    opt = Adam(lr=0.01)
    first = model.loss(x, t)
    for _ in range(200):
        opt.update(model.params, model.gradient(x, t))
    assert model.loss(x, t) < first * 0.2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_models_keep_their_dtype(dtype):
    model = SimpleConvNet(
        (1, 8, 8),
        {"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1},
        hidden_size=4,
        rng=0,
        dtype=dtype,
    )
    x = RNG.random((2, 1, 8, 8))  # float64 input is cast once to the model's dtype
    assert model.predict(x).dtype == dtype
    assert all(g.dtype == dtype for g in model.gradient(x, np.array([1, 2])).values())
    assert all(p.dtype == dtype for p in model.params.values())


def test_accuracy_counts_every_sample_including_the_remainder():
    model = TwoLayerNet(3, 4, 2, rng=0)
    x = RNG.random((7, 3))
    pred = model.predict(x).argmax(axis=1)
    t = pred.copy()
    t[-1] = 1 - t[-1]  # only the last sample (in the short final batch) is wrong
    assert model.accuracy(x, t, batch_size=3) == pytest.approx(6 / 7)
    assert model.accuracy(x, np.eye(2)[t], batch_size=3) == pytest.approx(6 / 7)


def test_same_seed_same_model_and_no_global_random_state():
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - checking it is untouched
    a, b = MultiLayerNet(5, [4], 2, rng=7), MultiLayerNet(5, [4], 2, rng=7)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_reprs():
    text = repr(TwoLayerNet(784, 50, 10, rng=0))
    assert "Affine(784, 50)" in text and "SoftmaxWithLoss" in text and "39,760 parameters" in text


def test_state_dict_round_trip_and_model_from_config():
    a = MultiLayerNet(5, [4, 3], 2, use_batchnorm=True, rng=0)
    a.loss(RNG.random((6, 5)), RNG.integers(0, 2, 6))  # moves the running statistics
    assert "running_mean1" in a.buffers and "running_var2" in a.buffers
    b = model_from_config("MultiLayerNet", a.config, rng=1)
    b.load_state_dict(a.state_dict())
    x = RNG.random((3, 5))
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(ValueError, match=r"missing \['W3'\]"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "W3"})
    bad = dict(a.state_dict(), W1=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"W1 must have shape \(5, 4\).*\(2, 2\)"):
        b.load_state_dict(bad)
    with pytest.raises(ValueError, match="unknown model class"):
        model_from_config("Nope", {})


# --- bad input -------------------------------------------------------------------------------


def test_wrong_input_width_names_expected_and_received_shape():
    with pytest.raises(ValueError, match=r"\(N, 784\).*\(2, 783\)"):
        TwoLayerNet(784, 5, 10, rng=0).predict(np.zeros((2, 783)))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\).*\(2, 28, 28\)"):
        SimpleConvNet(rng=0).predict(np.zeros((2, 28, 28)))


def test_flattened_images_are_accepted_by_fully_connected_nets():
    assert TwoLayerNet(784, 5, 10, rng=0).predict(np.zeros((2, 1, 28, 28))).shape == (2, 10)


@pytest.mark.parametrize("t", [np.array([0, 10]), np.array([-1, 3])])
def test_labels_out_of_range(t):
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        TwoLayerNet(4, 3, 10, rng=0).loss(np.zeros((2, 4)), t)


def test_mismatched_batch_sizes():
    with pytest.raises(ValueError, match=r"same batch size.*\(3, 4\).*\(2,\)"):
        TwoLayerNet(4, 3, 10, rng=0).loss(np.zeros((3, 4)), np.array([1, 2]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(activation="gelu"), "activation"),
        (dict(weight_init_std="kaiming"), "kaiming"),
        (dict(dropout_ratio=1.0, use_dropout=True), "dropout_ratio"),
        (dict(weight_decay_lambda=-1), "weight_decay_lambda"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiLayerNet(4, [3], 2, **kwargs)


def test_bad_conv_param_and_dtype():
    with pytest.raises(ValueError, match="conv_param"):
        SimpleConvNet(conv_param={"filter_num": 3})
    with pytest.raises(ValueError, match="dtype"):
        TwoLayerNet(2, 2, 2, dtype=np.int32)


# --- learning -------------------------------------------------------------------------------


def spiral(n_per_class=100, classes=3, rng=0):
    rng = np.random.default_rng(rng)
    x, t = [], []
    for c in range(classes):
        r = np.linspace(0.0, 1, n_per_class)
        theta = (
            np.linspace(c * 4, (c + 1) * 4, n_per_class) + rng.standard_normal(n_per_class) * 0.2
        )
        x.append(np.c_[r * np.sin(theta), r * np.cos(theta)])
        t.append(np.full(n_per_class, c))
    return np.concatenate(x), np.concatenate(t)


def test_multi_layer_net_learns_a_spiral():
    x, t = spiral()
    model = MultiLayerNet(2, [50, 50], 3, rng=0)
    opt = Adam(lr=0.01)
    rng = np.random.default_rng(0)
    for _ in range(1500):
        idx = rng.choice(len(x), 64, replace=False)
        opt.update(model.params, model.gradient(x[idx], t[idx]))
    assert model.accuracy(x, t) >= 0.95


def test_sequential_with_custom_layers():
    from scratchdl.layers import Affine, IdentityWithLoss

    W = np.array([[2.0], [-1.0]])
    model = Sequential([Affine(W, np.zeros(1))], IdentityWithLoss(), dtype=np.float64)
    x = RNG.standard_normal((10, 2))
    assert model.loss(x, x @ W) == pytest.approx(0.0)


def test_the_books_names_are_exported():
    import scratchdl

    assert scratchdl.MultiLayerNetExtend is MultiLayerNet  # the book's name, one class
    net = scratchdl.MultiLayerNetExtend(
        6, [5, 4], 3, use_batchnorm=True, use_dropout=True, dropout_ratio=0.2, rng=0
    )
    assert type(net).__name__ == "MultiLayerNet"  # what a model file records
    add, mul = scratchdl.AddLayer(), scratchdl.MulLayer()
    assert mul.forward(add.forward(1.0, 2.0), 3.0) == 9.0
    assert mul.backward(1.0) == (3.0, 3.0) and add.backward(3.0) == (3.0, 3.0)
    assert {"im2col", "col2im", "MultiLayerNetExtend", "MulLayer", "AddLayer"} <= set(
        scratchdl.__all__
    )


def test_gradient_runs_its_own_forward_whatever_ran_before():
    # gradient once took the stages and parts that its loss() had left behind; a forward of
    # another batch (inference, one image, no thread parts) must change nothing
    from scratchdl import get_num_threads, set_num_threads

    before = get_num_threads()
    try:
        set_num_threads(2)
        model = SimpleConvNet(
            (1, 8, 8), {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1}, 5, 3,
            weight_init_std=0.3, rng=0, dtype=np.float64,
        )  # fmt: skip
        x, t = RNG.standard_normal((6, 1, 8, 8)), RNG.integers(0, 3, 6)
        first = {k: v.copy() for k, v in model.gradient(x, t).items()}
        model.predict(x[:1])
        model.loss(x[:3], t[:3], train=False)
        again = model.gradient(x, t)
        for key in first:
            np.testing.assert_array_equal(again[key], first[key], err_msg=key)
    finally:
        set_num_threads(before)


def test_a_hand_built_model_has_a_config_of_its_own():
    a = Sequential([], input_shape=(3,))
    b = Sequential([], input_shape=(3,), config={"hidden_size": 4})
    a.config["x"] = 1  # a copy: nothing changes
    assert a.config == {} and b.config == {"hidden_size": 4}
