"""The cases of `benchmarks/serve_load.py` that play a careless or hostile client, each bounded
in count and time, on 127.0.0.1 only (issue 21):

- ``slow_clients``: SLOW_BODIES connections send 2 bytes of a 100 kB body and wait, and
  SLOW_HEADS more never finish their headers; meanwhile a normal client predicts and asks
  /api/health. Its statuses and latencies, then how the slow ones were let go;
- ``fuzz_hosts``: HOST_CASES requests with random Host, Origin and Content-Type headers, each
  checked against the status it must get (400 foreign Host, 403 foreign Origin, 415 type);
- ``big_histories``: /api/health's latency while /api/runs first reads BIG_RUNS histories of
  ~15 MB each (they took /api/health to 61 s when they were parsed on the event loop).
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

SLOW_BODIES, SLOW_HEADS, HOST_CASES, BIG_RUNS = 66, 200, 1000, 41
NORMAL_REQUESTS = 20  # predictions and health checks of the normal client among the slow ones
LET_GO_SECONDS = 40  # how long to wait for the server to close the slow connections
TIMEOUT = 60.0
PNG = {"content-type": "image/png"}


def ms(values: list[float]) -> dict:
    v = np.array(values) * 1000
    return {"p50_ms": round(float(np.median(v)), 1), "max_ms": round(float(v.max()), 1)}


def slow_clients(url: str, image: bytes) -> dict:
    host, port = url.removeprefix("http://").split(":")
    body_head = (
        f"POST /api/predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: image/png\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode() + image[:2]
    partial_head = f"GET /api/health HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    sockets = []
    try:
        for data in [body_head] * SLOW_BODIES + [partial_head] * SLOW_HEADS:
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(data)
            sockets.append(s)
        opened = time.monotonic()
        time.sleep(0.5)  # the server has read what they sent
        statuses, predict_s, health_s = Counter(), [], []
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            for _ in range(NORMAL_REQUESTS):
                start = time.perf_counter()
                r = request(http, "POST", "/api/predict", content=image, headers=PNG)
                predict_s.append(time.perf_counter() - start)
                statuses[f"predict {getattr(r, 'status_code', r)}"] += 1
                start = time.perf_counter()
                r = request(http, "GET", "/api/health")
                health_s.append(time.perf_counter() - start)
                statuses[f"health {getattr(r, 'status_code', r)}"] += 1
        let_go = let_go_of(sockets, opened)
    finally:
        for s in sockets:
            s.close()
    return {
        "slow_bodies": SLOW_BODIES,
        "slow_heads": SLOW_HEADS,
        "normal_client": dict(statuses),
        "predict": ms(predict_s),
        "health": ms(health_s),
        "slow_connections_let_go": let_go,
    }


def let_go_of(sockets: list[socket.socket], opened: float) -> dict:
    """How the server ended each slow connection: its answer's status, or "closed" without
    one, or "still open" after LET_GO_SECONDS; and when the last one was let go."""
    ends, last = Counter(), 0.0
    for s in sockets:
        left = LET_GO_SECONDS - (time.monotonic() - opened)
        s.settimeout(max(left, 0.01))
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            ends["still open"] += 1
            continue
        except OSError:
            pass
        last = max(last, time.monotonic() - opened)
        ends[data.split(b"\r\n", 1)[0].decode("latin-1") if data else "closed"] += 1
    return {"ends": dict(ends), "last_after_s": round(last, 1)}


FOREIGN_HOSTS = [
    "evil.example.com",
    "evil.example.com:{port}",
    "localhost.evil.example.com:{port}",
    "127.0.0.1.nip.io:{port}",
    "0.0.0.0:{port}",
    "[::2]:{port}",
    "localhost:99999",
    "localhost:{port}x",
    "",
    "x" * 300,
]
OWN_HOSTS = ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "127.0.0.1"]
FOREIGN_ORIGINS = ["http://evil.example.com", "null", "http://127.0.0.1:1", "https://127.0.0.1"]


def fuzz_hosts(url: str, image: bytes, seed: int) -> dict:
    """HOST_CASES requests: a random Host (a third foreign), Origin (a third foreign, for the
    predictions) and Content-Type; each status compared with the one it must get."""
    port = url.rsplit(":", 1)[1]
    rng = np.random.default_rng(seed)
    statuses, unexpected = Counter(), Counter()
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        for _ in range(HOST_CASES):
            foreign = rng.random() < 1 / 3
            host = str(rng.choice(FOREIGN_HOSTS if foreign else OWN_HOSTS)).format(port=port)
            headers = {"host": host}
            path = str(rng.choice(["/api/models", "/api/runs", "/api/health", "/api/predict"]))
            if path == "/api/predict":
                if rng.random() < 1 / 3:
                    headers["origin"] = str(rng.choice(FOREIGN_ORIGINS))
                kind = rng.choice(["image/png", "text/plain", "none"], p=[0.6, 0.2, 0.2])
                if kind != "none":
                    headers["content-type"] = str(kind)
                r = request(http, "POST", path, content=image, headers=headers)
                expected = (
                    400
                    if foreign
                    else 403
                    if "origin" in headers
                    else 415
                    if kind != "image/png"
                    else 200
                )
            else:
                r = request(http, "GET", path, headers=headers)
                expected = 400 if foreign else 200
            status = r.status_code if isinstance(r, httpx.Response) else r
            statuses[status] += 1
            if status != expected:
                unexpected[f"{host[:40]!r} {path}: {status}, not {expected}"] += 1
            elif status >= 400:
                assert isinstance(r.json()["detail"], str) and "Traceback" not in r.text
    return {
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "unexpected": dict(unexpected),
    }


def request(http: httpx.Client, method: str, path: str, **options) -> httpx.Response | str:
    """The response, or the name of the error that came instead (a timeout, a reset)."""
    try:
        return http.request(method, path, **options)
    except httpx.HTTPError as e:
        return type(e).__name__


def write_big_runs(root: Path, rng: np.random.Generator) -> int:
    """BIG_RUNS run folders under ``root``, each with a history.json of ~15 MB (700 000
    iterations); returns the bytes of one."""
    history = {
        "loss": rng.random(700_000).tolist(),
        "train_acc": [0.9] * 20,
        "test_acc": [0.9] * 20,
        "epoch_seconds": [10.0] * 20,
        "final_test_acc": 0.9,
    }
    data = json.dumps(history).encode()
    for k in range(BIG_RUNS):
        (root / f"big-{k:02d}").mkdir(parents=True)
        (root / f"big-{k:02d}" / "history.json").write_bytes(data)
    return len(data)


def big_histories(url: str, history_bytes: int) -> dict:
    """/api/runs (the first time: every history parsed; the second: from the cache) while
    /api/health is asked every 50 ms: the health checks' latency during the first."""
    health_s, runs_s, done = [], [], threading.Event()

    def list_runs() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            for _ in range(2):
                start = time.perf_counter()
                r = http.get("/api/runs")
                runs_s.append((time.perf_counter() - start, r.status_code, len(r.json()["runs"])))
        done.set()

    thread = threading.Thread(target=list_runs)
    thread.start()
    with httpx.Client(base_url=url, timeout=600) as http:
        while not done.is_set() and len(runs_s) == 0:
            start = time.perf_counter()
            http.get("/api/health").raise_for_status()
            health_s.append(time.perf_counter() - start)
            time.sleep(0.05)
    thread.join()
    return {
        "runs": BIG_RUNS,
        "history_mb": round(history_bytes / 1e6, 1),
        "first_api_runs_s": round(runs_s[0][0], 2),
        "second_api_runs_s": round(runs_s[1][0], 3),
        "statuses": [status for _, status, _ in runs_s],
        "listed": runs_s[0][2],
        "health_during_first": {"checks": len(health_s), **ms(health_s)},
        "health_mean_ms": round(1000 * statistics.mean(health_s), 1),
    }
