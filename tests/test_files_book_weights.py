"""Model files: round trips, atomic writes, damaged files, the book's pickles, hostile pickles."""

from __future__ import annotations

import builtins
import collections
import hashlib
import json
import os
import pickle
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from scratchdl.files import (
    ModelFileError,
    import_book_params,
    load,
    load_tensors,
    save,
    save_tensors,
)
from scratchdl.files.safetensors_file import DIGEST_KEY
from scratchdl.layers import BN_EPS, Affine, Dropout, Relu, Sigmoid
from scratchdl.models import DeepConvNet, MultiLayerNet, Sequential, SimpleConvNet, TwoLayerNet
from tests.conftest import (
    MUTATION,
    SHARED_BOOK_WEIGHTS,
    book_like_params,
    expect_error,
    header_end,
    multilayer_net,
    mutate,
    pickle_file,
    small_convnet,
)

BOOK = SHARED_BOOK_WEIGHTS
needs_book = pytest.mark.skipif(not BOOK.is_dir(), reason=f"no book weights at {BOOK}")
SIMPLE_PKL = BOOK / "simple_convnet_params.pkl"
DEEP_PKL = BOOK / "deep_convnet_params.pkl"
RNG = np.random.default_rng(7)


# --- models: save -> load ---------------------------------------------------------------------


CASES = {
    "two_layer": lambda: (TwoLayerNet(6, 5, 3, weight_init_std=0.5, rng=0), RNG.random((5, 6))),
    "multi_layer_bn_f32": lambda: multilayer_net(np.float32),
    "multi_layer_bn_f64": lambda: multilayer_net(np.float64),
    "simple_conv": lambda: (
        SimpleConvNet(
            (1, 8, 8),
            {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1},
            hidden_size=6,
            output_size=4,
            weight_init_std=0.3,
            rng=2,
        ),
        RNG.random((3, 1, 8, 8)),
    ),
    "deep_conv_f64": lambda: (
        DeepConvNet((1, 12, 12), hidden_size=6, output_size=4, rng=3, dtype=np.float64),
        RNG.random((3, 1, 12, 12)),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_load_round_trip_is_bit_identical(case, tmp_path):
    model, x = CASES[case]()
    path = tmp_path / "model.safetensors"
    save(model, path)
    loaded = load(path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert loaded.dtype == model.dtype
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    for name in before:
        assert after[name].dtype == before[name].dtype, name
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
        assert after[name] is not before[name]
    if case.startswith("multi"):  # the running statistics were saved, not the initial ones
        assert not np.allclose(after["running_mean1"], 0)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_model_file_metadata(tmp_path):
    model = TwoLayerNet(4, 3, 2, rng=0)
    save(model, tmp_path / "m.safetensors")
    tensors, meta = load_tensors(tmp_path / "m.safetensors")
    assert meta["format"] == "scratchdl"
    assert meta["format_version"] == "1"
    assert meta["class"] == "TwoLayerNet"
    assert json.loads(meta["config"]) == model.config
    assert meta["scratchdl_version"]
    assert sorted(tensors) == ["W1", "W2", "b1", "b2"]


def test_save_refuses_a_model_that_cannot_be_rebuilt(tmp_path):
    net = Sequential([Affine(np.ones((2, 2)), np.zeros(2))])
    with pytest.raises(ValueError, match="Sequential"):
        save(net, tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())


# --- low level: save_tensors / load_tensors ------------------------------------------------------


def test_tensors_round_trip_every_dtype_and_layout(tmp_path):
    tensors = {
        "f16": RNG.random((2, 3)).astype(np.float16),
        "f64_big_endian": RNG.random(4).astype(">f8"),
        "f32_transposed": RNG.random((3, 4)).astype(np.float32).T,  # not C-contiguous
        "f32_strided": RNG.random(10).astype(np.float32)[::3],
        "i64": np.arange(5, dtype=np.int64) - 2,
        "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    meta = {"a": "1", "b": json.dumps({"x": [1, 2]})}
    save_tensors(tmp_path / "t.safetensors", tensors, meta)
    got, got_meta = load_tensors(tmp_path / "t.safetensors")
    assert got_meta == meta
    assert got.keys() == tensors.keys()
    for name, array in tensors.items():
        assert got[name].dtype == array.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(got[name], array, err_msg=name)
        assert got[name].flags.writeable, name


@pytest.mark.parametrize(
    "tensors, metadata, match",
    [
        ({"W": np.array([1, None], dtype=object)}, {}, "dtype object"),
        ({"W": np.ones(2, dtype=np.complex128)}, {}, "dtype complex128"),
        ({"__metadata__": np.ones(2)}, {}, "__metadata__"),
        ({"W": np.ones(2)}, {"epoch": 3}, "metadata must be a dict of str -> str"),
    ],
)
def test_save_tensors_rejects_what_safetensors_cannot_hold(tmp_path, tensors, metadata, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        save_tensors(tmp_path / "t.safetensors", tensors, metadata)
    assert not list(tmp_path.iterdir())


def test_missing_safetensors_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    save_tensors(tmp_path / "t.safetensors", {}, {})  # writing is numpy's and ours
    with pytest.raises(ImportError, match="pip install safetensors"):
        load_tensors(tmp_path / "t.safetensors")


def test_importing_files_needs_none_of_the_optional_libraries():
    code = (
        "import sys; sys.modules['safetensors'] = None; import scratchdl.files; "
        "sys.modules.pop('safetensors'); import scratchdl.files; "
        "import scratchdl.files.checkpoint, scratchdl.files.book_pickle; "
        "heavy = {'safetensors', 'matplotlib', 'tqdm', 'PIL'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- atomic write --------------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["replace", "fsync", "header"])
def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "model.safetensors"
    save(TwoLayerNet(4, 3, 2, rng=0), path)
    old = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk on fire")

    if failing == "header":  # the bytes cannot be made: a header no reader would accept
        from scratchdl.files import safetensors_file

        monkeypatch.setattr(safetensors_file, "MAX_HEADER_BYTES", 64)
        error, match = ValueError, "more than the 64 a reader accepts"
    else:
        monkeypatch.setattr(os, failing, boom)
        error, match = OSError, "disk on fire"
    with pytest.raises(error, match=match):
        save(TwoLayerNet(4, 3, 2, rng=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.safetensors"]
    load(path)  # still a valid model file


def test_the_file_and_its_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") if sys.platform == "linux" else None)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    save(TwoLayerNet(4, 3, 2, rng=0), tmp_path / "model.safetensors")
    assert len(synced) == 2  # the temporary file, then the folder that now names it
    if sys.platform == "linux":
        assert synced == [False, True]


def test_a_successful_write_replaces_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save(TwoLayerNet(4, 3, 2, rng=0), path)
    other = TwoLayerNet(4, 3, 2, rng=1)
    save(other, path)
    np.testing.assert_array_equal(load(path).params["W1"], other.params["W1"])
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_the_same_model_gives_the_same_bytes(tmp_path):
    """The header is sorted: a checksum identifies a model, whatever the dicts' order."""
    import safetensors.numpy

    model = MultiLayerNet(4, [3], 2, use_batchnorm=True, rng=0)
    digests = set()
    for i in range(5):
        save(model, tmp_path / f"m{i}.safetensors")
        digests.add(hashlib.sha256((tmp_path / f"m{i}.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1
    tensors, metadata = load_tensors(tmp_path / "m0.safetensors")
    tensors["count"] = np.arange(3, dtype=np.int8)  # mixed widths: each still starts aligned
    save_tensors(tmp_path / "a.safetensors", tensors, metadata)
    backwards = {k: tensors[k] for k in reversed(tensors)}
    save_tensors(tmp_path / "b.safetensors", backwards, dict(reversed(metadata.items())))
    raw = (tmp_path / "a.safetensors").read_bytes()
    assert raw == (tmp_path / "b.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    assert list(header["__metadata__"]) == sorted([*metadata, DIGEST_KEY]) and (8 + n) % 8 == 0
    for name, entry in header.items():
        if name != "__metadata__":
            assert entry["data_offsets"][0] % np.dtype(tensors[name].dtype).itemsize == 0
    read = safetensors.numpy.load_file(tmp_path / "a.safetensors")  # the library reads it
    assert read.keys() == tensors.keys()
    for name, array in tensors.items():
        np.testing.assert_array_equal(read[name], array)
    code = (  # another process (another hash seed for the safetensors library's maps)
        "import sys; from scratchdl.files import save; from scratchdl.models import "
        "MultiLayerNet; save(MultiLayerNet(4, [3], 2, use_batchnorm=True, rng=0), sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, tmp_path / "p.safetensors"], check=True)
    assert (tmp_path / "p.safetensors").read_bytes() == (tmp_path / "m0.safetensors").read_bytes()


@pytest.mark.parametrize(
    "dtype, stored, value", [("float32", np.float64, 1e300), ("float16", np.float32, 1e5)]
)
def test_values_beyond_the_dtype_of_the_config_are_refused(tmp_path, dtype, stored, value):
    path = tmp_path / "m.safetensors"
    save(TwoLayerNet(4, 3, 2, rng=0, dtype=np.dtype(dtype)), path)
    tensors, metadata = load_tensors(path)
    tensors = {k: v.astype(stored) for k, v in tensors.items()}
    tensors["W2"][1, 0] = value  # finite as stored, infinite in the model's dtype
    save_tensors(path, tensors, metadata)
    expect_error(lambda: load(path), path, "'W2'", dtype, f"{value:.3g}", "beyond the range")


def test_a_locked_folder_is_refused_until_its_holder_dies(tmp_path):
    import signal

    from scratchdl.atomic import FolderLocked, lock_folder

    out = tmp_path / "run"
    code = (
        "import sys, time; from scratchdl.atomic import lock_folder; "
        "lock = lock_folder(sys.argv[1]); lock.__enter__(); print('locked', flush=True); "
        "time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLocked, match=rf"{out} is in use .*process {holder.pid}"):
            with lock_folder(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # the operating system lets go of its lock
        holder.wait(timeout=60)
        holder.stdout.close()
    with lock_folder(out):
        with pytest.raises(FolderLocked):  # one holder, even in the same process
            with lock_folder(out):
                pass
        assert (out / ".lock").read_text().strip() == str(os.getpid())
    assert list(out.iterdir()) == []  # the lock file goes with the lock


# --- damaged and foreign safetensors files -------------------------------------------------------


def _raw_file(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def test_truncated_files_are_refused(two_layer_file, tmp_path):
    _, raw, _ = two_layer_file
    end = header_end(raw)
    for cut in (0, 3, 7, 8, 20, end - 1, end, end + 5, len(raw) - 1):
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(raw[:cut])
        expect_error(lambda p=path: load(p), path, "truncated")


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda raw: raw[:8] + b"[" + raw[9:], ["header", "json object"]),
        (lambda raw: raw[:8] + b"{" + b"\x00" * 10 + raw[19:], ["header", "not valid json"]),
        (lambda raw: raw[:8] + b"\xff\xfe" + raw[10:], ["header", "utf-8"]),
        (lambda raw: struct.pack("<Q", len(raw)) + raw[8:], ["truncated", "header length"]),
        (lambda raw: struct.pack("<Q", 2**62) + raw[8:], ["header length", "more than"]),
        (lambda raw: struct.pack("<Q", 2**64 - 1) + raw[8:], ["header length", "more than"]),
        (lambda raw: raw + b"\x00" * 8, ["tensors take", "bytes of data"]),
        (lambda raw: b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, ["not a safetensors file"]),
    ],
    ids=[
        "not_an_object",
        "bad_json",
        "not_utf8",
        "length_past_end",
        "huge",
        "u64max",
        "trailing",
        "png",
    ],
)
def test_corrupt_files_are_refused(two_layer_file, tmp_path, damage, words):
    _, raw, _ = two_layer_file
    path = tmp_path / "bad.safetensors"
    path.write_bytes(damage(raw))
    expect_error(lambda: load(path), path, *words)
    expect_error(lambda: load_tensors(path), path)


@pytest.mark.parametrize(
    "header, data, words",
    [
        (
            {"W": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
            b"\x00" * 4,
            ["unsupported dtype 'BF16'", "F32"],
        ),
        (
            {"W": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
            b"\x00" * 8,
            ["'W'", "needs 12 bytes"],
        ),
        (
            {"W": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 4 * 2**40]}},
            b"\x00" * 8,
            ["truncated", "'W'"],
        ),
        (
            {
                "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
            },
            b"\x00" * 6,
            ["'b'", "starts at byte 2", "expected 4"],
        ),
        (
            {"W": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
            b"\x00" * 4,
            ["shape", "'W'"],
        ),
        (
            {"W": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}},
            b"\x00" * 4,
            ["data_offsets", "'W'"],
        ),
        ({"W": [1, 2]}, b"", ["'W'", "dtype, shape, data_offsets"]),
        ({"__metadata__": {"format": 1}}, b"", ["__metadata__"]),
    ],
    ids=["bf16", "size_mismatch", "past_end", "overlap", "negative", "reversed", "not_obj", "meta"],
)
def test_bad_headers_are_refused_before_the_library_sees_them(tmp_path, header, data, words):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_raw_file(header, data))
    expect_error(lambda: load_tensors(path), path, *words)


def test_duplicate_header_keys_are_refused(tmp_path):
    entry = '{"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}'
    text = f'{{"a": {entry}, "a": {entry}}}'.encode()
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\x00")
    expect_error(lambda: load_tensors(path), path, "duplicate keys ['a']")


def _rewrite(path, tensors, **meta_changes):
    """Write ``tensors`` with the metadata of ``path`` changed by ``meta_changes`` (None drops)."""
    _, meta = load_tensors(path)
    for key, value in meta_changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    out = path.with_name("edited.safetensors")
    save_tensors(out, tensors, meta)
    return out


def test_model_files_with_wrong_contents_are_refused(two_layer_file):
    path, _, model = two_layer_file
    state = {k: v.copy() for k, v in model.state_dict().items()}
    config = model.config

    as_int = {**state, "W1": state["W1"].astype(np.int64)}
    expect_error(lambda: load(_rewrite(path, as_int)), "edited", "'W1'", "dtype int64", "float")

    missing = {k: v for k, v in state.items() if k != "b2"}
    expect_error(lambda: load(_rewrite(path, missing)), "edited", "missing ['b2']")

    extra = {**state, "W9": np.ones(2, dtype=np.float32)}
    expect_error(lambda: load(_rewrite(path, extra)), "edited", "unexpected ['W9']")

    wider = json.dumps({**config, "hidden_size": 5})
    edited = _rewrite(path, state, config=wider)
    expect_error(lambda: load(edited), edited, "'W1'", "shape (4, 3)", "needs (4, 5)")

    edited = _rewrite(path, state, **{"class": "ResNet50"})
    expect_error(lambda: load(edited), edited, "unknown model class 'ResNet50'", "TwoLayerNet")

    for fmt in ("pytorch", None):
        edited = _rewrite(path, state, format=fmt)
        expect_error(lambda e=edited: load(e), edited, "not a scratchdl model file")

    edited = _rewrite(path, state, format_version="2")
    expect_error(lambda: load(edited), edited, "format_version '2'", "upgrade")

    edited = _rewrite(path, state, config="{'input_size': 4")
    expect_error(lambda: load(edited), edited, "config", "not valid JSON")

    edited = _rewrite(path, state, config=json.dumps({**config, "depth": 3}))
    expect_error(lambda: load(edited), edited, "does not fit TwoLayerNet", "depth")

    edited = _rewrite(path, state, config=json.dumps({**config, "hidden_size": -3}))
    expect_error(lambda: load(edited), edited, "does not fit TwoLayerNet", "-3")

    edited = _rewrite(path, state, config="[4, 3, 2]")
    expect_error(lambda: load(edited), edited, "config must be a JSON object")


def test_a_corrupt_size_in_the_config_allocates_nothing(two_layer_file, monkeypatch):
    path, _, model = two_layer_file
    huge = json.dumps({**model.config, "hidden_size": 10**12})  # 4 TB of weights if built
    edited = _rewrite(path, model.state_dict(), config=huge)

    def no_build(*args, **kwargs):
        raise AssertionError("model_from_config was called: the model would have been allocated")

    monkeypatch.setattr("scratchdl.files.model_file.model_from_config", no_build)
    expect_error(
        lambda: load(edited), edited, "config['hidden_size'] = 1000000000000", "larger than any"
    )


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory):
    model = TwoLayerNet(3, 2, 2, weight_init_std=0.5, rng=0)
    folder = tmp_path_factory.mktemp("fuzz")
    save(model, folder / "small.safetensors")
    return folder, (folder / "small.safetensors").read_bytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3), header_only=st.booleans())
def test_mutated_files_load_or_raise_model_file_error(small_model_file, mutations, header_only):
    folder, raw = small_model_file
    if header_only:  # mutate the JSON header and keep its length field right: deeper checks
        end = header_end(raw)
        header = mutate(bytearray(raw[8:end]), mutations)
        data = struct.pack("<Q", len(header)) + header + raw[end:]
    else:
        data = mutate(bytearray(raw), mutations)
    path = folder / "mutated.safetensors"
    path.write_bytes(bytes(data))
    try:
        model = load(path)
    except ModelFileError as e:
        assert str(path) in str(e)
        return
    assert isinstance(model, Sequential)
    K = model.output_size
    assert model.predict(np.ones((2, model.input_shape[0]))).shape == (2, K)


# --- the book's pickled weights: a reference forward pass of the book's networks -----------------


def book_conv(x, W, b, stride=1, pad=0):
    """Convolution as the book defines it (cross-correlation), by a naive sliding window."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    FN, C, FH, FW = W.shape
    win = sliding_window_view(xp, (FH, FW), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,fcij->nfhw", win, W, optimize=True) + b[None, :, None, None]


def book_pool(x):
    """2x2 max pooling, stride 2."""
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))


def book_relu(x):
    return np.maximum(x, 0)


def book_simple_convnet(p, x):
    """The book's SimpleConvNet.predict: conv - relu - pool - affine - relu - affine."""
    h = book_pool(book_relu(book_conv(x, p["W1"], p["b1"])))
    h = book_relu(h.reshape(len(x), -1) @ p["W2"] + p["b2"])
    return h @ p["W3"] + p["b3"]


def book_deep_convnet(p, x, dropout_ratio=0.5):
    """The book's DeepConvNet.predict(train_flg=False): its Dropout multiplies by 1 - ratio."""
    h = x
    for i, pad in enumerate([1, 1, 1, 2, 1, 1]):
        h = book_relu(book_conv(h, p[f"W{i + 1}"], p[f"b{i + 1}"], 1, pad))
        if i % 2 == 1:
            h = book_pool(h)
    h = book_relu(h.reshape(len(x), -1) @ p["W7"] + p["b7"]) * (1 - dropout_ratio)
    return (h @ p["W8"] + p["b8"]) * (1 - dropout_ratio)


def _synthetic_digits(n, seed=0):
    """Deterministic digit-like images: a few thick random strokes on a blank 28x28 canvas."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, 28, 28), dtype=np.float32)
    yy, xx = np.mgrid[0:28, 0:28]
    for img in x:
        for _ in range(rng.integers(1, 4)):
            (r0, c0), (r1, c1) = rng.uniform(5, 23, size=(2, 2))
            for s in np.linspace(0, 1, 12):
                r, c = r0 + s * (r1 - r0), c0 + s * (c1 - c0)
                img[0] = np.maximum(img[0], np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 2.0))
    return x, None


@pytest.fixture(scope="module")
def digits():
    """The first 1000 MNIST test images and labels if the data is here, else synthetic ones."""
    try:
        from scratchdl.datasets import load_mnist, where

        if where("mnist")["mnist"]["used"] is None:  # never download in a test
            raise FileNotFoundError("no MNIST here")
        (_, _), (x, t) = load_mnist(flatten=False, progress=False)
        return x[:1000], t[:1000]
    except Exception:
        return _synthetic_digits(200)


def _raw_book_params(path):
    with open(path, "rb") as f:
        return pickle.load(f)  # the book's own file, in the test only: trusted, hash-checked


@needs_book
def test_book_files_match_their_readme_sha256():
    readme = (BOOK / "README.md").read_text()
    listed = dict(re.findall(r"`([\w.]+\.pkl)`.*?\b([0-9a-f]{64})\b", readme))
    assert {SIMPLE_PKL.name, DEEP_PKL.name} <= set(listed)  # the README may list more files
    for name, sha in listed.items():
        assert hashlib.sha256((BOOK / name).read_bytes()).hexdigest() == sha, name


@needs_book
@pytest.mark.parametrize(
    "path, cls, reference, min_accuracy",
    [
        # measured on the first 1000 MNIST test images: 0.961 and 0.976 (the book's text
        # reports 98.9 % / 99.3 % for its own training runs; these files give less)
        (SIMPLE_PKL, SimpleConvNet, book_simple_convnet, 0.95),
        (DEEP_PKL, DeepConvNet, book_deep_convnet, 0.97),
    ],
    ids=["SimpleConvNet", "DeepConvNet"],
)
def test_imported_book_weights_predict_like_the_books_code(
    path, cls, reference, min_accuracy, digits
):
    raw = _raw_book_params(path)
    x, t = digits
    x64 = x[:100].astype(np.float64)
    expected = reference(raw, x64)

    model64 = cls(dtype=np.float64)
    report = import_book_params(path, model64)
    assert report["model"] == cls.__name__
    assert report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report["params"] == {k: list(v.shape) for k, v in raw.items()}
    assert report["dtype"] == "float64 -> float64"
    scores = model64.predict(x64)
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    np.testing.assert_array_equal(scores.argmax(axis=1), expected.argmax(axis=1))

    model32 = cls()  # float32, as models are trained and served
    assert import_book_params(path, model32)["dtype"] == "float64 -> float32"
    scores32 = model32.predict(x[:100])
    assert scores32.dtype == np.float32
    np.testing.assert_allclose(scores32, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    if t is not None:
        assert model32.accuracy(x, t) >= min_accuracy


@needs_book
def test_deep_convnet_dropout_is_folded_into_the_last_affine():
    raw = _raw_book_params(DEEP_PKL)
    model = DeepConvNet(dtype=np.float64)
    report = import_book_params(DEEP_PKL, model)
    assert report["dropout_scaling"] == {"W8": 0.25, "b8": 0.5}
    np.testing.assert_array_equal(model.params["W8"], 0.25 * raw["W8"])
    np.testing.assert_array_equal(model.params["b8"], 0.5 * raw["b8"])
    for name in ("W1", "b1", "W7", "b7"):
        np.testing.assert_array_equal(model.params[name], raw[name])


@needs_book
def test_book_files_that_do_not_fit_the_model_are_refused():
    expect_error(
        lambda: import_book_params(SIMPLE_PKL, DeepConvNet()),
        SIMPLE_PKL,
        "do not fit this DeepConvNet",
        "missing ['W4'",
    )
    expect_error(
        lambda: import_book_params(SIMPLE_PKL, SimpleConvNet(hidden_size=50)),
        SIMPLE_PKL,
        "W2 is (4320, 100) in the file but (4320, 50) here",
        "W3",
    )


@needs_book
def test_truncated_book_files_are_refused(tmp_path):
    raw = SIMPLE_PKL.read_bytes()
    for cut in (0, 1, 2, 11, 60, 200, len(raw) // 2, len(raw) - 1):
        path = tmp_path / f"cut{cut}.pkl"
        path.write_bytes(raw[:cut])
        message = expect_error(lambda p=path: import_book_params(p, SimpleConvNet()), path)
        assert "truncated" in message or "empty" in message, message


@pytest.mark.parametrize("protocol", [3, 4, 5])  # 5: Python 3.14's default, via _frombuffer
def test_pickles_of_plain_float_arrays_are_imported(tmp_path, protocol):
    model = small_convnet(np.float32)
    params = book_like_params(model)
    params["W2"] = np.asfortranarray(params["W2"])  # numpy pickles its bytes in Fortran order
    path = pickle_file(tmp_path, params, protocol=protocol)
    report = import_book_params(path, model)
    assert report["dropout_scaling"] == {}
    for name, value in params.items():
        np.testing.assert_array_equal(model.params[name], value.astype(np.float32), err_msg=name)


def test_import_keeps_buffers_and_folds_dropout_of_a_multilayer_net(tmp_path):
    model = MultiLayerNet(
        5, [4, 3], 2, use_batchnorm=True, use_dropout=True, dropout_ratio=0.2, rng=0,
        dtype=np.float64,
    )  # fmt: skip
    x = RNG.standard_normal((6, 5))
    model.loss(x, RNG.integers(0, 2, 6), train=True)
    buffers = {k: v.copy() for k, v in model.buffers.items()}
    params = book_like_params(model, seed=1)
    report = import_book_params(pickle_file(tmp_path, params), model)
    assert report["dropout_scaling"] == {"W2": pytest.approx(0.8), "W3": pytest.approx(0.8)}
    for name, value in buffers.items():
        np.testing.assert_array_equal(model.buffers[name], value, err_msg=name)
    # the book's MultiLayerNetExtend at test time: Affine - BN - ReLU - Dropout(x 0.8) - ...
    h = x
    for i in (1, 2):
        h = h @ params[f"W{i}"] + params[f"b{i}"]
        rm, rv = buffers[f"running_mean{i}"], buffers[f"running_var{i}"]
        h = params[f"gamma{i}"] * (h - rm) / np.sqrt(rv + BN_EPS) + params[f"beta{i}"]
        h = book_relu(h) * 0.8
    expected = h @ params["W3"] + params["b3"]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10, atol=1e-12)


def test_dropout_cannot_be_folded_through_a_non_homogeneous_layer(tmp_path):
    def net(layers):
        return Sequential(layers, dtype=np.float64)

    before_sigmoid = net(
        [
            Affine(np.ones((2, 2)), np.zeros(2)),
            Dropout(0.5),
            Sigmoid(),
            Affine(np.ones((2, 2)), np.zeros(2)),
        ]
    )
    after_sigmoid = net([Affine(np.ones((2, 2)), np.zeros(2)), Sigmoid(), Dropout(0.5)])
    for model in (before_sigmoid, after_sigmoid):
        path = pickle_file(tmp_path, book_like_params(model))
        with pytest.raises(ValueError, match="cannot fold the book's test-time Dropout"):
            import_book_params(path, model)
    trailing = net([Affine(np.ones((2, 2)), np.zeros(2)), Relu(), Dropout(0.25)])
    params = book_like_params(trailing)
    assert import_book_params(pickle_file(tmp_path, params), trailing)["dropout_scaling"] == {
        "W1": 0.75,
        "b1": 0.75,
    }


# --- hostile and malformed pickles ---------------------------------------------------------------


class Reduce:
    """Pickles as ``func(*args)``: what an attacker's file does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Custom:
    """An arbitrary class of the test module."""


def _global_name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def test_the_payload_works_on_a_plain_unpickler(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    pickle.loads(pickle.dumps(Reduce(os.system, f"touch {sentinel}")))
    assert sentinel.exists()  # so the checks below, that it is not created, can fail


@pytest.mark.parametrize(
    "make, refused",
    [
        (lambda s: Reduce(os.system, f"touch {s}"), os.system),
        (lambda s: Reduce(subprocess.Popen, ["touch", str(s)]), subprocess.Popen),
        (lambda s: Reduce(builtins.eval, f"open({str(s)!r}, 'w')"), builtins.eval),
        (lambda s: Reduce(builtins.exec, f"open({str(s)!r}, 'w')"), builtins.exec),
        (lambda s: Reduce(builtins.__import__, "os"), builtins.__import__),
        (lambda s: collections.OrderedDict(W1=np.ones(2)), collections.OrderedDict),
        (lambda s: {"W1": Custom()}, Custom),
        (lambda s: Reduce(np.load, str(s)), np.load),
        (lambda s: Reduce(np.testing.assert_equal, 1, 1), np.testing.assert_equal),
        (lambda s: Reduce(np.frombuffer, b"\x00" * 8), np.frombuffer),
        (lambda s: {"W1": np.float64(1.0)}, np.float64(1.0).__reduce__()[0]),
    ],
    ids=[
        "os.system",
        "Popen",
        "eval",
        "exec",
        "__import__",
        "OrderedDict",
        "custom_class",
        "numpy.load",
        "numpy.testing",
        "numpy.frombuffer",
        "numpy_scalar",
    ],
)
@pytest.mark.parametrize("protocol", [0, 3, 4])
def test_hostile_pickles_are_refused_naming_the_global(tmp_path, make, refused, protocol):
    sentinel = tmp_path / "SENTINEL"
    obj = make(sentinel)
    path = pickle_file(tmp_path, obj if isinstance(obj, dict) else {"W1": obj}, protocol)
    words = [f"refused to load global {_global_name(refused)}"]
    if protocol < 3:  # old protocols use Python 2's names (__builtin__.eval) and copyreg
        words = ["refused to load global", refused.__qualname__]
        if refused is Custom:
            words[1] = "copy_reg._reconstructor"  # Python 2 spelling of copyreg
    expect_error(lambda: import_book_params(path, small_convnet()), path, *words, "could run code")
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "args, words",
    [
        ((bytearray(8), np.dtype("f8"), (2,), "C"), ["needs 16 bytes", "holds 8"]),
        ((bytearray(16), np.dtype("f8"), (2,), "K"), ["order 'K'"]),
        (("not bytes", np.dtype("f8"), (1,), "C"), ["must be bytes"]),
        ((bytearray(8), "f8", (1,), "C"), ["not a plain dtype"]),
        ((bytearray(8), np.dtype("f8"), (-1,), "C"), ["not a tuple of sizes"]),
        ((bytearray(16), np.dtype("O"), (2,), "C"), ["dtype 'O8' refused"]),
    ],
    ids=["short", "order", "str", "dtype_name", "negative", "object"],
)
def test_crafted_protocol_5_arrays_are_refused(tmp_path, args, words):
    numeric = (np._core if hasattr(np, "_core") else np.core).numeric  # numpy 2 / numpy 1
    obj = {"W1": Reduce(numeric._frombuffer, *args)}  # what protocol 5 writes for an array
    path = pickle_file(tmp_path, obj, protocol=5)
    expect_error(lambda: import_book_params(path, small_convnet()), path, *words)


@pytest.mark.parametrize(
    "obj, words",
    [
        ([np.ones(2)], ["holds a dict name -> array", "got list"]),
        ({1: np.ones(2)}, ["names must be strings", "1"]),
        ({"W1": 3.0}, ["'W1' must be a numpy array", "got float"]),
        ({"W1": [1.0, 2.0]}, ["'W1' must be a numpy array", "got list"]),
        ({"W1": np.array([1.0, None], dtype=object)}, ["dtype 'O8' refused", "object"]),
        ({"W1": np.zeros(2, dtype=[("a", "f8")])}, ["dtype 'V8' refused"]),
        ({"W1": np.array(["ab"])}, ["dtype 'U2' refused"]),
        ({"W1": np.ones(2, dtype=np.int64)}, ["'W1' has dtype int64", "floating"]),
    ],
    ids=["list", "int_key", "float", "list_value", "object", "structured", "str", "int"],
)
def test_malformed_parameter_pickles_are_refused(tmp_path, obj, words):
    path = pickle_file(tmp_path, obj)
    expect_error(lambda: import_book_params(path, small_convnet()), path, *words)


def test_parameter_pickles_with_wrong_keys_or_shapes_are_refused(tmp_path):
    model = small_convnet()
    before = {k: v.copy() for k, v in model.params.items()}
    params = book_like_params(model)
    del params["b3"]
    params["W9"] = np.ones(2)
    path = pickle_file(tmp_path, params)
    expect_error(lambda: import_book_params(path, model), path, "missing ['b3']", "['W9']")
    params = book_like_params(model)
    params["W1"] = np.ones((2, 1, 5, 5))
    path = pickle_file(tmp_path, params)
    expect_error(
        lambda: import_book_params(path, model), path, "W1 is (2, 1, 5, 5) in the file but"
    )
    for name, value in before.items():  # nothing was changed by the refused imports
        np.testing.assert_array_equal(model.params[name], value)


def test_crafted_pickles_cannot_allocate_or_run_numpy_setstate(tmp_path):
    cases = {
        # LONG_BINPUT at index 2**31 - 1: a C unpickler would grow its memo to that size
        "memo": b"\x80\x04}r\xff\xff\xff\x7f.",
        # BINBYTES8 claiming 2**62 bytes
        "claim": b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abc",
        # a frame longer than the file
        "frame": b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"}.",
        "trailing": pickle.dumps({}, protocol=4) + b"junk",
        "garbage": bytes(range(256)),
        "empty": b"",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(data)
        expect_error(lambda p=path: import_book_params(p, small_convnet()), path)
    # numpy.ndarray called directly with a huge shape: the stand-in is not callable
    path = pickle_file(tmp_path, {"W1": Reduce(np.ndarray, (1 << 40,))})
    expect_error(lambda: import_book_params(path, small_convnet()), path, "malformed")


def test_an_oversized_parameter_file_is_not_read(tmp_path, monkeypatch):
    path = pickle_file(tmp_path, book_like_params(small_convnet()))
    monkeypatch.setattr("scratchdl.files.book_pickle.MAX_PICKLE_BYTES", 100)
    expect_error(lambda: import_book_params(path, small_convnet()), path, "more than the 100")


# --- integrity: the tensors' sha256 in the metadata -------------------------------------------


def tensor_bytes(raw: bytes, name: str) -> slice:
    """Where the bytes of tensor ``name`` lie in the safetensors file ``raw``."""
    end = header_end(raw)
    begin, stop = json.loads(raw[8:end])[name]["data_offsets"]
    return slice(end + begin, end + stop)


def test_a_changed_weight_is_refused_by_the_digest(tmp_path):
    model, _ = multilayer_net(np.float32)
    path = tmp_path / "m.safetensors"
    save(model, path)
    raw = bytearray(path.read_bytes())
    where = tensor_bytes(raw, "W1")
    raw[where.start : where.start + 4] = struct.pack("<f", 0.25)  # finite and plausible
    path.write_bytes(raw)
    expect_error(lambda: load(path), path, "damaged", "sha256")
    raw[where.stop - 1] ^= 0x01  # a single flipped bit
    path.write_bytes(raw)
    expect_error(lambda: load_tensors(path), path, "sha256")


def test_the_digest_covers_names_and_shapes(tmp_path):
    path = tmp_path / "t.safetensors"
    save_tensors(path, {"a": np.arange(4.0), "b": np.arange(4.0) + 10}, {})
    raw = path.read_bytes()
    end = header_end(raw)
    swapped = raw[:end].replace(b'"a"', b'"c"').replace(b'"b"', b'"a"').replace(b'"c"', b'"b"')
    path.write_bytes(swapped + raw[end:])  # the same bytes under each other's names
    expect_error(lambda: load_tensors(path), path, "sha256")


def test_files_written_before_digests_still_load(tmp_path):
    import safetensors.numpy

    model, _ = multilayer_net(np.float64)
    path = tmp_path / "m.safetensors"
    save(model, path)
    tensors, metadata = load_tensors(path)
    assert DIGEST_KEY not in metadata  # the reader's business, not the caller's
    safetensors.numpy.save_file(tensors, path, metadata=metadata)  # no digest, as before
    loaded = load(path)
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], array)
    with pytest.raises(ValueError, match=DIGEST_KEY):
        save_tensors(path, tensors, {DIGEST_KEY: "0" * 64})


@pytest.mark.parametrize("name", ["m.pkl", "m.pickle", "M.PKL"])
def test_save_refuses_a_pickle_name_that_no_loader_would_read_back(tmp_path, name):
    model, _ = multilayer_net(np.float32)
    with pytest.raises(ValueError) as info:
        save(model, tmp_path / name)  # every loader took it for the book's pickle
    for word in (name, "pickle", ".safetensors"):
        assert word in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []
