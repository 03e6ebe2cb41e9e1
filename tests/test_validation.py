"""Public API input validation: a bad argument is a ValueError naming what was received.

One table walks the public API: each optimizer's hyperparameters, each layer's constructor and
forward, the models' constructors, predict / loss / accuracy / gradient, the Trainer, the
augmentation, the data sets and model files. Each row is (call, words the message must hold);
the words include the received value. Missing files and folders are OSErrors naming the path
(the second table); the command line turns both into exit status 2 and one line.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchdl import augment, datasets, files, functions, gradient, perceptron
from scratchdl import weight_init as init
from scratchdl.layers import (
    Affine,
    AvgPooling,
    BatchNormalization,
    Convolution,
    Dropout,
    IdentityWithLoss,
    Pooling,
    Relu,
    SoftmaxWithLoss,
)
from scratchdl.models import (
    DeepConvNet,
    MultiLayerNet,
    SimpleConvNet,
    TwoLayerNet,
    model_from_config,
)
from scratchdl.optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from scratchdl.trainer import Trainer
from tests.conftest import assert_one_line_error, run

X = np.ones((4, 6), dtype=np.float32)
T = np.array([0, 1, 2, 0])
NET = MultiLayerNet(6, [5], 3, rng=0)
CONV = {"filter_num": 3, "filter_size": 3, "pad": 0, "stride": 1}
IDX = bytes([0, 0, 8, 1, 0, 0, 0, 1, 7])  # an IDX file of one uint8


def conv(**kwargs):
    return Convolution(np.ones((2, 1, 3, 3)), np.zeros(2), **kwargs)


def with_x(value, row=1):
    x = X.copy()
    x[row, 2] = value
    return x


def trainer(**kwargs):
    args = {"network": NET, "x_train": X, "t_train": T, "x_test": X, "t_test": T, "verbose": False}
    return Trainer(**{**args, **kwargs})


def set_lr(value):
    SGD().lr = value  # hyperparameters are checked on every assignment


CASES = {
    # optimizers: every hyperparameter, by name and after construction
    "SGD lr<0": (lambda: SGD(lr=-1), ["lr", "-1"]),
    "SGD lr=0": (lambda: SGD(lr=0), ["lr must be > 0", "0"]),
    "SGD lr=nan": (lambda: SGD(lr=float("nan")), ["nan"]),
    "SGD lr str": (lambda: SGD(lr="0.1"), ["'0.1'"]),
    "SGD lr set later": (lambda: set_lr(-2.5), ["-2.5"]),
    "Momentum momentum=1": (lambda: Momentum(momentum=1.0), ["momentum", "1.0"]),
    "Momentum lr bool": (lambda: Momentum(lr=True), ["True"]),
    "Nesterov momentum<0": (lambda: Nesterov(momentum=-0.5), ["-0.5"]),
    "AdaGrad lr=inf": (lambda: AdaGrad(lr=float("inf")), ["inf"]),
    "RMSprop decay_rate": (lambda: RMSprop(decay_rate=1.5), ["decay_rate", "1.5"]),
    "Adam beta1=1": (lambda: Adam(beta1=1.0), ["beta1", "1.0"]),
    "Adam beta2<0": (lambda: Adam(beta2=-0.1), ["beta2", "-0.1"]),
    "get_optimizer name": (lambda: get_optimizer("adamw"), ["'adamw'", "adam"]),
    "get_optimizer keyword": (lambda: get_optimizer("sgd", momentum=0.9), ["momentum=0.9", "lr"]),
    "update shapes": (
        lambda: SGD().update({"W": np.ones(2)}, {"W": np.ones(3)}),
        ["(3,)", "(2,)"],
    ),
    "update keys": (lambda: SGD().update({"W": np.ones(2)}, {"b": np.ones(2)}), ["'W'", "'b'"]),
    # layers: constructors and forward
    "Affine W 1-D": (lambda: Affine(np.ones(3), np.ones(3)), ["(3,)"]),
    "Affine b shape": (lambda: Affine(np.ones((3, 2)), np.ones(3)), ["(3, 2)", "(3,)"]),
    "Affine forward": (
        lambda: Affine(np.ones((3, 2)), np.ones(2)).forward(np.ones((2, 4))),
        ["(2, 4)"],
    ),
    "Convolution W 3-D": (lambda: Convolution(np.ones((2, 3, 3)), np.ones(2)), ["(2, 3, 3)"]),
    "Convolution stride": (lambda: conv(stride=0), ["stride", "0"]),
    "Convolution pad": (lambda: conv(pad=-1), ["pad", "-1"]),
    "Convolution channels": (lambda: conv().forward(np.ones((1, 2, 5, 5))), ["(1, 2, 5, 5)"]),
    "Convolution too small": (lambda: conv().forward(np.ones((1, 1, 2, 2))), ["window of 3"]),
    "Convolution 3-D input": (lambda: conv().forward(np.ones((1, 5, 5))), ["(1, 5, 5)"]),
    "Pooling size": (lambda: Pooling(0, 2), ["pool_h", "0"]),
    "Pooling does not fit": (
        lambda: Pooling(2, 2, stride=2).forward(np.ones((1, 1, 5, 5))),
        ["(5 + 2*0 - 2) / 2"],
    ),
    "Pooling 2-D input": (lambda: Pooling(2, 2).forward(np.ones((4, 4))), ["(4, 4)"]),
    "AvgPooling stride": (lambda: AvgPooling(2, 2, stride=0), ["stride", "0"]),
    "Dropout ratio=1": (lambda: Dropout(1.0), ["dropout_ratio", "1.0"]),
    "Dropout ratio<0": (lambda: Dropout(-0.1), ["-0.1"]),
    "BatchNorm momentum": (
        lambda: BatchNormalization(np.ones(3), np.zeros(3), momentum=1.5),
        ["1.5"],
    ),
    "BatchNorm gamma 2-D": (
        lambda: BatchNormalization(np.ones((3, 1)), np.zeros((3, 1))),
        ["(3, 1)"],
    ),
    "BatchNorm forward": (
        lambda: BatchNormalization(np.ones(3), np.zeros(3)).forward(np.ones((2, 4))),
        ["(2, 4)"],
    ),
    "SoftmaxWithLoss label": (
        lambda: SoftmaxWithLoss().forward(np.ones((2, 3)), np.array([0, 3])),
        ["[0, 2]", "[0, 3]"],
    ),
    "SoftmaxWithLoss batch": (
        lambda: SoftmaxWithLoss().forward(np.ones((2, 3)), np.array([0, 1, 1])),
        ["(3,)"],
    ),
    "IdentityWithLoss shape": (
        lambda: IdentityWithLoss().forward(np.ones((2, 3)), np.ones((2, 2))),
        ["(2, 2)"],
    ),
    # models: constructors
    "TwoLayerNet size 0": (lambda: TwoLayerNet(0, 5, 3), ["input_size", "0"]),
    "TwoLayerNet size float": (lambda: TwoLayerNet(4, 2.5, 3), ["hidden_size", "2.5"]),
    "TwoLayerNet std": (lambda: TwoLayerNet(4, 2, 3, weight_init_std=-1), ["-1"]),
    "TwoLayerNet std overflows": (lambda: TwoLayerNet(4, 2, 3, weight_init_std=1e300), ["1e+300"]),
    "TwoLayerNet dtype": (lambda: TwoLayerNet(4, 2, 3, dtype=np.int32), ["int32"]),
    "TwoLayerNet rng": (lambda: TwoLayerNet(4, 2, 3, rng="a"), ["'a'"]),
    "MultiLayerNet hidden int": (lambda: MultiLayerNet(4, 5, 3), ["hidden_size_list", "5"]),
    "MultiLayerNet hidden None": (lambda: MultiLayerNet(4, None, 3), ["None"]),
    "MultiLayerNet hidden str": (lambda: MultiLayerNet(4, "abc", 3), ["'abc'"]),
    "MultiLayerNet hidden 0": (lambda: MultiLayerNet(4, [5, 0], 3), ["hidden_size_list", "0"]),
    "MultiLayerNet activation": (lambda: MultiLayerNet(4, [5], 3, activation="gelu"), ["'gelu'"]),
    "MultiLayerNet init": (lambda: MultiLayerNet(4, [5], 3, weight_init_std="foo"), ["'foo'"]),
    "MultiLayerNet decay": (lambda: MultiLayerNet(4, [5], 3, weight_decay_lambda=-1), ["-1"]),
    "MultiLayerNet dropout": (lambda: MultiLayerNet(4, [5], 3, dropout_ratio=1.0), ["1.0"]),
    "MultiLayerNet flag": (lambda: MultiLayerNet(4, [5], 3, use_batchnorm="no"), ["'no'"]),
    "SimpleConvNet input_dim int": (lambda: SimpleConvNet(28), ["input_dim", "28"]),
    "SimpleConvNet input_dim 2-D": (lambda: SimpleConvNet((28, 28)), ["(28, 28)"]),
    "SimpleConvNet conv_param": (
        lambda: SimpleConvNet(conv_param={"filter_num": 3}),
        ["{'filter_num': 3}"],
    ),
    "SimpleConvNet filter too big": (
        lambda: SimpleConvNet((1, 4, 4), {**CONV, "filter_size": 5}),
        ["window of 5", "input of 4"],
    ),
    "SimpleConvNet pool does not fit": (
        lambda: SimpleConvNet((1, 7, 7), CONV),
        ["(5 + 2*0 - 2) / 2"],
    ),
    "DeepConvNet dropout": (lambda: DeepConvNet(dropout_ratio=1.0), ["dropout_ratio", "1.0"]),
    "DeepConvNet hidden": (lambda: DeepConvNet(hidden_size=0), ["hidden_size", "0"]),
    "model_from_config class": (lambda: model_from_config("ResNet", {}), ["'ResNet'"]),
    "model_from_config config": (lambda: model_from_config("TwoLayerNet", {"foo": 1}), ["'foo'"]),
    # models: predict / loss / accuracy / gradient
    "predict shape": (lambda: NET.predict(np.ones((4, 7))), ["(4, 7)"]),
    "predict 1-D": (lambda: NET.predict(np.ones(6)), ["(6,)"]),
    "predict empty": (lambda: NET.predict(np.ones((0, 6))), ["(0, 6)"]),
    "predict strings": (lambda: NET.predict(np.array([["a"] * 6])), ["<U1"]),
    "predict bool": (lambda: NET.predict(np.ones((2, 6), dtype=bool)), ["bool"]),
    "predict complex": (lambda: NET.predict(np.ones((2, 6), dtype=complex)), ["complex128"]),
    "predict nan": (lambda: NET.predict(with_x(np.nan)), ["nan"]),
    "predict inf": (lambda: NET.predict(with_x(-np.inf)), ["-inf"]),
    "loss label too big": (lambda: NET.loss(X, [0, 1, 3, 0]), ["[0, 2]", "[0, 3]"]),
    "loss label negative": (lambda: NET.loss(X, [0, -1, 2, 0]), ["[-1, 2]"]),
    "loss label fraction": (lambda: NET.loss(X, [0.5, 1, 2, 0]), ["float64"]),
    "loss batch mismatch": (lambda: NET.loss(X, [0, 1, 2]), ["(4, 6)", "(3,)"]),
    "loss one-hot width": (lambda: NET.loss(X, np.ones((4, 4))), ["(4, 4)"]),
    "loss labels 3-D": (lambda: NET.loss(X, np.ones((4, 3, 1))), ["(4, 3, 1)"]),
    "accuracy label": (lambda: NET.accuracy(X, [0, 1, 9, 0]), ["[0, 9]"]),
    "accuracy batch_size": (lambda: NET.accuracy(X, T, batch_size=0), ["batch_size", "0"]),
    "gradient batch mismatch": (lambda: NET.gradient(X, [0, 1]), ["(2,)"]),
    "load_state_dict keys": (lambda: NET.load_state_dict({}), ["'W1'"]),
    "load_state_dict shape": (
        lambda: NET.load_state_dict({**NET.state_dict(), "W1": np.ones((2, 2))}),
        ["(2, 2)"],
    ),
    # the Trainer
    "Trainer lengths": (lambda: trainer(t_train=T[:3]), ["t_train 3"]),
    "Trainer epochs 0": (lambda: trainer(epochs=0), ["epochs", "0"]),
    "Trainer epochs float": (lambda: trainer(epochs=1.5), ["1.5"]),
    "Trainer batch size": (lambda: trainer(mini_batch_size=-5), ["mini_batch_size", "-5"]),
    "Trainer optimizer": (lambda: trainer(optimizer="adamw"), ["'adamw'"]),
    "Trainer optimizer lr": (lambda: trainer(optimizer_param={"lr": -1}), ["lr", "-1"]),
    "Trainer optimizer keyword": (lambda: trainer(optimizer_param={"beta": 1}), ["beta=1"]),
    "Trainer optimizer_param": (lambda: trainer(optimizer_param=[0.1]), ["[0.1]"]),
    "Trainer object and param": (
        lambda: trainer(optimizer=SGD(), optimizer_param={"lr": 1}),
        ["optimizer_param"],
    ),
    "Trainer evaluate samples": (lambda: trainer(evaluate_sample_num_per_epoch=0), ["0"]),
    "Trainer augment": (lambda: trainer(augment="yes"), ["'yes'"]),
    "Trainer rng": (lambda: trainer(rng="x"), ["'x'"]),
    "Trainer verbose": (lambda: trainer(verbose="no"), ["'no'"]),
    "Trainer checkpoint_path": (lambda: trainer(checkpoint_path=123), ["123"]),
    "Trainer network": (lambda: trainer(network=None), ["None"]),
    "Trainer x scalar": (lambda: trainer(x_train=3), ["x_train", "3"]),
    "Trainer x shape": (lambda: trainer(x_train=np.ones((4, 7))), ["x_train", "(4, 7)"]),
    "Trainer labels": (lambda: trainer(t_test=np.array([0, 1, 5, 0])), ["t_test", "[0, 5]"]),
    "Trainer nan input": (lambda: trainer(x_train=with_x(np.nan, row=2)), ["x_train[2]", "nan"]),
    "Trainer empty test set": (lambda: trainer(x_test=X[:0], t_test=T[:0]), ["(0, 6)"]),
    # augmentation
    "Augmenter shift": (lambda: augment.Augmenter(max_shift=-1), ["max_shift", "-1"]),
    "Augmenter rotation": (lambda: augment.Augmenter(max_rotation=200), ["200"]),
    "Augmenter scale order": (lambda: augment.Augmenter(scale=(1.2, 0.8)), ["(1.2, 0.8)"]),
    "Augmenter scale number": (lambda: augment.Augmenter(scale=1.1), ["1.1"]),
    "Augmenter p": (lambda: augment.Augmenter(p=2), ["p", "2"]),
    "Augmenter shear": (lambda: augment.Augmenter(max_shear=90), ["90"]),
    "Augmenter image_shape": (lambda: augment.Augmenter(image_shape=(0, 28)), ["(0, 28)"]),
    "Augmenter fill": (lambda: augment.Augmenter(fill=float("nan")), ["nan"]),
    "Augmenter batch shape": (lambda: augment.Augmenter()(np.ones((2, 100))), ["(2, 100)"]),
    "Augmenter 3-D batch": (lambda: augment.Augmenter()(np.ones((2, 28, 28))), ["(2, 28, 28)"]),
    "Augmenter apply": (
        lambda: augment.Augmenter().apply(np.ones((2, 784)), np.ones(3)),
        ["2 and 3"],
    ),
    "as_augmenter": (lambda: augment.as_augmenter("yes"), ["'yes'"]),
    "random_shift": (lambda: augment.random_shift(np.ones((1, 784)), max_shift=-1), ["-1"]),
    "transform scale": (lambda: augment.transform(np.ones((2, 784)), scale=0), ["0"]),
    "transform rotation": (
        lambda: augment.transform(np.ones((2, 784)), rotation=float("nan")),
        ["nan"],
    ),
    "warp_affine matrix": (
        lambda: augment.warp_affine(np.ones((2, 784)), np.ones((3, 3))),
        ["(3, 3)"],
    ),
    # data sets
    "load_mnist flag": (lambda: datasets.load_mnist(normalize="yes"), ["normalize", "'yes'"]),
    "load_mnist flag int": (lambda: datasets.load_mnist(flatten=1), ["flatten", "1"]),
    "load_mnist data_dir": (lambda: datasets.load_mnist(data_dir=3), ["data_dir", "3"]),
    "fetch name": (lambda: datasets.fetch("cifar10"), ["'cifar10'", "mnist"]),
    "verify name": (lambda: datasets.verify(None), ["None"]),
    "where name": (lambda: datasets.where(3), ["3"]),
    "read_idx source": (lambda: datasets.read_idx(5), ["5"]),
    "read_idx None": (lambda: datasets.read_idx(None), ["None"]),
    "read_idx max_bytes": (lambda: datasets.read_idx(IDX, max_bytes=-1), ["max_bytes", "-1"]),
    "parse_idx str": (lambda: datasets.parse_idx("abc"), ["str"]),
    "write_idx dtype": (lambda: datasets.write_idx("x", np.ones(2, dtype=np.int64)), ["int64"]),
    "write_idx rank": (lambda: datasets.write_idx("x", np.array(5, dtype=np.uint8)), ["()"]),
    # model files
    "save path": (lambda: files.save(NET, None), ["None"]),
    "save model": (lambda: files.save("net", "m.safetensors"), ["str"]),
    "load path": (lambda: files.load(12345), ["12345"]),
    "load empty path": (lambda: files.load(""), ["''"]),
    "load_tensors path": (lambda: files.load_tensors(None), ["None"]),
    "save_tensors tensors": (lambda: files.save_tensors("t", [1], {}), ["list"]),
    "save_tensors metadata": (lambda: files.save_tensors("t", {}, {"e": 3}), ["'e': 3"]),
    "import_book_params model": (
        lambda: files.import_book_params("p.pkl", "model"),
        ["str"],
    ),
    "import_book_params path": (lambda: files.import_book_params(None, NET), ["None"]),
    # functions, initialisers, gradients, perceptrons
    "cross_entropy_error label": (
        lambda: functions.cross_entropy_error(np.ones((2, 3)) / 3, [0, 5]),
        ["[0, 5]"],
    ),
    "softmax_loss label": (lambda: functions.softmax_loss(np.ones((2, 3)), [-1, 0]), ["[-1, 0]"]),
    "sum_squared_error": (
        lambda: functions.sum_squared_error(np.ones(3), np.ones(2)),
        ["(3,)", "(2,)"],
    ),
    "init std": (lambda: init.std_normal((2, 2), -1), ["std", "-1"]),
    "init shape": (lambda: init.std_normal((-2, 2), 0.1), ["(-2, 2)"]),
    "init shape str": (lambda: init.std_normal("ab", 0.1), ["'ab'"]),
    "init fan_in": (lambda: init.he((2, 2), 0), ["fan_in", "0"]),
    "init name": (lambda: init.resolve_std("foo", 3), ["'foo'"]),
    "gradient_descent lr": (lambda: gradient.gradient_descent(np.sum, np.ones(2), lr=-1), ["-1"]),
    "gradient_descent steps": (
        lambda: gradient.gradient_descent(np.sum, np.ones(2), step_num=-3),
        ["-3"],
    ),
    "Perceptron w": (lambda: perceptron.Perceptron([], 0), ["(0,)"]),
    "Perceptron b": (lambda: perceptron.Perceptron([1, 2], "x"), ["'x'"]),
    "AND strings": (lambda: perceptron.AND("a", "b"), ["<U1"]),
    "separable": (lambda: perceptron.separable([0, 1]), ["[0, 1]"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_value_error_naming_the_received_value(case):
    call, words = CASES[case]
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


def test_bad_optimizer_params_change_nothing():
    params, opt = {"W": np.ones(2), "b": np.ones(2)}, SGD(lr=0.5)
    with pytest.raises(ValueError):
        opt.update(params, {"W": np.ones(2), "b": np.ones(3)})  # checked before any step
    np.testing.assert_array_equal(params["W"], np.ones(2))


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda d: files.load(d / "none.safetensors"), FileNotFoundError, ["none.safetensors"]),
        (lambda d: files.load(d), IsADirectoryError, []),
        (
            lambda d: files.save(NET, d / "no" / "m.safetensors"),
            FileNotFoundError,
            ["folder", "does not exist"],
        ),
        (lambda d: files.save(NET, d), IsADirectoryError, ["it is a folder"]),
        (lambda d: files.import_book_params(d / "p.pkl", NET), FileNotFoundError, ["p.pkl"]),
        (lambda d: datasets.read_idx(d / "none-idx"), FileNotFoundError, ["none-idx"]),
        (
            lambda d: datasets.write_idx(d / "no" / "x", np.ones(2, dtype=np.uint8)),
            FileNotFoundError,
            ["does not exist"],
        ),
        # kept a TypeError by test_optimizers: the parameters are not arrays of floats at all
        (
            lambda d: SGD().update({"W": np.ones(2, dtype=np.int64)}, {"W": np.ones(2)}),
            TypeError,
            ["int64"],
        ),
    ],
    ids=[
        "load",
        "load_folder",
        "save_folder",
        "save_onto_folder",
        "import",
        "read",
        "write",
        "sgd",
    ],
)
def test_missing_files_and_folders_are_os_errors_naming_the_path(tmp_path, call, error, words):
    with pytest.raises(error) as info:
        call(tmp_path)
    assert str(tmp_path) in str(info.value) or error is TypeError
    for word in words:
        assert word in str(info.value)


# Gaps in layers.py, left to its owner (see the report): these should be ValueErrors.
LAYER_BAD_INPUT = {
    "Affine W list": (lambda: Affine([[1.0]], [1.0]), "W as a float numpy array"),
    "Affine W int": (
        lambda: Affine(np.ones((3, 2), dtype=int), np.ones(2, dtype=int)),
        "W as a float numpy array, got an array of int64",
    ),
    "Affine forward str": (
        lambda: Affine(np.ones((3, 2)), np.ones(2)).forward(np.array([["a"] * 3])),
        "expects numbers, got an array of <U1",
    ),
    "Affine forward empty width": (
        lambda: Affine(np.ones((3, 2)), np.ones(2)).forward(np.ones((0, 4))),
        r"\(N, 3\).*\(0, 4\)",
    ),
    "Relu forward str": (lambda: Relu().forward(np.array(["x"])), "expects numbers"),
    "BatchNorm eps<0": (
        lambda: BatchNormalization(np.ones(3), np.zeros(3), eps=-1),
        "eps must be > 0, got -1",
    ),
}


@pytest.mark.parametrize("case", list(LAYER_BAD_INPUT))
def test_layer_bad_input(case):
    make, match = LAYER_BAD_INPUT[case]
    with pytest.raises(ValueError, match=match):
        make()


def test_layers_accept_array_likes():
    np.testing.assert_array_equal(Relu().forward([1, -1]), [1, 0])
    out = Affine(np.ones((3, 2)), np.zeros(2)).forward([[1, 2, 3]])
    np.testing.assert_array_equal(out, [[6.0, 6.0]])


@pytest.fixture
def bad_data(monkeypatch):
    """Serve a small data set that ``bad_data[...]`` can spoil before the run."""
    rng = np.random.default_rng(0)
    data = {
        "x": rng.random((30, 1, 28, 28), dtype=np.float32),
        "t": rng.integers(0, 10, 30),
    }

    def load(name, data_dir=None):
        return (data["x"], data["t"]), (data["x"][:10], data["t"][:10])

    from scratchdl import cli

    monkeypatch.setattr(cli, "load_dataset", load)
    return data


@pytest.mark.parametrize(
    "spoil, needles",
    [
        (lambda d: d["t"].__setitem__(4, 10), ["t_train", "[0, 10]"]),
        (lambda d: d["x"].__setitem__((3, 0, 5, 5), np.nan), ["x_train[3]", "nan"]),
    ],
    ids=["label_out_of_range", "nan_pixel"],
)
def test_the_cli_turns_validation_errors_into_exit_2_and_one_line(
    tmp_path, capsys, bad_data, spoil, needles
):
    spoil(bad_data)
    argv = ("train", "--model", "two-layer", "--epochs", "1", "--out", str(tmp_path), "--quiet")
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "checkpoint.safetensors").exists()  # refused before training
