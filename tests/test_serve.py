"""``scratchdl serve``'s app through Starlette's TestClient: the API, its limits, the runs view,
the shipped model and the command line. The page itself is tested in Chromium
(test_browser.py)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import struct
import threading
import time
import warnings
import zlib

import numpy as np
import pytest

with warnings.catch_warnings():  # starlette >= 1.x points to httpx2; the test extra has httpx
    warnings.simplefilter("ignore")
from PIL import Image

from scratchdl import cli
from scratchdl.cli.serve import host_warning
from scratchdl.datasets import load_mnist_sample
from scratchdl.files import load_model
from scratchdl.files.images import prepare_image
from scratchdl.functions import softmax
from scratchdl.serve.inference import Models, Pool, shipped_model_path
from scratchdl.serve.safety import MAX_BODY_BYTES, ClientError

from .serve_helpers import PNG, assert_error, make_client, png


@pytest.fixture(scope="module")
def sample():
    _, (x, t) = load_mnist_sample(flatten=False)
    return x, t


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with make_client(tmp_path_factory.mktemp("runs")) as c:
        yield c


def decode(array: dict) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(array["data"]), dtype=np.uint8)
    return data.reshape(array["shape"])


# -- the shipped model --------------------------------------------------------------------


def test_the_shipped_model_classifies_real_mnist_test_images(sample):
    x, t = sample
    path = shipped_model_path()
    assert 1_500_000 < path.stat().st_size < 2_000_000  # float32 SimpleConvNet, ~1.7 MB
    model, _ = load_model(path)
    assert type(model).__name__ == "SimpleConvNet" and model.dtype == np.float32
    assert model.accuracy(x, t) >= 0.98  # 0.99+ on the full test set (benchmarks/RESULTS.md)


# -- the API ------------------------------------------------------------------------------


def test_health_and_models(client):
    assert client.get("/api/health").json()["status"] == "ok"
    info = client.get("/api/models").json()
    assert info["default"] == "simple-cnn"
    assert [m["id"] for m in info["models"]] == ["simple-cnn"]
    assert info["models"][0]["class"] == "SimpleConvNet"
    assert "sample" in info["test_set"]


def test_predict_png_and_jpeg_give_the_label(client, sample):
    x, t = sample
    right = 0
    for i in range(10):
        r = client.post("/api/predict", content=png(x[i, 0]), headers={"content-type": "image/png"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"model", "class", "probabilities"}
        assert body["model"] == "simple-cnn" and len(body["probabilities"]) == 10
        assert abs(sum(body["probabilities"]) - 1) < 1e-4
        assert "infer;dur=" in r.headers["server-timing"]
        right += body["class"] == t[i]
    assert right >= 9
    # a dark digit on light paper, as a phone photographs it, in JPEG
    buf = io.BytesIO()
    paper = Image.fromarray(((1 - x[0, 0]) * 255).astype(np.uint8)).resize((112, 112))
    paper.convert("RGB").save(buf, "JPEG", quality=90)
    r = client.post("/api/predict", content=buf.getvalue(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["class"] == t[0]


def test_predict_json_pixels_as_the_model_does(client, sample):
    x, _ = sample
    r = client.post("/api/predict?model=simple-cnn", json={"pixels": x[3, 0].tolist()})
    assert r.status_code == 200, r.text
    model, _ = load_model(shipped_model_path())
    p = softmax(model.predict(x[3:4]).astype(np.float64))[0]
    assert r.json()["class"] == int(p.argmax())
    np.testing.assert_allclose(r.json()["probabilities"], p, atol=1e-5)


def test_layers_show_every_layer_the_centred_input_and_the_filters(client, sample):
    x, _ = sample
    image = png(x[5, 0])
    r = client.post("/api/predict?layers=1", content=image, headers={"content-type": "image/png"})
    assert r.status_code == 200
    assert len(r.content) < 300_000  # compact enough to redraw while a digit is drawn
    body = r.json()
    shapes = [layer["shape"] for layer in body["layers"]]
    assert shapes == [[30, 24, 24], [30, 24, 24], [30, 12, 12], [100], [100], [10]]
    assert [layer["name"] for layer in body["layers"]][:3] == ["Convolution", "Relu", "Pooling"]
    assert (body["input"]["min"], body["input"]["max"]) == (0.0, 1.0)  # the pixel scale
    for array in [body["filters"], *body["layers"]]:  # each spans its own range
        values = decode(array)
        assert array["min"] < array["max"] and values.min() == 0 and values.max() == 255
    assert body["filters"]["shape"] == [30, 1, 5, 5]
    # the input is what `scratchdl predict` makes of the same image
    expected = prepare_image(io.BytesIO(image))[0, 0]
    assert np.abs(decode(body["input"]) / 255 - expected).max() <= 0.5 / 255 + 1e-6
    # the scores are the last layer's output
    scores = decode(body["layers"][-1])
    assert int(scores.argmax()) == body["class"]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GOOD = b'{"pixels": ' + json.dumps([[0.0] * 28] * 28).encode() + b"}"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "image/png"),
        (b"not an image at all", "image/png"),
        (PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR", "image/png"),  # truncated header
        (b"", "application/json"),
        (b"{", "application/json"),
        (b"\xff\xfe\x00", "application/json"),  # not UTF-8
        (b"[]", "application/json"),
        (b'{"pixels": 5}', "application/json"),
        (b'{"pixels": [[0.5]]}', "application/json"),
        (json.dumps({"pixels": [[0.0] * 28] * 27}).encode(), "application/json"),
        (json.dumps({"pixels": [[0.0] * 27] + [[0.0] * 28] * 27}).encode(), "application/json"),
        (GOOD.replace(b"0.0", b"NaN", 1), "application/json"),
        (GOOD.replace(b"0.0", b"Infinity", 1), "application/json"),
        (GOOD.replace(b"0.0", b"1.5", 1), "application/json"),
        (GOOD.replace(b"0.0", b"-0.1", 1), "application/json"),
        (GOOD.replace(b"0.0", b'"0.5"', 1), "application/json"),
        (GOOD.replace(b"0.0", b"true", 1), "application/json"),
        (GOOD.replace(b"0.0", b"1e999", 1), "application/json"),
        (GOOD.replace(b"0.0", b"1" + b"0" * 400, 1), "application/json"),  # no float holds it
        (GOOD.replace(b"0.0", b"-" + b"9" * 400, 1), "application/json"),
        (GOOD.replace(b"0.0", b"9" * 5000, 1), "application/json"),  # more digits than int()'s
        (GOOD[:-1] + b', "extra": 1}', "application/json"),
        (b"[" * 50_000, "application/json"),  # deeper than the parser goes
    ],
)
def test_malformed_bodies_get_a_clear_400(client, body, content_type):
    r = client.post("/api/predict", content=body, headers={"content-type": content_type})
    assert_error(r, 400)


def test_truncated_and_blank_images_get_400(client, sample):
    x, _ = sample
    image = png(x[0, 0])
    message = assert_error(
        client.post("/api/predict", content=image[: len(image) // 2], headers=PNG), 400
    )
    assert "uploaded image" in message and "0x" not in message  # no object address
    blank = png(np.zeros((28, 28)))
    assert "blank" in assert_error(client.post("/api/predict", content=blank, headers=PNG), 400)


def test_bodies_over_the_cap_get_413_while_they_stream(client):
    big = b"\0" * (MAX_BODY_BYTES + 1)
    assert_error(client.post("/api/predict", content=big, headers=PNG), 413)

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"\0" * 65536

    assert_error(client.post("/api/predict", content=chunks(), headers=PNG), 413)


def png_claiming(width: int, height: int, idat: bytes = b"") -> bytes:
    """A grayscale PNG whose header says width x height, with the IDAT given."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_image_bombs_are_refused_from_the_header(client):
    start = time.perf_counter()
    assert_error(
        client.post("/api/predict", content=png_claiming(100_000, 100_000), headers=PNG), 413
    )
    # 25 MP of zeros compresses to 25 kB: refused before decoding, not after
    side = 5000
    bomb = png_claiming(side, side, zlib.compress(b"\0" * (side * (side + 1)), 9))
    assert len(bomb) < 100_000
    message = assert_error(client.post("/api/predict", content=bomb, headers=PNG), 413)
    assert "25,000,000 pixels" in message
    assert time.perf_counter() - start < 5


def test_models_are_chosen_by_id_never_by_path(client):
    for model_id in ("nope", "../../etc/passwd", "/etc/passwd", str(shipped_model_path())):
        r = client.post(f"/api/predict?model={model_id}", json={"pixels": [[0.0] * 28] * 28})
        assert "simple-cnn" in assert_error(r, 404)  # the message lists the ids
    assert_error(client.post("/api/predict?model=" + "x" * 500, content=b"x", headers=PNG), 400)
    assert_error(client.get("/api/testset?model=nope"), 404)


def test_queries_are_checked(client):
    assert_error(client.post("/api/predict?layers=maybe", content=b"x", headers=PNG), 400)
    assert_error(client.get("/api/testset?count=0"), 400)
    assert_error(client.get("/api/testset?count=abc"), 400)
    assert_error(client.get("/api/nowhere"), 404)
    assert_error(client.get("/api/predict"), 405)


def test_the_test_set_and_its_mistakes(client):
    body = client.get("/api/testset?count=12&seed=3").json()
    assert body["total"] == 1000 and body["accuracy"] >= 0.98
    assert len(body["images"]) == 12
    assert all(len(base64.b64decode(item["pixels"])) == 784 for item in body["images"])
    wrong = client.get("/api/testset?count=100&mistakes=1").json()["images"]
    assert 0 < len(wrong) == body["errors"]
    assert all(item["label"] != item["predicted"] for item in wrong)


def test_the_page_and_api_docs_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="pad"' in page.text and 'id="prediction"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/", "/docs", "/static/app.js", "/static/style.css", "/static/docs.js"):
        text = client.get(path).text
        assert "http://" not in text.replace("http://127.0.0.1:8000", "") and "https://" not in text
    spec = client.get("/openapi.json").json()
    assert {"/api/health", "/api/models", "/api/predict", "/api/runs"} <= set(spec["paths"])
    predict = spec["paths"]["/api/predict"]["post"]
    assert "image/png" in predict["requestBody"]["content"]
    assert {"400", "413"} <= set(predict["responses"]) and "422" not in predict["responses"]


# -- the pool -----------------------------------------------------------------------------


def test_a_full_pool_answers_503_instead_of_queueing_forever():
    pool = Pool(workers=1, queue=1)
    release = threading.Event()

    async def crowd():
        first = asyncio.ensure_future(pool.run(release.wait))
        second = asyncio.ensure_future(pool.run(release.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(ClientError) as refused:
            await pool.run(release.wait)
        release.set()
        await asyncio.gather(first, second)
        return refused.value.status

    try:
        assert asyncio.run(crowd()) == 503
        assert pool.admitted == 0
    finally:
        pool.close()


# -- the command line ---------------------------------------------------------------------


def test_host_warning_only_off_loopback():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert host_warning(host) is None
    warning = host_warning("0.0.0.0")
    assert warning.startswith("warning:") and "127.0.0.1" in warning


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "--port", "70000"], "--port"),
        (["serve", "--port", "x"], "--port"),
        (["serve", "--model", "missing.safetensors", "--port", "0"], "missing.safetensors"),
    ],
)
def test_serve_bad_arguments_exit_2_with_one_line(capsys, argv, expected):
    assert cli.main(argv) == 2
    assert expected in one_error_line(capsys)


def test_serve_on_a_port_in_use_exits_2_with_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
    err = one_error_line(capsys)
    assert f"127.0.0.1:{port}" in err and "--port" in err


def test_more_models_get_ids_of_their_own_and_an_mlp_shows_its_layers(tmp_path, sample):
    from scratchdl import TwoLayerNet
    from scratchdl.files import save

    paths = []
    for run in ("a", "b"):  # two runs' model.safetensors: the same file name
        (tmp_path / run).mkdir()
        paths.append(tmp_path / run / "model.safetensors")
        save(TwoLayerNet(784, 20, 10, rng=0), paths[-1])
    models = Models(paths)
    assert list(models.entries) == ["simple-cnn", "model", "model-2"]
    x, _ = sample
    with make_client(tmp_path, models) as c:
        ids = [m["id"] for m in c.get("/api/models").json()["models"]]
        assert ids == ["simple-cnn", "model", "model-2"]
        r = c.post("/api/predict?model=model-2&layers=1", json={"pixels": x[0, 0].tolist()})
        body = r.json()
        assert body["model"] == "model-2" and body["filters"] is None
        assert [layer["shape"] for layer in body["layers"]] == [[20], [20], [10]]
    save(TwoLayerNet(100, 20, 10, rng=0), tmp_path / "small.safetensors")
    with pytest.raises(ValueError, match="28x28"):
        Models([tmp_path / "small.safetensors"])
    save(TwoLayerNet(784, 20, 5, rng=0), tmp_path / "five.safetensors")
    with pytest.raises(ValueError, match="5 outputs"):
        Models([tmp_path / "five.safetensors"])
