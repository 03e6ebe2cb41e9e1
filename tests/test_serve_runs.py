"""``scratchdl serve``'s runs view (GET /api/runs, /api/runs/{name}): runs finished, training
and stopped, and folders that hold anything, links and damaged files included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from scratchdl.datasets import load_mnist_sample
from scratchdl.serve import runs as runs_module

from .serve_helpers import assert_error, make_client, write_history


@pytest.fixture(scope="module")
def sample():
    _, (x, t) = load_mnist_sample(flatten=False)
    return x, t


def listing(client) -> dict:
    r = client.get("/api/runs")
    assert r.status_code == 200, r.text
    return {run["name"]: run for run in r.json()["runs"]}


def train_briefly(folder, sample, epochs: int = 1):
    """A TwoLayerNet trained for ``epochs`` on 200 images, checkpointing into ``folder``."""
    from scratchdl import Trainer, TwoLayerNet

    x, t = sample
    folder.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(
        TwoLayerNet(784, 10, 10, rng=0),
        x[:200].reshape(200, -1),
        t[:200],
        x[:50].reshape(50, -1),
        t[:50],
        epochs=epochs,
        mini_batch_size=50,
        verbose=False,
        checkpoint_path=folder / "checkpoint.safetensors",
        rng=0,
    )
    trainer.train()
    return trainer


def test_runs_finished_half_written_and_still_training(tmp_path, sample):
    root = tmp_path / "runs"
    write_history(root / "done", loss=[2.0, 1.0, 0.5], final_test_acc=0.6)
    (root / "partial").mkdir()
    (root / "partial" / "history.json").write_text('{"loss": [2.0, 1.')  # caught while written
    (root / "not-a-run").mkdir()
    train_briefly(root / "training", sample)
    with make_client(root) as client:
        runs = listing(client)
        assert set(runs) == {"done", "partial", "training"}
        assert runs["done"]["state"] == "finished" and runs["done"]["test_acc"] == 0.6
        assert runs["partial"]["state"] == "unreadable"
        assert runs["training"]["state"] == "training"
        # a checkpoint and no history.json: the run is training (or was stopped)
        assert runs["training"]["epochs"] == 1 and runs["training"]["epochs_done"] == 1
        run = client.get("/api/runs/training").json()
        assert run["iterations"] == 4 and len(run["loss"]) == 4
        assert client.get("/api/runs/done").json()["loss"] == [2.0, 1.0, 0.5]
        for name in ("nope", "..", ".hidden", "not-a-run", "%2e%2e"):
            assert_error(client.get(f"/api/runs/{name}"), 404)


def test_long_loss_curves_are_cut_down():
    loss = list(np.linspace(3, 0.1, 10_000))
    curves = runs_module.curves({"loss": loss, "train_acc": [], "test_acc": []})
    assert len(curves["loss"]) == runs_module.MAX_POINTS
    assert curves["loss_iterations"][-1] == 10_000


# -- links and odd files --------------------------------------------------------------------


def test_links_out_of_the_runs_folder_are_neither_listed_nor_served(tmp_path):
    root = tmp_path / "runs"
    write_history(root / "real", test_acc=[0.7], final_test_acc=0.7)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)  # stays inside: fine
    outside = write_history(tmp_path / "elsewhere", final_test_acc=0.6)
    (root / "linked").symlink_to(outside, target_is_directory=True)  # a run folder outside
    (root / "leak").mkdir()  # a history.json that is a link to a file outside
    (root / "leak" / "history.json").symlink_to(outside / "history.json")
    (root / "passwd").mkdir()
    (root / "passwd" / "history.json").symlink_to("/etc/passwd")
    (root / "loop").mkdir()
    (root / "loop" / "history.json").symlink_to(root / "loop" / "history.json")
    (root / "fifo").mkdir()
    os.mkfifo(root / "fifo" / "history.json")  # reading it would block a worker forever
    with make_client(root) as client:
        runs = listing(client)
        assert set(runs) == {"real", "alias"}
        assert runs["alias"]["test_acc"] == 0.7
        for name in ("linked", "leak", "passwd", "loop", "fifo"):
            assert_error(client.get(f"/api/runs/{name}"), 404)
        assert client.get("/api/runs/alias").json()["final_test_acc"] == 0.7


# -- damaged histories, races, large files --------------------------------------------------

BAD_HISTORIES = {
    "list": b"[]",
    "nested": b"[" * 50_000 + b"]" * 50_000,
    "huge-int": b'{"loss": [1' + b"0" * 400 + b'], "train_acc": [], "test_acc": []}',
    "many-digits": b'{"loss": [' + b"9" * 5000 + b'], "train_acc": [], "test_acc": []}',
    "garbage": bytes(range(256)) * 4,
    "string": b'"a history"',
    "loss-null": b'{"loss": null}',
}


def test_a_bad_history_marks_its_run_unreadable_and_the_others_are_listed(tmp_path):
    root = tmp_path / "runs"
    write_history(root / "good", final_test_acc=0.6)
    for name, content in BAD_HISTORIES.items():
        (root / name).mkdir()
        (root / name / "history.json").write_bytes(content)
    with make_client(root) as client:
        runs = listing(client)
        assert set(runs) == {"good", *BAD_HISTORIES}
        assert runs["good"]["state"] == "finished"
        for name in BAD_HISTORIES:
            assert runs[name]["state"] == "unreadable", name
            run = client.get(f"/api/runs/{name}")
            assert run.status_code == 200 and run.json()["state"] == "unreadable"
            assert run.json()["reason"], name


def test_runs_deleted_while_they_are_read_are_left_out(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    write_history(root / "stays", final_test_acc=0.6)
    write_history(root / "goes", final_test_acc=0.6)
    read = runs_module.read_regular

    def deleted_first(path, limit):  # the folder goes between the listing and the read
        if path.parent.name == "goes":
            shutil.rmtree(path.parent)
        return read(path, limit)

    monkeypatch.setattr(runs_module, "read_regular", deleted_first)
    with make_client(root) as client:
        assert set(listing(client)) == {"stays"}
        write_history(root / "goes", final_test_acc=0.6)
        assert_error(client.get("/api/runs/goes"), 404)


def test_polling_while_runs_come_and_go_never_fails(tmp_path):
    root = tmp_path / "runs"
    write_history(root / "steady", final_test_acc=0.6)
    stop = threading.Event()

    def churn():  # runs created and deleted as fast as the file system allows
        k = 0
        while not stop.is_set():
            folder = write_history(root / f"run-{k % 20}", final_test_acc=0.5)
            (folder / "checkpoint.safetensors").write_bytes(b"\0" * 16)
            shutil.rmtree(folder, ignore_errors=True)
            k += 1

    thread = threading.Thread(target=churn)
    statuses = []
    with make_client(root) as client:
        thread.start()
        try:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                statuses.append(client.get("/api/runs").status_code)
                statuses.append(client.get("/api/runs/run-3").status_code)
        finally:
            stop.set()
            thread.join()
    assert set(statuses) <= {200, 404}, sorted(set(statuses))


def test_histories_are_parsed_off_the_event_loop_once_per_state(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    write_history(root / "big", final_test_acc=0.6)
    parse = runs_module.from_history
    entered, release, calls = threading.Event(), threading.Event(), []

    def slow(path):  # a history of many megabytes, parsed for as long as the test says
        calls.append(path)
        entered.set()
        release.wait(10)
        return parse(path)

    monkeypatch.setattr(runs_module, "from_history", slow)
    with make_client(root) as client:
        listed = []
        poll = threading.Thread(target=lambda: listed.append(client.get("/api/runs")))
        poll.start()
        try:
            assert entered.wait(10)
            start = time.monotonic()
            health = client.get("/api/health")
            took = time.monotonic() - start
        finally:
            release.set()
            poll.join()
        assert health.status_code == 200 and took < 5, took
        assert listed[0].status_code == 200
        # read once per state of the file: a poll of an unchanged run parses nothing
        client.get("/api/runs")
        client.get("/api/runs/big")
        assert len(calls) == 1
        write_history(root / "big", test_acc=[0.7], final_test_acc=0.7)
        assert listing(client)["big"]["test_acc"] == 0.7 and len(calls) == 2


# -- stopped runs -----------------------------------------------------------------------------


def test_a_run_stopped_by_ctrl_c_shows_as_stopped_and_resumed_as_training(
    tmp_path, monkeypatch, capsys
):
    from scratchdl import cli
    from scratchdl.trainer import Trainer

    from .conftest import mnist_slice

    monkeypatch.setattr(cli, "load_dataset", lambda name, data_dir=None: mnist_slice())
    save = Trainer.save_checkpoint

    def interrupted(self, path):  # Ctrl-C as the first epoch's checkpoint is written
        save(self, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", interrupted)
    out = tmp_path / "runs" / "stopped-run"
    argv = ["train", "--model", "two-layer", "--epochs", "3", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 130
    capsys.readouterr()
    history = json.loads((out / "history.json").read_text())
    assert history["stopped"] is True and len(history["test_acc"]) == 1
    assert not (out / ".lock").exists()  # the folder was let go
    with make_client(tmp_path / "runs") as client:
        assert listing(client)["stopped-run"]["state"] == "stopped"
        assert client.get("/api/runs/stopped-run").json()["state"] == "stopped"
        # resumed: a live process holds the folder, then its next checkpoint is newer
        (out / ".lock").write_text(f"{os.getpid()}\n")
        assert listing(client)["stopped-run"]["state"] == "training"
        monkeypatch.setattr(Trainer, "save_checkpoint", save)
        (out / ".lock").unlink()
        assert cli.main([*argv, "--resume"]) == 0
        assert listing(client)["stopped-run"]["state"] == "finished"


def test_a_killed_run_shows_as_stopped_once_its_files_have_long_been_still(tmp_path, sample):
    root = tmp_path / "runs"
    folder = root / "killed"
    train_briefly(folder, sample)  # a checkpoint and no history.json: as if killed
    with make_client(root) as client:
        assert listing(client)["killed"]["state"] == "training"  # it may be training still
        hours_ago = time.time() - 2 * 3600
        os.utime(folder / "checkpoint.safetensors", (hours_ago, hours_ago))
        run = client.get("/api/runs/killed").json()
        assert run["state"] == "stopped" and "120 min" in run["reason"]
        assert listing(client)["killed"]["state"] == "stopped"
        # a live process holds the folder: a slow epoch, not a stopped run
        (folder / ".lock").write_text(f"{os.getpid()}\n")
        assert listing(client)["killed"]["state"] == "training"
        # the holder was killed and left its lock file: its process is gone
        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (folder / ".lock").write_text(gone)
        assert listing(client)["killed"]["state"] == "stopped"


# -- the runs' models in the model menu ------------------------------------------------------


def save_model(folder, hidden: int = 20):
    from scratchdl import TwoLayerNet
    from scratchdl.files import save

    folder.mkdir(parents=True, exist_ok=True)
    save(TwoLayerNet(784, hidden, 10, rng=0), folder / "model.safetensors")


def model_ids(client) -> list[str]:
    r = client.get("/api/models")
    assert r.status_code == 200, r.text
    return [m["id"] for m in r.json()["models"]]


def test_every_runs_model_is_offered_and_new_ones_without_a_restart(tmp_path, sample):
    from scratchdl.serve.inference import Models

    root = tmp_path / "runs"
    save_model(root / "First.Run")
    save_model(root / "first-run")  # the same id once made safe: a number is added
    (root / "broken").mkdir()
    (root / "broken" / "model.safetensors").write_bytes(b"not a model")
    save_model(tmp_path / "outside")
    (root / "linked").mkdir()
    (root / "linked" / "model.safetensors").symlink_to(tmp_path / "outside" / "model.safetensors")
    x, _ = sample
    pixels = {"pixels": x[0, 0].tolist()}
    with make_client(root, Models(runs=root)) as client:
        ids = model_ids(client)
        assert ids[0] == "simple-cnn" and set(ids[1:]) == {"run-first-run", "run-first-run-2"}
        titles = {m["id"]: m["title"] for m in client.get("/api/models").json()["models"]}
        assert "TwoLayerNet" in titles["run-first-run"] and str(tmp_path) not in str(titles)
        r = client.post("/api/predict?model=run-first-run-2", json=pixels)
        assert r.status_code == 200 and r.json()["model"] == "run-first-run-2"
        # a run that ends while the server runs: its model is there at the next look
        save_model(root / "late")
        assert "run-late" in model_ids(client)
        save_model(root / "later")  # asked for by id before the menu was looked at again
        assert client.post("/api/predict?model=run-later", json=pixels).status_code == 200
        shutil.rmtree(root / "late")
        assert "run-late" not in model_ids(client)
        assert_error(client.post("/api/predict?model=run-late", json=pixels), 404)
        # the ids stay with their runs while the files change
        save_model(root / "first-run", hidden=30)
        assert set(model_ids(client)) >= {"run-first-run", "run-first-run-2", "run-later"}
