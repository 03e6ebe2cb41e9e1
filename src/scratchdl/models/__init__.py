"""The book's networks (ch5-8) and ``Sequential``, the stack of layers they are made of."""

from .networks import (
    ACTIVATIONS,
    DEEP_CONV_PARAMS,
    MODELS,
    DeepConvNet,
    MultiLayerNet,
    SimpleConvNet,
    TwoLayerNet,
    model_from_config,
)
from .sequential import Sequential

__all__ = [
    "ACTIVATIONS",
    "DEEP_CONV_PARAMS",
    "MODELS",
    "DeepConvNet",
    "MultiLayerNet",
    "Sequential",
    "SimpleConvNet",
    "TwoLayerNet",
    "model_from_config",
]
