"""``scratchdl search`` at its limits: a --scheduler port that accepts connections but does
not speak Dask, far more --workers than the machine has cores, and an empty
$SCRATCHDL_NUM_THREADS on a worker. Each ends in one line, in about the time asked for."""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from scratchdl import cli
from scratchdl.search import engine

pytest.importorskip("distributed")

TINY = ["--quick", "--quiet", "--epochs", "1", "--set", "train_size=64"]
EMPTY_THREADS = "SCRATCHDL_NUM_THREADS must be a whole number >= 1, got ''"


def command(*args: str, env: dict | None = None, timeout: float = 60):
    """``scratchdl ARGS`` in a process of its own; (status, stderr, seconds)."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "scratchdl.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    return proc.returncode, proc.stderr, time.monotonic() - start


# -- point 5: a port that is not a Dask scheduler -------------------------------------------


@contextlib.contextmanager
def silent_server():
    """A port on 127.0.0.1 that accepts connections and never says a word."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.1)
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, socket.timeout):
                held.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


class Page(http.server.BaseHTTPRequestHandler):
    """Answers every request (and anything that is not one: 400) in HTTP, as a dashboard."""

    def do_GET(self):
        body = b"<html>a dashboard</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("server", [silent_server, http_server])
def test_a_port_that_does_not_speak_dask_ends_within_the_timeout(server, tmp_path):
    timeout = 2
    with server() as port:
        address = f"tcp://127.0.0.1:{port}"
        args = ["search", *TINY, "--trials", "2", "--scheduler", address]
        args += ["--timeout", str(timeout), "--out", str(tmp_path / "s")]
        try:
            code, err, seconds = command(*args, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"search --scheduler {address} --timeout {timeout} still waits after 60 s")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--scheduler {address}: cannot reach a Dask scheduler there" in err
    # the process starts Python and imports Dask too (a few seconds on a busy machine)
    assert seconds < timeout + 15, seconds


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # its HTTP server moves
def test_a_worker_address_is_not_a_scheduler():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        engine.check_scheduler(cluster.scheduler_address, 5)  # a scheduler: no error
        worker = next(iter(cluster.scheduler_info["workers"]))
        with pytest.raises(OSError, match="answers as Worker, not as a scheduler"):
            engine.check_scheduler(worker, 5)


# -- point 6: --workers is capped -------------------------------------------------------------


def test_worker_count_is_capped_by_the_trials_left_and_the_cores(monkeypatch):
    monkeypatch.setattr(engine, "usable_cores", lambda: 2)
    assert engine.worker_count(1000, 50) == 2 * engine.WORKERS_PER_CORE
    assert engine.worker_count(1000, 3) == 3
    assert engine.worker_count(None, 50) == 2  # the default: the usable cores
    assert engine.worker_count(None, 1) == 1
    assert engine.worker_count(3, 50) == 3


@pytest.mark.parametrize("trials", [3, 50])
def test_search_with_1000_workers_starts_a_capped_cluster_and_says_so(
    monkeypatch, capsys, tmp_path, trials
):
    if trials == 3:
        workers, reason = 3, "the trials left to run (3)"
    else:
        per_core = engine.WORKERS_PER_CORE
        workers, reason = 2 * per_core, f"{per_core} per usable core (2 cores)"
    started = {}

    @contextlib.contextmanager
    def connect(scheduler, workers=None, *, timeout):
        started["workers"] = workers
        raise OSError("no cluster in this test")
        yield

    monkeypatch.setattr(engine, "usable_cores", lambda: 2)
    monkeypatch.setattr(engine, "connect", connect)
    out = tmp_path / "s"
    args = ["search", *TINY, "--trials", str(trials), "--workers", "1000", "--out", str(out)]
    code = cli.main(args)
    stdout, err = capsys.readouterr()
    assert code == 2 and "no cluster in this test" in err
    assert started["workers"] == workers
    assert stdout.splitlines()[0] == f"search: --workers 1000 capped at {workers}: {reason}"


# -- point 7: an empty $SCRATCHDL_NUM_THREADS -------------------------------------------------


def test_an_empty_thread_count_is_refused_on_a_worker_as_by_the_cli(tmp_path):
    env = dict(os.environ, SCRATCHDL_NUM_THREADS="")
    # the command refuses it before anything starts
    code, err, _ = command("search", *TINY, "--out", str(tmp_path / "s"), env=env)
    assert code == 2 and EMPTY_THREADS in err
    # and so does a trial on a worker started with it (`dask worker` of a running cluster),
    # which took it for unset
    on_a_worker = textwrap.dedent(
        """
        import types

        import distributed

        from scratchdl.search import trial

        state = types.SimpleNamespace(nthreads=1)
        distributed.get_worker = lambda: types.SimpleNamespace(state=state)
        try:
            print("threads:", trial.thread_share())
        except ValueError as e:
            print("refused:", e)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", on_a_worker], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.stdout.strip() == f"refused: {EMPTY_THREADS}", proc.stdout + proc.stderr
