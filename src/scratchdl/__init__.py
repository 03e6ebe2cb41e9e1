"""scratchdl: the networks of "Deep Learning from Scratch" as a small, tested NumPy library.

Importing the package loads numpy only; the command line's libraries (tqdm, matplotlib,
safetensors, Pillow, threadpoolctl) are imported where they are used. ``__version__`` is the
installed package's (pyproject.toml's ``version``, the one place it is written).
"""

from importlib import metadata as _metadata

from .augment import Augmenter
from .columns import col2im, conv_output_size, im2col
from .datasets import load_fashion_mnist, load_mnist
from .engine.threads import get_num_threads, set_num_threads
from .functions import (
    cross_entropy_error,
    identity,
    relu,
    sigmoid,
    softmax,
    step_function,
    sum_squared_error,
    tanh,
)
from .gradient import gradient_check, gradient_descent, numerical_diff, numerical_gradient
from .graph import AddLayer, MulLayer
from .layers import (
    Affine,
    AvgPooling,
    BatchNormalization,
    Convolution,
    Dropout,
    Flatten,
    IdentityWithLoss,
    Pooling,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    Tanh,
)
from .models import (
    DeepConvNet,
    MultiLayerNet,
    MultiLayerNetExtend,
    Sequential,
    SimpleConvNet,
    TwoLayerNet,
)
from .optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from .perceptron import AND, NAND, OR, XOR, Perceptron
from .trainer import Trainer, TrainingDiverged

try:
    __version__ = _metadata.version("scratchdl")
except _metadata.PackageNotFoundError:  # a source tree on sys.path that pip never installed
    __version__ = "unknown"
del _metadata  # dir(scratchdl) shows the library's names only

__all__ = [
    "AND",
    "NAND",
    "OR",
    "SGD",
    "XOR",
    "AdaGrad",
    "Adam",
    "AddLayer",
    "Affine",
    "Augmenter",
    "AvgPooling",
    "BatchNormalization",
    "Convolution",
    "DeepConvNet",
    "Dropout",
    "Flatten",
    "IdentityWithLoss",
    "Momentum",
    "MulLayer",
    "MultiLayerNet",
    "MultiLayerNetExtend",
    "Nesterov",
    "Perceptron",
    "Pooling",
    "RMSprop",
    "Relu",
    "Sequential",
    "Sigmoid",
    "SimpleConvNet",
    "SoftmaxWithLoss",
    "Tanh",
    "Trainer",
    "TrainingDiverged",
    "TwoLayerNet",
    "col2im",
    "conv_output_size",
    "cross_entropy_error",
    "get_num_threads",
    "get_optimizer",
    "gradient_check",
    "gradient_descent",
    "identity",
    "im2col",
    "load_fashion_mnist",
    "load_mnist",
    "numerical_diff",
    "numerical_gradient",
    "set_num_threads",
    "relu",
    "sigmoid",
    "softmax",
    "step_function",
    "sum_squared_error",
    "tanh",
]
