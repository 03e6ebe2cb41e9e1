"""The book's pickled weight files as whole models: ``load_book_model`` recognises which of the
book's networks a file holds, and ``scratchdl evaluate`` / ``predict`` take the files directly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from scratchdl.datasets import load_mnist_sample
from scratchdl.files import ModelFileError, load_book_model, load_model
from tests.test_cli import run, slice_data  # noqa: F401  (slice_data is a fixture)
from tests.test_files import BOOK, needs_book

SAMPLE_WEIGHT = BOOK / "sample_weight.pkl"


def _book_ch03_predict(params: dict, x: np.ndarray) -> np.ndarray:
    """ch03/neuralnet_mnist.py's predict, transcribed: sigmoid, sigmoid, softmax."""

    def sigmoid(a):
        return 1 / (1 + np.exp(-a))

    z1 = sigmoid(x @ params["W1"] + params["b1"])
    z2 = sigmoid(z1 @ params["W2"] + params["b2"])
    a3 = z2 @ params["W3"] + params["b3"]
    return np.exp(a3 - a3.max(axis=1, keepdims=True))


@needs_book
@pytest.mark.parametrize(
    "name, network, cls",
    [
        ("sample_weight.pkl", "ch03", "MultiLayerNet"),
        ("simple_convnet_params.pkl", "SimpleConvNet", "SimpleConvNet"),
        ("deep_convnet_params.pkl", "DeepConvNet", "DeepConvNet"),
    ],
)
def test_each_book_file_is_recognised_and_named(name, network, cls):
    model, report = load_book_model(BOOK / name)
    assert report["network"] == network and type(model).__name__ == cls
    _, what = load_model(BOOK / name)
    assert "the book's" in what and cls in what


@needs_book
def test_the_ch03_network_predicts_as_the_books_code():
    model, _ = load_book_model(SAMPLE_WEIGHT)
    (_, _), (x, t) = load_mnist_sample()
    with open(SAMPLE_WEIGHT, "rb") as f:
        raw = pickle.load(f)  # the book's own file, in the test only: trusted, hash-checked
    expected = _book_ch03_predict(raw, x).argmax(axis=1)
    np.testing.assert_array_equal(model.predict(x).argmax(axis=1), expected)
    assert model.accuracy(x, t) == np.mean(expected == t) > 0.9


def test_a_pickle_of_another_network_is_refused_naming_what_it_holds(tmp_path):
    path = tmp_path / "other.pkl"
    arrays = {"W1": np.ones((3, 4), np.float32), "b1": np.zeros(4, np.float32)}
    path.write_bytes(pickle.dumps(arrays, protocol=3))
    with pytest.raises(ModelFileError, match=r"not one of the book's networks.*W1 \(3, 4\)"):
        load_book_model(path)


@needs_book
def test_evaluate_and_predict_take_the_book_file(capsys, tmp_path, slice_data):  # noqa: F811
    code, out, err = run(capsys, "evaluate", str(SAMPLE_WEIGHT), "--out", str(tmp_path))
    assert code == 0, err
    assert "ch03 inference network" in out and "test accuracy:" in out
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    model, _ = load_book_model(SAMPLE_WEIGHT)
    x, t = slice_data[1]
    assert accuracy == pytest.approx(model.accuracy(x.reshape(len(x), -1), t), abs=5e-5)
    from PIL import Image

    digit = tmp_path / "digit.png"
    image = (x[0].reshape(28, 28) * 255).astype(np.uint8)
    Image.fromarray(255 - image).save(digit)  # dark ink on white paper, as photographed
    code, out, err = run(capsys, "predict", str(SAMPLE_WEIGHT), str(digit))
    assert code == 0, err
    assert out.strip().startswith(f"{digit}: ")


@needs_book
def test_evaluate_of_a_book_file_writes_its_figures_under_runs(
    capsys,
    tmp_path,
    monkeypatch,
    slice_data,  # noqa: F811
):
    # the book's weights often lie in a folder that is not ours to write (shared, read-only)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "evaluate", str(SAMPLE_WEIGHT))
    assert code == 0, err
    assert (tmp_path / "runs" / "book-sample_weight" / "confusion_matrix.png").stat().st_size
