"""The book's networks by the names that ``scratchdl train`` and the page's Train tab use,
each with the recipe it is trained with when nothing else is asked: epochs, optimizer, and a
learning rate for every optimizer."""

from __future__ import annotations

import numpy as np

MODEL_CHOICES = ("two-layer", "mlp", "simple-cnn", "deep-cnn")
DEFAULT_EPOCHS = {"two-layer": 17, "mlp": 10, "simple-cnn": 8, "deep-cnn": 20}
DEFAULT_OPTIMIZER = {"two-layer": "sgd", "mlp": "adam", "simple-cnn": "adam", "deep-cnn": "adam"}
# the learning rate without --lr; one for every optimizer of OPTIMIZERS (a test checks)
DEFAULT_LR = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.01,
    "rmsprop": 0.001,
    "adam": 0.001,
}


def new_network(choice: str, *, rng, dtype=np.float32):
    """A freshly initialised network for a ``--model`` choice, sized for 28x28 grayscale
    images and 10 classes."""
    from .networks import DeepConvNet, MultiLayerNet, SimpleConvNet, TwoLayerNet

    if choice == "two-layer":
        return TwoLayerNet(784, 50, 10, rng=rng, dtype=dtype)  # the book's ch5 settings
    if choice == "mlp":
        return MultiLayerNet(784, [100] * 5, 10, use_batchnorm=True, rng=rng, dtype=dtype)
    if choice == "simple-cnn":
        return SimpleConvNet(rng=rng, dtype=dtype)
    if choice == "deep-cnn":
        return DeepConvNet(rng=rng, dtype=dtype)
    raise ValueError(f"unknown model {choice!r}; choices: {', '.join(MODEL_CHOICES)}")
