"""Tests for scratchdl.optimizers: the update rules of book ch6, in place, and checkpoints."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from scratchdl.optimizers import (
    EPS,
    OPTIMIZERS,
    SGD,
    AdaGrad,
    Adam,
    Momentum,
    Nesterov,
    Optimizer,
    RMSprop,
    get_optimizer,
)

ALL = list(OPTIMIZERS.values())
IDS = list(OPTIMIZERS)
# Non-default hyperparameters, so that a rule reading a default instead would be caught.
HYPER = {
    SGD: {"lr": 0.1},
    Momentum: {"lr": 0.1, "momentum": 0.8},
    Nesterov: {"lr": 0.1, "momentum": 0.7},
    AdaGrad: {"lr": 0.2},
    RMSprop: {"lr": 0.05, "decay_rate": 0.9},
    Adam: {"lr": 0.01, "beta1": 0.8, "beta2": 0.95},
}


def make_params(rng, dtype=np.float64):
    return {
        "W1": rng.standard_normal((3, 4)).astype(dtype),
        "b1": rng.standard_normal(4).astype(dtype),
        "W2": rng.standard_normal((4, 2)).astype(dtype),
    }


def make_grads(rng, params, dtype=None):
    return {k: rng.standard_normal(p.shape).astype(dtype or p.dtype) for k, p in params.items()}


# The book's rules written out with plain numpy, one function per optimizer. Each takes the
# parameter, gradient and a dict of state arrays (empty at first) and returns the new parameter.
def sgd_by_hand(p, g, s, t, lr):
    return p - lr * g


def momentum_by_hand(p, g, s, t, lr, momentum):
    s["v"] = momentum * s.get("v", 0.0) - lr * g
    return p + s["v"]


def nesterov_by_hand(p, g, s, t, lr, momentum):
    v_old = s.get("v", 0.0)
    s["v"] = momentum * v_old - lr * g
    return p + momentum**2 * v_old - (1 + momentum) * lr * g


def adagrad_by_hand(p, g, s, t, lr):
    s["h"] = s.get("h", 0.0) + g * g
    return p - lr * g / (np.sqrt(s["h"]) + 1e-7)


def rmsprop_by_hand(p, g, s, t, lr, decay_rate):
    s["h"] = decay_rate * s.get("h", 0.0) + (1 - decay_rate) * g * g
    return p - lr * g / (np.sqrt(s["h"]) + 1e-7)


def adam_by_hand(p, g, s, t, lr, beta1, beta2):
    # Kingma & Ba's algorithm 1 with bias-corrected moments; the book's EPS sits outside the
    # correction, which is the paper's epsilon scaled by 1 / sqrt(1 - beta2**t).
    s["m"] = beta1 * s.get("m", 0.0) + (1 - beta1) * g
    s["v"] = beta2 * s.get("v", 0.0) + (1 - beta2) * g**2
    m_hat = s["m"] / (1 - beta1**t)
    v_hat = s["v"] / (1 - beta2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + 1e-7 / np.sqrt(1 - beta2**t))


BY_HAND = {
    SGD: sgd_by_hand,
    Momentum: momentum_by_hand,
    Nesterov: nesterov_by_hand,
    AdaGrad: adagrad_by_hand,
    RMSprop: rmsprop_by_hand,
    Adam: adam_by_hand,
}


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_three_steps_match_the_rule_by_hand(cls):
    rng = np.random.default_rng(1)
    params = make_params(rng)
    expected = {k: p.copy() for k, p in params.items()}
    state = {k: {} for k in params}
    opt = cls(**HYPER[cls])
    for t in (1, 2, 3):
        grads = make_grads(rng, params)
        opt.update(params, grads)
        for k in params:
            expected[k] = BY_HAND[cls](expected[k], grads[k], state[k], t, **HYPER[cls])
            np.testing.assert_allclose(params[k], expected[k], rtol=1e-13, atol=1e-15)
        for slot in cls.slots:  # the state is what the rule says too
            for k in params:
                np.testing.assert_allclose(opt.state[slot][k], state[k][slot], rtol=1e-13)
    assert opt.t == 3


def test_first_steps_in_numbers():
    # Small cases worked out on paper.
    p = {"W": np.array([1.0, -2.0])}
    g = {"W": np.array([0.5, -1.0])}
    SGD(lr=0.1).update(p, g)
    np.testing.assert_allclose(p["W"], [0.95, -1.9])
    opt = Momentum(lr=0.1, momentum=0.5)
    opt.update(p, g)  # v = [-0.05, 0.1]
    opt.update(p, g)  # v = 0.5 * v - 0.1 * g = [-0.075, 0.15]
    np.testing.assert_allclose(p["W"], [0.95 - 0.125, -1.9 + 0.25])
    # AdaGrad's first step is lr * sign(g), up to EPS; Adam's too.
    for opt in (AdaGrad(lr=0.1), Adam(lr=0.1)):
        p = {"W": np.array([1.0, -2.0])}
        opt.update(p, g)
        np.testing.assert_allclose(p["W"], [0.9, -1.9], rtol=1e-6)


def test_nesterov_equals_the_look_ahead_form_of_sutskever_et_al():
    # Classic NAG: v <- m * v - lr * grad(theta + m * v); theta <- theta + v.
    # Our parameter is the look-ahead point theta + m * v, where the gradient is taken.
    rng = np.random.default_rng(2)
    A = rng.standard_normal((5, 5))
    A = A @ A.T + np.eye(5)  # f(x) = x . A x / 2, grad = A x
    lr, m = 0.02, 0.9
    theta = rng.standard_normal(5)
    v = np.zeros(5)
    params = {"x": theta.copy()}
    opt = Nesterov(lr=lr, momentum=m)
    for _ in range(50):
        v = m * v - lr * A @ (theta + m * v)
        theta = theta + v
        opt.update(params, {"x": A @ params["x"]})
        np.testing.assert_allclose(params["x"], theta + m * v, rtol=1e-10, atol=1e-12)


def test_nesterov_is_not_the_books_sample_code():
    # The book's code applies m**2 to the updated v: a first step of (1 + m + m**2) * lr * g.
    p = {"W": np.array([1.0])}
    Nesterov(lr=0.1, momentum=0.9).update(p, {"W": np.array([1.0])})
    assert p["W"][0] == pytest.approx(1.0 - 1.9 * 0.1)
    assert p["W"][0] != pytest.approx(1.0 - 2.71 * 0.1)


def test_adam_matches_the_books_folded_form():
    # lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t); m, v updated as differences.
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(6)
    params = {"W": p0.copy()}
    opt = Adam(lr=0.01, beta1=0.8, beta2=0.95)
    p, m, v = p0.copy(), np.zeros(6), np.zeros(6)
    for t in range(1, 6):
        g = rng.standard_normal(6)
        opt.update(params, {"W": g})
        lr_t = 0.01 * np.sqrt(1 - 0.95**t) / (1 - 0.8**t)
        m += (1 - 0.8) * (g - m)
        v += (1 - 0.95) * (g**2 - v)
        p -= lr_t * m / (np.sqrt(v) + 1e-7)
        np.testing.assert_allclose(params["W"], p, rtol=1e-14)


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_update_is_in_place(cls):
    rng = np.random.default_rng(4)
    params = make_params(rng)
    W = params["W1"]
    row = W[0]  # a view, as a layer or a slice of the model might hold
    before = W.copy()
    opt = cls()
    for _ in range(2):
        opt.update(params, make_grads(rng, params))
    assert params["W1"] is W
    assert not np.array_equal(W, before)
    np.testing.assert_array_equal(row, W[0])
    assert not np.array_equal(row, before[0])


@pytest.mark.parametrize(
    ("cls", "lr"),
    [(SGD, 0.95), (Momentum, 0.1), (Nesterov, 0.1), (AdaGrad, 1.5), (RMSprop, 0.1), (Adam, 0.3)],
    ids=IDS,
)
def test_descends_the_books_function(cls, lr):
    # f(x, y) = x**2 / 20 + y**2 from (-7, 2) (book eq. 6.2, fig. 6-8), 30 steps.
    def f(p):
        return (p["x"] ** 2 / 20 + p["y"] ** 2).item()

    params = {"x": np.array([-7.0]), "y": np.array([2.0])}
    f0 = f(params)
    opt = cls(lr=lr)
    for _ in range(30):
        opt.update(params, {"x": params["x"] / 10, "y": 2 * params["y"]})
    assert f(params) < 0.05 * f0, (opt, f(params))


@pytest.mark.parametrize("cls", ALL, ids=IDS)
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
def test_float32_stays_float32(cls, grad_dtype):
    rng = np.random.default_rng(5)
    params = make_params(rng, np.float32)
    params64 = {k: p.astype(np.float64) for k, p in params.items()}
    opt, opt64 = cls(**HYPER[cls]), cls(**HYPER[cls])
    for _ in range(3):
        grads = make_grads(rng, params, grad_dtype)
        opt.update(params, grads)
        opt64.update(params64, {k: g.astype(np.float64) for k, g in grads.items()})
    for k, p in params.items():
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, params64[k], rtol=1e-5, atol=1e-6)
    for arrays in opt.state.values():
        assert all(s.dtype == np.float32 for s in arrays.values())


def test_sgd_float32_arithmetic_is_float32():
    # Computed in float64 and rounded back, some of these would differ in the last bit.
    rng = np.random.default_rng(6)
    p = rng.standard_normal(100_000).astype(np.float32)
    g = rng.standard_normal(100_000).astype(np.float32)
    params = {"W": p.copy()}
    SGD(lr=0.1).update(params, {"W": g})
    np.testing.assert_array_equal(params["W"], p - np.float32(0.1) * g)


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_a_step_allocates_nothing_the_size_of_a_parameter(cls):
    params = {"W": np.ones(1_000_000, dtype=np.float32)}  # 4 MB
    grads = {"W": np.full(1_000_000, 0.5, dtype=np.float32)}
    opt = cls()
    opt.update(params, grads)  # creates the state and the scratch array
    tracemalloc.start()
    try:
        opt.update(params, grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 400_000, f"{cls.__name__} allocated {peak} bytes in one step"


@pytest.mark.parametrize(
    ("cls", "kwargs", "bad"),
    [
        (SGD, {"lr": 0}, 0),
        (SGD, {"lr": -0.1}, -0.1),
        (SGD, {"lr": math.nan}, math.nan),
        (AdaGrad, {"lr": math.inf}, math.inf),
        (AdaGrad, {"lr": "0.1"}, "0.1"),
        (Momentum, {"momentum": 1.0}, 1.0),
        (Momentum, {"momentum": -0.1}, -0.1),
        (Nesterov, {"momentum": 1.5}, 1.5),
        (RMSprop, {"decay_rate": 1.0}, 1.0),
        (RMSprop, {"decay_rate": math.nan}, math.nan),
        (Adam, {"beta1": 1.0}, 1.0),
        (Adam, {"beta2": -0.5}, -0.5),
        (Adam, {"lr": True}, True),
    ],
)
def test_invalid_hyperparameters_raise_naming_the_value(cls, kwargs, bad):
    (name,) = kwargs
    with pytest.raises(ValueError, match=rf"{name} must .*got {repr(bad)}"):
        cls(**kwargs)
    opt = cls()
    with pytest.raises(ValueError, match=repr(bad)):
        setattr(opt, name, bad)  # a schedule setting it later is checked too


def test_hyperparameters_are_stored_as_python_floats():
    opt = Adam(lr=np.float64(0.5), beta1=np.float32(0.5))
    assert type(opt.lr) is float
    assert type(opt.beta1) is float
    opt.lr = 1
    assert type(opt.lr) is float


def test_repr_shows_the_books_defaults():
    assert [repr(cls()) for cls in ALL] == [
        "SGD(lr=0.01)",
        "Momentum(lr=0.01, momentum=0.9)",
        "Nesterov(lr=0.01, momentum=0.9)",
        "AdaGrad(lr=0.01)",
        "RMSprop(lr=0.01, decay_rate=0.99)",
        "Adam(lr=0.001, beta1=0.9, beta2=0.999)",
    ]
    assert EPS == 1e-7


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_repr_round_trips(cls):
    opt = cls(**HYPER[cls])
    assert repr(eval(repr(opt), {cls.__name__: cls})) == repr(opt)


def test_state_is_created_lazily_per_parameter_name():
    opt = Adam()
    assert opt.state == {"m": {}, "v": {}}
    rng = np.random.default_rng(7)
    params = make_params(rng)
    opt.update(params, make_grads(rng, params))
    assert list(opt.state["m"]) == list(params)
    assert all(opt.state["v"][k].shape == p.shape for k, p in params.items())


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_mismatched_grads_raise_and_change_nothing(cls):
    rng = np.random.default_rng(8)
    params = make_params(rng)
    opt = cls()
    opt.update(params, make_grads(rng, params))
    before = {k: p.copy() for k, p in params.items()}
    state_before = opt.state_dict()

    grads = make_grads(rng, params)
    del grads["b1"]
    grads["W9"] = np.zeros(2)
    with pytest.raises(ValueError, match=r"lacks \['b1'\].*has \['W9'\]"):
        opt.update(params, grads)
    grads = make_grads(rng, params)
    grads["W2"] = np.zeros((2, 4))  # W2 is updated last: the check must come first
    with pytest.raises(ValueError, match=r"grads\['W2'\] has shape \(2, 4\).*\(4, 2\)"):
        opt.update(params, grads)

    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    after = opt.state_dict()
    assert after.keys() == state_before.keys()
    assert all(np.array_equal(after[k], state_before[k]) for k in after)


def test_params_must_be_writeable_float_arrays():
    opt = SGD()
    with pytest.raises(TypeError, match=r"params\['W'\] must be a floating-point numpy array"):
        opt.update({"W": [1.0, 2.0]}, {"W": [0.1, 0.2]})
    with pytest.raises(TypeError, match="int64"):
        opt.update({"W": np.arange(3)}, {"W": np.ones(3)})
    frozen = np.ones(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.update({"W": frozen}, {"W": np.ones(3)})


def _continue(opt, params, grads_seq):
    for grads in grads_seq:
        opt.update(params, grads)
    return params


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_state_dict_round_trip_through_safetensors_resumes_bit_identically(cls):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(9)
    params = make_params(rng, np.float32)
    grads_seq = [make_grads(rng, params) for _ in range(6)]
    opt = cls(**HYPER[cls])
    _continue(opt, params, grads_seq[:3])

    checkpoint = safetensors_numpy.save({**opt.state_dict()})
    saved_params = {k: p.copy() for k, p in params.items()}
    _continue(opt, params, grads_seq[3:])

    resumed = cls()  # the book's defaults; loading restores the checkpoint's hyperparameters
    resumed.load_state_dict(safetensors_numpy.load(checkpoint))
    assert repr(resumed) == repr(opt)
    resumed_params = _continue(resumed, saved_params, grads_seq[3:])
    for k, p in params.items():
        assert resumed_params[k].dtype == p.dtype
        assert resumed_params[k].tobytes() == p.tobytes()
    assert resumed.t == opt.t == 6


def test_state_dict_format():
    rng = np.random.default_rng(10)
    params = make_params(rng, np.float32)
    opt = Adam()
    opt.update(params, make_grads(rng, params))
    state = opt.state_dict()
    assert set(state) == {"t", "lr", "beta1", "beta2"} | {
        f"{slot}/{k}" for slot in ("m", "v") for k in params
    }
    assert state["t"].dtype == np.int64
    assert state["t"].shape == ()
    assert state["t"] == 1
    assert state["lr"].dtype == np.float64
    assert state["lr"] == 0.001
    assert state["m/W1"].dtype == np.float32
    # Copies: a later step does not change a checkpoint already taken.
    m = state["m/W1"].copy()
    opt.update(params, make_grads(rng, params))
    np.testing.assert_array_equal(state["m/W1"], m)
    assert SGD().state_dict().keys() == {"t", "lr"}


def test_load_state_dict_copies_and_accepts_plain_numbers():
    opt = Momentum()
    v = np.ones(3)
    opt.load_state_dict({"t": 4, "lr": 0.5, "momentum": np.array([0.25]), "v/W": v})
    assert (opt.t, opt.lr, opt.momentum) == (4, 0.5, 0.25)
    params = {"W": np.zeros(3)}
    opt.update(params, {"W": np.zeros(3)})
    np.testing.assert_array_equal(v, np.ones(3))  # the caller's array is not the state
    np.testing.assert_array_equal(params["W"], np.full(3, 0.25))


def test_load_state_dict_errors_change_nothing():
    opt = Adam(lr=0.01)
    good = opt.state_dict()
    with pytest.raises(ValueError, match=r"lacks \['beta1', 'beta2'\]"):
        opt.load_state_dict(Momentum().state_dict())
    with pytest.raises(ValueError, match=r"keys \['h/W'\]"):
        opt.load_state_dict({**good, "h/W": np.zeros(2)})
    with pytest.raises(ValueError, match=r"same parameters.*m: \['W'\], v: \[\]"):
        opt.load_state_dict({**good, "m/W": np.zeros(2)})
    with pytest.raises(ValueError, match="t must be >= 0, got -1"):
        opt.load_state_dict({**good, "t": np.array(-1)})
    with pytest.raises(ValueError, match="lr must be > 0, got 0.0"):
        opt.load_state_dict({**good, "lr": np.array(0.0)})
    with pytest.raises(ValueError, match="one number"):
        opt.load_state_dict({**good, "beta1": np.zeros(2)})
    with pytest.raises(ValueError, match="float array"):
        opt.load_state_dict({**good, "m/W": np.zeros(2, int), "v/W": np.zeros(2, int)})
    assert repr(opt) == "Adam(lr=0.01, beta1=0.9, beta2=0.999)"
    assert opt.t == 0


def test_state_from_another_model_is_caught_before_any_step():
    opt = Momentum()
    opt.load_state_dict({"t": 1, "lr": 0.01, "momentum": 0.9, "v/W": np.zeros(3, np.float32)})
    W = np.ones(3)
    with pytest.raises(ValueError, match=r"state v/W is float32 of shape \(3,\).*float64"):
        opt.update({"W": W}, {"W": np.ones(3)})
    np.testing.assert_array_equal(W, np.ones(3))
    assert opt.t == 1


def test_get_optimizer():
    assert set(OPTIMIZERS) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"}
    opt = get_optimizer("RMSprop", lr=0.1, decay_rate=0.9)
    assert isinstance(opt, RMSprop)
    assert (opt.lr, opt.decay_rate) == (0.1, 0.9)
    assert isinstance(get_optimizer("ADAM"), Adam)
    assert all(isinstance(get_optimizer(name), Optimizer) for name in OPTIMIZERS)


@pytest.mark.parametrize("name", ["adamw", "", None])
def test_get_optimizer_unknown_name_lists_the_choices(name):
    with pytest.raises(
        ValueError, match=rf"{name!r}.*sgd, momentum, nesterov, adagrad, rmsprop, adam"
    ):
        get_optimizer(name)
