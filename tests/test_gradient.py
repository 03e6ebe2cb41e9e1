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
from scratchdl.layers import Affine


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
