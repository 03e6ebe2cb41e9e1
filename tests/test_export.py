"""ONNX export: every network's file passes onnx's full check and gives, in onnxruntime, the
very logits and probabilities of ``model.predict`` on real MNIST images; and the errors."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx  # the test extra holds them: a missing one fails, not skips, the suite
import onnxruntime as ort
import pytest

from scratchdl import cli
from scratchdl.export import ir_version_for, onnx_model, plan_graph, to_onnx
from scratchdl.files import save
from scratchdl.functions import softmax
from scratchdl.layers import (
    Affine,
    AvgPooling,
    BatchNormalization,
    Convolution,
    Dropout,
    Flatten,
    IdentityWithLoss,
    Layer,
    Pooling,
    Relu,
    Sigmoid,
    Tanh,
)
from scratchdl.models import (
    DeepConvNet,
    MultiLayerNet,
    Sequential,
    SimpleConvNet,
    TwoLayerNet,
)
from scratchdl.support.atomic import stale_temp_files
from tests.conftest import mnist_slice

BOOK = Path(__file__).parents[2] / "shared" / "book-weights"
DEEP_PKL = BOOK / "deep_convnet_params.pkl"
ATOL = 1e-5  # float32: onnxruntime's kernels sum in another order than numpy's BLAS
BATCHES = (1, 257)
INSTALL = "pip install 'scratchdl[onnx]'"


def randomize(model: Sequential, seed: int) -> Sequential:
    """Give every bias, batch-norm parameter and running statistic a non-trivial value (the
    constructors leave zeros and ones, which would hide a swapped or missing operand)."""
    rng = np.random.default_rng(seed)
    for name, a in model.state_dict().items():
        if name.startswith(("b", "beta", "running_mean")):
            a[...] = rng.normal(0, 0.3, a.shape)
        elif name.startswith(("gamma", "running_var")):
            a[...] = rng.uniform(0.5, 2.0, a.shape)
    return model


def two_layer_net():
    return randomize(TwoLayerNet(784, 50, 10, weight_init_std=0.2, rng=1), 11)


def multi_layer_net():
    return randomize(
        MultiLayerNet(
            784, [100, 60, 40], 10, use_batchnorm=True, use_dropout=True, dropout_ratio=0.3, rng=2
        ),
        12,
    )


def simple_conv_net():
    return randomize(SimpleConvNet(weight_init_std=0.1, rng=3), 13)


def deep_conv_net():
    return randomize(DeepConvNet(rng=4), 14)


def sequential_net():
    """Every other layer: a stride-2, pad-2 convolution, 4-D batch norm, tanh (negative
    values: a max pool padded with zeros instead of -inf would differ), average pooling that
    counts its padding, max pooling with padding, Flatten, sigmoid and dropout."""
    rng = np.random.default_rng(5)

    def normal(*shape, std=0.3):
        return rng.normal(0, std, shape).astype(np.float32)

    layers = [
        Convolution(normal(8, 1, 4, 4), normal(8), stride=2, pad=2),  # 28 -> 15
        BatchNormalization(np.ones(8, np.float32), np.zeros(8, np.float32)),
        Tanh(),
        AvgPooling(3, 3, stride=2, pad=1),  # 15 -> 8
        Pooling(3, 3, stride=1, pad=1),  # 8 -> 8
        Flatten(),
        Affine(normal(8 * 8 * 8, 32, std=0.1), normal(32)),
        Sigmoid(),
        Dropout(0.5, rng=0),
        Affine(normal(32, 10, std=1.0), normal(10)),
    ]
    return randomize(Sequential(layers, input_shape=(1, 28, 28)), 15)


NETWORKS = {
    "TwoLayerNet": two_layer_net,
    "MultiLayerNet-bn-dropout": multi_layer_net,
    "SimpleConvNet": simple_conv_net,
    "DeepConvNet": deep_conv_net,
    "Sequential-avgpool-stride2-pad2": sequential_net,
}


@pytest.fixture(scope="module")
def images():
    (_, _), (x, t) = mnist_slice()  # the real test images, (1000, 1, 28, 28) in [0, 1]
    return x.astype(np.float32), t


def session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the suite runs in parallel on few cores
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_against_onnxruntime(model: Sequential, path: Path, images) -> dict[str, float]:
    """Assert onnxruntime's logits and probabilities equal scratchdl's within ATOL for the
    batches 1 and 257, and the argmax agrees on every image; return the largest differences."""
    checked = onnx.load(str(path))
    onnx.checker.check_model(checked, full_check=True)
    sess = session(path)
    x = images[0].reshape(len(images[0]), *model.input_shape)
    diffs = {}
    for N in BATCHES:
        logits = model.predict(x[:N])
        got_logits, got_probs = sess.run(["logits", "probabilities"], {"x": x[:N]})
        assert got_logits.shape == got_probs.shape == (N, model.output_size)
        assert got_logits.dtype == got_probs.dtype == np.float32
        np.testing.assert_allclose(got_logits, logits, rtol=0, atol=ATOL)
        np.testing.assert_allclose(got_probs, softmax(logits), rtol=0, atol=ATOL)
        diffs[f"logits@{N}"] = float(np.abs(got_logits - logits).max())
        diffs[f"probabilities@{N}"] = float(np.abs(got_probs - softmax(logits)).max())
    (all_logits,) = sess.run(["logits"], {"x": x})  # every image, in one batch
    y = model.predict(x).argmax(axis=1)
    # scores that differ between the classes and images: a wrong layout cannot pass unseen
    assert np.ptp(all_logits, axis=1).mean() > 1.0 and len(np.unique(y)) > 1
    np.testing.assert_array_equal(all_logits.argmax(axis=1), y)
    return diffs


@pytest.mark.parametrize("name", NETWORKS)
def test_onnxruntime_equals_predict(name, images, tmp_path):
    model = NETWORKS[name]()
    path = tmp_path / "model.onnx"
    report = to_onnx(model, path)
    assert report["bytes"] == path.stat().st_size and report["opset"] == 17
    diffs = check_against_onnxruntime(model, path, images)
    print(f"\n{name}: max |onnxruntime - scratchdl| {diffs}")


@pytest.mark.skipif(not DEEP_PKL.is_file(), reason=f"no book weights at {DEEP_PKL}")
def test_the_books_deep_convnet_exports_and_classifies_alike(images, tmp_path, capsys):
    from scratchdl.files import load_model

    out = tmp_path / "deep.onnx"
    assert cli.main(["export", str(DEEP_PKL), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    model, _ = load_model(DEEP_PKL)
    diffs = check_against_onnxruntime(model, out, images)
    x, t = images
    (logits,) = session(out).run(["logits"], {"x": x})
    assert np.mean(logits.argmax(axis=1) == t) > 0.97  # the book's trained weights
    print(f"\nthe book's DeepConvNet: max |onnxruntime - scratchdl| {diffs}")


def test_the_file_names_its_inputs_outputs_versions_and_metadata(tmp_path):
    model = simple_conv_net()
    path = tmp_path / "model.onnx"
    to_onnx(model, path, model_file=tmp_path / "run" / "model.safetensors")
    proto = onnx.load(str(path))
    assert proto.ir_version == 8  # opset 17's, not onnx's default IR (14 in onnx 1.23)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert proto.producer_name == "scratchdl"
    (x,) = proto.graph.input
    dims = x.type.tensor_type.shape.dim
    assert x.name == "x" and x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims[0].dim_param == "N" and not dims[0].dim_value  # a dynamic batch
    assert [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert [o.name for o in proto.graph.output] == ["logits", "probabilities"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["model_file"] == "model.safetensors"
    assert props["scratchdl_version"]
    arch = json.loads(props["architecture"])
    assert arch["class"] == "SimpleConvNet" and arch["config"] == model.config
    assert arch["layers"][0].startswith("Convolution(1, 30")
    gemm = [n for n in proto.graph.node if n.op_type == "Gemm"]
    assert len(gemm) == 2 and all(a.name != "transB" or a.i == 0 for n in gemm for a in n.attribute)
    assert {i.name for i in proto.graph.initializer} == set(model.params)


def test_ir_version_is_derived_from_the_opset():
    assert [ir_version_for(opset) for opset in (13, 15, 17, 19, 21)] == [7, 8, 8, 9, 10]


@pytest.mark.parametrize("opset", [13, 21])
def test_other_opsets_give_the_same_outputs(opset, images, tmp_path):
    model = sequential_net()
    path = tmp_path / "model.onnx"
    to_onnx(model, path, opset=opset)
    assert onnx.load(str(path)).ir_version == ir_version_for(opset)
    check_against_onnxruntime(model, path, images)


@pytest.mark.parametrize("opset", [12, 10_000, 17.0, True, "17"])
def test_unsupported_opsets_are_refused(opset, tmp_path):
    with pytest.raises(ValueError, match="opset must be a whole number from 13"):
        to_onnx(two_layer_net(), tmp_path / "model.onnx", opset=opset)
    assert list(tmp_path.iterdir()) == []


def test_a_float64_model_is_exported_in_float32(images, tmp_path):
    model = randomize(TwoLayerNet(784, 50, 10, weight_init_std=0.1, rng=6, dtype=np.float64), 16)
    path = tmp_path / "model.onnx"
    to_onnx(model, path)
    x = images[0][:257].reshape(257, 784)
    logits, _ = session(path).run(None, {"x": x})
    np.testing.assert_allclose(logits, model.predict(x), rtol=0, atol=ATOL)


def test_a_model_without_input_shape_needs_one(tmp_path):
    model = Sequential([Affine(np.ones((4, 3), np.float32), np.zeros(3, np.float32))])
    with pytest.raises(ValueError, match="pass input_shape"):
        to_onnx(model, tmp_path / "model.onnx")
    report = to_onnx(model, tmp_path / "model.onnx", input_shape=(2, 2))  # flattened first
    assert report["input_shape"] == (2, 2)
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    logits, probs = session(tmp_path / "model.onnx").run(None, {"x": x})
    np.testing.assert_allclose(logits, model.predict(x.reshape(2, 4)), rtol=0, atol=ATOL)


class Scale(Layer):
    """A user's own layer: export cannot know what it computes."""

    def forward(self, x, train=False):
        return 2 * x


class LeakyRelu(Relu):
    """A subclass that computes something else than its base class."""

    def forward(self, x, train=False):
        return np.where(x > 0, x, 0.01 * x)


def mlp(*middle: Layer, loss=None) -> Sequential:
    W1, W2 = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32)
    layers = [Affine(W1, np.zeros(3, np.float32)), *middle, Affine(W2, np.zeros(2, np.float32))]
    return Sequential(layers, loss, input_shape=(4,))


@pytest.mark.parametrize(
    "model, words",
    [
        (mlp(Relu(), Scale()), ["layer 2 (Scale: Scale())", "no ONNX translation", "Affine"]),
        (mlp(LeakyRelu()), ["layer 1 (LeakyRelu", "no ONNX translation"]),
        (mlp(loss=IdentityWithLoss()), ["IdentityWithLoss", "SoftmaxWithLoss"]),
        (
            Sequential([Convolution(np.ones((2, 1, 3, 3), np.float32), np.zeros(2, np.float32))]),
            ["pass input_shape"],
        ),
        (
            Sequential(
                [Pooling(2, 2, stride=2, pad=2), Affine(np.ones((32, 2), np.float32), np.zeros(2))],
                input_shape=(2, 4, 4),
            ),
            ["layer 0 (Pooling", "pad 2 >= its window"],
        ),
        (
            Sequential(
                [Convolution(np.ones((2, 1, 3, 3), np.float32), np.zeros(2, np.float32))],
                input_shape=(1, 5, 5),
            ),
            ["outputs (N, 2, 3, 3)", "end it with an Affine"],
        ),
        (mlp(Relu(), Pooling(2, 2)), ["layer 2 (Pooling", "needs images (C, H, W)", "(3,)"]),
    ],
    ids=["custom", "subclass", "regression", "no-input-shape", "pad-only-windows", "4-D", "1-D"],
)
def test_what_cannot_be_exported_is_refused_naming_it_and_nothing_is_written(
    model, words, tmp_path
):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the old file")
    with pytest.raises(ValueError) as e:
        to_onnx(model, path)
    for word in words:
        assert word in str(e.value), str(e.value)
    assert path.read_bytes() == b"the old file" and stale_temp_files(path) == []


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the old file")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        to_onnx(two_layer_net(), path)
    assert path.read_bytes() == b"the old file" and stale_temp_files(path) == []


def test_missing_onnx_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(ImportError, match=re.escape(INSTALL)):
        to_onnx(two_layer_net(), tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_plan_needs_numpy_only():
    code = (
        "import sys, numpy as np, scratchdl.export as e, scratchdl.models as m\n"
        "e.plan_graph(m.TwoLayerNet(4, 3, 2))\n"
        "print(sorted({'onnx', 'onnxruntime'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert [n.op_type for n in plan_graph(TwoLayerNet(4, 3, 2)).nodes] == [
        "Gemm",
        "Relu",
        "Gemm",
        "Softmax",
    ]
    assert onnx_model(multi_layer_net()).graph.node[-1].attribute[0].i == -1  # softmax axis


# -- the command ----------------------------------------------------------------------------


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def model_file(tmp_path):
    model = simple_conv_net()
    path = tmp_path / "model.safetensors"
    save(model, path)
    return model, path


def test_export_command_writes_a_file_onnxruntime_runs(model_file, images, tmp_path, capsys):
    model, path = model_file
    out = tmp_path / "simple.onnx"
    code, stdout, err = run(capsys, "export", path, "--format", "onnx", "--out", out)
    assert code == 0, err
    assert f"{path}: SimpleConvNet" in stdout
    assert f"wrote {out} ({out.stat().st_size:,} bytes, opset 17, IR 8)" in stdout
    assert "input x (N, 1, 28, 28) float32" in stdout
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["model_file"] == "model.safetensors"
    x = images[0][:257]
    logits, _ = session(out).run(None, {"x": x})
    np.testing.assert_allclose(logits, model.predict(x), rtol=0, atol=ATOL)
    code, stdout, err = run(capsys, "export", path, "--out", out, "--opset", "13")
    assert code == 0 and "opset 13, IR 7" in stdout, err


def test_export_command_errors_are_one_line(model_file, tmp_path, capsys, monkeypatch):
    _, path = model_file
    out = tmp_path / "out.onnx"
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    cases = [
        (["export", tmp_path / "missing.safetensors", "--out", out], ["missing.safetensors"]),
        (["export", corrupt, "--out", out], ["corrupt.safetensors"]),
        (["export", path, "--out", tmp_path / "no" / "m.onnx"], ["--out", "does not exist"]),
        (["export", path, "--out", tmp_path], ["--out", "is a folder"]),
        (["export", path, "--out", path], ["--out", "the model file itself"]),
        (["export", path, "--out", out, "--opset", "12"], ["opset", "from 13"]),
        (["export", path, "--out", out, "--opset", "x"], ["--opset", "whole number"]),
        (["export", path, "--out", out, "--format", "tflite"], ["--format", "onnx"]),
        (["export", path], ["--out"]),
        (["export", path, "--out", ""], ["--out", "must name a file"]),
    ]
    for argv, needles in cases:
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "corrupt.safetensors",
        "model.safetensors",
    ]
    monkeypatch.setitem(sys.modules, "onnx", None)
    code, _, err = run(capsys, "export", path, "--out", out)
    assert_one_line_error(code, err, INSTALL)
    assert not out.exists()


def test_a_full_disk_during_export_names_the_file_and_leaves_none(
    model_file, tmp_path, capsys, monkeypatch
):
    _, path = model_file
    out = tmp_path / "out.onnx"

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    code, _, err = run(capsys, "export", path, "--out", out)
    assert_one_line_error(code, err, str(out), os.strerror(errno.ENOSPC))  # was "[Errno 28] ..."
    assert not out.exists() and stale_temp_files(out) == []
    out.write_bytes(b"the old file")
    code, _, err = run(capsys, "export", path, "--out", out)
    assert_one_line_error(code, err, str(out))
    assert out.read_bytes() == b"the old file" and stale_temp_files(out) == []


@pytest.mark.skipif(
    sys.getfilesystemencoding().lower().replace("-", "") != "utf8",
    reason="file names here are not UTF-8 bytes",
)
def test_export_prints_file_names_that_are_not_utf_8_readably(model_file, tmp_path, capsys):
    _, path = model_file
    odd = path.rename(path.with_name(os.fsdecode(b"m\xff.safetensors")))
    out = tmp_path / os.fsdecode(b"o\xfe.onnx")
    code, stdout, err = run(capsys, "export", odd, "--out", out)
    assert code == 0, err
    assert "m\\xff.safetensors" in stdout and "o\\xfe.onnx" in stdout, stdout
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta["model_file"] == "m\\xff.safetensors"  # ONNX text must be UTF-8
    gone = tmp_path / os.fsdecode(b"gone\xfd.safetensors")
    code, _, err = run(capsys, "export", gone, "--out", tmp_path / "x.onnx")
    assert code == 2 and "gone\\xfd.safetensors" in err and "\\udc" not in err, err


def test_export_command_refuses_a_read_only_folder(model_file, tmp_path, capsys, monkeypatch):
    _, path = model_file
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root writes anywhere: as for a user
        monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != folder)
    try:
        code, _, err = run(capsys, "export", path, "--out", folder / "m.onnx")
    finally:
        folder.chmod(0o755)
    assert_one_line_error(code, err, "--out", "cannot write into", str(folder))
    assert list(folder.iterdir()) == []
