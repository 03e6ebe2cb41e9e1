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


# --- target rows: any probability distribution, checked row by row ---------------------------


def test_cross_entropy_of_soft_targets_is_the_books_sum_over_classes():
    y, t = np.array([[0.2, 0.3, 0.5]]), np.array([[0.0, 0.5, 0.5]])
    expected = -(0.5 * np.log(0.3 + F.EPS) + 0.5 * np.log(0.5 + F.EPS))  # -sum_k t_k log y_k
    assert F.cross_entropy_error(y, t) == pytest.approx(expected, rel=1e-12)
    assert F.cross_entropy_error(y, t) == pytest.approx(0.9486, abs=1e-4)  # the value
    x = np.log(y)  # softmax(log y) = y: the stable form computes the same sum
    assert F.softmax_loss(x, t) == pytest.approx(expected, rel=1e-6)


def test_soft_targets_of_a_batch_average_the_rows():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5))
    t = rng.dirichlet(np.ones(5), size=6)
    y = F.softmax(x)
    expected = -np.mean([np.dot(t[n], np.log(y[n] + F.EPS)) for n in range(6)])
    assert F.cross_entropy_error(y, t) == pytest.approx(expected, rel=1e-12)
    assert F.softmax_loss(x, t) == pytest.approx(F.cross_entropy_error(y, t), abs=1e-5)


def test_class_indices_reads_a_soft_row_by_its_most_probable_class():
    y = np.zeros((2, 3))
    np.testing.assert_array_equal(F.class_indices([[0.1, 0.7, 0.2], [0.5, 0.0, 0.5]], y), [1, 0])
    np.testing.assert_array_equal(F.class_indices(np.array([2.0, 0.0]), y), [2, 0])


@pytest.mark.parametrize(
    "row,words",
    [
        ([0.0, 0.0, 0.0], ["t[1]", "sum 0"]),  # was read as class 0
        ([np.nan, 0.5, 0.5], ["t[1]", "nan"]),  # was accepted
        ([np.inf, 0.0, 0.0], ["t[1]", "inf"]),
        ([-0.5, 0.75, 0.75], ["t[1]", "-0.5"]),
        ([0.0, 0.5, 0.4], ["t[1]", "sum 0.9"]),
        ([1.0, 1.0, 0.0], ["t[1]", "sum 2"]),
    ],
)
def test_a_target_row_that_is_not_a_distribution_is_refused_by_name(row, words):
    t = np.array([[0.0, 1.0, 0.0], row])
    y = np.full((2, 3), 1 / 3)
    for call in (F.cross_entropy_error, F.softmax_loss, lambda y, t: F.class_indices(t, y)):
        with pytest.raises(ValueError) as info:
            call(y, t)
        for word in [*words, "labels"]:
            assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


def test_a_target_row_may_sum_to_one_within_float_rounding():
    t = np.full((1, 10), 0.1, dtype=np.float16)  # sums to 1 only within float16's precision
    assert abs(float(t.astype(np.float64).sum()) - 1) > 1e-6
    assert np.isfinite(F.cross_entropy_error(np.full((1, 10), 0.1), t))


def test_a_model_with_soft_targets_agrees_loss_gradient_and_accuracy():
    from scratchdl.models import TwoLayerNet

    rng = np.random.default_rng(0)
    net = TwoLayerNet(4, 5, 3, weight_init_std=0.5, rng=1, dtype=np.float64)
    x = rng.standard_normal((6, 4))
    t = 0.9 * np.eye(3)[rng.integers(0, 3, 6)] + 0.1 / 3  # label smoothing
    y = F.softmax(net.predict(x))
    assert net.loss(x, t) == pytest.approx(F.cross_entropy_error(y, t), abs=1e-6)
    grads, num = net.gradient(x, t), net.numerical_gradient(x, t)
    for name in net.params:
        np.testing.assert_allclose(grads[name], num[name], rtol=1e-5, atol=1e-7, err_msg=name)
    hits = np.mean(y.argmax(axis=1) == t.argmax(axis=1))
    assert net.accuracy(x, t) == hits
    with pytest.raises(ValueError, match=r"t\[2\]"):
        net.loss(x, np.vstack([t[:2], np.zeros((1, 3)), t[3:]]))
