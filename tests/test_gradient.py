"""Numerical differentiation, gradient descent and the gradient_check helper."""

from __future__ import annotations

import numpy as np
import pytest

from scratchdl.gradient import (
    gradient_check,
    gradient_descent,
    numerical_diff,
    numerical_gradient,
    relative_error,
)
from scratchdl.layers import Affine, BatchNormalization, Dropout, Sigmoid
from tests.conftest import TOL
from tests.test_layers import CASES as LAYER_CASES


def function_2(x):
    return np.sum(x**2)


def test_numerical_diff_book_example():
    def f(x):
        return 0.01 * x**2 + 0.1 * x

    assert numerical_diff(f, 5) == pytest.approx(0.2, abs=1e-9)
    assert numerical_diff(f, 10) == pytest.approx(0.3, abs=1e-9)


def test_numerical_gradient_any_shape_and_restores_x():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    before = x.copy()
    np.testing.assert_allclose(numerical_gradient(function_2, x), 2 * x, atol=1e-8)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_on_integer_input():
    x = np.array([3, 4])
    g = numerical_gradient(function_2, x)
    np.testing.assert_allclose(g, [6.0, 8.0], atol=1e-6)  # the book's int-array pitfall gives 0s
    assert x.dtype.kind == "i" and list(x) == [3, 4]


def test_gradient_descent_finds_minimum_and_returns_path():
    init = np.array([-3.0, 4.0])
    x, path = gradient_descent(function_2, init, lr=0.1, step_num=100)
    np.testing.assert_allclose(x, [0, 0], atol=1e-8)
    assert path.shape == (101, 2)
    np.testing.assert_array_equal(path[0], [-3.0, 4.0])
    np.testing.assert_array_equal(init, [-3.0, 4.0])
    # too large a rate diverges, too small barely moves (the book's 4.4.1)
    assert np.abs(gradient_descent(function_2, init, lr=10.0, step_num=100)[0]).max() > 1e10
    assert np.abs(gradient_descent(function_2, init, lr=1e-10, step_num=100)[0] - init).max() < 1e-6
    with pytest.raises(ValueError, match="lr"):
        gradient_descent(function_2, init, lr=-1)


def test_gradient_check_reports_per_parameter_and_detects_a_wrong_backward():
    rng = np.random.default_rng(0)
    layer = Affine(rng.standard_normal((4, 3)), rng.standard_normal(3))
    x = rng.standard_normal((5, 4))
    report = gradient_check(layer, x, rng=1)
    assert set(report) == {"x", "W", "b"} and max(report.values()) < 1e-7

    class Broken(Affine):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["W"] = self.grads["W"] * 1.01
            return dx

    broken = gradient_check(Broken(layer.params["W"], layer.params["b"]), x, rng=1)
    assert broken["W"] > 1e-3 and broken["b"] < 1e-7


def test_relative_error():
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.2])) == pytest.approx(0.2 / 2.2)
    assert relative_error(np.zeros(3), np.full(3, 1e-12)) < 1e-5  # round-off around zero
    with pytest.raises(ValueError, match="shapes"):
        relative_error(np.zeros(2), np.zeros(3))


# --- gradient_check itself, on every layer: no forward before it, a stale cache, dropout ---


def layer_case(make, make_x, make_t):
    return make(), make_x(), None if make_t is None else make_t()


@pytest.mark.parametrize("name,make,make_x,make_t", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_gradient_check_is_right_for_every_layer_called_directly(name, make, make_x, make_t):
    # straight after construction: no forward has run (loss layers raised AttributeError),
    # and a dropout whose mask is not held (the mask changed between evaluations: error ~1)
    layer, x, t = layer_case(make, make_x, make_t)
    report = gradient_check(layer, x, t, rng=0)
    assert set(report) == {"x", *layer.params}
    assert max(report.values()) < TOL, report


@pytest.mark.parametrize("name,make,make_x,make_t", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_gradient_check_never_uses_the_cache_of_another_batch(name, make, make_x, make_t):
    layer, x, t = layer_case(make, make_x, make_t)
    other = make_x() * 2 + 1  # another batch of the same shape goes forward first
    if t is None:
        layer.forward(other, train=True)
    else:
        layer.forward(other, make_t())
    report = gradient_check(layer, x, t, rng=0)
    assert max(report.values()) < TOL, report


@pytest.mark.parametrize("name,make,make_x,make_t", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_gradient_check_catches_a_backward_off_by_a_factor(name, make, make_x, make_t):
    layer, x, t = layer_case(make, make_x, make_t)

    class OffByAFactor(type(layer)):
        def backward(self, dout=1.0):
            dx = super().backward(dout)
            self.grads = {k: g * 1.1 for k, g in self.grads.items()}
            return dx * 1.1

    layer.__class__ = OffByAFactor  # the same layer, with a wrong backward
    report = gradient_check(layer, x, t, rng=0)
    assert set(report) == {"x", *layer.params}
    assert min(report.values()) > 0.05, report  # 0.1 / 1.1 for every entry


def test_gradient_check_on_integer_input_differentiates_at_that_input():
    x = np.array([[-2, -1, 0, 1, 2]])  # the numerical gradient cannot nudge an int array
    report = gradient_check(Sigmoid(), x, rng=0)
    assert report["x"] < TOL, report


@pytest.mark.parametrize("held", [False, True])
def test_gradient_check_restores_the_dropout_hold(held):
    layer = Dropout(0.5, rng=0)
    layer.hold_mask = held
    gradient_check(layer, np.random.default_rng(1).standard_normal((3, 4)), rng=0)
    assert layer.hold_mask is held


def test_gradient_check_restores_the_dropout_hold_on_error():
    class FailsLater(Dropout):
        calls = 0

        def forward(self, x, train=False):
            FailsLater.calls += 1
            if FailsLater.calls == 3:  # during the numerical gradient
                raise RuntimeError("boom")
            return super().forward(x, train)

    layer = FailsLater(0.5, rng=0)
    with pytest.raises(RuntimeError, match="boom"):
        gradient_check(layer, np.ones((2, 3)), rng=0)
    assert layer.hold_mask is False


def test_gradient_check_leaves_the_running_statistics_alone():
    rng = np.random.default_rng(2)
    layer = BatchNormalization(np.ones(3), np.zeros(3))
    layer.buffers["running_mean"][:] = rng.standard_normal(3)
    before = {k: v.copy() for k, v in layer.buffers.items()}
    report = gradient_check(layer, rng.standard_normal((5, 3)), rng=0)
    assert max(report.values()) < TOL
    for k, v in before.items():
        np.testing.assert_array_equal(layer.buffers[k], v, err_msg=k)
