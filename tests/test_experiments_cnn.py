"""The chapter 7-8 experiments (filters, pooling-shift, layer-cost, receptive-field,
augmentation, misclassified, half-float): quick runs write a real figure and the documented
numbers, and the book's claims hold on those numbers."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from PIL import Image

from scratchdl import TwoLayerNet
from scratchdl.experiments import (
    augmentation,
    cnn,
    common,
    filters,
    half_float,
    layer_cost,
    misclassified,
    pooling_shift,
    receptive_field,
    registry,
)
from scratchdl.files import load, save
from tests.conftest import mnist_slice

MODULES = (
    filters,
    pooling_shift,
    layer_cost,
    receptive_field,
    augmentation,
    misclassified,
    half_float,
)


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Other jobs share this machine's cores: a multi-threaded BLAS then waits for descheduled
    threads and a quick run takes several times longer. One thread keeps the tests fast."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limit = contextlib.nullcontext()
    else:
        limit = threadpool_limits(limits=1, user_api="blas")
    with limit:
        yield


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A SimpleConvNet trained with the quick settings on the shipped sample, saved."""
    (x, t), (x_test, t_test) = mnist_slice()
    q = common.options({}, cnn.TRAIN_SETTINGS, "the model_file fixture", quick=True)
    model = cnn.train_simple_convnet(
        x,
        t,
        x_test,
        t_test,
        epochs=q["epochs"],
        lr=q["lr"],
        batch_size=q["batch_size"],
        rng=np.random.default_rng(1),
        progress=False,
    )
    path = tmp_path_factory.mktemp("model") / "simple.safetensors"
    save(model, path)
    return path


def check_outputs(out, module, numbers: dict, keys: set[str]) -> dict:
    """The PNG is a real figure; the JSON holds the documented keys and equals ``numbers``."""
    png = out / f"{module.NAME}.png"
    with Image.open(png) as img:
        img.load()
        width, height = img.size
        levels = len(np.unique(np.asarray(img.convert("L"))))
    assert width > 300 and height > 300, img.size
    assert levels > 20, f"{png} has only {levels} gray levels"
    data = json.loads((out / f"{module.NAME}.json").read_text())
    missing = (keys | set(module.KEY_NUMBERS)) - set(data)
    assert not missing, f"{module.NAME}.json lacks {sorted(missing)}"
    assert set(data) == set(numbers)
    return data


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_registered_with_the_contract(module):
    assert registry.load(module.NAME) is module
    assert module.CHAPTER in (7, 8)
    assert module.TITLE and module.EXPLANATION.strip() and module.KEY_NUMBERS


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_unknown_option_raises(module, tmp_path):
    with pytest.raises(ValueError, match="no option bogus"):
        module.run(tmp_path, quick=True, progress=False, bogus=1)
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_filters_become_smoother(tmp_path):
    numbers = filters.run(tmp_path, quick=True, progress=False)
    data = check_outputs(
        tmp_path,
        filters,
        numbers,
        {"model", "filter_shape", "before", "after", "test_accuracy", "shown_filters"},
    )
    assert data["filter_shape"] == [30, 1, 5, 5]
    assert data["model"]["source"] == "trained here"
    # random weights: close to the expected 2/sqrt(pi); learned ones clearly smoother
    assert abs(data["roughness_before"] - filters.RANDOM_ROUGHNESS) < 0.15
    assert data["roughness_after"] < 0.8 * data["roughness_before"]
    assert data["after"]["mean_abs_w"] > data["before"]["mean_abs_w"]
    assert data["test_accuracy"] > 0.8
    assert len(data["shown_filters"]) == 8


def test_roughness_measures_smoothness():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((200, 1, 5, 5))
    ramp = np.broadcast_to(np.arange(5.0), (1, 1, 5, 5))  # a smooth edge: differences of 1
    assert abs(filters.roughness(noise).mean() - filters.RANDOM_ROUGHNESS) < 0.05
    assert filters.roughness(ramp)[0, 0] == pytest.approx(0.5 / np.sqrt(2))


def test_filters_refuse_a_model_without_convolution(tmp_path):
    path = tmp_path / "mlp.safetensors"
    save(TwoLayerNet(784, 10, 10, rng=0), path)
    with pytest.raises(ValueError, match="no Convolution layer"):
        filters.run(tmp_path, quick=True, progress=False, model=str(path))


def test_pooling_is_robust_to_shifts(tmp_path):
    numbers = pooling_shift.run(tmp_path, quick=True, progress=False)
    data = check_outputs(
        tmp_path, pooling_shift, numbers, {"unchanged_fraction", "relative_change", "by_direction"}
    )
    for rep in ("pixels", "features"):
        unchanged, change = data["unchanged_fraction"][rep], data["relative_change"][rep]
        assert unchanged["pooled"] > unchanged["unpooled"] + 0.1, (rep, unchanged)
        assert change["pooled"] < change["unpooled"], (rep, change)
    for direction in pooling_shift.DIRECTIONS:
        d = data["by_direction"][direction]
        assert d["features_pooled"] > d["features_unpooled"]


def test_pooling_shift_with_trained_filters(tmp_path, model_file):
    numbers = pooling_shift.run(tmp_path, quick=True, progress=False, model=str(model_file))
    assert model_file.name in numbers["features_from"]
    assert numbers["unchanged_pooled_features"] > numbers["unchanged_unpooled_features"]
    assert numbers["relative_change_pooled_features"] < numbers["relative_change_unpooled_features"]


def test_shifted_moves_pixels():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    right = pooling_shift.shifted(x, 1, "right")
    down = pooling_shift.shifted(x, 1, "down")
    np.testing.assert_array_equal(right[0, 0, :, 1:], x[0, 0, :, :-1])
    np.testing.assert_array_equal(right[0, 0, :, 0], 0)
    np.testing.assert_array_equal(down[0, 0, 1:], x[0, 0, :-1])
    np.testing.assert_array_equal(down[0, 0, 0], 0)


def test_convolution_dominates_deep_convnet(tmp_path):
    numbers = layer_cost.run(tmp_path, quick=True, progress=False)
    data = check_outputs(
        tmp_path, layer_cost, numbers, {"ms", "conv_share", "layers_ms", "step_ms", "update_ms"}
    )
    for net in ("SimpleConvNet", "DeepConvNet"):
        totals = data["ms"][net]["total"]
        assert set(totals) == set(layer_cost.TYPES)
        layers = data["layers_ms"][net]
        assert all(f > 0 and b >= 0 for _, f, b in layers)
        assert sum(totals.values()) == pytest.approx(sum(f + b for _, f, b in layers))
    deep = data["ms"]["DeepConvNet"]["total"]
    assert max(deep, key=deep.get) == "Convolution", deep
    assert data["conv_share_deep"] > 0.5


def test_receptive_fields_and_parameter_counts(tmp_path):
    numbers = receptive_field.run(tmp_path, quick=True, progress=False)
    data = check_outputs(tmp_path, receptive_field, numbers, {"weights_5x5", "W_shapes"})
    C = data["channels"]
    assert (data["params_5x5"], data["params_two_3x3"]) == (25, 18)
    assert (data["weights_5x5"], data["weights_two_3x3"]) == (25 * C * C, 18 * C * C)
    assert data["output_shape_5x5"] == data["output_shape_two_3x3"] == [1, C, 24, 24]
    for key in ("receptive_field", "projective_field"):
        assert data[f"{key}_5x5"] == data[f"{key}_two_3x3"] == [5, 5]


def test_receptive_field_options(tmp_path):
    numbers = receptive_field.run(tmp_path, quick=True, progress=False, channels="2", size="9")
    assert numbers["output_shape_5x5"] == numbers["output_shape_two_3x3"] == [1, 2, 5, 5]
    assert numbers["weights_two_3x3"] == 18 * 4
    assert numbers["W_shapes"]["two_3x3"] == [[2, 2, 3, 3], [2, 2, 3, 3]]


def test_augmentation_grid_and_seeding(tmp_path):
    numbers = augmentation.run(tmp_path, quick=True, progress=False)
    data = check_outputs(
        tmp_path, augmentation, numbers, {"settings", "output_shape", "labels", "indices"}
    )
    rows, variants = data["rows"], data["variants"]
    assert data["output_shape"] == [rows * variants, 1, 28, 28]
    assert data["labels"] == list(range(rows))
    assert data["labels_unchanged"] and data["range_kept"]
    assert 0 <= data["pixel_min"] and data["pixel_max"] <= 1
    assert data["changed_images"] == rows * variants
    assert 0.02 < data["mean_abs_change"] < 0.3
    assert abs(data["ink_ratio"] - 1) < 0.1
    # seeded: the same seed gives the same numbers, another seed other variants
    again = augmentation.run(tmp_path / "again", quick=True, progress=False)
    other = augmentation.run(tmp_path / "other", seed=1, quick=True, progress=False)
    assert again == numbers
    read = [(d / "augmentation.json").read_text() for d in (tmp_path, tmp_path / "again")]
    assert read[0] == read[1]
    assert other["mean_abs_change"] != numbers["mean_abs_change"]


def test_augmentation_without_change_is_identity(tmp_path):
    numbers = augmentation.run(
        tmp_path,
        quick=True,
        progress=False,
        max_shift="0",
        max_rotation="0",
        scale_min="1",
        scale_max="1",
    )
    assert numbers["mean_abs_change"] == 0 and numbers["changed_images"] == 0


def test_misclassified_lists_every_mistake(tmp_path, model_file):
    numbers = misclassified.run(tmp_path, quick=True, progress=False, model=str(model_file))
    data = check_outputs(
        tmp_path, misclassified, numbers, {"model", "misclassified", "most_confused", "shown"}
    )
    assert data["model"] == {"source": "file", "file": str(model_file), "class": "SimpleConvNet"}
    _, (x_test, t_test) = mnist_slice()
    y = load(model_file).predict(x_test).argmax(axis=1)
    wrong = np.flatnonzero(y != t_test)
    assert data["test_images"] == len(t_test)
    assert data["accuracy"] == pytest.approx(np.mean(y == t_test))
    assert data["n_misclassified"] == len(wrong) > 0
    assert data["misclassified"] == [[int(i), int(t_test[i]), int(y[i])] for i in wrong]
    assert data["shown"] == min(40, len(wrong))
    assert sum(c for _, _, c in data["most_confused"]) <= len(wrong)
    assert all(t != p for t, p, _ in data["most_confused"])


def test_misclassified_options(tmp_path, model_file):
    numbers = misclassified.run(
        tmp_path, quick=True, progress=False, model=str(model_file), images="200", max_images="5"
    )
    assert numbers["test_images"] == 200 and numbers["shown"] == min(5, numbers["n_misclassified"])
    assert all(i < 200 for i, _, _ in numbers["misclassified"])


def test_half_float_keeps_accuracy(tmp_path):
    numbers = half_float.run(tmp_path, quick=True, progress=False)
    data = check_outputs(
        tmp_path,
        half_float,
        numbers,
        {"model", "accuracy", "agreement", "max_abs_score_diff", "dtypes_kept", "layer_dtypes"},
    )
    assert data["model"]["source"] == "trained here"
    # every layer ran in the dtype asked for: float16 is really float16 throughout
    assert data["dtypes_kept"] == {"float64": True, "float32": True, "float16": True}
    assert data["layer_dtypes"]["float16"] == ["float16"]
    acc = data["accuracy"]
    assert abs(acc["float16"] - acc["float32"]) <= 0.01
    assert acc["float32"] > 0.8
    assert data["agreement"]["float32_vs_float64"] >= 0.99
    assert data["agreement"]["float16_vs_float32"] >= 0.97
    # float16 scores are visibly rounded; float32 ones hardly
    diff = data["max_abs_score_diff"]
    assert diff["float32_vs_float64"] < 1e-3 < diff["float16_vs_float64"]


def test_half_float_reads_a_model_file(tmp_path, model_file):
    numbers = half_float.run(
        tmp_path, quick=True, progress=False, model=str(model_file), images="100"
    )
    assert numbers["model"] == {"source": "file", "file": str(model_file), "class": "SimpleConvNet"}
    assert numbers["test_images"] == 100
    assert all(numbers["dtypes_kept"].values())
