"""The Train tab's jobs, measured through the API of the real `scratchdl serve` (127.0.0.1).

Not a test. Two measurements, each starting the server in a subprocess on a free port:

1. ``fig6-9``: the book's fig. 6-9 preset (SGD, Momentum, AdaGrad and Adam on the 5-layer
   network, full MNIST) started with ``POST /api/jobs``, followed to its end, and its final
   numbers printed beside those of ``scratchdl experiment optimizer-compare`` (from
   docs/figures/optimizer-compare.json) and the book's. With ``--screenshot PATH`` the preset
   is started from the page instead, in Chromium, which is then photographed (the README's
   docs/train.png).
2. ``latency``: the Draw tab's request (a PNG of a test digit, ``POST /api/predict?layers=1``)
   sent REQUESTS times one after another, first with nothing training, then while two
   SimpleConvNet jobs train (``--max-jobs 2``); the median and p90 of each.

    python benchmarks/playground.py fig6-9 [--screenshot docs/train.png]
    python benchmarks/playground.py latency
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 200
WARM_UP = 20
DEADLINE = 1800  # seconds any one measurement may take
# runs of the book's ch06/optimizer_compare_mnist.py print the loss of one batch at
# iteration 1900 (docs/experiments.md)
BOOK = {"SGD": "0.16-0.28", "Momentum": "0.05-0.13", "AdaGrad": "0.02-0.12", "Adam": "0.03-0.14"}
ENDED = ("stopped", "finished", "diverged", "failed")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def start_server(runs: Path, *options: str) -> tuple[subprocess.Popen, str]:
    code = "import sys; from scratchdl.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", code, "serve", "--port", "0", "--runs", str(runs), *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline()  # "scratchdl serve: http://127.0.0.1:PORT/  (...)"
    if "http://" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line}{process.communicate()[0]}")
    return process, line.split()[2].rstrip("/")


def stop_server(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=120)[0]


def call(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, method="GET" if data is None else "POST"
    )
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def wait_for(url: str, ids: list[str], until, deadline: float) -> list[dict]:
    while True:
        jobs = [j for j in call(url, "/api/jobs")["jobs"] if j["id"] in ids]
        if all(until(j) for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise SystemExit(f"the jobs did not get there in time: {jobs}")
        time.sleep(1.0)


# -- 1. the fig. 6-9 preset --------------------------------------------------------------------


def fig6_9(screenshot: Path | None) -> None:
    runs = Path(tempfile.mkdtemp(prefix="playground-"))
    process, url = start_server(runs, "--max-jobs", "2")
    start = time.monotonic()
    try:
        if screenshot is None:
            ids = [j["id"] for j in call(url, "/api/jobs", {"preset": "fig6-9"})["jobs"]]
            jobs = wait_for(url, ids, lambda j: j["state"] in ENDED, start + DEADLINE)
        else:
            jobs = from_the_page(url, screenshot, start + DEADLINE)
    finally:
        log = stop_server(process)
    seconds = time.monotonic() - start
    assert "Traceback" not in log, log
    ours = json.loads((ROOT / "docs/figures/optimizer-compare.json").read_text())
    print(f"fig. 6-9 preset: {len(jobs)} runs in {seconds:.0f} s, 2 at a time ({cpu_model()})")
    print(
        f"{'':10} {'final loss':>10} {'test acc':>9}  | optimizer-compare: loss, acc | book: loss"
    )
    for job in jobs:
        history = json.loads((runs / job["id"] / "history.json").read_text())
        final = float(np.mean(history["loss"][-100:]))  # as optimizer-compare's final_loss
        label = job["label"]
        print(
            f"{label:10} {final:10.3f} {job['final_test_acc']:9.4f}  | "
            f"{ours['final_loss'][label]:17.3f}, {ours['test_acc'][label]:.4f} | {BOOK[label]}"
        )
    print(f"iterations: {jobs[0]['iterations']} each (optimizer-compare: 2000); runs in {runs}")


def from_the_page(url: str, screenshot: Path, deadline: float) -> list[dict]:
    """Start the preset from the Train tab in Chromium, wait for its end, photograph it, then
    again in Japanese (SCREENSHOT.ja.png)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox"],
            env=japanese_font(),
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url + "/")
        page.click("#tabs button[data-view=train]")
        page.wait_for_selector("body[data-train-ready=true]", timeout=60_000)
        page.select_option("#train-preset", "fig6-9")
        page.click("#train-start")
        page.wait_for_selector("#train-legend li", timeout=60_000)
        ids = [row.get_attribute("data-job") for row in page.locator("#train-legend li").all()]
        jobs = wait_for(url, ids, lambda j: j["state"] in ENDED, deadline)
        time.sleep(2)  # the last events drawn
        page.screenshot(path=str(screenshot), full_page=False)  # settings, charts, legend
        page.click("#lang")
        time.sleep(1)
        japanese = screenshot.with_suffix(".ja.png")
        page.screenshot(path=str(japanese), full_page=False)
        browser.close()
    print(f"wrote {screenshot} and {japanese}")
    return jobs


def japanese_font() -> dict:
    """The environment of a Chromium that finds a Japanese font: matplotlib-fontja's (the
    notebooks extra), added to the system's fonts for this process only."""
    import os

    try:
        import matplotlib_fontja
    except ImportError:  # the system's fonts only: Japanese may show as boxes
        return dict(os.environ)
    folder = Path(matplotlib_fontja.__file__).parent / "fonts"
    conf = Path(tempfile.mkdtemp(prefix="fonts-")) / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f'<include ignore_missing="yes">/etc/fonts/fonts.conf</include><dir>{folder}</dir>'
        "</fontconfig>"
    )
    return {**os.environ, "FONTCONFIG_FILE": str(conf)}


# -- 2. Draw's latency while two jobs train ----------------------------------------------------


def latency() -> None:
    from PIL import Image

    from scratchdl.datasets import load_mnist_sample

    _, (x, _) = load_mnist_sample(flatten=False)
    images = []
    for i in range(20):
        buf = io.BytesIO()
        Image.fromarray((x[i, 0] * 255).astype(np.uint8)).resize((280, 280)).save(buf, "PNG")
        images.append(buf.getvalue())
    runs = Path(tempfile.mkdtemp(prefix="playground-"))
    process, url = start_server(runs, "--max-jobs", "2")
    try:
        predictions(url, images, WARM_UP)  # the first requests load the model's twins
        alone = predictions(url, images)
        cnn = {"model": "simple-cnn", "dataset": "mnist", "epochs": 2}
        ids = [
            call(url, "/api/jobs", {"settings": cnn, "label": f"cnn {k}"})["jobs"][0]["id"]
            for k in (1, 2)
        ]
        deadline = time.monotonic() + DEADLINE
        wait_for(url, ids, lambda j: j["state"] == "running" and j["iteration"] > 0, deadline)
        before = {j["id"]: j["iteration"] for j in call(url, "/api/jobs")["jobs"]}
        busy = predictions(url, images)
        after = call(url, "/api/jobs")["jobs"]
        training = [j["state"] for j in after]
        steps = [j["iteration"] - before[j["id"]] for j in after]
        for job_id in ids:
            call(url, f"/api/jobs/{job_id}/stop", {})
    finally:
        log = stop_server(process)
    assert "Traceback" not in log, log
    assert training.count("running") == 2, training  # both trained all through
    print(
        f"Draw predictions (POST /api/predict?layers=1, a 280x280 PNG), {REQUESTS} in a row, "
        f"{cpu_model()}:"
    )
    print(f"  (the jobs took {' and '.join(map(str, steps))} training steps meanwhile)")
    for name, ms in (("nothing training", alone), ("two SimpleConvNet jobs training", busy)):
        p90 = statistics.quantiles(ms, n=10)[-1]
        print(
            f"  {name:32} median {statistics.median(ms):6.1f} ms, p90 {p90:6.1f} ms, "
            f"max {max(ms):6.1f} ms"
        )


def predictions(url: str, images: list[bytes], count: int = REQUESTS) -> list[float]:
    times = []
    for k in range(count):
        request = urllib.request.Request(
            url + "/api/predict?layers=1", data=images[k % len(images)], method="POST"
        )
        request.add_header("content-type", "image/png")
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        times.append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("fig6-9", "latency"))
    parser.add_argument(
        "--screenshot", type=Path, help="fig6-9: start it from the page, photograph"
    )
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}, python {platform.python_version()}, {cpu_model()}")
    if args.mode == "fig6-9":
        fig6_9(args.screenshot)
    else:
        latency()


if __name__ == "__main__":
    main()
