"""Shared by the chapter 7-8 experiments: the training settings, and a trained
convolutional network, either loaded from a model file or trained briefly here.

A network trained here is the book's ``SimpleConvNet`` (ch7 ``train_convnet.py``: Adam,
lr = 0.001, mini-batches of 100), trained by ``scratchdl.Trainer`` for ``epochs`` shuffled
passes over the training images rather than the book's 20, so that an experiment takes
minutes, not an hour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import common
from .common import Setting, count, positive

# The settings of the experiments that study a trained network. Quick: 160 steps on the
# 2000-image sample, about 2 s, about 90 % test accuracy.
TRAIN_SETTINGS = {
    "model": Setting("", file=True),  # a model file to study; empty: train a SimpleConvNet
    "epochs": count(3, quick=4),
    "lr": positive(0.001, quick=0.002),
    "batch_size": count(100, quick=50),
}
EVAL_BATCH = 500  # images per predict() call when a whole test set is scored
EVAL_SAMPLES = 500  # images of each set the Trainer scores after every epoch (progress lines)


def train_simple_convnet(
    x: np.ndarray,
    t: np.ndarray,
    x_test: np.ndarray,
    t_test: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    rng: np.random.Generator,
    progress: bool = True,
):
    """A ``SimpleConvNet`` trained with Adam for ``epochs`` shuffled passes over (x, t).

    ``scratchdl.Trainer`` runs the passes; with ``progress`` it shows a bar per epoch and
    the accuracy on the first EVAL_SAMPLES images of (x, t) and (x_test, t_test) after it.
    Shape: x, x_test (N, 1, 28, 28); t, t_test (N,).
    """
    from ..models import SimpleConvNet
    from ..support.checks import check_positive, check_positive_int
    from ..trainer import Trainer

    # the experiments check their settings first; checked here too for direct callers
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_positive("lr", lr)
    network = SimpleConvNet(input_dim=x.shape[1:], rng=rng)
    trainer = Trainer(
        network,
        x,
        t,
        x_test,
        t_test,
        epochs=epochs,
        mini_batch_size=batch_size,
        optimizer="adam",
        optimizer_param={"lr": lr},
        evaluate_sample_num_per_epoch=EVAL_SAMPLES,
        verbose=progress,
        rng=rng,  # the generator that drew the weights goes on to shuffle the epochs
    )
    trainer.train()
    return network


def trained_model(opts: dict, train_data, test_data, *, seed: int, progress: bool):
    """The network an experiment studies, and a description of where it came from.

    ``opts["model"]`` names a model file (``scratchdl.files.load``); when it is empty a
    ``SimpleConvNet`` is trained on ``train_data`` = (x, t) with ``opts``' epochs, lr and
    batch_size, seeded by ``seed`` (``test_data`` = (x_test, t_test) is scored after every
    epoch, for the progress lines).
    """
    if opts["model"]:
        from ..files import load

        path = Path(opts["model"])
        model = load(path, rng=seed)
        return model, {"source": "file", "file": str(path), "class": type(model).__name__}
    x, t = train_data
    model = train_simple_convnet(
        x,
        t,
        *test_data,
        epochs=opts["epochs"],
        lr=opts["lr"],
        batch_size=opts["batch_size"],
        rng=np.random.default_rng(seed),
        progress=progress,
    )
    return model, {
        "source": "trained here",
        "class": "SimpleConvNet",
        "optimizer": f"Adam(lr={opts['lr']})",
        "epochs": opts["epochs"],
        "batch_size": opts["batch_size"],
        "train_images": len(x),
    }


def model_words(model: dict, text: dict) -> str:
    """Where the network came from (``trained_model``'s description), in a figure's words:
    ``text["from_file"]`` with its class and file name, or ``text["trained"]`` with its class
    and epochs."""
    if model["source"] == "file":
        return text["from_file"].format(model=model["class"], file=Path(model["file"]).name)
    return text["trained"].format(model=model["class"], epochs=model["epochs"])


def scores(model, x: np.ndarray, *, progress: bool = False, desc: str = "scoring") -> np.ndarray:
    """``model.predict`` over ``x`` in batches of ``EVAL_BATCH``. Shape: (N, ...) -> (N, K)."""
    starts = range(0, len(x), EVAL_BATCH)
    parts = [
        model.predict(x[i : i + EVAL_BATCH])
        for i in common.progress(starts, total=len(starts), desc=desc, enable=progress)
    ]
    return np.concatenate(parts)


def first_convolution(model, what: str):
    """The first Convolution layer of ``model``; ValueError naming ``what`` if it has none."""
    from ..layers import Convolution

    for layer in model.layers:
        if isinstance(layer, Convolution):
            return layer
    raise ValueError(
        f"{what} is a {type(model).__name__}, which has no Convolution layer; "
        "give a SimpleConvNet or DeepConvNet model file"
    )
