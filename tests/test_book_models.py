"""The book's pickled weight files as whole models: ``load_book_model`` recognises which of the
book's networks a file holds, and ``scratchdl evaluate`` / ``predict`` take the files directly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from scratchdl.datasets import load_mnist_sample
from scratchdl.files import ModelFileError, load_book_model, load_model
from tests.conftest import book_weights, run

SAMPLE_WEIGHT = "ch03/sample_weight.pkl"  # found by book_weights(), as a user finds it


def _book_ch03_predict(params: dict, x: np.ndarray) -> np.ndarray:
    """ch03/neuralnet_mnist.py's predict, transcribed: sigmoid, sigmoid, softmax."""

    def sigmoid(a):
        return 1 / (1 + np.exp(-a))

    z1 = sigmoid(x @ params["W1"] + params["b1"])
    z2 = sigmoid(z1 @ params["W2"] + params["b2"])
    a3 = z2 @ params["W3"] + params["b3"]
    return np.exp(a3 - a3.max(axis=1, keepdims=True))


@pytest.mark.parametrize(
    "book_path, network, cls",
    [
        ("ch03/sample_weight.pkl", "ch03", "MultiLayerNet"),
        ("ch07/params.pkl", "SimpleConvNet", "SimpleConvNet"),
        ("ch08/deep_convnet_params.pkl", "DeepConvNet", "DeepConvNet"),
    ],
)
def test_each_book_file_is_recognised_and_named(book_path, network, cls):
    path = book_weights(book_path)
    model, report = load_book_model(path)
    assert report["network"] == network and type(model).__name__ == cls
    _, what = load_model(path)
    assert "the book's" in what and cls in what


def test_the_ch03_network_predicts_as_the_books_code():
    path = book_weights(SAMPLE_WEIGHT)
    model, _ = load_book_model(path)
    (_, _), (x, t) = load_mnist_sample()
    with open(path, "rb") as f:
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


def test_evaluate_and_predict_take_the_book_file(capsys, tmp_path, slice_data):  # noqa: F811
    path = book_weights(SAMPLE_WEIGHT)
    code, out, err = run(capsys, "evaluate", str(path), "--out", str(tmp_path))
    assert code == 0, err
    assert "ch03 inference network" in out and "test accuracy:" in out
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    model, _ = load_book_model(path)
    x, t = slice_data[1]
    assert accuracy == pytest.approx(model.accuracy(x.reshape(len(x), -1), t), abs=5e-5)
    from PIL import Image

    digit = tmp_path / "digit.png"
    image = (x[0].reshape(28, 28) * 255).astype(np.uint8)
    Image.fromarray(255 - image).save(digit)  # dark ink on white paper, as photographed
    code, out, err = run(capsys, "predict", str(path), str(digit))
    assert code == 0, err
    assert out.strip().startswith(f"{digit}: ")


def test_evaluate_of_a_book_file_writes_its_figures_under_runs(
    capsys,
    tmp_path,
    monkeypatch,
    slice_data,  # noqa: F811
):
    # the book's weights often lie in a folder that is not ours to write (shared, read-only)
    path = book_weights(SAMPLE_WEIGHT)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "evaluate", str(path))
    assert code == 0, err
    assert (tmp_path / "runs" / "book-sample_weight" / "confusion_matrix.png").stat().st_size


# --- finding the book's files by their own names ------------------------------------------


@pytest.fixture
def no_book_weights(monkeypatch, tmp_path):
    """No $SCRATCHDL_BOOK_WEIGHTS, and an empty data folder in tmp_path/data."""
    from scratchdl.files.book_weights import ENV_BOOK_WEIGHTS

    monkeypatch.delenv(ENV_BOOK_WEIGHTS, raising=False)
    monkeypatch.setenv("SCRATCHDL_DATA", str(tmp_path / "data"))
    return tmp_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not read by the finder")
    return path


def test_book_files_are_found_by_the_books_names_in_either_layout(no_book_weights, monkeypatch):
    from scratchdl.files import find_book_weights
    from scratchdl.files.book_weights import BOOK_FOLDER, ENV_BOOK_WEIGHTS

    assert find_book_weights() == {}
    default = no_book_weights / "data" / BOOK_FOLDER  # the documented default folder
    flat = _touch(default / "sample_weight.pkl")
    renamed = _touch(default / "simple_convnet_params.pkl")  # ch07's params.pkl, renamed
    assert find_book_weights() == {"ch03/sample_weight.pkl": flat, "ch07/params.pkl": renamed}
    clone = no_book_weights / "deep-learning-from-scratch"  # the book's repository as it is
    layout = {p: _touch(clone / p) for p in ("ch07/params.pkl", "ch08/deep_convnet_params.pkl")}
    monkeypatch.setenv(ENV_BOOK_WEIGHTS, str(clone))  # searched before the default folder
    assert find_book_weights() == {"ch03/sample_weight.pkl": flat, **layout}
    _touch(default / "params.pkl")  # the variable's folder still comes first
    assert find_book_weights()["ch07/params.pkl"] == layout["ch07/params.pkl"]


def test_a_missing_book_file_names_the_folders_and_the_fix(no_book_weights):
    from scratchdl.files import book_weight_file

    with pytest.raises(FileNotFoundError) as info:
        book_weight_file("ch08/deep_convnet_params.pkl")
    message = str(info.value)
    assert "deep_convnet_params.pkl" in message and "$SCRATCHDL_BOOK_WEIGHTS" in message
    assert str(no_book_weights / "data" / "book-weights") in message
    with pytest.raises(ValueError, match="choose one of: ch03/sample_weight.pkl, ch07/params"):
        book_weight_file("ch09/params.pkl")


def test_the_tests_find_the_shared_book_files_through_the_variable():
    from scratchdl.files import find_book_weights
    from tests.conftest import SHARED_BOOK_WEIGHTS

    if not SHARED_BOOK_WEIGHTS.is_dir():
        pytest.skip(f"no book weights at {SHARED_BOOK_WEIGHTS}")
    found = find_book_weights()
    assert set(found) == {
        "ch03/sample_weight.pkl",
        "ch07/params.pkl",
        "ch08/deep_convnet_params.pkl",
    }
    assert all(path.parent == SHARED_BOOK_WEIGHTS for path in found.values())
