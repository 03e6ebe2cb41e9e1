"""Shared test helpers: the one gradient-check helper every layer test uses, the book's
weight files (found as a user finds them), small model files and parameter pickles
(test_files_*.py), and synthetic IDX data behind a loopback mirror (test_datasets_*.py)."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from scratchdl import cli
from scratchdl import datasets as ds
from scratchdl.files import ModelFileError, save
from scratchdl.files.book_weights import ENV_BOOK_WEIGHTS, find_book_weights
from scratchdl.gradient import gradient_check
from scratchdl.models import MultiLayerNet, SimpleConvNet, TwoLayerNet
from scratchdl.trainer import Trainer
from tests.browser_helpers import CHROMIUM, CHROMIUM_FLAGS

# The book's weight files: the tests find them as users do, through $SCRATCHDL_BOOK_WEIGHTS,
# which points at the shared folder beside the repository when it is there and the variable
# is unset (set here, before the test modules are read, so that module constants see it).
SHARED_BOOK_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "book-weights"
if not os.environ.get(ENV_BOOK_WEIGHTS) and SHARED_BOOK_WEIGHTS.is_dir():
    os.environ[ENV_BOOK_WEIGHTS] = str(SHARED_BOOK_WEIGHTS)


def book_weights(book_path: str) -> Path:
    """Where the book's file (e.g. "ch07/params.pkl") is, or skip the test without it."""
    path = find_book_weights().get(book_path)
    if path is None:
        pytest.skip(f"the book's {book_path} is not here (set ${ENV_BOOK_WEIGHTS})")
    return path


TOL = 1e-6  # float64 central differences agree with backprop to ~1e-9; 1e-6 leaves margin


def check_layer_gradients(layer, x, t=None, *, rng=0, tol=TOL) -> dict[str, float]:
    """Assert a layer's dx and parameter gradients equal numerical ones, in float64.

    Uses a random upstream gradient (never all ones) and checks that backward leaves
    ``dout`` and ``x`` untouched. Returns the error report.
    """
    rng = np.random.default_rng(rng)
    assert x.dtype == np.float64, "gradient checks run in float64"
    if t is None:
        out = layer.forward(x, train=True)
        dout = rng.standard_normal(out.shape)
    else:
        dout = float(rng.uniform(0.5, 2.0))
    x_before = x.copy()
    dout_before = np.copy(dout)
    # backward must not write into dout or x: run it on the very arrays, then compare
    if t is None:
        layer.forward(x, train=True)
    else:
        layer.forward(x, t)
    layer.backward(dout)
    np.testing.assert_array_equal(np.asarray(dout), dout_before, err_msg="backward changed dout")
    np.testing.assert_array_equal(x, x_before, err_msg="forward/backward changed x")
    report = gradient_check(layer, x, t, dout=dout)
    np.testing.assert_array_equal(x, x_before, err_msg="the gradient check did not restore x")
    assert set(report) == {"x", *layer.params}, report
    bad = {k: v for k, v in report.items() if not v < tol}
    assert not bad, f"{type(layer).__name__}: gradient errors above {tol}: {bad}"
    return report


def mnist_slice(flatten: bool = False):
    """The real MNIST sample shipped with the package: 2000 training and 1000 test images."""
    from scratchdl.datasets import load_mnist_sample

    return load_mnist_sample(flatten=flatten)


def held_arrays(obj) -> list[np.ndarray]:
    """The arrays an object of the library keeps in its public attributes, and those of the
    library objects it holds (a fused layer's layers, an engine and its memory), but for a
    layer's reference to its input ``x`` (only read; a stale one may overlap a newer pass's
    input, which is harmless)."""
    found: list[np.ndarray] = []
    seen: set[int] = set()

    def walk(value, name: str = "") -> None:
        if id(value) in seen or name == "x" or name.startswith("_"):
            return
        seen.add(id(value))
        if isinstance(value, np.ndarray):
            found.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, str(key))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif type(value).__module__.startswith("scratchdl") and hasattr(value, "__dict__"):
            for key, item in vars(value).items():
                walk(item, key)

    walk(obj)
    return found


# --- model files and the book's parameter pickles (test_files_*.py) ----------------------------


def expect_error(call, path, *words) -> str:
    """Assert ``call()`` raises ModelFileError whose message names ``path`` and ``words``."""
    with pytest.raises(ModelFileError) as info:
        call()
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    return message


def header_end(raw: bytes) -> int:
    """Where the JSON header of the safetensors bytes ``raw`` ends (after its u64 length)."""
    return 8 + struct.unpack("<Q", raw[:8])[0]


def multilayer_net(dtype, seed: int = 7) -> tuple[MultiLayerNet, np.ndarray]:
    """A MultiLayerNet with batch norm and dropout whose running statistics have moved (one
    training step's forward), and an input for it."""
    rng = np.random.default_rng(seed)
    model = MultiLayerNet(
        6, [5, 4], 3, use_batchnorm=True, use_dropout=True, dropout_ratio=0.3, rng=1, dtype=dtype
    )
    model.loss(rng.standard_normal((8, 6)), rng.integers(0, 3, 8), train=True)
    return model, rng.standard_normal((5, 6))


@pytest.fixture
def two_layer_file(tmp_path) -> tuple[Path, bytes, TwoLayerNet]:
    """A valid small model file: (path, its bytes, the model)."""
    model = TwoLayerNet(4, 3, 2, weight_init_std=0.5, rng=0)
    path = tmp_path / "good.safetensors"
    save(model, path)
    return path, path.read_bytes(), model


JSONISH = b'0123456789{}[]",:.-e \\FIUtrue'  # bytes that keep a header nearly JSON
MUTATION = st.tuples(  # hypothesis: one change to a file's bytes
    st.sampled_from(["flip", "truncate", "insert"]),
    st.floats(0, 1, exclude_max=True),
    st.one_of(
        st.binary(min_size=1, max_size=8),
        st.lists(st.sampled_from(JSONISH), min_size=1, max_size=4).map(bytes),
    ),
)


def mutate(data: bytearray, mutations) -> bytearray:
    """Apply MUTATIONs to ``data`` in place: flip a byte, cut the rest off, insert bytes."""
    for kind, where, payload in mutations:
        at = int(where * (len(data) + 1))
        if kind == "flip" and at < len(data):
            data[at] ^= payload[0] or 0xFF
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = payload
    return data


def pickle_file(folder: Path, obj, protocol: int = 4, name: str = "params.pkl") -> Path:
    """``obj`` pickled into ``folder/name``, as the book's parameter files are."""
    path = folder / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def small_convnet(dtype=np.float64) -> SimpleConvNet:
    """A SimpleConvNet small enough for a parameter pickle of a few hundred bytes."""
    return SimpleConvNet(
        (1, 6, 6),
        {"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1},
        hidden_size=3,
        output_size=2,
        rng=0,
        dtype=dtype,
    )


def book_like_params(model, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float64 parameters of the model's names and shapes, as the book pickles them."""
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v.shape) for k, v in model.params.items()}


# --- synthetic IDX data, a loopback mirror, no real cache or tool (test_datasets_*.py) ---------

IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D}
IDX_CODES["float64"] = 0x0E


def encode_idx(x: np.ndarray) -> bytes:
    """IDX bytes written independently of write_idx, so a shared mistake cannot hide."""
    code = IDX_CODES[x.dtype.name]
    header = struct.pack(">BBBB", 0, 0, code, x.ndim) + struct.pack(f">{x.ndim}I", *x.shape)
    return header + x.astype(x.dtype.newbyteorder(">")).tobytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_arrays(seed: int, n_train: int = 5, n_test: int = 3) -> dict[str, np.ndarray]:
    """Random MNIST-shaped arrays under MNIST's four file names."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def put(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool = False) -> list[Path]:
    """Write the arrays as IDX files into ``folder``, gzipped or raw; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fname, x in arrays.items():
        data = encode_idx(x)
        path = folder / (fname + ".gz" if gz else fname)
        path.write_bytes(gzip.compress(data) if gz else data)
        paths.append(path)
    return paths


def listing(folder: Path) -> list[str]:
    """The names in ``folder``, sorted; none if it does not exist."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def package_tools(tmp_path_factory) -> Path:
    """The tests' PATH: a folder (beside tmp_path) that holds only the fakes a test puts there."""
    return tmp_path_factory.mktemp("bin")


@pytest.fixture
def offline_data(tmp_path, monkeypatch, package_tools) -> None:
    """No test reads the real cache, runs the real npm or apt, or reaches a real mirror (a
    data set module's tests use it: ``pytestmark = pytest.mark.usefixtures("offline_data")``)."""
    monkeypatch.delenv(ds.ENV_DATA, raising=False)
    monkeypatch.delenv(ds.ENV_MIRRORS, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("no_proxy", "*")  # the loopback mirror must be reached directly
    monkeypatch.setenv("PATH", str(package_tools))  # npm, apt-get: none but the fakes
    monkeypatch.setattr(ds.download, "DEBIAN_DIR", tmp_path / "no-debian")
    for name in ds.DATASETS:
        monkeypatch.setitem(ds.MIRRORS, name, ())


@pytest.fixture
def fake_mnist(monkeypatch) -> dict[str, np.ndarray]:
    """Tiny synthetic MNIST whose sha256 replace the real ones; returns {file: array}."""
    arrays = make_arrays(0)
    monkeypatch.setitem(ds.SHA256, "mnist", {f: sha256(encode_idx(a)) for f, a in arrays.items()})
    return arrays


@pytest.fixture
def fake_fashion(monkeypatch) -> dict[str, np.ndarray]:
    """Tiny synthetic Fashion-MNIST whose sha256 replace the real ones."""
    arrays = make_arrays(1, n_train=4, n_test=2)
    hashes = {f: sha256(encode_idx(a)) for f, a in arrays.items()}
    monkeypatch.setitem(ds.SHA256, "fashion-mnist", hashes)
    return arrays


class Mirror:
    """A loopback HTTP server standing in for a data set mirror: ``files[path] = bytes`` is
    served; ``requests`` lists the paths asked for."""

    def __init__(self) -> None:
        self.url = ""  # http://127.0.0.1:PORT once the server listens
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []

    def add(self, prefix: str, arrays: dict[str, np.ndarray]) -> str:
        """Serve the arrays as gzipped IDX files under ``prefix``; return that folder's URL."""
        for fname, x in arrays.items():
            self.files[f"{prefix}{fname}.gz"] = gzip.compress(encode_idx(x))
        return self.url + prefix


@pytest.fixture
def mirror():
    """A Mirror on 127.0.0.1, stopped after the test."""
    served = Mirror()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            served.requests.append(self.path)
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield served
    httpd.shutdown()
    httpd.server_close()
    thread.join()


# a search trial in a fraction of a second: 64 images (51 to train, 13 to validate), 2 epochs
SEARCH_TINY = [
    "--quick",
    "--quiet",
    "--epochs",
    "2",
    "--set",
    "train_size=64",
    "--set",
    "batch_size=16",
    "--set",
    "hidden_size=20",
    "--set",
    "hidden_layers=2",
]


@pytest.fixture
def slice_data(monkeypatch):
    """Serve the committed MNIST slice instead of the full data set."""
    data = mnist_slice()
    monkeypatch.setattr(cli, "load_dataset", lambda name, data_dir=None: data)
    return data


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def blobs(n=300, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * 3
    t = rng.integers(0, k, n)
    x = (centres[t] + rng.standard_normal((n, d))).astype(np.float32)
    return x, t


def make_trainer(tmp_path=None, epochs=3, seed=0, **kwargs):
    x, t = blobs()
    net = MultiLayerNet(
        8, [16, 16], 3, use_dropout=True, dropout_ratio=0.2, use_batchnorm=True, rng=seed
    )
    ckpt = None if tmp_path is None else tmp_path / "ckpt.safetensors"
    return Trainer(
        net,
        x[:240],
        t[:240],
        x[240:],
        t[240:],
        epochs=epochs,
        mini_batch_size=32,
        optimizer="adam",
        optimizer_param={"lr": 0.01},
        verbose=False,
        checkpoint_path=ckpt,
        rng=seed,
        **kwargs,
    )


# the browser tests' own (test_browser.py, test_browser_train.py): where screenshots go, and
# Debian's Chromium through Playwright
@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> list[Path]:
    folders = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("SCRATCHDL_SCREENSHOTS"):
        folders.append(Path(os.environ["SCRATCHDL_SCREENSHOTS"]))
        folders[-1].mkdir(parents=True, exist_ok=True)
    return folders


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package; run "
            "scripts/test, which installs it (or: sudo apt-get install chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright for Python: pip install -e '.[test]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
