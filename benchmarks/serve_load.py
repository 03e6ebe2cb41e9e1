"""`scratchdl serve` under load and under fuzzing, on the loopback interface only.

Not a test: it starts the real server (`scratchdl serve` in a subprocess, 127.0.0.1, a free
port) and measures, bounded in count and time (``--deadline``):

1. load: CLIENTS threads, each with its own keep-alive connection, send REQUESTS predictions
   each (PNGs of MNIST test digits): errors, p50 / p99 latency, throughput;
2. the server-side time of one batch-1 prediction of the default model: the Server-Timing
   header of those requests (the forward pass and softmax), and in this process the same
   code (``serve.inference.predict``) and the decoding of the PNG, median over REPEATS;
3. fuzz: FUZZ requests of random bytes, mutated PNGs and JPEGs, bad JSON, wrong content types
   and odd queries: how many got each status (no 5xx allowed), then one correct prediction
   to show the server still answers; the server's log is searched for tracebacks;
4. serve_abuse.py's cases: slow clients (bodies and heads that never end), random Host,
   Origin and Content-Type headers, and /api/health while /api/runs reads 41 histories of
   15 MB each.

    python benchmarks/serve_load.py            # the numbers in benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import serve_abuse  # the sibling: the slow-client, Host and history cases
from PIL import Image

from scratchdl.datasets import load_mnist_sample
from scratchdl.serve import inference
from scratchdl.serve.safety import decode_image

CLIENTS, REQUESTS, REPEATS, FUZZ = 50, 20, 200, 1000
TIMEOUT = 60.0  # seconds one request may take before it counts as an error


def say(stage: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {stage}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    """lscpu's model name (the CPU the numbers were measured on)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line]
    return names[0] if names else "unknown CPU"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((gray * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def start_server(runs: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`scratchdl serve` on a free port, its output to the file ``log``: a pipe nobody reads
    until the end fills up (64 kB of warnings) and then blocks the server."""
    port = free_port()
    code = "import sys; from scratchdl.cli import main; sys.exit(main())"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--port", str(port), "--runs", str(runs)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/api/health", timeout=1).close()
            return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    process.wait()
    raise SystemExit(f"the server did not start: {log.read_text(errors='replace')}")


def load(url: str, images: list[bytes], labels: np.ndarray, deadline: float) -> dict:
    latencies, server_ms, failures, wrong = [], [], Counter(), 0
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(k: int) -> None:
        nonlocal wrong
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            barrier.wait()  # all clients start together
            for j in range(REQUESTS):
                i = (k * REQUESTS + j) % len(images)
                start = time.perf_counter()
                try:
                    r = http.post(
                        "/api/predict", content=images[i], headers={"content-type": "image/png"}
                    )
                    status = r.status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                took = time.perf_counter() - start
                with lock:
                    latencies.append(took)
                    if status != 200:
                        failures[status] += 1
                    else:
                        server_ms.append(float(r.headers["server-timing"].split("dur=")[1]))
                        wrong += r.json()["class"] != labels[i]
                if time.monotonic() > deadline:
                    return

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": sum(failures.values()),
        "error_kinds": dict(failures),
        "misclassified": int(wrong),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        "server_timing_median_ms": round(statistics.median(server_ms), 3) if server_ms else None,
    }


def in_process(image: bytes) -> dict:
    """The server's own code, batch 1, one BLAS thread (as `scratchdl serve` holds it)."""
    from threadpoolctl import threadpool_limits

    entry = inference.Models().get(None)
    with threadpool_limits(limits=1, user_api="blas"):
        x = decode_image(image)
        timings = {}
        for name, fn in [
            ("decode_png_ms", lambda: decode_image(image)),
            ("predict_ms", lambda: inference.predict(entry, x, False)),
            ("predict_with_layers_ms", lambda: inference.predict(entry, x, True)),
        ]:
            fn()  # warm: the twins, the buffers
            runs = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - start)
            timings[name] = round(1000 * statistics.median(runs), 3)
    return timings


def png_claiming(width: int, height: int, idat: bytes) -> bytes:
    """A PNG with a valid header (CRCs right) that claims width x height pixels: a bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return len(data).to_bytes(4, "big") + kind + data + crc.to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def fuzz_cases(rng: np.random.Generator, valid_png: bytes, valid_jpeg: bytes):
    """FUZZ (query, body, content type) triples, drawn from ``rng``."""
    types = [
        "image/png",
        "image/jpeg",
        "application/json",
        "text/plain",
        None,
        "application/octet-stream",
        "multipart/form-data; boundary=x",
        "image/svg+xml",
    ]
    good = json.dumps({"pixels": [[0.5] * 28] * 28}).encode()
    json_bad = [
        b"{",
        b"[]",
        b"null",
        b'{"pixels": null}',
        b'{"pixels": [[NaN]]}',
        b"[" * 100_000,
        json.dumps({"pixels": [[0.5] * 28] * 29}).encode(),
        json.dumps({"pixels": [["a"] * 28] * 28}).encode(),
        json.dumps({"pixels": [[1e308] * 28] * 28}).encode(),
        good.replace(b"0.5", b"-Infinity", 3),
        good.replace(b"0.5", b"9" * 5000, 1),
    ]
    queries = [
        "",
        "?layers=1",
        "?model=simple-cnn",
        "?model=../../etc/passwd",
        "?layers=%00",
        "?model=" + "x" * 300,
        "?count=-1&layers=yes",
        "?model=%2Fetc%2Fpasswd&layers=1",
    ]

    def mutate(data: bytes) -> bytes:
        b = bytearray(data)
        kind = rng.integers(4)
        if kind == 0:  # flip bytes
            for i in rng.integers(0, len(b), size=rng.integers(1, 20)):
                b[i] = rng.integers(256)
        elif kind == 1:  # truncate
            b = b[: rng.integers(0, len(b))]
        elif kind == 2:  # a header that claims a huge image (PNG IHDR width and height)
            b[16:24] = rng.integers(0, 256, size=8, dtype=np.uint8).tobytes()
        else:  # insert junk
            i = rng.integers(0, len(b))
            b[i:i] = rng.bytes(int(rng.integers(1, 2000)))
        return bytes(b)

    zeros = zlib.compress(bytes(4001 * 4000), 9)  # 16 MP of black in 16 kB
    for _ in range(FUZZ):
        kind = rng.integers(6)
        if kind == 0:
            body = rng.bytes(int(rng.integers(0, 5000)))
        elif kind == 1:
            body = mutate(valid_png)
        elif kind == 2:
            body = mutate(valid_jpeg)
        elif kind == 3:
            body = json_bad[rng.integers(len(json_bad))]
        elif kind == 4:
            body = mutate(good)
        else:  # an image bomb: 4096 x 4096 to 2^31 x 2^31 pixels, with some data or none
            side = int(2 ** rng.uniform(12, 31))
            body = png_claiming(side, side, zeros if rng.random() < 0.5 else b"")
        yield queries[rng.integers(len(queries))], body, types[rng.integers(len(types))]


def fuzz(url: str, valid_png: bytes, deadline: float, seed: int) -> dict:
    buf = io.BytesIO()
    Image.open(io.BytesIO(valid_png)).convert("RGB").save(buf, "JPEG")
    statuses, slowest = Counter(), 0.0
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        for query, body, kind in fuzz_cases(np.random.default_rng(seed), valid_png, buf.getvalue()):
            headers = {} if kind is None else {"content-type": kind}
            start = time.perf_counter()
            try:
                r = http.post("/api/predict" + query, content=body, headers=headers)
                statuses[r.status_code] += 1
                if r.status_code >= 400:  # a JSON message, never a traceback
                    assert "Traceback" not in r.text and isinstance(r.json()["detail"], str)
            except httpx.HTTPError as e:
                statuses[type(e).__name__] += 1
            slowest = max(slowest, time.perf_counter() - start)
            if time.monotonic() > deadline:
                break
    server_errors = sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500)
    return {
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "server_errors_5xx": server_errors,
        "slowest_ms": round(1000 * slowest, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=600, help="seconds for everything")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--big-runs",
        type=int,
        default=serve_abuse.BIG_RUNS,
        help="run folders with 15 MB histories for the /api/runs case (0: leave it out)",
    )
    args = parser.parse_args()
    deadline = time.monotonic() + args.deadline
    _, (x, t) = load_mnist_sample(flatten=False)
    images = [png(x[i, 0]) for i in range(200)]
    result = {
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}",
        "load_average_before": os.getloadavg(),
    }
    runs = Path(tempfile.mkdtemp(prefix="serve-load-runs-"))
    serve_abuse.BIG_RUNS = args.big_runs
    history_bytes = serve_abuse.write_big_runs(runs, np.random.default_rng(args.seed))
    log_path = runs / "server.log"  # not a run folder: listed by no one
    process, url = start_server(runs, log_path)
    try:
        if args.big_runs:  # first: nothing has listed the runs yet, so none is cached
            say("big histories")
            result["big_histories"] = serve_abuse.big_histories(url, history_bytes)
        with httpx.Client(base_url=url) as http:  # warm up: twins, buffers, connections
            for image in images[:10]:
                http.post("/api/predict", content=image, headers={"content-type": "image/png"})
        say("load")
        result["load"] = load(url, images, t, deadline)
        say("fuzz")
        result["fuzz"] = fuzz(url, images[0], deadline, args.seed)
        say("slow clients")
        result["slow_clients"] = serve_abuse.slow_clients(url, images[0])
        say("hosts, origins, types")
        result["hosts_origins_types"] = serve_abuse.fuzz_hosts(url, images[0], args.seed)
        with httpx.Client(base_url=url) as http:
            r = http.post("/api/predict", content=images[0], headers={"content-type": "image/png"})
            result["after_fuzz"] = {
                "status": r.status_code,
                "class": r.json().get("class"),
                "label": int(t[0]),
            }
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        log = log_path.read_text(errors="replace")
        shutil.rmtree(runs, ignore_errors=True)
    result["server_exit_status"] = process.returncode
    result["server_log_tracebacks"] = log.count("Traceback")
    result["server_log_lines"] = len(log.splitlines())
    result["in_process"] = in_process(images[0])
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
