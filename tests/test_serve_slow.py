"""``scratchdl serve`` and slow clients, on a real uvicorn on 127.0.0.1: a few connections
that send their head or body slowly, or never, must not keep a normal client from an answer.
Every test opens a bounded number of sockets and ends within seconds."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest
import uvicorn

from scratchdl.serve.app import create_app
from scratchdl.serve.inference import MnistTestImages, Models

from .serve_helpers import GOOD_PIXELS, real_server

SLOW_BODIES = 66  # the pool's places (2 workers + 64 waiting): all of them, before the fix
SLOW_HEADS = 70  # more than the 64 connections the servers below allow
SMALL_LIMIT = 64


@pytest.fixture(scope="module")
def models():
    return Models()


def app_for(tmp_path, models, **options):
    return create_app(models, tmp_path, MnistTestImages.find(full=False), **options)


@contextlib.contextmanager
def sockets(port: int, n: int, data: bytes):
    """``n`` connections to the server that send ``data`` and then nothing more."""
    opened = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(data)
            opened.append(s)
        time.sleep(0.3)  # the server has read what they sent
        yield opened
    finally:
        for s in opened:
            s.close()


def answer(s: socket.socket, timeout: float = 10) -> bytes | None:
    """What the server sent on ``s`` until it closed the connection; None if it kept the
    connection open for ``timeout`` seconds."""
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except TimeoutError:
        return None
    except OSError:  # reset: closed with bytes of ours still unread
        pass
    return data


def predictions(port: int, n: int = 5) -> list[int]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
        return [
            client.post(
                "/api/predict", content=GOOD_PIXELS, headers={"content-type": "application/json"}
            ).status_code
            for _ in range(n)
        ]


def slow_body_head(port: int) -> bytes:
    return (
        f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    ).encode() + b"\x89P"  # 2 bytes of a 100 kB body


def test_slow_bodies_hold_no_pool_place_and_get_408(tmp_path, models):
    from scratchdl.serve.safety import Bodies

    app = app_for(tmp_path, models, bodies=Bodies(seconds=2))
    with real_server(app) as port, sockets(port, SLOW_BODIES, slow_body_head(port)) as slow:
        start = time.monotonic()
        assert predictions(port) == [200] * 5
        assert time.monotonic() - start < 2  # before the slow bodies' deadline
        got = answer(slow[0])
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"application/json" in head
    assert "did not arrive within 2 s" in json.loads(body)["detail"]


def test_slow_heads_never_fill_the_server(tmp_path, models):
    app = app_for(tmp_path, models)
    partial = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # no blank line: never ends
    with (
        real_server(app, max_connections=SMALL_LIMIT) as port,
        sockets(port, SLOW_HEADS, partial) as slow,
    ):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            assert client.get("/api/health").status_code == 200
        assert predictions(port) == [200] * 5
        # the longest waiting were let go as newer ones came (with a JSON 408 if the server
        # had read their bytes by then), so that at most half the connections wait
        answers = [answer(s, timeout=0.05) for s in slow]
    let_go = [a for a in answers if a is not None]
    assert len(let_go) >= SLOW_HEADS - SMALL_LIMIT // 2
    assert all(a == b"" or a.startswith(b"HTTP/1.1 408") for a in let_go), let_go
    # the same sockets fill a server with uvicorn's own protocol and the same limit: the
    # test's setup is one that shuts everyone out without the guard
    plain = uvicorn.Server(
        uvicorn.Config(app, http="h11", lifespan="off", limit_concurrency=SMALL_LIMIT)
    )
    with real_server(app, server=plain) as port, sockets(port, SLOW_HEADS, partial):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            assert client.get("/api/health").status_code == 503


def test_a_request_head_has_a_deadline(tmp_path, models):
    app = app_for(tmp_path, models)
    with real_server(app, head_seconds=1) as port:
        with (
            sockets(port, 1, b"GET /api/health HTTP/1.1\r\nHo") as (partial,),
            sockets(port, 1, b"") as (idle,),
        ):
            start = time.monotonic()
            got = answer(partial)
            assert time.monotonic() - start < 5
            assert got.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in got
            assert answer(idle) == b""  # nothing was asked: closed without an answer
        # a connection kept alive after an answer has the same deadline for its next head
        with socket.create_connection(("127.0.0.1", port), timeout=10) as kept:
            kept.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            first = b""
            while not first.endswith(b"}"):  # the whole JSON answer
                first += kept.recv(65536)
            start = time.monotonic()
            rest = answer(kept)
            waited = time.monotonic() - start
        assert first.startswith(b"HTTP/1.1 200") and rest == b""
        assert 0.5 < waited < 4  # closed by the 1 s deadline, not uvicorn's 5 s keep-alive


def test_a_client_gone_in_the_middle_of_its_body_logs_no_error(tmp_path, models, caplog):
    app = app_for(tmp_path, models)
    with real_server(app) as port:
        with sockets(port, 3, slow_body_head(port)):
            pass  # closed with 2 bytes of 100 000 sent
        time.sleep(0.5)
        assert predictions(port, 1) == [200]
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert not errors, [r.getMessage() for r in errors]


def test_head_on_an_endless_stream_answers_and_stops_it_on_uvicorn():
    from scratchdl.serve.middleware import HeadAsGet

    from .test_serve_security import endless_stream_app

    sent = []
    app = HeadAsGet(endless_stream_app(sent))
    with real_server(app) as port:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            head = client.head("/events")
            assert head.status_code == 200 and head.content == b""
            time.sleep(0.2)  # a HEAD's client is done with the headers: the stream may go on
            count = len(sent)
            time.sleep(0.3)
            assert len(sent) == count <= 2  # stopped at its first chunk, not left running
            assert client.head("/events").status_code == 200  # the connection serves on
