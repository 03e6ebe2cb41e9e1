"""The settings of a Train-tab job: checked in full before a worker starts, then built.

A job's settings arrive as JSON, from the page or from any client of ``POST /api/jobs``.
``check_settings`` turns them into a complete dict (the defaults filled in) or raises
ValueError naming the setting, the value and the fix; a value beyond one of the server's
limits (the MAX_* constants below) names the limit. The checks are those of ``scratchdl
train``: its choices of network, optimizer and data set, its default learning rates and
epochs, the library's argument checks (``scratchdl.support.checks``); ``build_network`` then builds
the network with the library's own constructors, whose checks run once more, before any
process starts (``jobs_api``) and again in the worker.

The limits keep one job to minutes and a few hundred MB: the server is shared by whoever can
reach it, and several jobs run at once.
"""

from __future__ import annotations

import math

import numpy as np

from ..datasets import DATASETS as DOWNLOADED
from ..models.recipes import DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_OPTIMIZER, MODEL_CHOICES
from ..optimizers import OPTIMIZERS
from ..support.checks import (
    check_choice,
    check_flag,
    check_number,
    check_positive_int,
    is_real,
)

SAMPLE = "mnist-sample"  # the 2000 + 1000 MNIST images shipped with the package
DATA_CHOICES = (*DOWNLOADED, SAMPLE)
TRAIN_IMAGES = {"mnist": 60_000, "fashion-mnist": 60_000, SAMPLE: 2_000}
# scratchdl train's networks that the page trains (deep-cnn takes hours on a CPU)
NETWORKS = {"two-layer": "TwoLayerNet", "mlp": "MultiLayerNet", "simple-cnn": "SimpleConvNet"}
assert set(NETWORKS) <= set(MODEL_CHOICES)
INITS = ("std", "xavier", "he")  # a std value, or the book's two scales (ch6.2)
ACTIVATIONS = ("relu", "sigmoid", "tanh")
INPUT_SIZE, N_CLASSES = 784, 10
CNN_FILTERS, CNN_FILTER_SIZE, CNN_POOLED = 30, 5, 12  # SimpleConvNet's defaults: 30 maps of 12x12

# The server's limits, each named in the message of a request beyond it.
MAX_EPOCHS = 300  # the book's Dropout run (fig. 6-23) trains 300 epochs of 300 images
MAX_HIDDEN_LAYERS = 10
MAX_HIDDEN_SIZE = 1000
MAX_PARAMETERS = 2_000_000  # 8 MB of float32 weights, as much again for the optimizer
MAX_BATCH_SIZE = 1000
MAX_ITERATIONS = 100_000  # steps of one job: the loss history the server keeps for it
MAX_EVAL_SAMPLES = 10_000
MAX_LR = 10.0
MAX_INIT_STD = 10.0
MAX_WEIGHT_DECAY = 1.0
MAX_DROPOUT = 0.9
MAX_SEED = 2**32 - 1

DEFAULTS = {
    "model": "mlp",
    "hidden_layers": None,  # mlp: 4 (as the book's fig. 6-9); the other networks have 1
    "hidden_size": None,  # two-layer 50 (the book's ch5), else 100
    "activation": "relu",  # mlp only
    "dataset": "mnist",
    "train_size": None,  # all the training images; a number: the first that many
    "optimizer": None,  # scratchdl train's default for the network
    "lr": None,  # scratchdl train's default for the optimizer
    "batch_size": 100,
    "epochs": None,  # scratchdl train's default for the network
    "init": None,  # mlp: he; the others take a std value
    "init_std": 0.01,
    "batchnorm": False,  # mlp only, as the three below
    "dropout": 0.0,
    "weight_decay": 0.0,
    "augment": False,
    "seed": 0,
    "eval_samples": MAX_EVAL_SAMPLES,  # images of each set evaluated after every epoch
}
MLP_ONLY = {"hidden_layers": 1, "activation": "relu", "batchnorm": False, "dropout": 0.0}


def beyond(name: str, value, limit_name: str, limit) -> ValueError:
    return ValueError(
        f"{name} {value!r} is beyond this server's limit {limit_name} = {limit}; choose at "
        f"most {limit}"
    )


def at_most(name: str, value, limit_name: str, limit):
    if value > limit:
        raise beyond(name, value, limit_name, limit)
    return value


def count(name: str, value, limit_name: str, limit: int) -> int:
    return at_most(name, check_positive_int(name, value), limit_name, limit)


def check_settings(raw: object, *, available=None) -> dict:
    """The complete settings of a job from the JSON object ``raw``, or ValueError.

    ``available(name) -> bool`` says whether a downloaded data set is on this machine (default:
    ``data_available``); the server never downloads one.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"settings must be a JSON object of settings, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown setting {unknown[0][:40]!r}; the settings are {', '.join(DEFAULTS)}"
        )
    s = {**DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    model = check_choice("model", s["model"], tuple(NETWORKS))
    if model != "mlp":
        for key, neutral in MLP_ONLY.items():
            if key in raw and raw[key] not in (None, neutral):
                raise ValueError(
                    f"{key} {raw[key]!r} is a setting of mlp (MultiLayerNet); {model} "
                    f"({NETWORKS[model]}) has no such setting: leave it out"
                )
        if s["weight_decay"] != 0:
            raise ValueError(
                f"weight_decay {s['weight_decay']!r} is a setting of mlp (MultiLayerNet); "
                f"{NETWORKS[model]} has none: leave it at 0"
            )
    if s["hidden_layers"] is None:
        s["hidden_layers"] = 4 if model == "mlp" else 1
    s["hidden_layers"] = count(
        "hidden_layers", s["hidden_layers"], "MAX_HIDDEN_LAYERS", MAX_HIDDEN_LAYERS
    )
    if s["hidden_size"] is None:
        s["hidden_size"] = 50 if model == "two-layer" else 100
    s["hidden_size"] = count("hidden_size", s["hidden_size"], "MAX_HIDDEN_SIZE", MAX_HIDDEN_SIZE)
    s["activation"] = check_choice("activation", s["activation"], ACTIVATIONS)
    s["dataset"] = check_choice("dataset", s["dataset"], DATA_CHOICES)
    if s["train_size"] is not None:
        n = TRAIN_IMAGES[s["dataset"]]
        if check_positive_int("train_size", s["train_size"]) > n:
            raise ValueError(
                f"train_size {s['train_size']!r} is more than the {n:,} training images of "
                f"{s['dataset']}; choose at most {n}, or leave it out for all of them"
            )
    s["optimizer"] = check_choice(
        "optimizer",
        s["optimizer"] if s["optimizer"] is not None else DEFAULT_OPTIMIZER[model],
        tuple(OPTIMIZERS),
    )
    if s["lr"] is None:
        s["lr"] = DEFAULT_LR[s["optimizer"]]
    s["lr"] = check_number("lr", s["lr"], 0, low_open=True)
    at_most("lr", s["lr"], "MAX_LR", MAX_LR)
    s["batch_size"] = count("batch_size", s["batch_size"], "MAX_BATCH_SIZE", MAX_BATCH_SIZE)
    if s["epochs"] is None:
        s["epochs"] = DEFAULT_EPOCHS[model]
    s["epochs"] = count("epochs", s["epochs"], "MAX_EPOCHS", MAX_EPOCHS)
    s["init"] = check_choice(
        "init", s["init"] if s["init"] is not None else ("he" if model == "mlp" else "std"), INITS
    )
    if model != "mlp" and s["init"] != "std":
        raise ValueError(
            f"init {s['init']!r} is a setting of mlp (MultiLayerNet); {NETWORKS[model]} takes "
            "one std for all its weights: use init 'std' with init_std"
        )
    s["init_std"] = check_number("init_std", s["init_std"], 0, low_open=True)
    at_most("init_std", s["init_std"], "MAX_INIT_STD", MAX_INIT_STD)
    s["batchnorm"] = check_flag("batchnorm", s["batchnorm"])
    s["augment"] = check_flag("augment", s["augment"])
    s["dropout"] = check_number("dropout", s["dropout"], 0)
    at_most("dropout", s["dropout"], "MAX_DROPOUT", MAX_DROPOUT)
    s["weight_decay"] = check_number("weight_decay", s["weight_decay"], 0)
    at_most("weight_decay", s["weight_decay"], "MAX_WEIGHT_DECAY", MAX_WEIGHT_DECAY)
    if not is_real(s["seed"]) or s["seed"] != int(s["seed"]):
        raise ValueError(f"seed must be a whole number, got {s['seed']!r}")
    s["seed"] = int(check_number("seed", s["seed"], 0, MAX_SEED))
    s["eval_samples"] = count(
        "eval_samples", s["eval_samples"], "MAX_EVAL_SAMPLES", MAX_EVAL_SAMPLES
    )
    n = parameter_count(s)
    if n > MAX_PARAMETERS:
        raise ValueError(
            f"the network would have {n:,} parameters, beyond this server's limit "
            f"MAX_PARAMETERS = {MAX_PARAMETERS:,}; make it narrower (hidden_size) or shallower"
        )
    steps = iterations(s)[1]
    if steps > MAX_ITERATIONS:
        raise ValueError(
            f"{s['epochs']} epochs of batches of {s['batch_size']} are {steps:,} iterations, "
            f"beyond this server's limit MAX_ITERATIONS = {MAX_ITERATIONS:,}; train fewer "
            "epochs, fewer images (train_size) or larger batches"
        )
    if s["dataset"] != SAMPLE and not (available or data_available)(s["dataset"]):
        raise ValueError(
            f"dataset {s['dataset']!r} is not on this server (it never downloads while "
            f"serving); fetch it with `scratchdl data fetch {s['dataset']}`, or choose "
            f"{SAMPLE!r}"
        )
    return s


def data_available(name: str) -> bool:
    """Whether the four files of ``name`` are in the data folder (not checked: a load does)."""
    from ..datasets import where

    try:
        return where(name)[name]["used"] is not None
    except (OSError, ValueError):
        return False


def parameter_count(s: dict) -> int:
    """The parameters of the network of checked settings ``s``, counted without building it
    (a test holds it to ``n_params()`` of the network built)."""
    h = s["hidden_size"]
    if s["model"] == "two-layer":
        sizes = [INPUT_SIZE, h, N_CLASSES]
    elif s["model"] == "mlp":
        sizes = [INPUT_SIZE, *[h] * s["hidden_layers"], N_CLASSES]
    else:
        conv = CNN_FILTERS * (CNN_FILTER_SIZE**2 + 1)
        return conv + CNN_FILTERS * CNN_POOLED**2 * h + h + h * N_CLASSES + N_CLASSES
    n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    if s["model"] == "mlp" and s["batchnorm"]:
        n += 2 * h * s["hidden_layers"]  # gamma and beta
    return n


def iterations(s: dict) -> tuple[int, int]:
    """(iterations per epoch, iterations in all) of checked settings ``s``."""
    per_epoch = math.ceil((s["train_size"] or TRAIN_IMAGES[s["dataset"]]) / s["batch_size"])
    return per_epoch, per_epoch * s["epochs"]


def build_network(s: dict, *, rng=None):
    """The freshly initialised network of checked settings ``s`` (float32), built by the
    library's constructors; ``rng`` default: the settings' seed."""
    from ..models import MultiLayerNet, SimpleConvNet, TwoLayerNet

    rng = np.random.default_rng(s["seed"]) if rng is None else rng
    if s["model"] == "two-layer":
        return TwoLayerNet(INPUT_SIZE, s["hidden_size"], N_CLASSES, s["init_std"], rng=rng)
    if s["model"] == "simple-cnn":
        return SimpleConvNet(hidden_size=s["hidden_size"], weight_init_std=s["init_std"], rng=rng)
    return MultiLayerNet(
        INPUT_SIZE,
        [s["hidden_size"]] * s["hidden_layers"],
        N_CLASSES,
        activation=s["activation"],
        weight_init_std=s["init_std"] if s["init"] == "std" else s["init"],
        weight_decay_lambda=s["weight_decay"],
        use_dropout=s["dropout"] > 0,
        dropout_ratio=s["dropout"],
        use_batchnorm=s["batchnorm"],
        rng=rng,
    )


def load_data(s: dict, *, data_dir=None) -> tuple[tuple, tuple]:
    """((x_train, t_train), (x_test, t_test)) of checked settings ``s``: images (N, 1, 28, 28)
    in [0, 1] as ``scratchdl train`` loads them, the training set cut to ``train_size``."""
    from .. import datasets

    if s["dataset"] == SAMPLE:
        (x, t), test = datasets.load_mnist_sample(flatten=False)
    else:
        load = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist}
        (x, t), test = load[s["dataset"]](flatten=False, data_dir=data_dir, progress=False)
    n = s["train_size"] or len(x)
    return (x[:n], t[:n]), test
