"""``scratchdl search``'s folder as a careless user or a full disk leaves it: a journal whose
final newline was removed, a hand-edited record, a search where every trial diverged, a
disk that fills up. Nothing is lost, nothing is ranked that a trial could not return, and
every refusal is one line with exit status 2. One real search (3 diverged trials on one
embedded worker) is run once; each test works on a copy of its folder."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import shutil
from pathlib import Path

import pytest

from scratchdl import cli
from scratchdl.search import report
from scratchdl.search.journal import Journal, read_journal
from tests.conftest import SEARCH_TINY as TINY

pytest.importorskip("distributed")

WILD = ["--space", "lr=1e10:1e11"]  # every trial diverges
THREE = [*TINY, *WILD, "--trials", "3"]


def search(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["search", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """The folder of a real 3-trial search in which every trial diverged, and its output."""
    out = tmp_path_factory.mktemp("diverged") / "search"
    code, stdout, err = search(*THREE, "--workers", "1", "--out", str(out))
    assert code == 0, err
    return out, stdout


@pytest.fixture
def folder(diverged, tmp_path):
    """A copy of the diverged search's folder, to change."""
    out = tmp_path / "search"
    shutil.copytree(diverged[0], out)
    return out


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# -- point 3: when every trial diverged there is no best ------------------------------------


def test_when_every_trial_diverged_best_is_null_and_the_table_says_so(diverged):
    out, stdout = diverged
    records = read_journal(out / "trials.jsonl")
    assert sorted(records) == [0, 1, 2] and all(r["diverged"] for r in records.values())
    best = json.loads((out / "best.json").read_text())
    assert best["best"] is None
    assert best["finished"] == 3 and best["diverged"] == 3 and len(best["top"]) == 3
    assert "no trial finished: all 3 diverged" in stdout


def test_the_best_is_the_best_trial_that_did_not_diverge():
    def rec(i, acc):
        return {
            "trial": i,
            "params": {"lr": 0.01},
            "val_acc": acc,
            "train_acc": acc,
            "diverged": acc is None,
            "seconds": 1.0,
            "worker": "local:test",
        }

    ranked = report.ranking([rec(0, None), rec(1, 0.4), rec(2, 0.7), rec(3, None)])
    assert [r["trial"] for r in ranked] == [2, 1, 0, 3]
    assert report.best(ranked)["trial"] == 2
    assert report.best(report.ranking([rec(0, None), rec(1, None)])) is None
    assert "no trial finished" not in report.table(ranked, 10)


# -- point 2: a last record without its newline is kept --------------------------------------


def test_a_last_record_without_its_newline_is_kept_whatever_the_command(folder):
    path = folder / "trials.jsonl"
    whole = path.read_bytes()
    assert whole.endswith(b"}\n")
    path.write_bytes(whole[:-1])  # only the final newline removed
    stripped = path.read_bytes()
    # other settings: refused before anything in the folder changes
    code, _, err = search(*THREE, "--seed", "1", "--out", str(folder))
    assert "--seed 0 there, 1 here" in one_line_error(code, err)
    assert path.read_bytes() == stripped
    # fewer trials: the third record is still there, and was read
    code, stdout, err = search(*TINY, *WILD, "--trials", "2", "--out", str(folder))
    assert code == 0, err
    assert "all 2 trials already finished" in stdout
    assert path.read_bytes() == stripped
    code, stdout, err = search(*THREE, "--out", str(folder))
    assert code == 0 and "all 3 trials already finished" in stdout, err
    assert sorted(read_journal(path)) == [0, 1, 2]


def test_the_next_append_puts_the_missing_newline_first(folder):
    path = folder / "trials.jsonl"
    settings = json.loads((folder / "search.json").read_text())["settings"]
    path.write_bytes(path.read_bytes()[:-1])
    journal = Journal.open(folder, settings)
    assert sorted(journal.finished) == [0, 1, 2] and journal.torn == b""
    extra = dict(journal.finished[2], trial=3)
    journal.append(extra)
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and path.read_text().endswith("}\n")
    assert [json.loads(line)["trial"] for line in lines] == [0, 1, 2, 3]


def test_a_torn_last_line_is_set_aside_only_once_the_settings_match(folder):
    path = folder / "trials.jsonl"
    torn = path.read_bytes() + b'{"trial": 3, "params": {"lr": 1'
    path.write_bytes(torn)
    code, _, err = search(*THREE, "--seed", "1", "--out", str(folder))
    one_line_error(code, err)
    assert path.read_bytes() == torn
    code, stdout, err = search(*THREE, "--out", str(folder))
    assert code == 0 and "all 3 trials already finished" in stdout
    assert "cut short" in err and "set aside" in err


# -- point 4: a hand-edited record is refused, naming its line -------------------------------


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("val_acc", '"abc"', 'val_acc must be null in a diverged trial, got "abc"'),
        ("diverged", '"yes"', 'diverged must be true or false, got "yes"'),
        ("seconds", "null", "seconds must be a number >= 0, got null"),
        ("val_acc", "NaN", "NaN is not a number JSON allows"),
        ("val_acc", "1e400", "val_acc must be null in a diverged trial, got Infinity"),
        ("trial", "true", "trial must be a whole number >= 0, got true"),
        ("worker", "7", "worker must be a string, got 7"),
        ("val_acc_curve", '"0.5"', "val_acc_curve must be a list of accuracies"),
        ("params", '{"lr": "fast"}', "params must map names to finite numbers"),
        ("params", '{"lr": ' + "9" * 400 + "}", "params must map names to finite numbers"),
        ("seconds", "9" * 400, "seconds must be a number >= 0, got 999"),
    ],
)
def test_a_hand_edited_value_is_refused_in_one_line(folder, key, value, needle):
    path = folder / "trials.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    text = json.dumps(dict(record, **{key: "@"})).replace('"@"', value)
    lines[1] = text
    path.write_text("\n".join(lines) + "\n")
    edited, best = path.read_bytes(), (folder / "best.json").read_bytes()
    code, _, err = search(*THREE, "--out", str(folder))
    err = one_line_error(code, err)
    assert needle in err and "line 2 is not the record of a trial" in err
    assert path.read_bytes() == edited and (folder / "best.json").read_bytes() == best


def test_a_finished_trial_edited_to_nan_is_not_ranked_first(folder):
    # a trial that did not diverge, whose accuracy was edited to NaN: once ranked first and
    # written to best.json as NaN (not JSON)
    path = folder / "trials.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record.update(diverged=False, val_acc=0.5, train_acc=0.5)
    lines[0] = json.dumps(record).replace('"val_acc": 0.5', '"val_acc": NaN')
    path.write_text("\n".join(lines) + "\n")
    code, _, err = search(*THREE, "--out", str(folder))
    assert "line 1 is not the record of a trial (NaN" in one_line_error(code, err)
    json.loads((folder / "best.json").read_text())  # still the strict JSON it was


def test_a_record_nested_too_deeply_is_refused_not_a_recursion_error(folder):
    path = folder / "trials.jsonl"
    path.write_text(path.read_text() + "[" * 50_000 + "]" * 50_000 + "\n")
    code, _, err = search(*THREE, "--out", str(folder))
    assert "line 4 is not the record of a trial (nested too deeply)" in one_line_error(code, err)


def test_a_resumed_trial_matches_its_drawn_values_up_to_the_last_bits(folder):
    # lr and log10 come from libm, which another machine may round otherwise in the last bit
    path = folder / "trials.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    lr = records[0]["params"]["lr"]
    records[0]["params"]["lr"] = math.nextafter(lr, math.inf)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, stdout, err = search(*THREE, "--out", str(folder))
    assert code == 0 and "all 3 trials already finished" in stdout, err
    records[0]["params"]["lr"] = lr * (1 + 1e-9)  # another value: another search's
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = search(*THREE, "--out", str(folder))
    assert "the journal is another search's" in one_line_error(code, err)


# -- point 8: a full disk names the file -----------------------------------------------------


def test_a_full_disk_names_the_journal(tmp_path):
    journal = Journal.open(tmp_path, {"--seed": 0})
    (tmp_path / "trials.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(OSError) as e:
        journal.append({"trial": 0, "params": {}})
    assert e.value.errno == errno.ENOSPC
    assert f"cannot write {tmp_path / 'trials.jsonl'}" in str(e.value)


@pytest.mark.parametrize("name", ["best.json", "search.png"])
def test_a_full_disk_names_best_json_and_the_figure(folder, monkeypatch, name):
    real = report.atomic_write

    def full(path, data):
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(report, "atomic_write", full)
    monkeypatch.setattr("scratchdl.support.figures.atomic_write", full)
    code, _, err = search(*THREE, "--out", str(folder))
    err = one_line_error(code, err)
    assert f"cannot write {folder / name}: No space left on device" in err
