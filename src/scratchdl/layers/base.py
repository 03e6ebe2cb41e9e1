"""The layer contract and the checks every layer makes of its input (ch5).

Contract (every layer):
- ``forward(x, train=False) -> out`` and ``backward(dout) -> dx``; backward follows the most
  recent forward and never writes into ``dout``, ``x`` or a cache.
- ``params`` and ``grads``: dicts with the same keys and shapes (empty for layers without
  parameters); ``grads`` is filled by ``backward``. ``backward_params(dout)`` fills ``grads``
  alone: a model calls it on its first layer, whose input (the data) needs no gradient.
- ``buffers``: state that is not learned but must be saved with a model (batch norm's running
  statistics).
- ``per_sample`` / ``splittable(train)``: True where each sample's output depends on that
  sample alone, so that a model may run parts of a batch through ``twin()`` copies of the
  layer on threads (the twins share ``params`` and ``buffers``). False unless a class
  declares it. This is the one place a layer says so.
- ``reference``: where a layer has a fast path in ``scratchdl.engine`` (Convolution, Pooling),
  True runs the book's code instead (im2col, one product, reshape); the tests hold the fast
  path to it. Layers with one path ignore it.
- A layer's output may be a view in another memory order (the convolution stack keeps images
  batch-last): use order-keeping operations (``np.empty_like``, ``copy(order="K")``,
  ``dout * self.mask``).
Loss layers instead have ``forward(x, t) -> float`` and ``backward(dout=1.0) -> dx``, scaled by
``dout``.
"""

from __future__ import annotations

import copy

import numpy as np


class Layer:
    """Base class: empty ``params``/``grads``/``buffers`` and a readable ``__repr__``."""

    # True where each sample's output depends on that sample alone, so that the forward pass
    # of a batch equals the forward passes of its parts, stacked (and so for backward);
    # Sequential then may run parts of a batch on threads. False unless a class says so.
    per_sample = False
    # True: the book's code, where the layer also has a fast path (see the module docstring)
    reference = False

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward_params(self, dout: np.ndarray) -> None:
        """Fill ``grads`` from ``dout`` without computing dx (nobody needs the gradient of a
        model's input data; for a convolution it is a third of backward). Layers with
        parameters override it to skip dx; this default computes it and drops it."""
        self.backward(dout)

    def splittable(self, train: bool) -> bool:
        """Whether parts of a batch may go through this layer separately (see per_sample)."""
        return self.per_sample

    def twin(self) -> Layer:
        """A copy for another part of a batch: the very ``params`` and ``buffers`` arrays (an
        optimizer's update reaches both), but caches and ``grads`` of its own."""
        twin = copy.copy(self)
        shared = {id(a) for a in (*self.params.values(), *self.buffers.values())}
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and id(value) not in shared:
                setattr(twin, name, None)  # a cache of the latest pass: the twin fills its own
        twin.grads = {}
        return twin

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def as_input(layer: Layer, x) -> np.ndarray:
    """``x`` as an array of numbers, or a ValueError naming what was received."""
    x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise ValueError(f"{type(layer).__name__} expects numbers, got an array of {x.dtype}")
    return x


def as_float_input(layer: Layer, x) -> np.ndarray:
    """``x`` as floating numbers, for a layer whose output is not exact in integers (a mean,
    a normalisation, a scaled mask): integer input becomes float64, as numpy's ``mean`` does.

    Layers whose output is exact in the input's own type (ReLU, max pooling, Flatten) keep
    integers; those that multiply by float parameters (Affine, Convolution) promote by numpy's
    rules; floating input keeps its dtype everywhere.
    """
    x = as_input(layer, x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def as_param(layer: Layer, name: str, value) -> np.ndarray:
    """A parameter as a floating array (it is updated in place by the optimizers)."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        got = (
            f"an array of {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        )
        raise ValueError(f"{type(layer).__name__} needs {name} as a float numpy array, got {got}")
    return value


def check_ndim(layer: Layer, x: np.ndarray, ndim: int, what: str) -> None:
    """Raise ValueError unless ``x`` has ``ndim`` axes, naming the layer and the shape."""
    if x.ndim != ndim:
        raise ValueError(f"{type(layer).__name__} expects {what} input, got shape {x.shape}")
