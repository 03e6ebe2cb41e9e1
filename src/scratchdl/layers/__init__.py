"""Layers with forward and backward passes (ch5-7), one file per section of the book.

The contract every layer keeps is in ``scratchdl.layers.base``. ``ConvReluPool``
(``fused.py``) is the book's block Convolution -> ReLU (-> max pooling) as one layer.
"""

from .activation import Relu, Sigmoid, Tanh
from .affine import Affine, Flatten
from .base import Layer
from .convolution import Convolution
from .fused import ConvReluPool
from .loss import LOSS_LAYERS, IdentityWithLoss, SoftmaxWithLoss
from .pooling import AvgPooling, Pooling
from .regularization import BN_EPS, BatchNormalization, Dropout

__all__ = [
    "BN_EPS",
    "LOSS_LAYERS",
    "Affine",
    "AvgPooling",
    "BatchNormalization",
    "ConvReluPool",
    "Convolution",
    "Dropout",
    "Flatten",
    "IdentityWithLoss",
    "Layer",
    "Pooling",
    "Relu",
    "Sigmoid",
    "SoftmaxWithLoss",
    "Tanh",
]
