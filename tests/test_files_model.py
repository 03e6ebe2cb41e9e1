"""Model files: save -> load gives the very model back, and load refuses, naming the file
and the fix, a file whose contents do not make the model it names."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from scratchdl.files import load, load_tensors, save, save_tensors
from scratchdl.layers import Affine
from scratchdl.models import DeepConvNet, Sequential, SimpleConvNet, TwoLayerNet
from tests.conftest import expect_error, multilayer_net

RNG = np.random.default_rng(7)


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


# --- what load refuses in a model file ----------------------------------------------------------


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


@pytest.mark.parametrize("name", ["m.pkl", "m.pickle", "M.PKL"])
def test_save_refuses_a_pickle_name_that_no_loader_would_read_back(tmp_path, name):
    model, _ = multilayer_net(np.float32)
    with pytest.raises(ValueError) as info:
        save(model, tmp_path / name)  # every loader took it for the book's pickle
    for word in (name, "pickle", ".safetensors"):
        assert word in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []
