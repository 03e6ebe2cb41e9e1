"""`scratchdl experiment`: the list, the contract of every experiment module, `all` + gallery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scratchdl import cli
from scratchdl.experiments import registry
from scratchdl.experiments.registry import EXPERIMENTS


def test_every_experiment_module_keeps_the_contract():
    for name in EXPERIMENTS:
        module = registry.load(name)
        assert module.NAME == name
        assert isinstance(module.CHAPTER, int) and 2 <= module.CHAPTER <= 8
        assert module.TITLE and "\n" not in module.TITLE
        assert len(module.EXPLANATION.split()) > 20, f"{name}: explain the experiment"
        assert module.KEY_NUMBERS and callable(module.run)


def test_every_experiment_has_a_quick_test():
    texts = "".join(p.read_text() for p in Path(__file__).parent.glob("test_experiments_*.py"))
    missing = [n for n in EXPERIMENTS if f'"{n}"' not in texts and n.replace("-", "_") not in texts]
    assert not missing, f"experiments without a test: {missing}"


def test_list_names_every_experiment(capsys):
    assert cli.main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    for name in (*EXPERIMENTS, "all"):
        assert f"\n{name} " in f"\n{out}"


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["experiment", "nope"], "nope"),
        (["experiment", "gates", "--set", "oops"], "KEY=VALUE"),
        (["experiment", "gates", "--set", "colour=red"], "colour"),
    ],
)
def test_bad_experiment_arguments_exit_2(capsys, tmp_path, argv, needle):
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_all_runs_each_experiment_and_writes_the_gallery(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "EXPERIMENTS", ("gates", "receptive-field"))
    assert cli.main(["experiment", "all", "--quick", "--quiet", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text()
    for name in ("gates", "receptive-field"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        assert json.loads((tmp_path / f"{name}.json").read_text())
        assert f'<img src="{name}.png"' in page and f'id="{name}"' in page
    assert "quick mode" in page
    assert "params_two_3x3" in page  # a key number of receptive-field shown on the page


def test_gallery_refuses_an_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no experiment results"):
        registry.write_index(tmp_path)
