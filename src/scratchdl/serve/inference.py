"""The server's models, what each layer of one sees, and the bounded pool that runs them.

Models are loaded once, at start-up, from the paths the operator named; a request picks one by
its id in ``Models``, never by a path. Inference runs on POOL_WORKERS threads, each through
its own ``twin()`` of the layers (the same weights, caches of its own: layers keep the
latest input for backward, so two threads must never share one); at most QUEUE_LIMIT more
requests wait, and the next gets 503, so a crowd of clients queues instead of filling memory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..files import load_model
from ..files.images import MNIST_SIZE
from ..functions import softmax
from ..layers import Convolution
from .runs import model_files
from .safety import ClientError

POOL_WORKERS = 2  # threads that run models; BLAS is held to one thread each (cli_serve)
QUEUE_LIMIT = 64  # requests that may wait for a worker before the next one gets 503
SHIPPED_MODEL = "simple-cnn"  # data/models/simple-cnn.safetensors, the default model
N_CLASSES = 10
LEVELS = 255  # activations travel as bytes: 0 is the layer's minimum, LEVELS its maximum
BATCH = 500  # test images per forward pass when a whole test set is classified
MAX_ID_BASE = 80  # characters of a name in a model id (the API takes ids of up to 100)
log = logging.getLogger("scratchdl.serve")


@dataclass
class ModelEntry:
    """A loaded model and how the page names it; ``path`` stays on the server."""

    id: str
    title: str
    model: object
    path: Path
    local: threading.local = field(default_factory=threading.local)  # each worker's twins
    lock: threading.Lock = field(default_factory=threading.Lock)  # one full test-set pass
    test_predictions: np.ndarray | None = None

    def layers(self) -> list:
        """This thread's own twins of the model's layers (made on first use)."""
        twins = getattr(self.local, "layers", None)
        if twins is None:
            twins = self.local.layers = [layer.twin() for layer in self.model.layers]
        return twins

    def info(self) -> dict:
        m = self.model
        return {
            "id": self.id,
            "title": self.title,
            "class": type(m).__name__,
            "parameters": int(sum(a.size for a in m.params.values())),
            "layers": [repr(layer) for layer in m.layers],
        }


def open_model(path: Path) -> tuple[object, str]:
    """load_model(path), checked to be for the page: 28x28 grayscale in, 10 classes out
    (ModelFileError or ValueError naming the file otherwise)."""
    model, title = load_model(path)
    try:  # a model for other images fails now, not on the first request
        model.check_batch(np.zeros((1, 1, MNIST_SIZE, MNIST_SIZE), dtype=model.dtype))
    except ValueError as e:
        raise ValueError(f"{path}: {e}: it is not for 28x28 grayscale images") from None
    if model.output_size != N_CLASSES:
        raise ValueError(
            f"{path}: the model has {model.output_size} outputs; the page shows digits, "
            f"so serve a model with {N_CLASSES} (trained on MNIST)"
        )
    return model, title


def slug(name: str) -> str:
    """A file or run name as part of a model id: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:MAX_ID_BASE] or "model"


def unique(base: str, taken: dict) -> str:
    """``base``, or ``base-2``, ``base-3``, ... whichever is not in ``taken``: two files of
    the same name (runs/a/model, runs/b/model) get ids of their own."""
    model_id, k = base, 1
    while model_id in taken:
        k += 1
        model_id = f"{base}-{k}"
    return model_id


def shipped_model_path() -> Path:
    """The SimpleConvNet trained by benchmarks/train_shipped_model.py, in the package."""
    return Path(
        str(resources.files("scratchdl") / "data" / "models" / f"{SHIPPED_MODEL}.safetensors")
    )


class Models:
    """The models a server offers, by id: the shipped one first, then the operator's, then
    the model of each run under ``runs`` (the MAX_RUN_MODELS newest, as ``run-NAME``),
    looked for again by ``refresh``, so that a run that ends shows up without a restart."""

    def __init__(
        self,
        paths=(),
        *,
        shipped: bool = True,
        runs: Path | None = None,
    ) -> None:
        self.entries: dict[str, ModelEntry] = {}
        if shipped:
            self.add(shipped_model_path(), SHIPPED_MODEL)
        for path in paths:
            self.add(Path(path))
        if not self.entries:
            raise ValueError("no models to serve: pass --model PATH (a model file or .pkl)")
        self.fixed = dict(self.entries)  # the shipped and the operator's: never dropped
        self.runs = runs
        # each run's model: run name -> ((real path, mtime_ns, size), its entry, or None when
        # it could not be served; a file is loaded once per state)
        self.from_runs: dict[str, tuple[tuple, ModelEntry | None]] = {}
        self.refreshing = threading.Lock()
        self.refresh()

    def add(self, path: Path, model_id: str | None = None) -> ModelEntry:
        """Load ``path`` (ModelFileError, a ValueError, if it cannot be) and give it an id."""
        model, title = open_model(path)
        base = model_id or slug(path.stem)
        entry = ModelEntry(unique(base, self.entries), title.split(": ", 1)[-1], model, path)
        entry.title = f"{entry.id}: {entry.title}"
        self.entries[entry.id] = entry
        return entry

    def refresh(self) -> None:
        """Look in the runs folder again: add the model a run wrote since, load again one
        rewritten, drop one deleted. A look stats at most MAX_RUNS folders (a millisecond or
        two) and loads only files it has not seen in this state; it reads files, so call it
        off the event loop. Readers see the old entries or the new, never a mix."""
        if self.runs is None:
            return
        with self.refreshing:  # one look at a time: the next one finds this one's models
            taken = dict(self.fixed)
            found = {}
            for name, (real, st) in model_files(self.runs).items():
                stamp = (str(real), st.st_mtime_ns, st.st_size)
                old = self.from_runs.get(name)
                if old is not None and old[0] == stamp:
                    entry = old[1]
                else:
                    entry = self.load_run_model(name, real, old[1] if old else None, taken)
                if entry is not None:
                    taken[entry.id] = entry
                found[name] = (stamp, entry)
            self.from_runs = found
            self.entries = taken

    def load_run_model(
        self, name: str, path: Path, old: ModelEntry | None, taken: dict
    ) -> ModelEntry | None:
        """The entry of run ``name``'s model file ``path`` (its old id if it had one), or
        None, logged, if it cannot be served (damaged, not for 28x28 digits)."""
        try:
            model, title = open_model(path)
        except Exception as e:  # a runs folder may hold anything; the page lists the rest
            log.warning("not offering the model of run %s: %s", name, e)
            return None
        model_id = old.id if old is not None else unique(f"run-{slug(name)}", taken)
        kind = title.rsplit(": ", 1)[-1]
        entry = ModelEntry(model_id, f"{model_id}: {kind} ({self.runs.name}/{name})", model, path)
        return entry

    def get(self, model_id: str | None) -> ModelEntry:
        """The model of ``model_id`` (None: the first), or ClientError 404 listing the ids."""
        if model_id is None:
            return next(iter(self.entries.values()))
        entry = self.entries.get(model_id)
        if entry is None:
            raise ClientError(
                404,
                f"unknown model {model_id[:80]!r}; choose one of the ids of GET /api/models: "
                f"{', '.join(self.entries)}",
            )
        return entry


def forward(entry: ModelEntry, x: np.ndarray) -> list[np.ndarray]:
    """Every layer's output for ``x``, in inference mode, through this thread's twins.
    Shape: x (N, 1, 28, 28) -> [(N, ...) per layer]; the last is the scores (N, 10)."""
    model = entry.model
    if model.input_shape is not None:  # an MLP takes rows of 784
        x = x.reshape(x.shape[0], *model.input_shape)
    x = x.astype(model.dtype, copy=False)
    outs = []
    for layer in entry.layers():
        x = layer.forward(x, train=False)
        outs.append(x)
    return outs


def to_bytes(a: np.ndarray, lo: float | None = None, hi: float | None = None) -> dict:
    """An array as LEVELS+1 gray levels in base64, with the range they span: compact enough to
    send every feature map of a layer (a few kB each) and draw it on a canvas."""
    a = np.asarray(a, dtype=np.float32)
    lo = float(a.min()) if lo is None else lo
    hi = float(a.max()) if hi is None else hi
    scale = LEVELS / (hi - lo) if hi > lo else 0.0
    q = np.clip(np.rint((a - lo) * scale), 0, LEVELS).astype(np.uint8)
    return {"shape": list(a.shape), "min": lo, "max": hi, "data": base64.b64encode(q).decode()}


def predict(entry: ModelEntry, x: np.ndarray, layers: bool) -> dict:
    """Run in a worker: the class, the 10 probabilities and, if asked, what every layer saw."""
    start = time.perf_counter()
    outs = forward(entry, x)
    p = softmax(outs[-1].astype(np.float64))[0]
    result = {
        "model": entry.id,
        "class": int(p.argmax()),
        "probabilities": [round(float(v), 6) for v in p],
    }
    if layers:
        result["input"] = to_bytes(x[0, 0], 0.0, 1.0)
        result["layers"] = [
            {"index": i, "name": type(layer).__name__, "repr": repr(layer), **to_bytes(out[0])}
            for i, (layer, out) in enumerate(zip(entry.model.layers, outs, strict=True))
        ]
        result["filters"] = first_filters(entry)
    result["server_ms"] = round((time.perf_counter() - start) * 1000, 3)
    return result


def first_filters(entry: ModelEntry) -> dict | None:
    """The first convolution's filters (FN, C, FH, FW), as gray levels; None in an MLP."""
    for layer in entry.model.layers:
        if isinstance(layer, Convolution):
            return to_bytes(layer.params["W"])
    return None


class MnistTestImages:
    """The test images the page shows: MNIST's 10 000 when found in the data folder, else
    the 1000 shipped with the package (never downloaded while serving)."""

    def __init__(self, x: np.ndarray, t: np.ndarray, source: str) -> None:
        self.x, self.t, self.source = x, t, source  # x uint8 (N, 28, 28), t (N,)

    @classmethod
    def find(cls, full: bool = True) -> MnistTestImages:
        if full:
            try:
                from ..datasets.idx import parse_idx
                from ..datasets.store import data_root, find_verified

                root, _ = data_root(None)
                names = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
                found = find_verified("mnist", root, names)
                if set(found) == set(names):
                    x, t = (parse_idx(found[n].content, name=str(found[n].path)) for n in names)
                    return cls(x, t.astype(np.int64), f"MNIST test set ({len(t)} images)")
            except (OSError, ValueError):  # missing, damaged: the sample is always there
                pass
        from ..datasets.mnist import load_mnist_sample

        _, (x, t) = load_mnist_sample(normalize=False, flatten=False)
        return cls(x[:, 0], t, f"MNIST test sample shipped with scratchdl ({len(t)} images)")

    def predictions(self, entry: ModelEntry) -> np.ndarray:
        """Run in a worker: the model's class for every image, computed once per model."""
        with entry.lock:
            if entry.test_predictions is None or len(entry.test_predictions) != len(self.t):
                ys = []
                for i in range(0, len(self.x), BATCH):
                    x = self.x[i : i + BATCH, None].astype(np.float32) / np.float32(255)
                    ys.append(forward(entry, x)[-1].argmax(axis=1))
                entry.test_predictions = np.concatenate(ys)
            return entry.test_predictions

    def sample(self, entry: ModelEntry, count: int, mistakes: bool, seed: int) -> dict:
        """Run in a worker: ``count`` random images (only misclassified ones if ``mistakes``)
        with labels and predictions, as gray levels."""
        y = self.predictions(entry)
        pool = np.flatnonzero(y != self.t) if mistakes else np.arange(len(self.t))
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(pool, size=min(count, len(pool)), replace=False))
        return {
            "model": entry.id,
            "source": self.source,
            "total": len(self.t),
            "errors": int(np.sum(y != self.t)),
            "accuracy": float(np.mean(y == self.t)),
            "images": [
                {
                    "index": int(i),
                    "label": int(self.t[i]),
                    "predicted": int(y[i]),
                    "pixels": base64.b64encode(self.x[i].tobytes()).decode(),
                }
                for i in pick
            ],
        }


class Pool:
    """POOL_WORKERS threads for the models and a waiting room of QUEUE_LIMIT requests."""

    def __init__(self, workers: int = POOL_WORKERS, queue: int = QUEUE_LIMIT) -> None:
        self.workers, self.queue = workers, queue
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="scratchdl-serve")
        self.admitted = 0  # running or waiting; changed on the event loop's thread only

    @contextlib.asynccontextmanager
    async def admit(self):
        """A place among the running and waiting requests, held for the block; ClientError 503
        when there is none. Taken once a request's body has arrived (safety.Bodies), so that
        a slow client never holds one."""
        if self.admitted >= self.workers + self.queue:
            raise ClientError(
                503,
                f"the server is busy: {self.admitted} requests are running or waiting "
                f"(at most {self.workers + self.queue}); try again in a moment",
            )
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def call(self, fn, *args):
        """``fn(*args)`` on a worker (the caller holds a place from ``admit``)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run(self, fn, *args):
        """``fn(*args)`` on a worker, once admitted."""
        async with self.admit():
            return await self.call(fn, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
