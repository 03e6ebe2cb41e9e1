"""Every setting of every experiment declares its default, quick value, kind and range once
(``SETTINGS``, of ``common.Setting``), and ``run`` checks them before any work: a bad value
(of the wrong kind, out of range, NaN, infinite) is one ValueError naming the experiment,
the setting, the value and what it accepts, and the command exits 2 with that one line."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest

from scratchdl.experiments import common, registry
from scratchdl.experiments.registry import EXPERIMENTS
from tests.conftest import assert_one_line_error, run

# (experiment, setting) for every setting the experiments declare: a new one is tested too
CASES = [(name, key) for name in EXPERIMENTS for key in registry.load(name).SETTINGS]


class WorkStarted(Exception):
    """Raised when an experiment loads data or writes results: checking came too late."""


def no_work(*args, **kwargs):
    raise WorkStarted


def next_value(setting: common.Setting, end: float, direction: int):
    """The value of ``setting``'s kind next to ``end``, upwards (+1) or downwards (-1)."""
    if setting.kind is int:
        return end + direction
    return np.nextafter(end, direction * math.inf)


def bad_values(setting: common.Setting) -> list:
    """Values ``setting`` must refuse: of another kind, just and far outside its range, NaN
    and inf, as Python values and as the text ``--set`` gives."""
    if setting.kind is str:
        bad = [5, None, 1.5]
        if setting.choices:
            bad += ["", f"{setting.choices[0]}x", setting.choices[0].upper()]
        if setting.file:
            bad += ["/no/such/model.safetensors", "."]  # a folder is no file
        return bad
    bad = ["", "abc", None, True, [1], "nan", "inf", "-inf"]
    if setting.kind is int:
        bad += [2.5, "2.5", 3.0, "1e3"]  # an int is never rounded from a float
    else:
        bad += [math.nan, math.inf, -math.inf, np.float64("nan"), "1e999"]
    for end, is_open, outward in (
        (setting.low, setting.low_open, -1),
        (setting.high, setting.high_open, 1),
    ):
        if math.isfinite(end):
            just = end if is_open else next_value(setting, end, outward)
            bad += [just, str(just), end + 1000 * outward]
    return bad


def edge_values(setting: common.Setting) -> list:
    """Values ``setting`` must accept: the ends of its range, or just inside open ones."""
    if setting.kind is str:
        return list(setting.choices) or [""]
    edges = []
    for end, is_open, inward in (
        (setting.low, setting.low_open, 1),
        (setting.high, setting.high_open, -1),
    ):
        if math.isfinite(end):
            edges.append(next_value(setting, end, inward) if is_open else end)
    return edges


def shown(value) -> set[str]:
    """How an error message may quote ``value``: as given, or as the number its text reads."""
    ways = {str(value), repr(value)}
    if isinstance(value, str):
        for kind in (int, float):
            try:
                ways.add(repr(kind(value)))
            except ValueError:
                pass
    return ways


@pytest.mark.parametrize("name,key", CASES, ids=[f"{n}:{k}" for n, k in CASES])
def test_a_bad_value_is_refused_before_any_work(name, key, tmp_path, monkeypatch):
    module = registry.load(name)
    setting = module.SETTINGS[key]
    monkeypatch.setattr(common, "mnist", no_work)
    monkeypatch.setattr(common, "save_result", no_work)
    for value in bad_values(setting):
        with pytest.raises(ValueError) as info:
            module.run(tmp_path, quick=True, progress=False, **{key: value})
        message = str(info.value)
        assert "\n" not in message
        assert f"experiment {name}: setting {key} must be {setting.accepts()}" in message
        assert any(v in message for v in shown(value)), (value, message)
    assert not list(tmp_path.iterdir()), "nothing is written for a bad value"


@pytest.mark.parametrize("name,key", CASES, ids=[f"{n}:{k}" for n, k in CASES])
def test_a_setting_declares_its_kind_and_range(name, key):
    setting = registry.load(name).SETTINGS[key]
    assert isinstance(setting, common.Setting), f"{name}: {key} is no Setting"
    assert setting.kind in (int, float, str)
    if setting.kind is int:  # a count, a size, an index: never unbounded below
        assert math.isfinite(setting.low), f"{name}: {key} needs its lowest value"
    if setting.kind is str:
        assert setting.choices or setting.file, f"{name}: {key} needs its choices"
    settings = registry.load(name).SETTINGS
    for value in edge_values(setting):  # the range is no narrower than it says
        assert common.options({key: value}, settings, name)[key] == value
        assert common.options({key: str(value)}, settings, name)[key] == value


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_defaults_and_quick_values_pass_their_own_checks(name):
    settings = registry.load(name).SETTINGS
    assert settings, f"{name} declares no settings"
    for quick in (False, True):
        values = common.options({}, settings, name, quick=quick)
        assert values == {k: s.value(quick) for k, s in settings.items()}
        text = {k: str(v) for k, v in values.items()}  # as --set gives them
        assert common.options(text, settings, name, quick=quick) == values


def test_a_setting_cannot_be_declared_outside_its_own_range():
    with pytest.raises(ValueError, match="default must be an integer >= 1, got 0"):
        common.count(0)
    with pytest.raises(ValueError, match="quick must be a finite number > 0, got -1"):
        common.positive(0.1, quick=-1.0)
    with pytest.raises(TypeError, match="choices"):
        common.Setting("free text")
    with pytest.raises(TypeError, match="int, a float or a str"):
        common.Setting(True)


@pytest.mark.parametrize(
    "name,sets,needle",
    [
        ("batchnorm", {"min_scale_exp": "1"}, "min_scale_exp must be <= max_scale_exp"),
        ("hyperparameter-search", {"lr_min_exp": "-1"}, "lr_min_exp must be <= lr_max_exp"),
        ("hyperparameter-search", {"wd_max_exp": "-9"}, "wd_min_exp must be <= wd_max_exp"),
        ("augmentation", {"scale_min": "1.2"}, "scale_min must be <= scale_max"),
    ],
)
def test_the_two_ends_of_a_range_are_checked_before_any_work(name, sets, needle, monkeypatch):
    monkeypatch.setattr(common, "mnist", no_work)
    monkeypatch.setattr(common, "save_result", no_work)
    with pytest.raises(ValueError, match=needle):
        registry.load(name).run("unused", quick=True, progress=False, **sets)


@pytest.mark.parametrize(
    "name,sets,needle",
    [
        ("batchnorm", {"train_size": "2001"}, "train_size must be <= 2000 (the training images)"),
        ("overfit-dropout", {"train_size": "2001"}, "train_size must be <= 2000"),
        ("overfit-weight-decay", {"train_size": "2001"}, "train_size must be <= 2000"),
        ("gradient-check", {"samples": "2001"}, "samples must be <= 2000"),
        ("misclassified", {"images": "1001"}, "images must be <= 1000 (the test images)"),
        ("half-float", {"images": "1001"}, "images must be <= 1000"),
        ("pooling-shift", {"images": "1001"}, "images must be <= 1000"),
        ("pooling-shift", {"pool": "25"}, "pool must be <= 24 (the side of the feature maps)"),
        ("filters", {"example": "1000"}, "example must be <= 999"),
        ("layer-cost", {"batch_size": "2001"}, "batch_size must be <= 2000"),
        (
            "hyperparameter-search",
            {"train_size": "2", "validation_rate": "0.9"},
            "leaves none of the 2 images to train on",
        ),
    ],
)
def test_a_bound_set_by_the_data_is_checked_before_training(name, sets, needle, tmp_path):
    module = registry.load(name)
    # quick: the shipped sample of 2000 training and 1000 test images
    with pytest.raises(ValueError, match=re.escape(needle)):
        module.run(tmp_path, quick=True, progress=False, **sets)
    assert not list(tmp_path.iterdir())


# -- the command line: the commands of the report, one line and exit 2 ----------------------

QUOTED = [
    ("weight-init-histogram", "units=0", "an integer >= 1, got 0"),
    ("batchnorm", "batch_size=0", "an integer >= 1, got 0"),
    ("overfit-weight-decay", "batch_size=0", "an integer >= 1, got 0"),
    ("weight-init-compare", "iterations=0", "an integer >= 1, got 0"),
    ("optimizer-compare", "iterations=0", "an integer >= 1, got 0"),
    ("optimizer-compare", "hidden_layers=-1", "an integer >= 1, got -1"),
    ("overfit-dropout", "epochs=-1", "an integer >= 1, got -1"),
    ("hyperparameter-search", "train_size=-1", "an integer >= 2, got -1"),
    ("activations", "x_max=-1", "a finite number > 0, got -1.0"),
    ("gradient-descent", "lr=nan", "a finite number > 0, got nan"),
    ("optimizer-paths", "init_x=inf", "a finite number, got inf"),
    ("overfit-dropout", "dropout_ratio=1", "a finite number in [0, 1), got 1.0"),
    ("filters", "epochs=2.5", "an integer >= 1, got '2.5'"),
]


@pytest.mark.parametrize("name,pair,needle", QUOTED, ids=[f"{n} {p}" for n, p, _ in QUOTED])
def test_the_command_exits_2_with_one_line(capsys, tmp_path, name, pair, needle):
    key = pair.partition("=")[0]
    code, _, err = run(
        capsys, "experiment", name, "--set", pair, "--quick", "--quiet", "--out", str(tmp_path)
    )
    assert_one_line_error(code, err, f"experiment {name}: setting {key} must be {needle}")
    assert not list(tmp_path.iterdir())


def test_the_installed_command_exits_2_without_traceback(tmp_path):
    argv = ["experiment", "weight-init-histogram", "--set", "units=0", "--quick"]
    proc = subprocess.run(
        [sys.executable, "-m", "scratchdl.cli", *argv, "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "scratchdl: error: experiment weight-init-histogram: setting units must be "
        "an integer >= 1, got 0"
    )
    assert not (tmp_path / "x").exists()
