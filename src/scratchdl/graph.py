"""The computational graph of ch5: a multiplication node and an addition node.

Each node remembers what its backward pass needs and hands the upstream gradient ``dout`` to
its inputs by the chain rule. The book's shopping example (5.4) is::

    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(100, 2), 1.1)   # 220
    dapple_price, dtax = mul_tax.backward(1)                     # 1.1, 200
    dapple, dapple_num = mul_apple.backward(dapple_price)        # 2.2, 110

Both nodes take numbers or NumPy arrays of one shape (elementwise).
"""

from __future__ import annotations


class MulLayer:
    """z = x * y; backward: dx = dout * y, dy = dout * x (the inputs swap)."""

    def __init__(self) -> None:
        self.x = None  # dz/dy = x
        self.y = None  # dz/dx = y

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        if self.x is None:
            raise RuntimeError("MulLayer.backward needs a forward pass first")
        return dout * self.y, dout * self.x

    def __repr__(self) -> str:
        return "MulLayer()"


class AddLayer:
    """z = x + y; backward: dx = dy = dout (the gradient passes through unchanged)."""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout, dout

    def __repr__(self) -> str:
        return "AddLayer()"
