"""``scratchdl search`` on Dask distributed: the space and its sampling, a trial as a plain
function, the journal that makes a search resumable, and whole searches on an embedded
LocalCluster and on a cluster of `dask scheduler` + `dask worker` subprocesses (127.0.0.1),
one of whose workers is killed mid-trial. Tiny networks, the package's MNIST sample."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from scratchdl import cli
from scratchdl.cli.search import plan
from scratchdl.search.journal import Journal, read_journal
from scratchdl.search.space import BOOK_SPACE, parse_space, sample, sample_trials
from scratchdl.search.trial import RECORD_KEYS, run_trial
from tests.conftest import SEARCH_TINY as TINY

DASK = Path(sys.executable).with_name("dask")  # the `dask` command of this environment


def search(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["search", *args])
    out, err = capsys.readouterr()
    return code, out, err


def journal_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]


def single_blas_thread():
    """One BLAS thread here, as on the workers: a trial run here is then bit for bit the
    trial a worker ran."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


# -- the space --------------------------------------------------------------------------------


def test_the_default_space_is_the_books():
    lr, wd = parse_space()
    assert (lr.name, lr.low, lr.high, lr.scale) == ("lr", 1e-6, 1e-2, "log")
    assert (wd.name, wd.low, wd.high, wd.scale) == ("weight_decay", 1e-8, 1e-4, "log")
    assert [r.text() for r in parse_space(BOOK_SPACE)] == [r.text() for r in (lr, wd)]
    lr2, wd2 = parse_space(["lr=0.001:0.1:linear"])
    assert (lr2.low, lr2.high, lr2.scale) == (1e-3, 0.1, "linear") and wd2 == wd


@pytest.mark.parametrize(
    "entry,needle",
    [
        ("lr=1e-3:1e-3", "the range is empty"),
        ("lr=1e-2:1e-6", "the range is inverted (LOW 0.01 > HIGH 1e-06); give LOW first"),
        ("momentum=0.1:0.9", "unknown hyperparameter 'momentum'; choices: lr, weight_decay"),
        ("lr=0:1e-2:linear", "a learning rate needs LOW > 0"),
        ("weight_decay=0:1e-4:log", "a log scale needs LOW > 0"),
        ("lr=1e-6:1e-2:cubic", "the scale must be one of log, linear"),
        ("lr=1e-6", "--space takes NAME=LOW:HIGH[:log|linear]"),
        ("lr=a:b", "LOW and HIGH must be numbers"),
        ("lr=1e-6:inf", "must be finite"),
    ],
)
def test_a_bad_range_is_refused_naming_it(entry, needle):
    with pytest.raises(ValueError, match=None) as e:
        parse_space([entry])
    assert needle in str(e.value)


def test_trials_are_drawn_from_the_seed_alone():
    space = parse_space()
    ten = sample_trials(space, 7, 10)
    assert ten == sample_trials(space, 7, 10)  # the same seed, the same trials
    assert sample_trials(space, 7, 4) == ten[:4]  # a longer search keeps the first trials
    assert sample(space, 7, 9) == ten[9]  # each trial on its own, in any order
    assert sample_trials(space, 8, 10) != ten
    lr = np.log10([t["lr"] for t in sample_trials(space, 0, 400)])
    assert -6 <= lr.min() < -5.9 and -2.1 < lr.max() <= -2  # log-uniform over the range
    assert abs(np.mean(lr) + 4) < 0.2


# -- one trial ------------------------------------------------------------------------------


def tiny_recipe(*extra: str):
    args = cli.make_parser().parse_args(["search", *TINY, *extra])
    return plan(args)[0]


def test_a_trial_is_a_function_of_its_settings_and_a_diverged_one_is_recorded():
    recipe = tiny_recipe()
    params = {"lr": 0.05, "weight_decay": 1e-6}
    with single_blas_thread():
        one, two = run_trial(recipe, 3, 1, params), run_trial(recipe, 3, 1, params)
    for record in (one, two):
        record.pop("seconds")
    assert one == two and not one["diverged"] and len(one["val_acc_curve"]) == 2
    assert one["worker"].startswith("local:")
    with np.errstate(all="ignore"):
        wild = run_trial(recipe, 3, 1, {"lr": 1e4, "weight_decay": 1e-6})
    assert wild["diverged"] and wild["val_acc"] is None and wild["train_acc"] is None


# -- the journal ------------------------------------------------------------------------------


def record(index: int, val_acc: float) -> dict:
    """A record as ``run_trial`` returns it (the journal checks every value it reads)."""
    return dict.fromkeys(RECORD_KEYS) | {
        "trial": index,
        "params": {"lr": 0.01},
        "val_acc": val_acc,
        "train_acc": val_acc,
        "diverged": False,
        "seconds": 1.0,
        "worker": "local:test",
        "val_acc_curve": [val_acc],
        "train_acc_curve": [val_acc],
    }


def test_the_journal_keeps_whole_lines_and_refuses_other_settings(tmp_path):
    journal = Journal.open(tmp_path, {"--seed": 0})
    journal.append(record(0, 0.5))
    journal.append(record(1, 0.6))
    with open(tmp_path / "trials.jsonl", "a") as f:
        f.write('{"trial": 2, "val_')  # killed while writing
    torn = (tmp_path / "trials.jsonl").read_bytes()
    reopened = Journal.open(tmp_path, {"--seed": 0})
    assert set(reopened.finished) == {0, 1} and reopened.torn == b'{"trial": 2, "val_'
    assert (tmp_path / "trials.jsonl").read_bytes() == torn  # reading changes nothing
    reopened.append(record(2, 0.7))  # the torn line is cut off first
    assert [r["trial"] for r in journal_lines(tmp_path)] == [0, 1, 2]
    with pytest.raises(ValueError, match="other settings .--seed 0 there, 1 here"):
        Journal.open(tmp_path, {"--seed": 1})
    whole = json.dumps(record(0, 0.5))
    for bad in ("not json", '{"trial": 1}', whole.replace('"trial": 0', '"trial": -1')):
        (tmp_path / "trials.jsonl").write_text(f"{whole}\n{bad}\n")
        with pytest.raises(ValueError, match="line 2 is not the record of a trial"):
            read_journal(tmp_path / "trials.jsonl")
    (tmp_path / "trials.jsonl").unlink()
    assert Journal.open(tmp_path, {"--seed": 1}).finished == {}  # nothing to keep: new settings


# -- whole searches ---------------------------------------------------------------------------


def test_an_embedded_search_writes_its_files_and_reproduces_its_trials(capsys, tmp_path):
    out = tmp_path / "search"
    code, stdout, _ = search(capsys, *TINY, "--trials", "5", "--workers", "2", "--out", str(out))
    assert code == 0, stdout
    records = {r["trial"]: r for r in journal_lines(out)}
    assert sorted(records) == list(range(5))  # every trial, once
    assert [records[i]["params"] for i in range(5)] == sample_trials(parse_space(), 0, 5)
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in records.values())
    assert all(r["seconds"] > 0 and len(r["val_acc_curve"]) == 2 for r in records.values())
    with single_blas_thread():  # the worker's result is the trial's, wherever it runs
        here = run_trial(tiny_recipe(), 0, 3, records[3]["params"])
    assert here["val_acc_curve"] == records[3]["val_acc_curve"]
    best = json.loads((out / "best.json").read_text())
    accs = [r["val_acc"] for r in records.values()]
    assert best["best"]["val_acc"] == max(accs) and best["finished"] == 5
    assert (out / "search.png").stat().st_size > 20_000
    assert "rank  val acc" in stdout and "wrote" in stdout
    # the same command again: nothing to run, no cluster started
    code, stdout, _ = search(capsys, *TINY, "--trials", "5", "--out", str(out))
    assert code == 0 and "all 5 trials already finished" in stdout
    # a journal whose trials this search would not draw is another search's
    lines = (out / "trials.jsonl").read_text().replace('"lr":0.', '"lr":1.', 1)
    (out / "trials.jsonl").write_text(lines)
    code, _, err = search(capsys, *TINY, "--trials", "5", "--out", str(out))
    assert code == 2 and "the journal is another search's" in err


def test_ctrl_c_stops_the_search_and_keeps_the_finished_trials(tmp_path):
    out = tmp_path / "search"
    slow = ["--epochs", "6", "--set", "train_size=500", "--set", "hidden_size=100"]
    command = [sys.executable, "-m", "scratchdl.cli", "search", *TINY, *slow]
    command += ["--trials", "40", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "trials.jsonl").exists() or not (out / "trials.jsonl").read_text():
            assert proc.poll() is None, "the search ended before its first trial"
            assert time.monotonic() < deadline, "no trial finished in 60 s"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to every process
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err  # the workers ignore it; the command stops them
    kept = journal_lines(out)
    assert 1 <= len(kept) < 40 and f"{len(kept)} finished trials are kept" in err
    assert len({r["trial"] for r in kept}) == len(kept)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A cluster as a user starts one: `dask scheduler` and `dask worker` (two worker
    processes of one thread, each under a nanny), on 127.0.0.1, without dashboards."""
    folder = tmp_path_factory.mktemp("cluster")
    scheduler_file = folder / "scheduler.json"
    common = ["--no-dashboard", "--scheduler-file", str(scheduler_file)]
    logs = [open(folder / name, "w") for name in ("scheduler.log", "worker.log")]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", *common],
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own: nothing of it outlives the tests
        )
    ]
    try:
        deadline = time.monotonic() + 30
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, (folder / "scheduler.log").read_text()
            time.sleep(0.1)
        worker = [str(DASK), "worker", "--nworkers", "2", "--nthreads", "1", *common]
        worker += ["--host", "127.0.0.1"]
        procs.append(
            subprocess.Popen(
                worker, stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True
            )
        )
        address = json.loads(scheduler_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            yield address, client
    finally:
        for proc in procs[::-1]:
            proc.terminate()
        for proc in procs[::-1]:
            try:
                proc.wait(timeout=3)  # a clean stop, else the whole group at once
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):  # the worker processes of a nanny
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for log in logs:
            log.close()


def test_a_search_on_a_running_cluster_and_its_resume(capsys, tmp_path, cluster):
    address, _ = cluster
    out = tmp_path / "search"
    on_it = [*TINY, "--scheduler", address, "--out", str(out)]
    code, stdout, err = search(capsys, *on_it, "--trials", "3")
    assert code == 0, err
    assert f"on {address}" in stdout
    first = (out / "trials.jsonl").read_text()
    assert sorted(r["trial"] for r in journal_lines(out)) == [0, 1, 2]
    # a search grown to 6 trials runs only the 3 it lacks, and keeps the journal as it was
    code, stdout, err = search(capsys, *on_it, "--trials", "6")
    assert code == 0, err
    assert "3 of 6 trials" in stdout and "3 already in" in stdout
    assert (out / "trials.jsonl").read_text().startswith(first)
    assert sorted(r["trial"] for r in journal_lines(out)) == list(range(6))
    # other settings into the same folder: refused, naming them
    code, _, err = search(capsys, *on_it, "--trials", "6", "--seed", "1")
    assert code == 2 and "--seed 0 there, 1 here" in err and len(err.splitlines()) == 1


def test_a_worker_killed_mid_trial_costs_only_that_trial(capsys, tmp_path, cluster):
    address, client = cluster
    out = tmp_path / "search"
    slow = ["--epochs", "8", "--set", "train_size=500", "--set", "hidden_size=100"]
    args = [*TINY, *slow, "--trials", "6", "--scheduler", address, "--out", str(out)]
    result = {}
    runner = threading.Thread(target=lambda: result.update(code=cli.main(["search", *args])))
    runner.start()
    try:
        pids = client.run(os.getpid)
        seen: set[str] = set()
        victim = key = None
        deadline = time.monotonic() + 30
        while victim is None:  # a worker that has just started a trial: it is mid-trial
            assert runner.is_alive() and time.monotonic() < deadline
            running = client.run(lambda dask_worker: [t.key for t in dask_worker.state.executing])
            for worker, keys in running.items():
                fresh = [k for k in keys if k not in seen]
                if fresh and seen and worker in pids:
                    victim, key = worker, fresh[0]
                seen.update(keys)
            time.sleep(0.02)
        os.kill(pids[victim], signal.SIGKILL)
    finally:
        runner.join(timeout=60)
    assert not runner.is_alive() and result["code"] == 0, capsys.readouterr().err
    records = journal_lines(out)
    assert sorted(r["trial"] for r in records) == list(range(6))  # each once
    index = int(key.split("-")[2])  # scratchdl-trial-INDEX-DIGEST
    rerun = next(r for r in records if r["trial"] == index)
    assert rerun["worker"] != victim  # run again, elsewhere
    client.wait_for_workers(2, timeout=30)  # the nanny has started a new worker


# -- bad input: exit 2 and one line ---------------------------------------------------------


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--model", "vgg"], "invalid choice: 'vgg'"),
        (["--space", "lr=1e-3:1e-3"], "the range is empty"),
        (["--space", "weight_decay=1e-4:1e-8"], "the range is inverted"),
        (["--trials", "0"], "--trials: must be > 0, got 0"),
        (["--validation", "1"], "--validation: must be a fraction in (0, 1)"),
        (["--set", "batch_size=0"], "--set batch_size must be an integer >= 1, got 0"),
        (["--set", "train_size=2001"], "train_size must be from 2 to 2000"),
        (["--seed", "-1"], "--seed must be a whole number >= 0"),
        (["--scheduler", "tcp://127.0.0.1:1", "--timeout", "1"], "cannot reach a Dask scheduler"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, args, needle):
    code, _, err = search(capsys, "--quick", "--quiet", "--out", str(tmp_path / "s"), *args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s" / "trials.jsonl").exists()


def test_an_out_that_cannot_be_written_exits_2_with_one_line(capsys, tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("")
    code, _, err = search(capsys, "--quick", "--out", str(taken))
    assert code == 2 and "--out: cannot write into" in err and len(err.splitlines()) == 1
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o500)
        code, _, err = search(capsys, "--quick", "--out", str(locked / "s"))
        assert code == 2 and "--out: cannot write into" in err and len(err.splitlines()) == 1
