"""scratchdl: the networks of "Deep Learning from Scratch" as a small, tested NumPy library.

Importing the package needs numpy only; the command line, figures and model files use the
optional ``cli`` extra (tqdm, matplotlib, safetensors, Pillow, threadpoolctl), imported where
they are used.
"""

from ._parallel import get_num_threads, set_num_threads
from .augment import Augmenter
from .datasets import load_fashion_mnist, load_mnist
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
from .models import DeepConvNet, MultiLayerNet, Sequential, SimpleConvNet, TwoLayerNet
from .optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from .perceptron import AND, NAND, OR, XOR, Perceptron
from .trainer import Trainer, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "AND",
    "NAND",
    "OR",
    "SGD",
    "XOR",
    "AdaGrad",
    "Adam",
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
    "MultiLayerNet",
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
    "cross_entropy_error",
    "get_num_threads",
    "get_optimizer",
    "gradient_check",
    "gradient_descent",
    "identity",
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
