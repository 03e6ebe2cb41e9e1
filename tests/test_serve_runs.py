"""``scratchdl serve``'s runs view (GET /api/runs, /api/runs/{name}): runs finished, training
and stopped, and folders that hold anything, links and damaged files included."""

from __future__ import annotations

import os

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
