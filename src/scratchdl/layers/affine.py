"""The fully connected layer (ch5.6) and Flatten."""

from __future__ import annotations

import math

import numpy as np

from .base import Layer, as_input, as_param


class Affine(Layer):
    """Fully connected layer: y = x @ W + b, flattening N-D input to (N, D) first.

    Shape: x (N, ...) with prod(...) = D -> (N, M); W (D, M); b (M,); dx has x's shape.
    """

    per_sample = True

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        super().__init__()
        W, b = as_param(self, "W", W), as_param(self, "b", b)
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(f"Affine needs W (D, M) and b (M,), got {W.shape} and {b.shape}")
        self.params = {"W": W, "b": b}
        self.x: np.ndarray | None = None  # the flattened input: dW = x.T @ dout
        self.x_shape: tuple | None = None  # dx is returned in the input's own shape

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = as_input(self, x)
        W, b = self.params["W"], self.params["b"]
        if x.ndim < 2 or math.prod(x.shape[1:]) != W.shape[0]:
            raise ValueError(
                f"Affine expects input of shape (N, {W.shape[0]}) (or (N, ...) with "
                f"{W.shape[0]} values per sample), got {x.shape}"
            )
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ W + b

    def backward_params(self, dout: np.ndarray) -> None:
        if self.x is None:
            raise RuntimeError("Affine.backward needs a forward pass first")
        self.grads = {"W": self.x.T @ dout, "b": dout.sum(axis=0)}

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.backward_params(dout)
        return (dout @ self.params["W"].T).reshape(self.x_shape)

    def extra_repr(self) -> str:
        D, M = self.params["W"].shape
        return f"{D}, {M}"


class Flatten(Layer):
    """Flatten all but the first axis. Shape: (N, ...) -> (N, prod(...))."""

    per_sample = True

    def __init__(self) -> None:
        super().__init__()
        self.x_shape: tuple | None = None  # backward restores this shape

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = as_input(self, x)
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.x_shape is None:
            raise RuntimeError("Flatten.backward needs a forward pass first")
        return dout.reshape(self.x_shape)
