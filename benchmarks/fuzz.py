"""Fuzz the file readers with mutated files: IDX, model files, checkpoints, the book's pickles.

Not a test: 10 000 cases per format take about 70 s on 2 cores. Every case starts from a
valid file and damages it (bit flips, truncation, insertion, deletion, splicing, random bytes,
IDX header field edits, structured edits of the safetensors JSON header and its metadata,
pickle opcode edits, pickles that carry ``os.system`` / ``subprocess`` / ``eval`` / ``open``
payloads). Cases are derived from ``--seed`` and their number alone, so any one can be replayed.

Each case runs in a worker process whose address space is capped (``RLIMIT_AS``, ``--mem-mb``),
with warnings turned into errors; the parent kills a worker that has not answered within
``--timeout`` seconds. Every case ends in one of these:

  loaded         the reader returned, and what it returned works: a model predicts, an import
                 or a resumed run trains one more epoch
  clear error    one of the documented exceptions, its message naming the file (CLEAR below):
                   idx          ValueError from read_idx (ChecksumError is one too)
                   model        files.ModelFileError (a ValueError) from files.load
                   checkpoint   ModelFileError or ValueError from Trainer.resume
                   book-pickle  ModelFileError from files.import_book_params
  crash          anything else: another exception (MemoryError under the cap is a giant
                 allocation), a warning, a documented exception whose message does not name the
                 file, a refused file that changed the model or trainer, a worker that died
  hang           no answer within --timeout seconds
  code executed  the sentinel file that the payloads would create appeared
  harness error  making the case failed: a bug of this script, not of the library

Before the book pickles are fuzzed, every payload is unpickled once with plain ``pickle`` and
must create the sentinel: so the "code executed" column is known to be able to fire.

Counts go to stdout as a Markdown table and to ``benchmarks/results/fuzz.json``; the inputs of
failed cases are saved beside it, in ``fuzz-failures/``, for replaying.

    python benchmarks/fuzz.py                          # 10 000 cases per format
    python benchmarks/fuzz.py --cases 500 --formats idx book-pickle
    python benchmarks/fuzz.py --replay model:1234      # one case in this process, traceback
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import json
import multiprocessing as mp
import os
import pickle
import pickletools
import platform
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from datetime import datetime, timezone
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np
from accuracy import machine  # benchmarks/accuracy.py: one description of the machine

from scratchdl import datasets, files
from scratchdl.files import ModelFileError
from scratchdl.files.safetensors_file import SAFETENSORS_DTYPES
from scratchdl.models import DeepConvNet, MultiLayerNet, SimpleConvNet, TwoLayerNet
from scratchdl.trainer import Trainer, TrainingDiverged

RESULTS = Path(__file__).parent / "results"
OUTCOMES = ("loaded", "clear_error", "crash", "hang", "code_executed", "harness_error")
CLEAR = {  # the documented exceptions of each reader (see the module docstring)
    "idx": (ValueError,),
    "model": (ModelFileError,),
    "checkpoint": (ValueError,),  # ModelFileError, or ValueError for another run's checkpoint
    "book-pickle": (ModelFileError,),
}
KEPT_FAILURES = 25  # failures described in the JSON per format (all inputs are saved)

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
INTERESTING_U32 = (0, 1, 2, 255, 256, 2**16, 2**31 - 1, 2**31, 2**32 - 1)
INTERESTING_U64 = (0, 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1)
INTERESTING_INTS = (0, -1, 1, 2, 3, 10**12, 2**31, 2**63, -(2**63), 2**64)
INTERESTING_STRS = (
    *("", "relu", "sigmoid", "tanh", "gelu", "he", "W1", "b1", "x" * 10_000),
    *("float16", "float32", "float64", "float128", "int8", "bool", "complex64", "object"),
)


def pick(rng: np.random.Generator, seq):
    """One element of ``seq`` as it is (``rng.choice`` would turn it into a numpy scalar)."""
    return seq[int(rng.integers(len(seq)))]


def _pos(rng: np.random.Generator, n: int, head: int) -> int:
    """A position in [0, n): half of the time within the first ``head`` (the header)."""
    if n <= 0:
        return 0
    if head and rng.random() < 0.5:
        return int(rng.integers(min(n, head)))
    return int(rng.integers(n))


# --- byte-level mutations, for every format ---------------------------------------------------


def _flip(b, rng, head, others):
    for _ in range(int(rng.integers(1, 9))):
        if b:
            b[_pos(rng, len(b), head)] ^= 1 << int(rng.integers(8))
    return b


def _set_bytes(b, rng, head, others):
    for _ in range(int(rng.integers(1, 5))):
        if b:
            value = pick(rng, INTERESTING_BYTES) if rng.random() < 0.6 else int(rng.integers(256))
            b[_pos(rng, len(b), head)] = value
    return b


def _truncate(b, rng, head, others):
    del b[_pos(rng, len(b) + 1, head) :]
    return b


def _insert(b, rng, head, others):
    at = _pos(rng, len(b) + 1, head)
    b[at:at] = rng.bytes(int(rng.integers(1, 33)))
    return b


def _delete(b, rng, head, others):
    at = _pos(rng, len(b), head)
    del b[at : at + int(rng.integers(1, 65))]
    return b


def _duplicate(b, rng, head, others):
    at, to = _pos(rng, len(b), head), _pos(rng, len(b) + 1, head)
    b[to:to] = b[at : at + int(rng.integers(1, 65))]
    return b


def _splice(b, rng, head, others):
    other = pick(rng, others) if others else bytes(b)
    return bytearray(b[: _pos(rng, len(b) + 1, 0)] + other[_pos(rng, len(other) + 1, 0) :])


def _random_bytes(b, rng, head, others):
    return bytearray(rng.bytes(int(rng.integers(0, 257))))


BYTE_OPS = {
    "flip": _flip,
    "set": _set_bytes,
    "truncate": _truncate,
    "insert": _insert,
    "delete": _delete,
    "duplicate": _duplicate,
    "splice": _splice,
    "random": _random_bytes,
}
BYTE_OP_DRAW = (*BYTE_OPS, "flip", "set", "truncate")  # random files are rarer than edits


def mutate_bytes(data: bytes, rng, *, head: int = 64, others=()) -> tuple[bytes, str]:
    """Apply one to three byte-level mutations; return the bytes and their names."""
    b, names = bytearray(data), []
    for _ in range(int(rng.integers(1, 4))):
        name = pick(rng, BYTE_OP_DRAW)
        b = BYTE_OPS[name](b, rng, head, others)
        names.append(name)
    return bytes(b), "+".join(names)


# --- structured JSON mutations (safetensors headers, model config, checkpoint metadata) -------

DELETE = object()


def _nodes(obj, path=()):
    yield path, obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _nodes(value, (*path, i))


def _new_value(value, rng):
    """A replacement for one JSON value: near misses of its own type, or another type."""
    if isinstance(value, bool):
        return pick(rng, (not value, 0, 1, "true", None))
    if isinstance(value, int):
        near = (value - 1, value + 1, 2 * value, -value, value + 0.5, str(value), [value])
        return pick(rng, (*near, *INTERESTING_INTS))
    if isinstance(value, float):
        return pick(rng, (0.0, -value, 1e308, float("nan"), float("inf"), 5e-324, 1, str(value)))
    if isinstance(value, str):
        return pick(rng, (*INTERESTING_STRS, value + "x", value.upper(), 0, None, [value]))
    if isinstance(value, list):
        last = value[-1] if value else 1
        return pick(rng, (value + [last], value[:-1], [], value[::-1], [value], value * 100, "x"))
    if isinstance(value, dict):
        dropped = dict(list(value.items())[:-1])
        return pick(rng, ({**value, "depth": 3}, dropped, {}, None, [], "x"))
    return pick(rng, (0, "", {}, [], False))


def mutate_json(obj, rng):
    """Replace (or delete) one randomly chosen value anywhere in a JSON document."""
    obj = copy.deepcopy(obj)
    path, value = pick(rng, list(_nodes(obj)))
    new = DELETE if path and rng.random() < 0.15 else _new_value(value, rng)
    if not path:
        return {} if new is DELETE else new
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    if new is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return obj


BAD_JSON_TEXTS = (
    "",
    "{",
    "[]",
    "null",
    "NaN",
    '{"a": 1, "a": 2}',
    "[" * 100_000 + "]" * 100_000,
    '{"x": ' * 5000 + "1" + "}" * 5000,
    "1" * 5000,
    '{"hidden_size": 1e999}',
    "\ud800",
)


def mutate_json_text(text: str, rng) -> str:
    """A JSON string edited structurally (most often), textually, or replaced by bad JSON."""
    r = rng.random()
    if r < 0.1:
        return pick(rng, BAD_JSON_TEXTS)
    if r < 0.25:
        data, _ = mutate_bytes(text.encode(), rng, head=0)
        return data.decode("utf-8", "replace")
    try:
        return json.dumps(mutate_json(json.loads(text), rng))
    except (ValueError, RecursionError):  # not JSON (a version string), or nested too deep
        return pick(rng, (text + "x", "", "-1", "1e9", str(10**30), "abc"))


# --- IDX ----------------------------------------------------------------------------------------


def idx_bytes(x: np.ndarray) -> bytes:
    """IDX bytes of ``x``: header (zeros, dtype code, rank, big-endian dims), big-endian data."""
    code = datasets.IDX_CODES[x.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, x.ndim]) + b"".join(struct.pack(">I", d) for d in x.shape)
    return header + x.astype(x.dtype.newbyteorder(">")).tobytes()


class IdxFormat:
    name, suffix = "idx", ".idx"

    def __init__(self, workdir: Path) -> None:
        rng = np.random.default_rng(0)
        self.arrays = [
            rng.integers(0, 256, (3, 6, 6), dtype=np.uint8),  # images
            rng.integers(0, 10, 7, dtype=np.uint8),  # labels
            rng.integers(-100, 100, (2, 2, 2, 2), dtype=np.int8),
            rng.integers(-1000, 1000, (2, 3), dtype=np.int16),
            rng.integers(-(10**6), 10**6, 5, dtype=np.int32),
            rng.standard_normal((4, 2)).astype(np.float32),
            rng.standard_normal(3),
            np.zeros((0, 5), dtype=np.uint8),
        ]
        self.bases = [idx_bytes(x) for x in self.arrays]

    def _header_edit(self, x: np.ndarray, rng) -> tuple[bytearray, str]:
        kind = pick(rng, ("magic", "dtype", "ndim", "dim", "dim", "reshape", "retype"))
        if kind == "reshape":  # consistent: same number of values, other dimensions
            dims = [x.size] if rng.random() < 0.5 else list(rng.permutation(x.shape))
            return bytearray(idx_bytes(x.reshape([int(d) for d in dims]))), kind
        if kind == "retype":  # consistent: the same bytes read as another dtype
            dtype = pick(rng, list(datasets.IDX_DTYPES.values()))
            n = x.nbytes // dtype.itemsize
            raw = x.tobytes()[: n * dtype.itemsize]
            code = datasets.IDX_CODES[dtype.newbyteorder("=")]
            return bytearray(bytes([0, 0, code, 1]) + struct.pack(">I", n) + raw), kind
        b = bytearray(idx_bytes(x))
        if kind == "magic":
            b[int(rng.integers(2))] = int(rng.integers(1, 256))
        elif kind == "dtype":
            b[2] = pick(rng, (*datasets.IDX_DTYPES, int(rng.integers(256))))
        elif kind == "ndim":
            b[3] = pick(rng, (0, 1, 2, 3, 4, 5, 255, int(rng.integers(256))))
        else:
            i = int(rng.integers(x.ndim))
            old = x.shape[i]
            new = pick(rng, (*INTERESTING_U32, old + 1, max(old - 1, 0), int(rng.integers(2**32))))
            b[4 + 4 * i : 8 + 4 * i] = new.to_bytes(4, "big")
        return b, kind

    def make(self, rng, sentinel: Path) -> tuple[bytes, str]:
        x = pick(rng, self.arrays)
        r = rng.random()
        if r < 0.45:
            data, label = self._header_edit(x, rng)
            if rng.random() < 0.3:
                data, more = mutate_bytes(bytes(data), rng, head=24, others=self.bases)
                label += "+" + more
        else:
            data, label = mutate_bytes(idx_bytes(x), rng, head=24, others=self.bases)
        data = bytes(data)
        r = rng.random()
        if r < 0.2:
            return gzip.compress(data, mtime=0), f"gzip({label})"
        if r < 0.3:  # a damaged gzip of a valid file
            data, label = mutate_bytes(gzip.compress(idx_bytes(x), mtime=0), rng, head=16)
            return data, f"gz:{label}"
        return data, label

    def load(self, path: Path) -> None:
        x = datasets.read_idx(path)
        assert isinstance(x, np.ndarray) and x.dtype.isnative, x

    def changed(self) -> str:
        return ""


# --- safetensors model files and checkpoints ----------------------------------------------------


def st_parse(raw: bytes) -> dict:
    """Split a valid safetensors file into metadata, entries, each tensor's bytes, the data."""
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    meta = header.pop("__metadata__")
    blobs = {k: data[e["data_offsets"][0] : e["data_offsets"][1]] for k, e in header.items()}
    return {"meta": meta, "entries": header, "blobs": blobs, "data": data}


def st_build(st: dict, rng, relayout: bool) -> bytes:
    """Write a safetensors file from ``st``; ``relayout`` puts the tensors' bytes end to end."""
    header, data = {}, bytearray()
    if st["meta"] is not DELETE:
        header["__metadata__"] = st["meta"]
    for name, entry in st["entries"].items():
        if relayout and isinstance(entry, dict) and name in st["blobs"]:
            blob = st["blobs"][name]
            entry = {**entry, "data_offsets": [len(data), len(data) + len(blob)]}
            data += blob
        header[name] = entry
    if not relayout:
        data = bytearray(st["data"])
    if st.get("top") is not None:
        header = st["top"]
    text = json.dumps(header, separators=pick(rng, ((",", ":"), (", ", ": "))))
    raw = text.encode("utf-8", "surrogatepass")
    raw += b" " * (-len(raw) % 8 if rng.random() < 0.5 else 0)  # safetensors pads to 8
    n = len(raw) if rng.random() < 0.92 else pick(rng, (*INTERESTING_U64, len(raw) + 1))
    return struct.pack("<Q", n) + raw + bytes(data)


SAFETENSORS_DTYPE = {name: np.dtype(dt) for name, dt in SAFETENSORS_DTYPES.items()}
ST_DTYPES = ("F16", "F32", "F64", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL")
ST_BAD_DTYPES = ("BF16", "F8_E4M3", "f32", "", 7, None, ["F32"], "C64")
NUMPY_OF = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I32": np.int32}
NUMPY_OF |= {"U8": np.uint8, "BOOL": np.bool_, "I64": np.int64}


def _st_edit(st: dict, rng) -> tuple[str, bool]:
    """One structured edit of a parsed file; return its name and whether the layout must be
    redone (the edit changed a tensor's bytes consistently with its entry)."""
    names = list(st["entries"])
    name = pick(rng, names) if names else "W1"
    entry = st["entries"].get(name)
    kind = pick(
        rng,
        (
            *("dtype", "convert", "shape", "reshape", "offsets", "entry", "drop", "extra"),
            *("rename", "swap", "order", "meta", "meta", "meta", "meta_whole", "top"),
            *("config", "config", "config", "config"),
        ),
    )
    if kind in ("dtype", "convert", "shape", "reshape", "offsets", "entry", "swap", "rename"):
        if not isinstance(entry, dict):
            return "meta", False
    if kind == "dtype":
        entry["dtype"] = pick(rng, (*ST_DTYPES, *ST_BAD_DTYPES))
    elif kind == "convert":  # consistent: the values converted to another dtype
        old = np.frombuffer(st["blobs"][name], dtype=SAFETENSORS_DTYPE[entry["dtype"]])
        new = pick(rng, list(NUMPY_OF))
        st["blobs"][name] = old.astype(SAFETENSORS_DTYPE.get(new, NUMPY_OF[new])).tobytes()
        entry["dtype"] = new
        return kind, True
    elif kind == "shape":
        entry["shape"] = mutate_json(entry["shape"], rng)
    elif kind == "reshape":  # consistent: the same number of values in another shape
        size = int(np.prod(entry["shape"]))
        entry["shape"] = pick(rng, ([size], entry["shape"][::-1], [1, *entry["shape"]], [size, 1]))
    elif kind == "offsets":
        begin, end = entry["data_offsets"]
        entry["data_offsets"] = pick(
            rng,
            (
                *([end, begin], [begin, end + 1], [begin - 1, end], [0, 2**64], [-1, end]),
                *([begin, end, end], f"{begin},{end}", [begin + 0.5, end], None, [begin]),
            ),
        )
    elif kind == "entry":
        st["entries"][name] = mutate_json(entry, rng)
    elif kind == "drop":
        st["entries"].pop(name, None)
        st["blobs"].pop(name, None)
        return kind, True
    elif kind == "extra":
        extra = pick(rng, ("W99", "b99", "running_mean9", "gamma1", "optimizer/m/W9", "model/W9"))
        st["entries"][extra] = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        st["blobs"][extra] = np.ones(2, "<f4").tobytes()
        return kind, True
    elif kind == "rename":
        new = pick(rng, ("W1", "w1", "", "W1 ", "__metadata__", "b99", "W\u0661", "W" * 1000))
        st["entries"][new] = st["entries"].pop(name)
        if name in st["blobs"]:
            st["blobs"][new] = st["blobs"].pop(name)
        return kind, True
    elif kind == "swap":  # two tensors exchange their bytes (consistent when the sizes agree)
        other = pick(rng, names)
        if other in st["blobs"] and name in st["blobs"]:
            st["blobs"][name], st["blobs"][other] = st["blobs"][other], st["blobs"][name]
        return kind, True
    elif kind == "order":  # consistent: the same tensors in another order in the data
        order = [names[i] for i in rng.permutation(len(names))]
        st["entries"] = {k: st["entries"][k] for k in order}
        return kind, True
    elif kind in ("meta", "config"):
        meta = st["meta"]
        if isinstance(meta, dict) and meta:
            key = "config" if kind == "config" and "config" in meta else pick(rng, list(meta))
            r = rng.random()
            if r < 0.05:
                del meta[key]
            elif r < 0.1:
                meta[key] = pick(rng, (0, None, ["x"], {"a": "b"}))
            elif isinstance(meta[key], str):
                meta[key] = mutate_json_text(meta[key], rng)
            kind = f"meta[{key}]"
    elif kind == "meta_whole":
        st["meta"] = pick(rng, (DELETE, None, [], "x", {"a": 1}, {}))
    else:
        st["top"] = pick(rng, ([], "x", 3, None, {"a": 1}))
    return kind, False


def small_models() -> list:
    """One small model of each class, batch norm, dropout and weight decay included."""
    small_conv = {"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1}
    deep_convs = {
        f"conv_param_{i + 1}": {**small_conv, "pad": 2 if i == 3 else 1} for i in range(6)
    }
    return [
        TwoLayerNet(4, 3, 2, weight_init_std=0.5, rng=0),
        MultiLayerNet(
            5,
            [4, 3],
            2,
            weight_decay_lambda=0.1,
            use_dropout=True,
            dropout_ratio=0.2,
            use_batchnorm=True,
            rng=1,
            dtype=np.float64,
        ),  # fmt: skip
        SimpleConvNet((1, 6, 6), small_conv, hidden_size=3, output_size=2, rng=2),
        DeepConvNet((1, 4, 4), **deep_convs, hidden_size=3, output_size=2, rng=3),
    ]


class SafetensorsFormat:
    """Mutations shared by model files and checkpoints."""

    suffix = ".safetensors"
    raws: list[bytes]
    k = 0  # the base file of the latest case

    def make(self, rng, sentinel: Path) -> tuple[bytes, str]:
        i = self.k = int(rng.integers(len(self.raws)))
        raw = self.raws[i]
        r = rng.random()
        if r < 0.15:
            data, label = mutate_bytes(raw, rng, head=64, others=self.raws)
        elif r < 0.3:  # damage the JSON header only and keep its length right: deeper checks
            n = 8 + struct.unpack("<Q", raw[:8])[0]
            header, label = mutate_bytes(raw[8:n], rng, head=0)
            data, label = struct.pack("<Q", len(header)) + header + raw[n:], f"header:{label}"
        elif r < 0.35:
            n = pick(rng, (*INTERESTING_U64, struct.unpack("<Q", raw[:8])[0] + 1, len(raw)))
            data, label = struct.pack("<Q", n) + raw[8:], "length"
        else:
            st = st_parse(raw)
            labels, relayout = [], rng.random() < 0.8
            for _ in range(int(rng.integers(1, 4))):
                try:
                    label, consistent = _st_edit(st, rng)
                except (
                    TypeError,
                    KeyError,
                    ValueError,
                    IndexError,
                    AttributeError,
                    RecursionError,
                ):
                    label, consistent = "skipped", False  # an earlier edit broke what it needs
                labels.append(label)
                relayout = relayout or consistent
            data, label = st_build(st, rng, relayout), "+".join(labels)
        return data, f"base{i}:{label}"


class ModelFormat(SafetensorsFormat):
    name = "model"

    def __init__(self, workdir: Path) -> None:
        models = small_models()
        self.raws = []
        for k, model in enumerate(models):
            path = workdir / f"base{k}.safetensors"
            files.save(model, path)
            self.raws.append(path.read_bytes())

    def load(self, path: Path) -> None:
        model = files.load(path, rng=0)
        with _lenient():  # huge but finite weights may overflow: the file was still valid
            y = model.predict(np.ones((2, *model.input_shape), dtype=np.float32))
        assert y.shape == (2, model.output_size), y.shape

    def changed(self) -> str:
        return ""


@contextlib.contextmanager
def _lenient():
    """Numeric warnings ignored: for using what was read, not for reading it."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _blobs(seed: int, n: int = 60, d: int = 4, k: int = 3):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, k, n)
    x = (rng.standard_normal((k, d))[t] * 3 + rng.standard_normal((n, d))).astype(np.float32)
    return x, t


class CheckpointFormat(SafetensorsFormat):
    name = "checkpoint"

    def __init__(self, workdir: Path) -> None:
        self.x, self.t = _blobs(0)
        self.raws = []
        for k in range(len(self.SETUPS)):
            trainer = self._trainer(k)
            path = workdir / f"base{k}.safetensors"
            trainer.train()
            trainer.save_checkpoint(path)
            self.raws.append(path.read_bytes())
        self.trainer: Trainer | None = None
        self.before: str | None = None

    SETUPS = (
        (lambda: MultiLayerNet(4, [5], 3, use_dropout=True, use_batchnorm=True, rng=0), "adam"),
        (lambda: TwoLayerNet(4, 5, 3, weight_init_std=0.3, rng=1), "momentum"),
    )

    def _trainer(self, k: int) -> Trainer:
        make, optimizer = self.SETUPS[k]
        return Trainer(
            make(), self.x[:40], self.t[:40], self.x[40:], self.t[40:], epochs=1,
            mini_batch_size=16, optimizer=optimizer, verbose=False, rng=k,
        )  # fmt: skip

    def _state(self) -> str:
        tr = self.trainer
        parts = [tr.epoch, tr.history, tr.rng.bit_generator.state, tr.network.rng_states()]
        arrays = {**tr.network.state_dict(), **tr.optimizer.state_dict()}
        return repr(parts) + repr({k: v.tobytes() for k, v in sorted(arrays.items())})

    def load(self, path: Path) -> None:
        self.trainer = self._trainer(self.k)
        self.before = self._state()
        self.trainer.resume(path)
        self.trainer.epochs = self.trainer.epoch + 1  # the resumed run must train on
        try:
            with _lenient():
                self.trainer.train()
        except TrainingDiverged:  # a valid checkpoint whose run diverges is the run's business
            pass

    def changed(self) -> str:
        if self.before is not None and self._state() != self.before:
            return "the refused checkpoint changed the trainer's state"
        return ""


# --- the book's pickles -----------------------------------------------------------------------


class _Call:
    """Pickles as ``func(*args)``: the payload of a hostile pickle (never called here)."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _sentinel_payloads(sentinel: Path) -> list:
    """Objects whose unpickling creates ``sentinel``: by a shell, a process, eval, open."""
    import builtins
    import subprocess

    s = str(sentinel)
    return [
        _Call(os.system, f"touch {s}"),
        _Call(subprocess.call, ["touch", s]),
        _Call(subprocess.Popen, ["touch", s]),
        _Call(builtins.eval, f"open({s!r}, 'w')"),
        _Call(builtins.exec, f"open({s!r}, 'w').close()"),
        _Call(builtins.open, s, "w"),
        _Call(Path.touch, Path(s)),
    ]


def _payloads(sentinel: Path) -> list:
    """The sentinel payloads, and objects of classes a parameter file must not construct."""
    import collections

    return [
        *_sentinel_payloads(sentinel),
        collections.OrderedDict(W1=np.ones(2)),
        _Call(np.frombuffer, b"\x00" * 8),
        _Call(np.ndarray, (1 << 40,)),
    ]


def check_payloads_are_live(root: Path) -> int:
    """Unpickle every payload with plain ``pickle``: each must create the sentinel, or the
    "code executed" column could not fire. Returns how many were checked."""
    sentinel = root / "LIVE"
    pickles = [pickle.dumps(obj, protocol=4) for obj in _sentinel_payloads(sentinel)]
    pickles += [b"\x80\x04" + ops + b"." for ops in _payload_ops(sentinel)[:-1]]
    for data in pickles:
        pickle.loads(data)  # exactly what the readers must never do
        deadline = time.monotonic() + 10  # Popen's child touches the file a little later
        while not sentinel.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not sentinel.exists():
            raise RuntimeError(f"the payload {data[:80]!r} did not create the sentinel")
        sentinel.unlink()
    return len(pickles)


def _payload_ops(sentinel: Path) -> list[bytes]:
    """Opcode sequences, spliced into files, that would run a command or open a file."""
    cmd = f"touch {sentinel}".encode()
    s = str(sentinel).encode()

    def text(b: bytes) -> bytes:  # SHORT_BINUNICODE
        return b"\x8c" + bytes([len(b)]) + b

    return [
        b"cos\nsystem\n" + text(cmd) + b"\x85R",  # GLOBAL, arg, TUPLE1, REDUCE
        b"cposix\nsystem\n" + text(cmd) + b"\x85R",
        b"csubprocess\ncall\n(" + text(b"touch") + text(s) + b"l\x85R",  # MARK ... LIST
        b"cbuiltins\neval\n" + text(b"open(%r, 'w')" % s) + b"\x85R",
        b"cbuiltins\nopen\n" + text(s) + text(b"w") + b"\x86R",  # TUPLE2
        text(b"os") + text(b"system") + b"\x93" + text(cmd) + b"\x85R",  # STACK_GLOBAL
        b"(" + text(cmd) + b"ios\nsystem\n",  # INST (protocol 0)
        b"(cos\nsystem\n" + text(cmd) + b"o",  # OBJ
        b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n"
        + text(b"os")
        + b"\x85R"
        + text(b"system")
        + b"tR"
        + text(cmd)
        + b"\x85R",  # fmt: skip
        b"cnumpy\nndarray\n(J\x00\x00\x00\x01tR",  # numpy.ndarray((2**24,)) called directly
    ]


def _op_spans(data: bytes) -> list[tuple[int, int]]:
    ops = [pos for _, _, pos in pickletools.genops(data)]
    return list(zip(ops, [*ops[1:], len(data)], strict=True))


INT_ARG_WIDTH = {"uint1": 1, "uint2": 2, "int4": 4, "uint4": 4, "uint8": 8}
LENGTH_ARG_WIDTH = {
    **{"bytes1": 1, "unicodestring1": 1, "string1": 1},
    **{"bytes4": 4, "unicodestring4": 4, "string4": 4},
    **{"bytes8": 8, "unicodestring8": 8, "bytearray8": 8},
}
OPCODES = [bytes([ord(op.code)]) for op in pickletools.opcodes]


def mutate_pickle_ops(data: bytes, rng, sentinel: Path) -> tuple[bytes, str]:
    """Edit a pickle at the level of its opcodes: delete, duplicate, swap, replace an opcode,
    edit an integer or length argument, or splice in a payload."""
    try:
        spans = _op_spans(data)
    except Exception:  # an earlier edit left no valid opcode stream to edit
        return mutate_bytes(data, rng, head=96)
    pieces = [data[a:b] for a, b in spans]
    kind = pick(rng, ("delete", "duplicate", "swap", "opcode", "int_arg", "length", "payload"))
    i = int(rng.integers(len(pieces)))
    if kind == "delete":
        del pieces[i]
    elif kind == "duplicate":
        pieces.insert(int(rng.integers(len(pieces) + 1)), pieces[i])
    elif kind == "swap":
        j = int(rng.integers(len(pieces)))
        pieces[i], pieces[j] = pieces[j], pieces[i]
    elif kind == "opcode":
        pieces[i] = pick(rng, OPCODES) + pieces[i][1:]
    elif kind in ("int_arg", "length"):
        table = INT_ARG_WIDTH if kind == "int_arg" else LENGTH_ARG_WIDTH
        ops = list(pickletools.genops(data))
        found = [k for k, (op, _, _) in enumerate(ops) if op.arg and op.arg.name in table]
        if found:
            i = pick(rng, found)
            width = table[ops[i][0].arg.name]
            old = int.from_bytes(pieces[i][1 : 1 + width], "little")
            values = (*INTERESTING_U64, old + 1, max(old - 1, 0), int(rng.integers(2**31)))
            new = pick(rng, values) % (1 << (8 * width))
            pieces[i] = pieces[i][:1] + new.to_bytes(width, "little") + pieces[i][1 + width :]
    else:
        at = int(rng.integers(1, len(pieces)))  # after PROTO
        pieces.insert(at, pick(rng, _payload_ops(sentinel)))
    return b"".join(pieces), f"op-{kind}"


class BookPickleFormat:
    name, suffix = "book-pickle", ".pkl"

    def __init__(self, workdir: Path) -> None:
        self.models = small_models()
        self.pristine = [{k: v.copy() for k, v in m.state_dict().items()} for m in self.models]
        rng = np.random.default_rng(0)
        self.params = [
            {k: rng.standard_normal(v.shape) for k, v in m.params.items()} for m in self.models
        ]
        self.raws = [pickle.dumps(p, protocol=proto) for p in self.params for proto in (3, 4)]
        self.k = 0

    def _structured(self, params: dict, rng, sentinel: Path) -> tuple[object, str]:
        """A dict close to a valid one, pickled afresh: wrong keys, shapes, dtypes or payloads."""
        obj = dict(params)
        name = pick(rng, list(obj))
        kind = pick(
            rng,
            ("rename", "drop", "extra", "reshape", "dtype", "fortran", "scale", "payload",
             "payload", "container", "key"),
        )  # fmt: skip
        if kind == "rename":
            obj[pick(rng, ("w1", "W99", "", name + " "))] = obj.pop(name)
        elif kind == "drop":
            del obj[name]
        elif kind == "extra":
            obj["W99"] = np.ones(3)
        elif kind == "reshape":
            a = obj[name]
            obj[name] = pick(rng, (a.T, a.reshape(-1), a[..., None], a[:1], np.zeros((0, 2))))
        elif kind == "dtype":
            dtype = pick(rng, ("f2", "f4", "i4", "u1", "?", "c8", "O", "U3", [("a", "f8")]))
            obj[name] = obj[name].astype(dtype, casting="unsafe")
        elif kind == "fortran":
            obj[name] = np.asfortranarray(obj[name].T).T
        elif kind == "scale":  # non-finite or out of float32's range
            obj[name] = obj[name] * pick(rng, (np.inf, np.nan, 1e300, -1e39, 0.0))
        elif kind == "payload":
            obj[name] = pick(rng, _payloads(sentinel))
        elif kind == "container":
            return pick(rng, (list(obj.values()), tuple(obj.items()), obj[name], None, {})), kind
        else:
            obj[pick(rng, (1, None, b"W1", ("W", 1)))] = obj.pop(name)
        return obj, kind

    def make(self, rng, sentinel: Path) -> tuple[bytes, str]:
        self.k = int(rng.integers(len(self.models)))
        proto = pick(rng, (3, 4))
        raw = self.raws[2 * self.k + (proto - 3)]
        r = rng.random()
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if r < 0.25:
                data, label = mutate_bytes(raw, rng, head=96, others=self.raws)
            elif r < 0.6:
                data, label = mutate_pickle_ops(raw, rng, sentinel)
                if rng.random() < 0.3:
                    data, more = mutate_pickle_ops(data, rng, sentinel)
                    label += "+" + more
            else:
                obj, label = self._structured(self.params[self.k], rng, sentinel)
                proto = pick(rng, (0, 2, 3, 3, 4, 4, 4, 4, 5))  # numpy needs >= 3, < 5
                try:
                    data = pickle.dumps(obj, protocol=proto)
                except (pickle.PicklingError, TypeError, AttributeError):
                    proto, data = 4, pickle.dumps(obj, protocol=4)
                label = f"dict-{label}(p{proto})"
        return data, f"model{self.k}:{label}"

    def load(self, path: Path) -> None:
        model = self.models[self.k]
        model.load_state_dict(self.pristine[self.k])
        files.import_book_params(path, model)
        with _lenient():
            y = model.predict(np.ones((2, *model.input_shape)))
        assert y.shape == (2, model.output_size), y.shape

    def changed(self) -> str:
        now = self.models[self.k].state_dict()
        if any(not np.array_equal(now[k], v) for k, v in self.pristine[self.k].items()):
            return "the refused file changed the model"
        return ""


FORMATS = {
    "idx": IdxFormat,
    "model": ModelFormat,
    "checkpoint": CheckpointFormat,
    "book-pickle": BookPickleFormat,
}


# --- running cases --------------------------------------------------------------------------


def case_rng(seed: int, fmt: str, i: int) -> np.random.Generator:
    return np.random.default_rng([seed, list(FORMATS).index(fmt), i])


def run_case(fmt, name: str, seed: int, i: int, workdir: Path, sentinel: Path) -> dict:
    """Make case ``i``, load it, classify what happened."""
    try:
        data, label = fmt.make(case_rng(seed, name, i), sentinel)
    except Exception as e:  # a bug of this script, never counted against the library
        detail = f"making the case failed: {type(e).__name__}: {e}"
        return {"case": i, "outcome": "harness_error", "detail": detail, "mutation": "?"}
    path = workdir / f"case{fmt.suffix}"
    path.write_bytes(data)
    outcome, detail = "loaded", ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # one clear error and nothing else
            fmt.load(path)
    except CLEAR[name] as e:
        outcome, detail = "clear_error", type(e).__name__
        if str(path) not in str(e):
            outcome, detail = "crash", f"{type(e).__name__} not naming the file: {e}"
        elif fmt.changed():
            outcome, detail = "crash", fmt.changed()
    except BaseException as e:  # noqa: BLE001 - classifying every failure is the point
        tb = traceback.extract_tb(e.__traceback__)[-1]
        where = f"{Path(tb.filename).name}:{tb.lineno}"
        outcome, detail = "crash", f"{type(e).__name__} at {where}: {str(e)[:300]}"
    if sentinel.exists():
        sentinel.unlink()
        outcome, detail = "code_executed", f"{sentinel.name} was created"
    return {"case": i, "outcome": outcome, "detail": detail, "mutation": label}


def _worker(name: str, seed: int, workdir: str, sentinel: str, mem_mb: int, conn) -> None:
    import resource

    workdir_path, sentinel_path = Path(workdir), Path(sentinel)
    fmt = FORMATS[name](workdir_path)
    if mem_mb:
        cap = mem_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    conn.send("ready")
    while (i := conn.recv()) is not None:
        conn.send(run_case(fmt, name, seed, i, workdir_path, sentinel_path))


class Worker:
    def __init__(self, ctx, name: str, seed: int, root: Path, k: int, mem_mb: int) -> None:
        self.workdir = root / f"{name}-{k}"
        self.workdir.mkdir(exist_ok=True)
        self.sentinel = self.workdir / "SENTINEL"
        self.conn, child = ctx.Pipe()
        args = (name, seed, str(self.workdir), str(self.sentinel), mem_mb, child)
        self.process = ctx.Process(target=_worker, args=args, daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            raise RuntimeError(f"a {name} worker did not start")
        self.case: int | None = None
        self.started = 0.0

    def send(self, i: int) -> None:
        self.case, self.started = i, time.monotonic()
        self.conn.send(i)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def run_format(name: str, args, root: Path) -> dict:
    ctx = mp.get_context("spawn")
    n_workers = max(1, args.workers)
    workers = [Worker(ctx, name, args.seed, root, k, args.mem_mb) for k in range(n_workers)]
    counts: Counter = Counter()
    failures, details = [], Counter()
    todo = iter(range(args.cases))
    done, start = 0, time.monotonic()

    def record(result: dict, k: int) -> None:
        nonlocal done
        done += 1
        counts[result["outcome"]] += 1
        if result["outcome"] == "clear_error":
            details[result["detail"]] += 1
        elif result["outcome"] != "loaded":
            result["worker"] = k
            failures.append(result)
        if done % 1000 == 0:
            rate = done / (time.monotonic() - start)
            print(f"  {name}: {done}/{args.cases} ({rate:.0f}/s) {dict(counts)}", flush=True)

    for w in workers:
        if (i := next(todo, None)) is not None:
            w.send(i)
    while any(w.case is not None for w in workers):
        busy = [w for w in workers if w.case is not None]
        ready = wait([w.conn for w in busy], timeout=0.2)
        for k, w in enumerate(workers):
            if w.case is None:
                continue
            result = None
            if w.conn in ready:
                try:
                    result = w.conn.recv()
                except (EOFError, OSError):
                    w.process.join(5)
                    code = w.process.exitcode  # negative: killed by that signal
                    result = {"outcome": "crash", "detail": f"the worker died (exit {code})"}
            elif time.monotonic() - w.started > args.timeout:
                result = {"outcome": "hang", "detail": f"no answer in {args.timeout} s"}
            else:
                continue
            if result["outcome"] in ("crash", "hang") and "case" not in result:
                w.stop()
                if w.sentinel.exists():
                    w.sentinel.unlink()
                    result = {"outcome": "code_executed", "detail": "the sentinel was created"}
                result = {"case": w.case, "mutation": "?", **result}
                workers[k] = w = Worker(ctx, name, args.seed, root, k, args.mem_mb)
            record(result, k)
            w.case = None
            if (i := next(todo, None)) is not None:
                w.send(i)
    for w in workers:
        w.conn.send(None)
        w.process.join(10)
        w.stop()
    seconds = time.monotonic() - start
    _save_failures(name, args.seed, failures, root, args.out.parent / "fuzz-failures")
    return {
        "cases": args.cases,
        **{o: counts[o] for o in OUTCOMES},
        "seconds": round(seconds, 1),
        "clear_error_types": dict(details),
        "failures": failures[:KEPT_FAILURES],
    }


def _save_failures(name: str, seed: int, failures: list[dict], root: Path, out: Path) -> None:
    """Write the input of every failed case into ``out`` (each case is made again here)."""
    if not failures:
        return
    out.mkdir(parents=True, exist_ok=True)
    fmt = FORMATS[name](Path(tempfile.mkdtemp(dir=root)))
    for f in failures:
        sentinel = root / f"{name}-{f['worker']}" / "SENTINEL"
        data, label = fmt.make(case_rng(seed, name, f["case"]), sentinel)
        f["mutation"] = label
        (out / f"{name}-{seed}-{f['case']}{fmt.suffix}").write_bytes(data)


def replay(spec: str, seed: int) -> None:
    """Run one case in this process and show its traceback."""
    name, _, number = spec.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        fmt = FORMATS[name](Path(tmp))
        sentinel = Path(tmp) / "SENTINEL"
        data, label = fmt.make(case_rng(seed, name, int(number)), sentinel)
        path = Path(tmp) / f"case{fmt.suffix}"
        path.write_bytes(data)
        print(f"{name} case {number}: {label}, {len(data)} bytes")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                fmt.load(path)
            print("loaded")
        except Exception:
            traceback.print_exc()
        print(f"changed: {fmt.changed()!r}, sentinel: {sentinel.exists()}")


# --- report --------------------------------------------------------------------------------


def table(formats: dict) -> str:
    lines = [
        "| format | cases | clear errors | loaded OK | crashes | hangs | code executed | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in formats.items():
        lines.append(
            f"| {name} | {r['cases']} | {r['clear_error']} | {r['loaded']} | {r['crash']} | "
            f"{r['hang']} | {r['code_executed']} | {r['seconds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per format")
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case: a hang")
    parser.add_argument("--mem-mb", type=int, default=1024, help="address-space cap per worker")
    parser.add_argument("--out", type=Path, default=RESULTS / "fuzz.json")
    parser.add_argument("--replay", metavar="FORMAT:CASE", help="run one case here, verbosely")
    args = parser.parse_args(argv)
    if args.replay:
        replay(args.replay, args.seed)
        return 0
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # the workers inherit it: one thread each, no big thread arenas
    command = "python benchmarks/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "command": command.strip(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "seed": args.seed,
        "timeout_s": args.timeout,
        "mem_cap_mb": args.mem_mb,
        "clear_errors": {name: [c.__name__ for c in CLEAR[name]] for name in args.formats},
        "formats": {},
    }
    with tempfile.TemporaryDirectory(prefix="scratchdl-fuzz-") as tmp:
        if "book-pickle" in args.formats:
            report["payloads_checked_live"] = check_payloads_are_live(Path(tmp))
            print(f"{report['payloads_checked_live']} payloads create the sentinel under pickle")
        for name in args.formats:
            print(f"{name}: {args.cases} cases", flush=True)
            report["formats"][name] = run_format(name, args, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{report['command']}  ({report['date']}, {report['machine']})\n")
    print(table(report["formats"]))
    for name, r in report["formats"].items():
        for f in r["failures"][:5]:
            print(f"  {name} case {f['case']}: {f['outcome']}: {f['detail']} ({f['mutation']})")
    print(f"\nwrote {args.out}")
    bad = sum(r[o] for r in report["formats"].values() for o in ("crash", "hang", "code_executed"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
