"""Damaged and foreign safetensors files: truncated, corrupt, crafted headers, and random
mutations all raise ModelFileError naming the file, before the safetensors library sees them."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchdl.files import ModelFileError, load, load_tensors, save
from scratchdl.models import Sequential, TwoLayerNet
from tests.conftest import MUTATION, expect_error, header_end, mutate


def _raw_file(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def test_truncated_files_are_refused(two_layer_file, tmp_path):
    _, raw, _ = two_layer_file
    end = header_end(raw)
    for cut in (0, 3, 7, 8, 20, end - 1, end, end + 5, len(raw) - 1):
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(raw[:cut])
        expect_error(lambda p=path: load(p), path, "truncated")


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda raw: raw[:8] + b"[" + raw[9:], ["header", "json object"]),
        (lambda raw: raw[:8] + b"{" + b"\x00" * 10 + raw[19:], ["header", "not valid json"]),
        (lambda raw: raw[:8] + b"\xff\xfe" + raw[10:], ["header", "utf-8"]),
        (lambda raw: struct.pack("<Q", len(raw)) + raw[8:], ["truncated", "header length"]),
        (lambda raw: struct.pack("<Q", 2**62) + raw[8:], ["header length", "more than"]),
        (lambda raw: struct.pack("<Q", 2**64 - 1) + raw[8:], ["header length", "more than"]),
        (lambda raw: raw + b"\x00" * 8, ["tensors take", "bytes of data"]),
        (lambda raw: b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, ["not a safetensors file"]),
    ],
    ids=[
        "not_an_object",
        "bad_json",
        "not_utf8",
        "length_past_end",
        "huge",
        "u64max",
        "trailing",
        "png",
    ],
)
def test_corrupt_files_are_refused(two_layer_file, tmp_path, damage, words):
    _, raw, _ = two_layer_file
    path = tmp_path / "bad.safetensors"
    path.write_bytes(damage(raw))
    expect_error(lambda: load(path), path, *words)
    expect_error(lambda: load_tensors(path), path)


@pytest.mark.parametrize(
    "header, data, words",
    [
        (
            {"W": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
            b"\x00" * 4,
            ["unsupported dtype 'BF16'", "F32"],
        ),
        (
            {"W": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
            b"\x00" * 8,
            ["'W'", "needs 12 bytes"],
        ),
        (
            {"W": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 4 * 2**40]}},
            b"\x00" * 8,
            ["truncated", "'W'"],
        ),
        (
            {
                "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
            },
            b"\x00" * 6,
            ["'b'", "starts at byte 2", "expected 4"],
        ),
        (
            {"W": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
            b"\x00" * 4,
            ["shape", "'W'"],
        ),
        (
            {"W": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}},
            b"\x00" * 4,
            ["data_offsets", "'W'"],
        ),
        ({"W": [1, 2]}, b"", ["'W'", "dtype, shape, data_offsets"]),
        ({"__metadata__": {"format": 1}}, b"", ["__metadata__"]),
    ],
    ids=["bf16", "size_mismatch", "past_end", "overlap", "negative", "reversed", "not_obj", "meta"],
)
def test_bad_headers_are_refused_before_the_library_sees_them(tmp_path, header, data, words):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_raw_file(header, data))
    expect_error(lambda: load_tensors(path), path, *words)


def test_duplicate_header_keys_are_refused(tmp_path):
    entry = '{"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}'
    text = f'{{"a": {entry}, "a": {entry}}}'.encode()
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\x00")
    expect_error(lambda: load_tensors(path), path, "duplicate keys ['a']")


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory):
    model = TwoLayerNet(3, 2, 2, weight_init_std=0.5, rng=0)
    folder = tmp_path_factory.mktemp("fuzz")
    save(model, folder / "small.safetensors")
    return folder, (folder / "small.safetensors").read_bytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3), header_only=st.booleans())
def test_mutated_files_load_or_raise_model_file_error(small_model_file, mutations, header_only):
    folder, raw = small_model_file
    if header_only:  # mutate the JSON header and keep its length field right: deeper checks
        end = header_end(raw)
        header = mutate(bytearray(raw[8:end]), mutations)
        data = struct.pack("<Q", len(header)) + header + raw[end:]
    else:
        data = mutate(bytearray(raw), mutations)
    path = folder / "mutated.safetensors"
    path.write_bytes(bytes(data))
    try:
        model = load(path)
    except ModelFileError as e:
        assert str(path) in str(e)
        return
    assert isinstance(model, Sequential)
    K = model.output_size
    assert model.predict(np.ones((2, model.input_shape[0]))).shape == (2, K)
