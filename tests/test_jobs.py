"""The Train tab's jobs through the real app (serve.jobs, jobs_api, job_settings, presets):
every setting checked before anything starts, the queue's bound, only JSON from this origin,
a run folder like ``scratchdl train``'s, stop with a checkpoint and resume, a diverging run,
a killed worker, the server's own stop, and the live stream. The runs are tiny networks on
the shipped sample, each a second or two in its own process."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import signal
import time

import pytest

from scratchdl import cli
from scratchdl.files import load_model, load_tensors
from scratchdl.serve import job_settings, jobs_api
from scratchdl.serve.jobs import JobManager
from tests.serve_helpers import assert_error, make_client, real_server

TINY = {"model": "mlp", "hidden_layers": 1, "hidden_size": 10, "dataset": "mnist-sample"}
ONE_EPOCH = {**TINY, "epochs": 1}
LONG = {**TINY, "epochs": 300, "batch_size": 20}  # ~30 000 steps: stopped long before its end
WAIT_SECONDS = 60  # for a worker process to start, train and end on a busy 2-core machine
ENDED = ("stopped", "finished", "diverged", "failed")


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    manager = JobManager(tmp_path_factory.mktemp("runs"), max_jobs=2)
    yield manager
    manager.close()


@pytest.fixture(scope="module")
def client(jobs):
    with make_client(jobs.runs_dir, jobs=jobs) as c:
        yield c


def start(client, settings: dict, **body) -> dict:
    response = client.post("/api/jobs", json={"settings": settings, **body})
    assert response.status_code == 202, response.text
    (job,) = response.json()["jobs"]
    return job


def wait(client, job_id: str, until, what: str) -> dict:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} not {what}: {job['state']} {job}"
        time.sleep(0.1)


def ended(job: dict) -> bool:
    return job["state"] in ENDED


# -- checked before anything starts ---------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"epochs": 1000}, "epochs 1000 is beyond this server's limit MAX_EPOCHS = 300"),
        ({"hidden_size": 1000, "hidden_layers": 10}, "limit MAX_PARAMETERS = 2,000,000"),
        ({"hidden_layers": 11}, "limit MAX_HIDDEN_LAYERS = 10"),
        ({"batch_size": 1, "epochs": 100}, "limit MAX_ITERATIONS = 100,000"),
        ({"lr": -0.1}, "lr must be > 0, got -0.1"),
        ({"lr": "fast"}, "lr must be a finite number, got 'fast'"),
        ({"optimizer": "adamw"}, "optimizer must be one of"),
        ({"model": "deep-cnn"}, "model must be one of"),
        ({"model": "two-layer", "init": "he"}, "init 'he' is a setting of mlp"),
        ({"model": "simple-cnn", "batchnorm": True}, "batchnorm True is a setting of mlp"),
        ({"train_size": 5000}, "more than the 2,000 training images of mnist-sample"),
        ({"dropout": 1.5}, "limit MAX_DROPOUT = 0.9"),
        ({"seed": 1.5}, "seed must be a whole number, got 1.5"),
        ({"colour": "red"}, "unknown setting 'colour'"),
    ],
)
def test_a_bad_setting_gets_400_naming_it_and_starts_nothing(client, jobs, settings, message):
    before = sorted(jobs.runs_dir.iterdir())
    response = client.post("/api/jobs", json={"settings": {"dataset": "mnist-sample", **settings}})
    assert message in assert_error(response, 400)
    assert sorted(jobs.runs_dir.iterdir()) == before and not jobs.queue


def test_a_bad_preset_or_body_gets_400(client, jobs):
    before = len(jobs.jobs)
    bad = [
        ({"preset": "fig6-99"}, "unknown preset 'fig6-99'; the presets are fig6-9"),
        ({"preset": "fig6-9", "settings": {"epochs": 0}}, "run 'SGD' of fig6-9: epochs must be"),
        ({"settings": TINY, "when": "now"}, "unknown key 'when'"),
        ({"settings": TINY, "label": "<b>x</b>" * 10}, "label must be printable text"),
    ]
    for body, message in bad:
        assert message in assert_error(client.post("/api/jobs", json=body), 400)
    assert "not valid JSON" in assert_error(
        client.post("/api/jobs", content=b"{", headers={"content-type": "application/json"}), 400
    )
    assert len(jobs.jobs) == before


def test_a_data_set_missing_on_the_server_is_refused_not_downloaded():
    with pytest.raises(ValueError, match="not on this server .* `scratchdl data fetch fashion"):
        job_settings.check_settings({"dataset": "fashion-mnist"}, available=lambda name: False)


@pytest.mark.parametrize(
    "settings",
    [
        {"model": "two-layer"},
        {"model": "simple-cnn", "hidden_size": 30},
        {"hidden_layers": 3, "batchnorm": True, "dropout": 0.2, "weight_decay": 0.1},
    ],
)
def test_the_parameter_limit_counts_what_the_library_builds(settings):
    s = job_settings.check_settings({**settings, "dataset": "mnist-sample"})
    assert job_settings.parameter_count(s) == job_settings.build_network(s).n_params()
    # the worker, and a server that recovers the job, check them again: they must pass
    assert job_settings.check_settings(s) == s


def test_only_json_from_this_origin_may_start_or_stop_work(client, jobs):
    before = len(jobs.jobs)
    body = json.dumps({"settings": ONE_EPOCH})
    for headers in ({"content-type": "text/plain"}, {}, {"content-type": "multipart/form-data"}):
        assert "application/json" in assert_error(
            client.post("/api/jobs", content=body, headers=headers), 415
        )
    json_type = {"content-type": "application/json"}
    for other in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}):
        headers = {**json_type, **other}
        assert_error(client.post("/api/jobs", content=body, headers=headers), 403)
        assert_error(client.post("/api/jobs/x/stop", content=b"{}", headers=headers), 403)
        assert_error(client.post("/api/jobs/x/resume", content=b"{}", headers=headers), 403)
    assert len(jobs.jobs) == before
    own = {**json_type, "origin": "http://127.0.0.1:8000"}  # the page's own origin
    assert_error(client.post("/api/jobs/x/stop", content=b"{}", headers=own), 404)


def test_the_api_is_described(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/stop", "/api/jobs/stream"):
        assert path in paths
    assert "429" in paths["/api/jobs"]["post"]["responses"]
    presets = client.get("/api/presets").json()["presets"]
    assert [p["id"] for p in presets] == ["fig6-9", "fig6-14", "fig6-19", "fig6-20", "fig6-23"]
    assert [r["label"] for r in presets[0]["runs"]] == ["SGD", "Momentum", "AdaGrad", "Adam"]


# -- real runs --------------------------------------------------------------------------------


def test_a_job_trains_into_a_run_folder_like_scratchdl_train(client, jobs):
    job = start(client, {**ONE_EPOCH, "hidden_layers": 2}, label="tiny")
    assert job["state"] in ("queued", "running") and job["iterations"] == 20
    done = wait(client, job["id"], ended, "ended")
    assert done["state"] == "finished", done["message"]
    folder = jobs.runs_dir / job["id"]
    for name in ("history.json", "model.safetensors", "checkpoint.safetensors"):
        assert (folder / name).is_file()
    history = json.loads((folder / "history.json").read_text())
    assert len(history["loss"]) == 20 and len(history["test_acc"]) == 1
    assert done["final_test_acc"] == history["final_test_acc"]
    model, _ = load_model(folder / "model.safetensors")  # what evaluate, predict and Draw load
    assert model.n_params() == done["parameters"]
    assert done["curves"]["loss_iterations"] == list(range(1, 21))
    assert done["curves"]["test_acc"] == history["test_acc"]
    activations = done["histograms"]["activations"]
    assert [h["layer"] for h in activations] == [1, 2] and {h["kind"] for h in activations} == {
        "Relu"
    }
    assert all(len(h["counts"]) == 30 and 0 <= h["zero"] <= 1 for h in activations)
    assert [h["name"] for h in done["histograms"]["weights"]] == ["W1", "W2", "W3"]
    runs = client.get("/api/runs").json()["runs"]
    assert any(r["name"] == job["id"] and r["state"] == "finished" for r in runs)


def test_stop_keeps_a_checkpoint_and_resume_goes_on_from_it(client, jobs):
    job = start(client, LONG)
    running = wait(client, job["id"], lambda j: j["iteration"] > 0, "training")
    assert running["state"] == "running"
    response = client.post(f"/api/jobs/{job['id']}/stop", json={})
    assert response.status_code == 202 and response.json()["state"] in ("stopping", "stopped")
    stopped = wait(client, job["id"], ended, "stopped")
    assert stopped["state"] == "stopped" and stopped["checkpoint"]
    checkpoint = jobs.runs_dir / job["id"] / "checkpoint.safetensors"
    tensors, _ = load_tensors(checkpoint)
    assert len(tensors["history/loss"]) == stopped["iteration"] > 0  # every step taken
    history = json.loads((jobs.runs_dir / job["id"] / "history.json").read_text())
    assert history["stopped"] is True and len(history["loss"]) == stopped["iteration"]
    runs = {run["name"]: run for run in client.get("/api/runs").json()["runs"]}
    assert runs[job["id"]]["state"] == "stopped"  # on the Runs tab too, not "training"
    assert_error(client.post(f"/api/jobs/{job['id']}/stop", json={}), 409)

    response = client.post(f"/api/jobs/{job['id']}/resume", json={})
    assert response.status_code == 202, response.text
    resumed = wait(client, job["id"], lambda j: j["iteration"] > stopped["iteration"], "resumed")
    assert resumed["state"] == "running"
    assert resumed["curves"]["loss"][: stopped["iteration"]] == stopped["curves"]["loss"]
    client.post(f"/api/jobs/{job['id']}/stop", json={})
    assert wait(client, job["id"], ended, "stopped again")["state"] == "stopped"


def test_a_diverging_run_stops_with_the_message_and_no_server_path(client, jobs):
    # weight decay that outweighs the rate: each step multiplies the weights by 1 - 3 * 1
    wild = {**TINY, "epochs": 5, "optimizer": "sgd", "lr": 3.0, "weight_decay": 1.0}
    job = start(client, wild)
    done = wait(client, job["id"], ended, "ended")
    assert done["state"] == "diverged"
    assert "became inf" in done["message"] and "Try a smaller learning rate" in done["message"]
    # it names the checkpoint of epoch 1 as the client sees it, never by the server's path
    assert f"{jobs.runs_dir.name}/{job['id']}/checkpoint.safetensors" in done["message"]
    assert str(jobs.runs_dir) not in done["message"]
    assert done["checkpoint"] and done["epoch"] == 1
    # resumed from that checkpoint with a smaller rate, as scratchdl train --resume --lr
    assert_error(client.post(f"/api/jobs/{job['id']}/resume", json={"lr": -1}), 400)
    response = client.post(f"/api/jobs/{job['id']}/resume", json={"lr": 0.01})
    assert response.status_code == 202 and response.json()["settings"]["lr"] == 0.01
    again = wait(client, job["id"], ended, "ended again")
    assert again["state"] == "finished" and again["epoch"] == 5, again["message"]


def test_a_full_queue_gets_429_and_a_killed_worker_fails_its_job_only(tmp_path):
    manager = JobManager(tmp_path, max_jobs=1, queue_limit=1)
    try:
        with make_client(tmp_path, jobs=manager) as client:
            preset = {"preset": "fig6-9", "settings": {"dataset": "mnist-sample", "epochs": 1}}
            assert "queue is full" in assert_error(client.post("/api/jobs", json=preset), 429)
            assert not manager.jobs  # all or none
            long = start(client, LONG)
            waiting = start(client, ONE_EPOCH)
            assert_error(client.post("/api/jobs", json={"settings": ONE_EPOCH}), 429)
            assert client.get(f"/api/jobs/{waiting['id']}").json()["queue_position"] == 1

            wait(client, long["id"], lambda j: j["iteration"] > 0, "training")
            os.kill(manager.jobs[long["id"]].process.pid, signal.SIGKILL)
            failed = wait(client, long["id"], ended, "failed")
            assert failed["state"] == "failed"
            assert "the worker process died (killed by SIGKILL)" in failed["message"]
            assert client.get("/api/health").json()["status"] == "ok"
            assert wait(client, waiting["id"], ended, "done")["state"] == "finished"
    finally:
        manager.close()


def test_stopping_the_server_stops_the_jobs_with_checkpoints_and_a_new_one_lists_them(
    tmp_path,
):
    manager = JobManager(tmp_path, max_jobs=1)
    with make_client(tmp_path, jobs=manager) as client:
        job = start(client, LONG)
        wait(client, job["id"], lambda j: j["iteration"] > 0, "training")
    stopped = manager.close()
    assert [j.id for j in stopped] == [job["id"]] and stopped[0].state == "stopped"
    assert (tmp_path / job["id"] / "checkpoint.safetensors").is_file()

    again = JobManager(tmp_path)  # the next server: the job waits to be resumed
    recovered = again.get(job["id"])
    assert recovered.state == "stopped" and recovered.checkpoint
    assert len(recovered.loss) == len(stopped[0].loss) > 0
    assert recovered.settings == stopped[0].settings


# -- the live stream --------------------------------------------------------------------------


def test_the_stream_sends_a_snapshot_then_every_event(tmp_path):
    manager = JobManager(tmp_path)

    async def follow() -> list[str]:
        stream = jobs_api.stream_events(manager)
        chunks = [await anext(stream)]
        manager.emit({"type": "loss", "id": "x", "from": 0, "values": [2.3]})
        chunks.append(await anext(stream))
        manager.begin_close()  # as Ctrl-C does: the stream ends, uvicorn need not wait
        chunks += [chunk async for chunk in stream]
        return chunks

    chunks = asyncio.run(follow())
    assert chunks[0].startswith("retry: ")
    events = [
        json.loads(line[6:]) for c in chunks for line in c.split("\n") if line[:6] == "data: "
    ]
    assert [e["type"] for e in events] == ["snapshot", "loss", "closing"]
    assert events[1]["values"] == [2.3] and manager.streams == 0


def test_a_client_behind_the_backlog_gets_a_new_snapshot(tmp_path, monkeypatch):
    monkeypatch.setattr("scratchdl.serve.jobs.MAX_EVENTS", 3)
    manager = JobManager(tmp_path)
    _, seq = manager.snapshot()
    for k in range(5):
        manager.emit({"type": "loss", "id": "x", "from": k, "values": [1.0]})
    assert manager.events_since(seq) == (None, seq + 5)
    assert [e["from"] for e in manager.events_since(seq + 3)[0]] == [3, 4]


def test_the_stream_over_http_ends_when_the_server_stops(tmp_path):
    manager = JobManager(tmp_path)
    app = make_client(tmp_path, jobs=manager).app  # no TestClient lifespan: uvicorn serves it
    with real_server(app) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/jobs/stream")
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("content-type").startswith("text/event-stream")
        assert response.readline().startswith(b"retry: ")
        assert json.loads(response.readline()[6:])["type"] == "snapshot"
        manager.begin_close()
        rest = response.read()  # ends: the server does not wait on an endless stream
        assert b'"type":"closing"' in rest
        connection.close()


def test_a_cnn_sends_its_first_layers_filters(client):
    cnn = {"model": "simple-cnn", "hidden_size": 10, "dataset": "mnist-sample", "epochs": 1}
    job = start(client, {**cnn, "train_size": 100, "eval_samples": 100})
    done = wait(client, job["id"], ended, "ended")
    assert done["state"] == "finished", done["message"]
    filters = done["filters"]
    assert filters["shape"] == [30, 1, 5, 5] and filters["min"] < 0 < filters["max"]
    assert len(base64.b64decode(filters["data"])) == 30 * 25  # one gray level a weight
    kinds = [h["kind"] for h in done["histograms"]["activations"]]
    assert kinds == ["Relu", "Relu"]  # after the convolution, and the hidden Affine


def test_without_jobs_there_is_no_training_api(tmp_path):
    with make_client(tmp_path) as client:  # scratchdl serve --max-jobs 0
        assert_error(client.get("/api/jobs"), 404)
        assert_error(client.get("/api/presets"), 404)
        assert_error(client.post("/api/jobs", json={"settings": ONE_EPOCH}), 404)


@pytest.mark.parametrize("value", ["-1", "33", "two"])
def test_a_bad_max_jobs_is_one_line_and_exit_2(value, capsys):
    assert cli.main(["serve", "--max-jobs", value]) == 2
    err = capsys.readouterr().err
    assert "--max-jobs: must be a number from 0 to 32" in err and "Traceback" not in err


def test_a_stream_ends_after_its_time_and_the_browser_reconnects(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs_api, "STREAM_SECONDS", 0.5)  # else 5 minutes

    async def follow() -> list[str]:
        return [chunk async for chunk in jobs_api.stream_events(JobManager(tmp_path))]

    chunks = asyncio.run(asyncio.wait_for(follow(), 10))
    assert len(chunks) == 1 and chunks[0].startswith(f"retry: {jobs_api.RETRY_MS}\n")
