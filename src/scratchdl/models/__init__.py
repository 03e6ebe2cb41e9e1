"""The book's networks (ch5-8) and ``Sequential``, the stack of layers they are made of."""

from .networks import (
    ACTIVATIONS,
    DEEP_CONV_PARAMS,
    MODELS,
    DeepConvNet,
    MultiLayerNet,
    MultiLayerNetExtend,
    SimpleConvNet,
    TwoLayerNet,
    model_from_config,
)
from .plan import Plan
from .sequential import Sequential

__all__ = [
    "ACTIVATIONS",
    "DEEP_CONV_PARAMS",
    "MODELS",
    "DeepConvNet",
    "MultiLayerNet",
    "MultiLayerNetExtend",
    "Plan",
    "Sequential",
    "SimpleConvNet",
    "TwoLayerNet",
    "model_from_config",
]
