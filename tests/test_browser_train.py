"""The Train tab used as a person would: the real ``scratchdl serve --max-jobs 2``, in Debian's
Chromium through Playwright (the launch recipe of test_browser.py). Tiny runs on the shipped
sample; screenshots go where test_browser.py puts them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.browser_helpers import (
    START_SECONDS,
    WAIT_MS,
    blank_canvases,
    expect,
    free_port,
    screenshot,
)

pytestmark = pytest.mark.browser

WIDE = {"width": 1280, "height": 1000}
RUN_MS = 60_000  # a tiny run, from its worker's start to its end, on a busy 2-core machine


@pytest.fixture(scope="module")
def chromium(request):
    return request.getfixturevalue("browser")  # conftest.py's: Debian's Chromium


@pytest.fixture(scope="module")
def pictures(request):
    return request.getfixturevalue("shots")  # conftest.py's screenshot folders


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`scratchdl serve --max-jobs 2` on a free port; stopped with Ctrl-C, which reaches its
    worker processes too and must stop a job still training with its checkpoint written."""
    runs = tmp_path_factory.mktemp("runs")
    port = free_port()
    code = "import sys; from scratchdl.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", code, "serve", "--port", str(port), "--runs", str(runs)]
    process = subprocess.Popen(
        [*command, "--max-jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal gives a command
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url + "api/health", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start: {process.communicate()[0]}")
            time.sleep(0.2)
    info = {"url": url, "runs": runs, "training": None}
    yield info
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: to the server and its workers alike
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the server did not stop on Ctrl-C")
    assert process.returncode == 0 and "Traceback" not in out, out
    if info["training"]:  # a job left training: stopped by Ctrl-C, its checkpoint written
        assert f"training stopped with checkpoints in {runs.name}/{info['training']}" in out
        assert (runs / info["training"] / "checkpoint.safetensors").is_file()


def jobs(server) -> list[dict]:
    with urllib.request.urlopen(server["url"] + "api/jobs", timeout=10) as response:
        return json.load(response)["jobs"]


def open_train(chromium, server, **context):
    page = chromium.new_context(**{"viewport": WIDE, **context}).new_page()
    page.goto(server["url"])
    page.click("#tabs button[data-view=train]")
    page.wait_for_selector("body[data-train-ready=true]", timeout=WAIT_MS)
    return page


def pixels_of(page, selector: str, colour: list[int]) -> int:
    """How many pixels of the canvas ``selector`` have the colour ``colour`` (r, g, b)."""
    return page.evaluate(
        """([selector, [r, g, b]]) => {
            const c = document.querySelector(selector);
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - b) < 12) n++;
            }
            return n;
        }""",
        [selector, colour],
    )


def test_a_preset_of_two_runs_is_drawn_live_as_one_figure(chromium, server, pictures):
    page = open_train(chromium, server)
    page.select_option("#train-preset", "fig6-19")  # with and without Batch Normalization
    page.select_option("#train-dataset", "mnist-sample")
    page.fill("#train-train-size", "500")
    page.fill("#train-batch-size", "50")
    page.fill("#train-epochs", "20")  # 200 steps a run: long enough to watch, a few seconds
    page.click("#train-start")
    expect(page.locator("#train-legend li")).to_have_count(2, timeout=WAIT_MS)
    loss = page.locator("#train-loss")
    expect(loss).not_to_have_attribute("data-points", "0", timeout=RUN_MS)
    seen = loss.get_attribute("data-points")
    expect(loss).not_to_have_attribute("data-points", seen, timeout=RUN_MS)  # it grows
    finished = page.locator("#train-jobs td.state[data-state=finished]")
    expect(finished).to_have_count(2, timeout=RUN_MS)
    assert int(loss.get_attribute("data-points")) == 2 * 200 > int(seen)
    labels = page.locator("#train-legend li span:not(.swatch)").all_text_contents()
    assert labels == ["with Batch Norm", "without Batch Norm"]
    for swatch in page.locator("#train-legend .swatch").all():  # one line per run, its colour
        colour = [int(v) for v in re.findall(r"\d+", swatch.get_attribute("style"))[:3]]
        assert pixels_of(page, "#train-loss", colour) > 50, colour
    assert blank_canvases(page, ".train-charts") == (2, 0)
    expect(page.locator("#train-hist canvas")).to_have_count(5)  # 5 hidden layers
    assert blank_canvases(page, "#train-hist") == (5, 0)
    assert blank_canvases(page, "#train-weights") == (6, 0)
    screenshot(page, pictures, "train-preset.png", full_page=True)
    page.context.close()


def test_stop_marks_a_run_stopped_with_its_checkpoint_and_resume_goes_on(
    chromium, server, pictures
):
    page = open_train(chromium, server)
    page.select_option("#train-dataset", "mnist-sample")
    page.fill("#train-hidden-layers", "1")
    page.fill("#train-hidden-size", "10")
    page.fill("#train-batch-size", "20")
    page.fill("#train-epochs", "300")  # 30 000 steps: it trains until stopped
    page.click("#train-start")
    row = page.locator("#train-jobs tbody tr").first
    expect(row.locator("td.state")).to_have_attribute("data-state", "running", timeout=RUN_MS)
    job_id = row.get_attribute("data-job")
    expect(page.locator("#train-loss")).not_to_have_attribute("data-points", "0", timeout=RUN_MS)
    row.locator("button.stop").click()
    expect(row.locator("td.state")).to_have_attribute("data-state", "stopped", timeout=RUN_MS)
    assert (server["runs"] / job_id / "checkpoint.safetensors").is_file()
    history = json.loads((server["runs"] / job_id / "history.json").read_text())
    assert history["stopped"] is True and "final_test_acc" not in history  # not finished
    screenshot(page, pictures, "train-stopped.png", full_page=True)
    row.locator("button.resume").click()
    expect(row.locator("td.state")).to_have_attribute("data-state", "running", timeout=RUN_MS)
    row.locator("button.stop").click()
    expect(row.locator("td.state")).to_have_attribute("data-state", "stopped", timeout=RUN_MS)
    page.context.close()


def test_a_bad_setting_shows_the_servers_message(chromium, server):
    page = open_train(chromium, server)
    before = len(jobs(server))
    page.select_option("#train-preset", "")
    page.fill("#train-hidden-size", "5000")
    page.click("#train-start")
    message = page.locator("#train-message.error")
    expect(message).to_contain_text("MAX_HIDDEN_SIZE = 1000", timeout=WAIT_MS)
    assert len(jobs(server)) == before
    page.context.close()


def test_a_page_of_another_site_cannot_start_a_job(chromium, server):
    context = chromium.new_context()
    evil = "http://evil.test/"
    context.route(evil, lambda route: route.fulfill(content_type="text/html", body="<p>hi</p>"))
    page = context.new_page()
    page.goto(evil)
    before = len(jobs(server))
    outcome = page.evaluate(
        """async (url) => {
            const body = JSON.stringify({settings: {dataset: "mnist-sample", epochs: 1}});
            const results = [];
            for (const init of [
                // JSON: the browser asks first (a CORS preflight), and the server says no
                {method: "POST", headers: {"content-type": "application/json"}, body},
                // what a form may send without asking: it reaches the server, which refuses
                {method: "POST", mode: "no-cors", headers: {"content-type": "text/plain"}, body},
            ]) {
                try {
                    const r = await fetch(url + "api/jobs", init);
                    results.push(r.type);
                } catch (error) {
                    results.push("refused");
                }
            }
            return results;
        }""",
        server["url"],
    )
    assert outcome[0] == "refused" and outcome[1] in ("opaque", "refused")
    time.sleep(0.5)
    assert len(jobs(server)) == before
    context.close()


def test_the_words_follow_the_browsers_language_and_the_switch(chromium, server):
    page = open_train(chromium, server, locale="ja-JP")
    expect(page.locator("#tabs button[data-view=train]")).to_have_text("学習")
    expect(page.locator("#train-start")).to_have_text("学習を開始")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    page.click("#lang")
    expect(page.locator("#tabs button[data-view=train]")).to_have_text("Train")
    expect(page.locator("#train-start")).to_have_text("Start")
    page.context.close()


def test_a_diverging_run_shows_why_and_resumes_at_a_smaller_rate(chromium, server):
    page = open_train(chromium, server)
    page.select_option("#train-dataset", "mnist-sample")
    page.fill("#train-hidden-layers", "1")
    page.fill("#train-hidden-size", "10")
    page.select_option("#train-optimizer", "sgd")
    page.fill("#train-weight-decay", "1")  # with lr 10: every step multiplies W by 1 - 10
    page.fill("#train-epochs", "2")
    set_lr = "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }"
    page.locator("#train-lr").evaluate(set_lr, "1")  # log10: lr 10
    expect(page.locator("#train-lr-value")).to_have_text("10")
    page.click("#train-start")
    row = page.locator("#train-jobs tbody tr").first
    state = row.locator("td.state")
    expect(state).to_have_attribute("data-state", "diverged", timeout=RUN_MS)
    expect(state).to_contain_text("Try a smaller learning rate")
    page.locator("#train-lr").evaluate(set_lr, "-2")  # lr 0.01
    row.locator("button.resume").click()
    expect(state).to_have_attribute("data-state", "finished", timeout=RUN_MS)
    page.context.close()


def test_last_a_job_left_training_for_ctrl_c(server):
    """Started through the API as a script would (no Origin); the fixture's Ctrl-C must stop it
    with its checkpoint written."""
    settings = {"dataset": "mnist-sample", "hidden_layers": 1, "hidden_size": 10, "epochs": 300}
    body = json.dumps({"settings": {**settings, "batch_size": 20}}).encode()
    request = urllib.request.Request(server["url"] + "api/jobs", data=body, method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        (job,) = json.load(response)["jobs"]
    deadline = time.monotonic() + RUN_MS / 1000
    while not any(j["id"] == job["id"] and j["iteration"] > 0 for j in jobs(server)):
        assert time.monotonic() < deadline, "the job did not start training"
        time.sleep(0.2)
    server["training"] = job["id"]
