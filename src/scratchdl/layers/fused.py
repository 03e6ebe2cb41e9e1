"""The book's block Convolution -> ReLU (-> max pooling) as one layer (ch7.5).

Run as three layers, the block moves the convolution's whole output through memory three
times. ``ConvReluPool`` computes it band by band instead (``engine.FusedConv``): each band of
the convolution's output is rectified and pooled while it is still in the CPU's cache. It is a
``Layer`` like the three it stands for: the convolution's ``params`` and ``grads``, ``twin``,
``splittable``; its backward takes the gradient through ReLU and the pooling in the engine,
then calls the convolution's own backward (``backward_params``, for a model's first block,
asks the engine for the filters' gradient in one call: the convolution's ``filter_gradient``
behind the same way back). ``reference = True`` runs the three layers one by one. A model
groups its layers into these blocks with ``fuse``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..engine import FusedConv, fusable_pool
from .activation import Relu
from .base import Layer
from .convolution import Convolution
from .pooling import Pooling


class ConvReluPool(Layer):
    """Convolution, ReLU and, optionally, a max pooling of non-overlapping windows without
    padding (``fusable``), as one layer. Shape: like the layers it stands for, in turn."""

    per_sample = True

    def __init__(self, conv: Convolution, relu: Relu, pool: Pooling | None = None) -> None:
        if not fusable(conv, relu, pool):
            raise ValueError(
                "ConvReluPool needs a Convolution, a Relu and a max Pooling of square, "
                f"non-overlapping windows without padding (or None), got {conv!r}, {relu!r}, "
                f"{pool!r}"
            )
        self.conv, self.relu, self.pool = conv, relu, pool
        self.layers = tuple(layer for layer in (conv, relu, pool) if layer is not None)
        # the fused arithmetic, on the convolution's engine: it keeps the padded input that
        # the convolution's backward reads
        self.engine = FusedConv(conv.engine, 1 if pool is None else pool.pool_h)
        self.buffers: dict[str, np.ndarray] = {}

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.conv.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.conv.grads

    @grads.setter
    def grads(self, value: dict[str, np.ndarray]) -> None:
        self.conv.grads = value

    def splittable(self, train: bool) -> bool:
        return all(layer.splittable(train) for layer in self.layers)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        if self.reference:
            for layer in self.layers:
                x = layer.forward(x, train=train)
            return x
        conv = self.conv
        x = conv.checked_input(x)
        W, b = conv.params["W"], conv.params["b"]
        return self.engine.forward(x, W, b, conv.stride, conv.pad, train)

    def backward_params(self, dout: np.ndarray) -> None:
        if self.reference:  # the three layers' backward; dx is dropped
            super().backward_params(dout)
        else:  # back to the filters in one call to the engine
            conv = self.conv
            dW, db = self.engine.filter_gradient(dout, conv.params["W"], conv.stride)
            conv.grads = {"W": dW, "b": db}

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.reference:
            for layer in reversed(self.layers):
                dout = layer.backward(dout)
            return dout
        return self.conv.backward(self.engine.conv_output_gradient(dout))

    def twin(self) -> ConvReluPool:
        pool = None if self.pool is None else self.pool.twin()
        twin = ConvReluPool(self.conv.twin(), self.relu.twin(), pool)
        twin.reference = self.reference
        return twin

    def __repr__(self) -> str:
        return f"ConvReluPool({', '.join(map(repr, self.layers))})"


def fusable(conv: Layer, relu: Layer, pool: Layer | None) -> bool:
    """Whether these layers can run as one ``ConvReluPool``. Exact types only (a subclass
    may change what the fused arithmetic assumes), none of them set to ``reference``."""
    if type(conv) is not Convolution or type(relu) is not Relu:
        return False
    if pool is not None and not (
        type(pool) is Pooling and fusable_pool(pool.pool_h, pool.pool_w, pool.stride, pool.pad)
    ):
        return False
    return not any(layer.reference for layer in (conv, relu, pool) if layer is not None)


def fuse(layers: Sequence[Layer]) -> list[Layer]:
    """The layers as they run fast: each Convolution followed by a ReLU (and by a max
    pooling that can be fused) becomes one ``ConvReluPool``; other layers stand alone."""
    out, i = [], 0
    while i < len(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if nxt is not None and fusable(layers[i], nxt, None):
            pool = layers[i + 2] if i + 2 < len(layers) else None
            pool = pool if pool is not None and fusable(layers[i], nxt, pool) else None
            out.append(ConvReluPool(layers[i], nxt, pool))
            i += len(out[-1].layers)
            continue
        out.append(layers[i])
        i += 1
    return out
