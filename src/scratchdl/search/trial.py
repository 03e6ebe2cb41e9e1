"""One trial of a search, as a worker runs it: a plain function of its settings and its
hyperparameters (``run_trial``), which returns a small record.

A worker process loads the images once (``load_split`` keeps them for the trials that
follow) and holds its threads, BLAS's and the CNNs' (``engine.threads``), to its share of
the machine's cores. Nothing here imports Dask: the function runs as well in this process
as on a worker, which is how the tests check that a worker's result is the one expected.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
from dataclasses import dataclass

import numpy as np

from ..datasets.mnist import IMAGE_SHAPE
from ..engine import threads
from ..trainer import Trainer, TrainingDiverged
from .space import training_rng

MODELS = ("mlp", "two-layer", "simple-cnn", "deep-cnn")
TRAIN_IMAGES = {True: 2000, False: 60000}  # training images of the package's sample, of MNIST
TWO_LAYER_HIDDEN = 50  # the book's TwoLayerNet of ch5
RECORD_KEYS = (  # of run_trial's record, in this order
    "trial",
    "params",
    "val_acc",
    "train_acc",
    "diverged",
    "seconds",
    "worker",
    "val_acc_curve",
    "train_acc_curve",
)


@dataclass(frozen=True)
class Data:
    """Where a worker finds the images and how they are split: the first ``train_size``
    training images (of the package's sample, or of MNIST from ``data_dir`` / $SCRATCHDL_DATA
    on the worker), shuffled by ``seed``, a ``validation`` fraction of them held out.
    The test images are never looked at: tuning on them would tune the model to them."""

    sample: bool
    train_size: int
    validation: float
    seed: int
    data_dir: str | None = None

    def __post_init__(self) -> None:
        available = TRAIN_IMAGES[self.sample]
        if not 2 <= self.train_size <= available:
            where = "the package's sample" if self.sample else "MNIST"
            raise ValueError(
                f"--set train_size must be from 2 to {available} (the training images of "
                f"{where}), got {self.train_size}"
            )
        if not 0 < self.validation < 1:
            raise ValueError(f"--validation must be in (0, 1), got {self.validation!r}")
        if self.validation_size >= self.train_size:
            raise ValueError(
                f"--validation {self.validation:g} leaves none of the {self.train_size} images "
                "to train on; lower it or raise --set train_size"
            )

    @property
    def validation_size(self) -> int:
        return max(int(round(self.train_size * self.validation)), 1)


@dataclass(frozen=True)
class Recipe:
    """What every trial of a search shares: the network, how it trains, and the data.

    ``hidden_size`` and ``hidden_layers`` shape the ``mlp`` (the book's 784-[100 x 6]-10);
    the other models are the book's networks as they are.
    """

    model: str
    epochs: int
    batch_size: int
    optimizer: str
    hidden_size: int
    hidden_layers: int
    data: Data

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choices: {', '.join(MODELS)}")


@functools.lru_cache(maxsize=2)
def load_split(data: Data) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, t_train, x_val, t_val)``, flat rows of 784; loaded once per process."""
    from ..datasets.mnist import load_mnist, load_mnist_sample

    if data.sample:
        (x_all, t_all), _ = load_mnist_sample(flatten=True)
    else:
        (x_all, t_all), _ = load_mnist(flatten=True, data_dir=data.data_dir, progress=False)
    n = data.train_size
    order = np.random.default_rng(data.seed).permutation(n)  # the book: the first n, shuffled
    x, t = x_all[:n][order], t_all[:n][order]
    k = data.validation_size
    return x[k:], t[k:], x[:k], t[:k]


def build_network(recipe: Recipe, weight_decay: float, rng: np.random.Generator):
    """A fresh network of ``recipe.model`` with weight decay ``weight_decay``."""
    from ..models import DeepConvNet, MultiLayerNet, SimpleConvNet, TwoLayerNet

    inputs, classes = math.prod(IMAGE_SHAPE), 10
    if recipe.model == "mlp":
        hidden = [recipe.hidden_size] * recipe.hidden_layers
        return MultiLayerNet(
            inputs, hidden, classes, weight_init_std="he", weight_decay_lambda=weight_decay, rng=rng
        )
    if recipe.model == "two-layer":
        network = TwoLayerNet(inputs, TWO_LAYER_HIDDEN, classes, rng=rng)
    elif recipe.model == "simple-cnn":
        network = SimpleConvNet(rng=rng)
    else:
        network = DeepConvNet(rng=rng)
    # their constructors take no weight decay; Sequential applies it to any network
    network.weight_decay_lambda = weight_decay
    return network


def thread_share() -> int | None:
    """Threads one trial may use on this Dask worker: $SCRATCHDL_NUM_THREADS where set (the
    embedded cluster sets it to the cores over the workers), else the usable cores over the
    trials the worker runs at once (its threads). None outside a worker: the caller's own
    settings stand."""
    try:
        from distributed import get_worker

        slots = get_worker().state.nthreads
    except (ImportError, ValueError):  # not on a worker
        return None
    if threads.ENV_THREADS in os.environ:  # set, even to "": refused there, as by the CLI
        return threads.get_num_threads()  # checks the value
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // max(slots, 1))


@functools.lru_cache(maxsize=1)
def hold_threads(n: int) -> None:
    """Give a trial ``n`` threads in this process (once: it lasts): the CNNs split their
    batches over ``n`` threads (``engine.threads``), and BLAS runs on one. The search's
    matrix products are small (a batch of 100 x 784 x 100), where BLAS threads only wait for
    each other: the quick hyperparameter-search experiment took 42 s on one worker with two
    BLAS threads, and 8 s with one (2 cores). One BLAS thread also keeps a trial's result
    the same on any worker."""
    threads.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=1, user_api="blas")  # not as a `with`: for the process's life


def worker_name() -> str:
    """The address of the Dask worker running this, or ``local:HOST:PID`` outside one."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"local:{socket.gethostname()}:{os.getpid()}"


def run_trial(recipe: Recipe, seed: int, index: int, params: dict[str, float]) -> dict:
    """Train trial ``index`` of the search of ``seed`` with hyperparameters ``params``.

    Everything random comes from (seed, index) (``space.training_rng``), so the result does
    not depend on the worker. A loss that diverges (NaN) is a result, not an error:
    ``diverged`` is True and the accuracies are None. Returns ``{"trial", "params", "val_acc",
    "train_acc", "diverged", "seconds", "worker", "val_acc_curve", "train_acc_curve"}``; the
    curves hold one accuracy per epoch.
    """
    start = time.perf_counter()
    share = thread_share()
    if share is not None:
        hold_threads(share)
    x_train, t_train, x_val, t_val = load_split(recipe.data)
    if recipe.model in ("simple-cnn", "deep-cnn"):  # images, not rows (views: no copy)
        x_train = x_train.reshape(-1, 1, *IMAGE_SHAPE)
        x_val = x_val.reshape(-1, 1, *IMAGE_SHAPE)
    rng = training_rng(seed, index)
    network = build_network(recipe, params.get("weight_decay", 0.0), rng)
    trainer = Trainer(
        network,
        x_train,
        t_train,
        x_val,
        t_val,
        epochs=recipe.epochs,
        mini_batch_size=recipe.batch_size,
        optimizer=recipe.optimizer,
        optimizer_param={"lr": params["lr"]},
        verbose=False,
        rng=rng,
    )
    try:
        history, diverged = trainer.train(), False
    except TrainingDiverged:
        history, diverged = trainer.history, True
    return {
        "trial": index,
        "params": dict(params),
        "val_acc": None if diverged else history["test_acc"][-1],
        "train_acc": None if diverged else history["train_acc"][-1],
        "diverged": diverged,
        "seconds": round(time.perf_counter() - start, 3),
        "worker": worker_name(),
        "val_acc_curve": list(history["test_acc"]),
        "train_acc_curve": list(history["train_acc"]),
    }
