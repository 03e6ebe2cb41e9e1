"""``scratchdl serve`` against other web sites: the Host names it answers to (DNS rebinding),
the content types it takes, the origins that may make it work, and what its errors show."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from scratchdl import cli

from .serve_helpers import GOOD_PIXELS, assert_error, make_client, png, write_history

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_history(root / "done", final_test_acc=0.6)
    with make_client(root) as c:
        yield c


# -- Host names ---------------------------------------------------------------------------

READS = ["/api/health", "/api/models", "/api/runs", "/api/runs/done", "/", "/openapi.json"]


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",
        "evil.example.com:8000",
        "localhost.evil.example.com",
        "127.0.0.1.nip.io:8000",
        "0.0.0.0:8000",
        "[::2]:8000",
        "localhost:99999",
        "localhost:80x",
        "",
        "local host",
    ],
)
def test_a_foreign_host_header_gets_400(client, host):
    for path in READS:
        message = assert_error(client.get(path, headers={"host": host}), 400)
        assert "--allow-host" in message
    r = client.post("/api/predict", content=GOOD_PIXELS, headers={**JSON, "host": host})
    assert_error(r, 400)


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8000", "localhost", "LocalHost:1234", "[::1]:8000", "[0:0::1]", "127.0.0.1"]
)
def test_this_machines_names_with_any_port_are_answered(client, host):
    for path in READS:
        assert client.get(path, headers={"host": host}).status_code == 200, (path, host)


def test_allowed_hosts_add_the_listen_address_and_the_names_given():
    from scratchdl.serve.middleware import allowed_hosts

    names = allowed_hosts("192.168.1.5", ["MyBox.lan", "::1", "10.0.0.7"])
    assert names == {"localhost", "127.0.0.1", "[::1]", "192.168.1.5", "mybox.lan", "10.0.0.7"}
    assert "0.0.0.0" in allowed_hosts("0.0.0.0")  # harmless: no browser sends it
    with pytest.raises(ValueError, match="host name"):
        allowed_hosts(extra=["http://evil.example.com/"])


def test_allow_host_lets_a_name_in(tmp_path):
    from scratchdl.serve.inference import Models
    from scratchdl.serve.middleware import allowed_hosts

    hosts = allowed_hosts("127.0.0.1", ["mybox.lan"])
    with make_client(tmp_path, Models(), hosts=hosts) as c:
        assert c.get("/api/health", headers={"host": "mybox.lan:8000"}).status_code == 200
        assert_error(c.get("/api/health", headers={"host": "other.lan:8000"}), 400)


def test_serve_refuses_a_bad_allow_host_with_one_line(capsys):
    assert cli.main(["serve", "--allow-host", "http://x/", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "--allow-host" in err and "not a host name" in err


# -- content types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},  # none at all: what a form of another site may send without asking
        {"content-type": "text/plain"},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "image/svg+xml"},
    ],
)
def test_a_post_without_a_documented_content_type_gets_415(client, headers):
    message = assert_error(client.post("/api/predict", content=GOOD_PIXELS, headers=headers), 415)
    assert "application/json" in message and "image/png" in message


def test_documented_content_types_are_taken(client):
    image = png(np.pad(np.ones((10, 4)), 9))  # a 1 drawn in a 28x28 image
    for kind in ("image/png", "application/octet-stream", "IMAGE/PNG; charset=binary"):
        r = client.post("/api/predict", content=image, headers={"content-type": kind})
        assert r.status_code == 200, (kind, r.text)
    r = client.post("/api/predict", content=GOOD_PIXELS, headers=JSON)
    assert r.status_code == 200


# -- origins ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example.com"},
        {"origin": "null"},  # a sandboxed frame or a file:// page
        {"origin": "http://127.0.0.1:9999"},  # another server on this machine
        {"origin": "https://127.0.0.1:8000"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
def test_work_from_another_origin_gets_403(client, headers):
    r = client.post("/api/predict", content=GOOD_PIXELS, headers={**JSON, **headers})
    assert_error(r, 403)
    assert_error(client.get("/api/testset?count=1", headers=headers), 403)


def test_work_from_the_page_itself_or_a_script_is_done(client):
    same = {"origin": "http://127.0.0.1:8000", "sec-fetch-site": "same-origin"}
    for headers in (same, {}, {"sec-fetch-site": "none"}):
        r = client.post("/api/predict", content=GOOD_PIXELS, headers={**JSON, **headers})
        assert r.status_code == 200, r.text
        assert client.get("/api/testset?count=1", headers=headers).status_code == 200


# -- what errors show ---------------------------------------------------------------------


def test_errors_name_files_relative_to_what_the_client_was_given(tmp_path):
    root = tmp_path / "runs"
    (root / "broken").mkdir(parents=True)
    (root / "broken" / "checkpoint.safetensors").write_bytes(b"\x08" + b"\0" * 20)
    with make_client(root) as client:
        listed = client.get("/api/runs")
        run = client.get("/api/runs/broken")
    for r in (listed, run):
        assert r.status_code == 200 and str(tmp_path) not in r.text, r.text
    assert listed.json()["root"] == "runs"
    assert run.json()["state"] == "unreadable"
    assert run.json()["reason"].startswith("ModelFileError: broken/checkpoint.safetensors")


# -- HEAD ---------------------------------------------------------------------------------


def test_head_answers_every_get_route_as_get_does_without_the_body(client):
    concrete = {"{name}": "done", "{path:path}": "app.js"}
    paths = []
    for route in client.app.routes:
        if "GET" in getattr(route, "methods", ()) or route.path == "/static":
            path = route.path + ("/{path:path}" if route.path == "/static" else "")
            for param, value in concrete.items():
                path = path.replace(param, value)
            paths.append(path)
    assert {"/", "/api/health", "/api/runs/done", "/static/app.js"} <= set(paths)
    for path in paths:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code != 405, path
        assert get.status_code < 300 and head.content == b"", path
        assert head.headers.get("content-type") == get.headers.get("content-type"), path
        assert head.headers.get("content-length") == get.headers.get("content-length"), path


def endless_stream_app(sent: list):
    """A Starlette app with one route, /events, an event stream that never ends."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def events():
        while True:
            sent.append(b"data: tick\n\n")
            yield sent[-1]
            await asyncio.sleep(0.01)

    async def route(request):
        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/events", route)])


def test_head_on_an_endless_stream_ends_once_the_headers_are_sent():
    from scratchdl.serve.middleware import HeadAsGet

    from .serve_helpers import TestClient

    sent = []
    with TestClient(HeadAsGet(endless_stream_app(sent))) as c:
        answers = []  # in a thread: a HEAD that streams forever fails the test, not hangs it
        thread = threading.Thread(target=lambda: answers.append(c.head("/events")), daemon=True)
        thread.start()
        thread.join(10)
        assert answers, "HEAD /events did not end"
        head = answers[0]
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/event-stream")
        time.sleep(0.2)  # a HEAD's client is done with the headers: the stream may go on
        count = len(sent)
        time.sleep(0.3)
        assert len(sent) == count <= 2  # stopped at its first chunk, not left running
