"""Hostile and malformed parameter pickles: import_book_params refuses every global but plain
arrays, crafted arrays and allocations, and files that do not fit the model, naming the file."""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import struct
import subprocess

import numpy as np
import pytest

from scratchdl.files import import_book_params
from tests.conftest import book_like_params, expect_error, pickle_file, small_convnet


class Reduce:
    """Pickles as ``func(*args)``: what an attacker's file does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Custom:
    """An arbitrary class of the test module."""


def _global_name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def test_the_payload_works_on_a_plain_unpickler(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    pickle.loads(pickle.dumps(Reduce(os.system, f"touch {sentinel}")))
    assert sentinel.exists()  # so the checks below, that it is not created, can fail


@pytest.mark.parametrize(
    "make, refused",
    [
        (lambda s: Reduce(os.system, f"touch {s}"), os.system),
        (lambda s: Reduce(subprocess.Popen, ["touch", str(s)]), subprocess.Popen),
        (lambda s: Reduce(builtins.eval, f"open({str(s)!r}, 'w')"), builtins.eval),
        (lambda s: Reduce(builtins.exec, f"open({str(s)!r}, 'w')"), builtins.exec),
        (lambda s: Reduce(builtins.__import__, "os"), builtins.__import__),
        (lambda s: collections.OrderedDict(W1=np.ones(2)), collections.OrderedDict),
        (lambda s: {"W1": Custom()}, Custom),
        (lambda s: Reduce(np.load, str(s)), np.load),
        (lambda s: Reduce(np.testing.assert_equal, 1, 1), np.testing.assert_equal),
        (lambda s: Reduce(np.frombuffer, b"\x00" * 8), np.frombuffer),
        (lambda s: {"W1": np.float64(1.0)}, np.float64(1.0).__reduce__()[0]),
    ],
    ids=[
        "os.system",
        "Popen",
        "eval",
        "exec",
        "__import__",
        "OrderedDict",
        "custom_class",
        "numpy.load",
        "numpy.testing",
        "numpy.frombuffer",
        "numpy_scalar",
    ],
)
@pytest.mark.parametrize("protocol", [0, 3, 4])
def test_hostile_pickles_are_refused_naming_the_global(tmp_path, make, refused, protocol):
    sentinel = tmp_path / "SENTINEL"
    obj = make(sentinel)
    path = pickle_file(tmp_path, obj if isinstance(obj, dict) else {"W1": obj}, protocol)
    words = [f"refused to load global {_global_name(refused)}"]
    if protocol < 3:  # old protocols use Python 2's names (__builtin__.eval) and copyreg
        words = ["refused to load global", refused.__qualname__]
        if refused is Custom:
            words[1] = "copy_reg._reconstructor"  # Python 2 spelling of copyreg
    expect_error(lambda: import_book_params(path, small_convnet()), path, *words, "could run code")
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "args, words",
    [
        ((bytearray(8), np.dtype("f8"), (2,), "C"), ["needs 16 bytes", "holds 8"]),
        ((bytearray(16), np.dtype("f8"), (2,), "K"), ["order 'K'"]),
        (("not bytes", np.dtype("f8"), (1,), "C"), ["must be bytes"]),
        ((bytearray(8), "f8", (1,), "C"), ["not a plain dtype"]),
        ((bytearray(8), np.dtype("f8"), (-1,), "C"), ["not a tuple of sizes"]),
        ((bytearray(16), np.dtype("O"), (2,), "C"), ["dtype 'O8' refused"]),
    ],
    ids=["short", "order", "str", "dtype_name", "negative", "object"],
)
def test_crafted_protocol_5_arrays_are_refused(tmp_path, args, words):
    numeric = (np._core if hasattr(np, "_core") else np.core).numeric  # numpy 2 / numpy 1
    obj = {"W1": Reduce(numeric._frombuffer, *args)}  # what protocol 5 writes for an array
    path = pickle_file(tmp_path, obj, protocol=5)
    expect_error(lambda: import_book_params(path, small_convnet()), path, *words)


@pytest.mark.parametrize(
    "obj, words",
    [
        ([np.ones(2)], ["holds a dict name -> array", "got list"]),
        ({1: np.ones(2)}, ["names must be strings", "1"]),
        ({"W1": 3.0}, ["'W1' must be a numpy array", "got float"]),
        ({"W1": [1.0, 2.0]}, ["'W1' must be a numpy array", "got list"]),
        ({"W1": np.array([1.0, None], dtype=object)}, ["dtype 'O8' refused", "object"]),
        ({"W1": np.zeros(2, dtype=[("a", "f8")])}, ["dtype 'V8' refused"]),
        ({"W1": np.array(["ab"])}, ["dtype 'U2' refused"]),
        ({"W1": np.ones(2, dtype=np.int64)}, ["'W1' has dtype int64", "floating"]),
    ],
    ids=["list", "int_key", "float", "list_value", "object", "structured", "str", "int"],
)
def test_malformed_parameter_pickles_are_refused(tmp_path, obj, words):
    path = pickle_file(tmp_path, obj)
    expect_error(lambda: import_book_params(path, small_convnet()), path, *words)


def test_parameter_pickles_with_wrong_keys_or_shapes_are_refused(tmp_path):
    model = small_convnet()
    before = {k: v.copy() for k, v in model.params.items()}
    params = book_like_params(model)
    del params["b3"]
    params["W9"] = np.ones(2)
    path = pickle_file(tmp_path, params)
    expect_error(lambda: import_book_params(path, model), path, "missing ['b3']", "['W9']")
    params = book_like_params(model)
    params["W1"] = np.ones((2, 1, 5, 5))
    path = pickle_file(tmp_path, params)
    expect_error(
        lambda: import_book_params(path, model), path, "W1 is (2, 1, 5, 5) in the file but"
    )
    for name, value in before.items():  # nothing was changed by the refused imports
        np.testing.assert_array_equal(model.params[name], value)


def test_crafted_pickles_cannot_allocate_or_run_numpy_setstate(tmp_path):
    cases = {
        # LONG_BINPUT at index 2**31 - 1: a C unpickler would grow its memo to that size
        "memo": b"\x80\x04}r\xff\xff\xff\x7f.",
        # BINBYTES8 claiming 2**62 bytes
        "claim": b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abc",
        # a frame longer than the file
        "frame": b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"}.",
        "trailing": pickle.dumps({}, protocol=4) + b"junk",
        "garbage": bytes(range(256)),
        "empty": b"",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(data)
        expect_error(lambda p=path: import_book_params(p, small_convnet()), path)
    # numpy.ndarray called directly with a huge shape: the stand-in is not callable
    path = pickle_file(tmp_path, {"W1": Reduce(np.ndarray, (1 << 40,))})
    expect_error(lambda: import_book_params(path, small_convnet()), path, "malformed")


def test_an_oversized_parameter_file_is_not_read(tmp_path, monkeypatch):
    path = pickle_file(tmp_path, book_like_params(small_convnet()))
    monkeypatch.setattr("scratchdl.files.book_pickle.MAX_PICKLE_BYTES", 100)
    expect_error(lambda: import_book_params(path, small_convnet()), path, "more than the 100")
