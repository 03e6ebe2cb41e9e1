"""A newcomer's first commands: --help, predict and export without a model (the shipped
SimpleConvNet), the model-first form of predict, --version and scratchdl info."""

from __future__ import annotations

import re
from importlib import metadata

import numpy as np
import pytest

import scratchdl
from scratchdl import cli
from scratchdl.datasets import load_mnist_sample
from scratchdl.engine import get_conv_algorithm
from tests.conftest import assert_one_line_error, run


def test_help_names_every_command_in_plain_text(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    commands = re.search(r"\{([\w,-]+)\}", cli.make_parser().format_usage()).group(1).split(",")
    assert {"train", "predict", "serve", "export", "search", "data", "info"} <= set(commands)
    described = re.findall(r"^    (\w+) {2,}", text, re.M)  # the commands section, one a line
    assert described == commands
    assert "``" not in text and "``" not in cli.make_parser().description
    for command in commands:  # each command's own --help is plain text too
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "``" not in capsys.readouterr().out, command


def _digit_images(tmp_path, n: int) -> tuple[list[str], np.ndarray]:
    """The first ``n`` test digits of the shipped sample, as photos are: dark ink on paper,
    larger than 28x28."""
    from PIL import Image

    (_, _), (x, t) = load_mnist_sample(normalize=False, flatten=False)
    paths = []
    for i in range(n):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(255 - x[i, 0]).resize((112, 112)).save(path)
        paths.append(str(path))
    return paths, t[:n]


def test_predict_without_a_model_uses_the_shipped_one(capsys, tmp_path):
    paths, labels = _digit_images(tmp_path, 10)
    code, out, err = run(capsys, "predict", *paths)
    assert code == 0, err
    lines = out.strip().splitlines()  # one line per image: stdout stays for the answers
    assert [line.split(": ")[0] for line in lines] == paths
    predicted = np.array([int(line.split(": ")[1].split()[0]) for line in lines])
    assert np.mean(predicted == labels) >= 0.9  # the shipped SimpleConvNet: 0.99 on MNIST
    assert "no model given" in err and "simple-cnn.safetensors" in err


def test_predict_with_a_model_first_still_takes_it(capsys, tmp_path):
    from scratchdl.files import save
    from scratchdl.models import TwoLayerNet

    paths, _ = _digit_images(tmp_path, 2)
    model = tmp_path / "mine.safetensors"
    save(TwoLayerNet(784, 8, 10, rng=0), model)
    code, out, err = run(capsys, "predict", str(model), *paths)
    assert code == 0, err
    assert [line.split(": ")[0] for line in out.strip().splitlines()] == paths
    assert "no model given" not in err
    code, _, err = run(capsys, "predict", str(model))  # a model and no image
    assert_one_line_error(code, err, "no image after the model", str(model))


def test_export_without_a_model_writes_the_shipped_one(capsys, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from scratchdl.files import load
    from scratchdl.serve.inference import shipped_model_path

    out = tmp_path / "shipped.onnx"
    code, stdout, err = run(capsys, "export", "--out", str(out))
    assert code == 0, err
    assert stdout.startswith("no model given") and "SimpleConvNet" in stdout
    (_, _), (x, _) = load_mnist_sample(flatten=False)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (p,) = session.run(["probabilities"], {"x": x[:50]})
    expected = load(shipped_model_path()).predict(x[:50]).argmax(axis=1)
    np.testing.assert_array_equal(p.argmax(axis=1), expected)


def test_version_is_the_installed_metadata(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"scratchdl {metadata.version('scratchdl')}"
    assert scratchdl.__version__ == metadata.version("scratchdl")


def test_info_prints_what_a_bug_report_needs(capsys, tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    (weights / "ch07").mkdir(parents=True)
    (weights / "ch07" / "params.pkl").write_bytes(b"")  # found by name, never read
    monkeypatch.setenv("SCRATCHDL_BOOK_WEIGHTS", str(weights))
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    (data / "notes.txt").write_text("mine")
    code, out, err = run(capsys, "info", "--data-dir", str(data))
    assert code == 0, err
    lines = out.splitlines()

    def line(prefix: str) -> str:
        return next(x for x in lines if x.startswith(prefix))

    assert line("scratchdl ").split()[1] == metadata.version("scratchdl")
    assert line("Python ") and line("numpy ").split()[1] == np.__version__
    deps = line("dependencies: ")
    for name in ("matplotlib", "safetensors", "Pillow", "threadpoolctl", "fastapi"):
        assert f"{name} {metadata.version(name)}" in deps
    blas = line("BLAS: ")  # what numpy runs on, with its kernel (threadpoolctl's words)
    assert "kernel" in blas and "threads" in blas
    assert line("threads: ").startswith(f"threads: {scratchdl.get_num_threads()} ")
    assert line("convolutions: ").startswith(f"convolutions: {get_conv_algorithm()} (")
    assert line("data folder: ") == f"data folder: {data} (from the data_dir argument)"
    assert line("  mnist: ").startswith("  mnist: absent")
    assert line("  holds: ") == "  holds: mnist/, notes.txt"
    assert line("Japanese figures: ")
    assert line("  ch07/params.pkl: ") == f"  ch07/params.pkl: {weights / 'ch07' / 'params.pkl'}"
    assert line("  ch08/deep_convnet_params.pkl: ").endswith("not found")
