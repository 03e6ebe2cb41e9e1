"""How a ``Sequential`` runs its layers: one object holds the whole plan.

- Which layers run fused: each Convolution -> ReLU (-> max pooling) runs as one
  ``ConvReluPool`` (``layers.fused.fuse``), every other layer on its own.
- Which leading layers run on parts of the batch, one thread a part
  (``engine.threads.BatchParts``): those up to the first that is not ``splittable``, and only
  where a convolution is among them (for an MLP's small products, handing work to threads
  costs more than it saves).
- A batch too small to split runs its forward products on one BLAS thread.

``reference = True`` runs every layer on its own in the calling thread: with each layer's
``reference`` flag set (``Sequential.reference``), the book's code, which the tests hold the
fast path to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from ..engine import threads
from ..layers import Convolution, ConvReluPool, Layer
from ..layers.fused import fuse


class Plan:
    """The stages a model's layers run as, and which of them run in parts of the batch.

    ``forward`` runs a batch and remembers how (the stages, how many ran in parts); ``backward``
    goes back through that same forward: the first stage computes no input gradient (the
    model's input data needs none).
    """

    def __init__(self) -> None:
        self.reference = False
        self.parts = threads.BatchParts()  # runs the leading stages on parts of a batch
        self.key: tuple = ()  # the layers (ids, reference flags) the stages were made for
        self.made: list[Layer] = []  # those stages
        self.lead: dict[bool, int] = {}  # how many of them may run in parts, by ``train``
        self.stages_run: list[Layer] = []  # the latest forward's stages, for backward
        self.split = 0  # how many of them the latest forward ran in parts (0: none)

    def stages(self, layers: Sequence[Layer]) -> list[Layer]:
        """The layers as they run: fused blocks, or the layers themselves for reference."""
        self._make(layers)
        return self.made

    def leading(self, layers: Sequence[Layer], N: int, train: bool) -> int:
        """How many leading stages run on parts of a batch of ``N`` (0: all in this thread)."""
        self._make(layers)
        k = self.lead[train]
        return k if k and threads.threads_for(N) > 1 else 0

    def _make(self, layers: Sequence[Layer]) -> None:
        """The stages and how many may run in parts, made again when the layers changed."""
        key = (self.reference, *map(id, layers), *[layer.reference for layer in layers])
        if key != self.key:
            self.made = list(layers) if self.reference else fuse(layers)
            self.lead = {
                t: 0 if self.reference else _splittable(self.made, t) for t in (False, True)
            }
            self.key = key

    def forward(self, layers: Sequence[Layer], x: np.ndarray, train: bool) -> np.ndarray:
        """``x`` through the layers, as planned. Shape: (N, ...) -> the last layer's output."""
        stages = self.stages_run = self.stages(layers)
        s = self.split = self.leading(layers, len(x), train)
        # a batch too small to split has products too small to share over BLAS threads too
        small = not s and not self.reference and len(x) < threads.get_num_threads()
        with threads.one_blas_thread() if small else contextlib.nullcontext():
            if s:  # the first s stages on parts of the batch, one thread a part
                x = self.parts.forward(stages[:s], x, train)
            for stage in stages[s:]:
                x = stage.forward(x, train=train)
        return x

    def backward(self, loss_layer: Layer) -> None:
        """Back from the loss (dout = 1) through ``loss_layer`` and the latest forward's
        stages, filling their ``grads``."""
        stages, s = self.stages_run, self.split
        dout = loss_layer.backward(1.0)
        for stage in reversed(stages[max(s, 1) :]):
            dout = stage.backward(dout)
        if s:  # the first s stages, on the parts of the batch that forward used
            self.parts.backward(dout)
        elif stages:
            stages[0].backward_params(dout)


def _splittable(stages: Sequence[Layer], train: bool) -> int:
    """The leading stages that may run on parts of a batch, if a convolution is among them."""
    k = 0
    while k < len(stages) and stages[k].splittable(train):
        k += 1
    convs = any(isinstance(stage, (Convolution, ConvReluPool)) for stage in stages[:k])
    return k if convs else 0
