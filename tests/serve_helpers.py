"""Helpers shared by the tests of ``scratchdl serve`` (test_serve*.py)."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np

with warnings.catch_warnings():  # starlette >= 1.x points to httpx2; the test extra has httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
from PIL import Image

from scratchdl.serve.app import create_app
from scratchdl.serve.inference import MnistTestImages, Models

BASE_URL = "http://127.0.0.1:8000"  # the Host a browser on this machine sends
PNG = {"content-type": "image/png"}
GOOD_PIXELS = json.dumps({"pixels": [[0.0] * 28] * 28}).encode()


def make_client(runs: Path, models: Models | None = None, **options) -> TestClient:
    """A TestClient of a fresh app serving ``runs`` (use it in a ``with`` block)."""
    app = create_app(models or Models(), runs, MnistTestImages.find(full=False), **options)
    return TestClient(app, base_url=BASE_URL, raise_server_exceptions=False)


def png(gray: np.ndarray) -> bytes:
    """A 2-D array in [0, 1] as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray((np.clip(gray, 0, 1) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def assert_error(response, status: int) -> str:
    """The response is a JSON error with ``status`` and a message, and shows no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body["detail"]


def write_history(folder: Path, **history) -> Path:
    """A run folder with a history.json of ``history`` (defaults: a finished 1-epoch run)."""
    folder.mkdir(parents=True, exist_ok=True)
    content = {"loss": [2.0, 1.0], "train_acc": [0.5], "test_acc": [0.6], **history}
    (folder / "history.json").write_text(json.dumps(content))
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def real_server(app, server=None, **options):
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in a thread, as `scratchdl
    serve` configures it (cli_serve.server_config with ``options``), or by the uvicorn.Server
    ``server`` given; yields the port."""
    from scratchdl.cli.serve import listen, server_config

    sock = listen("127.0.0.1", 0)
    server = server or server_config(app, **options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
