"""How a ``Sequential`` runs its layers: one by one, except the book's block.

Convolution -> ReLU (-> max pooling) runs as one ``ConvBlock`` stage, computed by
``conv_fused`` band by band, so that the convolution's output never makes a round trip
through memory. Every other layer is its own stage. A stage has the layer contract that
``Sequential`` and ``threads.BatchParts`` use (forward, backward, backward_params, grads,
params, splittable, twin); the block's parameters and gradients are its convolution's.

The layers themselves are unchanged and remain the reference: ``Sequential(fuse=False)``
runs them one by one, and the tests hold the blocks to that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import conv_bands, conv_fused
from ..layers import Convolution, Layer, Pooling, Relu


class ConvBlock:
    """Convolution, ReLU and, optionally, a max pooling of non-overlapping windows, as one
    stage. Shape: like the layers it stands for, one after the other."""

    per_sample = True

    def __init__(self, conv: Convolution, relu: Relu, pool: Pooling | None = None) -> None:
        self.conv, self.relu, self.pool = conv, relu, pool
        self.layers = tuple(layer for layer in (conv, relu, pool) if layer is not None)
        self.size = 1 if pool is None else pool.pool_h
        self.state = conv_fused.FusedState()

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
        conv = self.conv
        x = conv.checked_input(x)
        W, b = conv.params["W"], conv.params["b"]
        return conv_fused.forward(
            x, W, b, conv.stride, conv.pad, self.size, conv.work, self.state, train
        )

    def backward_params(self, dout: np.ndarray) -> None:
        self.conv.backward_params(conv_fused.conv_output_gradient(dout, self.size, self.state))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dy = conv_fused.conv_output_gradient(dout, self.size, self.state)
        conv = self.conv
        conv.backward_params(dy)
        return conv_bands.input_gradient(dy, conv.params["W"], conv.stride, conv.pad, conv.work)

    def twin(self) -> ConvBlock:
        pool = None if self.pool is None else self.pool.twin()
        return ConvBlock(self.conv.twin(), self.relu.twin(), pool)

    def __repr__(self) -> str:
        return f"ConvBlock({', '.join(map(repr, self.layers))})"


def stages(layers: Sequence[Layer]) -> list:
    """The stages that run ``layers``: each Convolution followed by a ReLU (and by a max
    pooling that ``conv_fused`` can fuse) becomes one ``ConvBlock``; other layers stand
    alone. Exact types only: a subclass may change what the fused code assumes."""
    out, i = [], 0
    while i < len(layers):
        layer = layers[i]
        if type(layer) is Convolution and i + 1 < len(layers) and type(layers[i + 1]) is Relu:
            nxt = layers[i + 2] if i + 2 < len(layers) else None
            pool = nxt if type(nxt) is Pooling and _fusable(nxt) else None
            out.append(ConvBlock(layer, layers[i + 1], pool))
            i += 2 if pool is None else 3
            continue
        out.append(layer)
        i += 1
    return out


def _fusable(pool: Pooling) -> bool:
    return conv_fused.fusable_pool(pool.pool_h, pool.pool_w, pool.stride, pool.pad)


def layer_count(stage) -> int:
    """How many of the model's layers a stage stands for."""
    return len(stage.layers) if isinstance(stage, ConvBlock) else 1
