"""The computational graph of ch5: every number that the book's buy_apple.py and
buy_apple_orange.py print."""

from __future__ import annotations

import numpy as np
import pytest

from scratchdl.graph import AddLayer, MulLayer


def test_buy_apple():
    apple, apple_num, tax = 100, 2, 1.1
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(apple, apple_num), tax)
    assert price == pytest.approx(220)
    assert int(price) == 220  # the book prints int(price)
    dapple_price, dtax = mul_tax.backward(1)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert dapple == pytest.approx(2.2)
    assert dapple_num == pytest.approx(110)
    assert dtax == pytest.approx(200)


def test_buy_apple_orange():
    apple, apple_num, orange, orange_num, tax = 100, 2, 150, 3, 1.1
    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    apple_price = mul_apple.forward(apple, apple_num)  # 200
    orange_price = mul_orange.forward(orange, orange_num)  # 450
    all_price = add.forward(apple_price, orange_price)  # 650
    price = mul_tax.forward(all_price, tax)
    assert (apple_price, orange_price, all_price) == (200, 450, 650)
    assert price == pytest.approx(715) and int(price) == 715
    dall_price, dtax = mul_tax.backward(1)
    dapple_price, dorange_price = add.backward(dall_price)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert dapple_num == pytest.approx(110)
    assert dapple == pytest.approx(2.2)
    assert dorange == pytest.approx(3.3)
    assert dorange_num == pytest.approx(165)
    assert dtax == pytest.approx(650)


def test_backward_is_the_derivative_elementwise():
    rng = np.random.default_rng(0)
    x, y, dout = rng.standard_normal((3, 4, 5))
    mul, add = MulLayer(), AddLayer()
    np.testing.assert_array_equal(mul.forward(x, y), x * y)
    dx, dy = mul.backward(dout)
    np.testing.assert_array_equal(dx, dout * y)
    np.testing.assert_array_equal(dy, dout * x)
    np.testing.assert_array_equal(add.forward(x, y), x + y)
    assert all(d is dout for d in add.backward(dout))
    # central differences agree with the product rule
    h = 1e-6
    num_dx = ((x + h) * y - (x - h) * y) / (2 * h)
    np.testing.assert_allclose(dx, dout * num_dx, rtol=1e-6, atol=1e-8)


def test_mul_backward_needs_a_forward_pass():
    with pytest.raises(RuntimeError, match="forward pass first"):
        MulLayer().backward(1.0)
