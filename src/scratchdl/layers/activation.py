"""Activation layers (ch5.5): ReLU, sigmoid and tanh, each with the backward pass of its
derivative."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from .base import Layer, as_input


class Relu(Layer):
    """ReLU: y = max(0, x); dx = dout where x > 0, else 0. Shape: any -> same."""

    per_sample = True

    def __init__(self) -> None:
        super().__init__()
        self.mask: np.ndarray | None = None  # x > 0: where backward lets the gradient through

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = as_input(self, x)
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise RuntimeError("Relu.backward needs a forward pass first")
        # dout * mask, not np.where(mask, dout, 0): on a convolution's output (not in C order)
        # the masked select is many times slower than the product (benchmarks/RESULTS.md)
        return dout * self.mask


class Sigmoid(Layer):
    """Sigmoid: y = 1 / (1 + exp(-x)); dx = dout * y * (1 - y). Shape: any -> same."""

    per_sample = True

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None  # dy/dx = y(1 - y) needs only the output

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = as_input(self, x)
        self.out = F.sigmoid(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out is None:
            raise RuntimeError("Sigmoid.backward needs a forward pass first")
        return dout * (1 - self.out) * self.out


class Tanh(Layer):
    """Tanh: y = tanh(x); dx = dout * (1 - y**2). Shape: any -> same."""

    per_sample = True

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None  # dy/dx = 1 - y^2 needs only the output

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = as_input(self, x)
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out is None:
            raise RuntimeError("Tanh.backward needs a forward pass first")
        return dout * (1 - self.out**2)
