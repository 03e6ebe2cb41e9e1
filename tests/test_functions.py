"""Activation functions, softmax and losses: values, stability, shapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from scratchdl import functions as F


def test_step_function():
    np.testing.assert_array_equal(F.step_function(np.array([-1.0, 0.0, 0.5])), [0, 0, 1])
    assert F.step_function(3.0) == 1


def test_sigmoid_values_and_no_overflow_warning():
    np.testing.assert_allclose(F.sigmoid(np.array([0.0, 1.0])), [0.5, 1 / (1 + np.exp(-1))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.sigmoid(np.array([-1000.0, -50.0, 50.0, 1000.0]))
    np.testing.assert_allclose(
        y, [0.0, np.exp(-50) / (1 + np.exp(-50)), 1 / (1 + np.exp(-50)), 1.0]
    )
    assert F.sigmoid(np.float32(2.0)).dtype == np.float32


def test_relu_tanh_identity():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(F.relu(x), [0, 0, 3])
    np.testing.assert_allclose(F.tanh(x), np.tanh(x))
    assert F.identity(x) is x


def test_softmax_sums_to_one_batched_and_is_stable():
    x = np.array([[0.3, 2.9, 4.0], [1010.0, 1000.0, 990.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.softmax(x)
    np.testing.assert_allclose(y.sum(axis=1), 1)
    np.testing.assert_allclose(y[0], [0.01821127, 0.24519181, 0.73659691], rtol=1e-6)  # the book's
    np.testing.assert_allclose(y[1], F.softmax(np.array([20.0, 10.0, 0.0])))
    assert F.softmax(np.array([1, 2])).dtype == np.float64


def test_sum_squared_error_book_example():
    t = np.zeros(10)
    t[2] = 1
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    assert F.sum_squared_error(y, t) == pytest.approx(0.0975)
    with pytest.raises(ValueError, match=r"\(10,\).*\(9,\)"):
        F.sum_squared_error(y, t[:9])


def test_cross_entropy_book_example_labels_and_one_hot():
    t = np.zeros(10)
    t[2] = 1
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    assert F.cross_entropy_error(y, t) == pytest.approx(0.510825457, rel=1e-6)
    assert F.cross_entropy_error(y, 2) == pytest.approx(0.510825457, rel=1e-6)
    batch = np.stack([y, np.roll(y, 1)])
    expected = (-np.log(0.6 + F.EPS) - np.log(0.6 + F.EPS)) / 2
    assert F.cross_entropy_error(batch, np.array([2, 3])) == pytest.approx(expected)
    assert F.cross_entropy_error(batch, np.eye(10)[[2, 3]]) == pytest.approx(expected)


def test_cross_entropy_of_zero_probability_is_finite():
    assert np.isfinite(F.cross_entropy_error(np.array([[1.0, 0.0]]), np.array([1])))


@pytest.mark.parametrize("t", [np.array([0, 5]), np.array([-1, 0])])
def test_labels_out_of_range_are_refused(t):
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        F.cross_entropy_error(np.full((2, 3), 1 / 3), t)


def test_mismatched_batch_is_refused():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        F.cross_entropy_error(np.full((2, 3), 1 / 3), np.array([0, 1, 2]))


def test_softmax_loss_equals_cross_entropy_of_softmax():
    x = np.random.default_rng(0).standard_normal((5, 4))
    t = np.array([0, 1, 2, 3, 0])
    assert F.softmax_loss(x, t) == pytest.approx(F.cross_entropy_error(F.softmax(x), t), abs=1e-6)
    assert np.isfinite(F.softmax_loss(np.array([[1e4, -1e4]]), np.array([1])))
