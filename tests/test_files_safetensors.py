"""The safetensors format: save_tensors / load_tensors round trips, what cannot be written, the
same tensors giving the same bytes, and the sha256 of the tensors that load_tensors checks."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from scratchdl.files import load, load_tensors, save, save_tensors
from scratchdl.files.safetensors_file import DIGEST_KEY
from scratchdl.models import MultiLayerNet
from tests.conftest import expect_error, header_end, multilayer_net

RNG = np.random.default_rng(7)


def test_tensors_round_trip_every_dtype_and_layout(tmp_path):
    tensors = {
        "f16": RNG.random((2, 3)).astype(np.float16),
        "f64_big_endian": RNG.random(4).astype(">f8"),
        "f32_transposed": RNG.random((3, 4)).astype(np.float32).T,  # not C-contiguous
        "f32_strided": RNG.random(10).astype(np.float32)[::3],
        "i64": np.arange(5, dtype=np.int64) - 2,
        "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    meta = {"a": "1", "b": json.dumps({"x": [1, 2]})}
    save_tensors(tmp_path / "t.safetensors", tensors, meta)
    got, got_meta = load_tensors(tmp_path / "t.safetensors")
    assert got_meta == meta
    assert got.keys() == tensors.keys()
    for name, array in tensors.items():
        assert got[name].dtype == array.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(got[name], array, err_msg=name)
        assert got[name].flags.writeable, name


@pytest.mark.parametrize(
    "tensors, metadata, match",
    [
        ({"W": np.array([1, None], dtype=object)}, {}, "dtype object"),
        ({"W": np.ones(2, dtype=np.complex128)}, {}, "dtype complex128"),
        ({"__metadata__": np.ones(2)}, {}, "__metadata__"),
        ({"W": np.ones(2)}, {"epoch": 3}, "metadata must be a dict of str -> str"),
    ],
)
def test_save_tensors_rejects_what_safetensors_cannot_hold(tmp_path, tensors, metadata, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        save_tensors(tmp_path / "t.safetensors", tensors, metadata)
    assert not list(tmp_path.iterdir())


def test_missing_safetensors_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    save_tensors(tmp_path / "t.safetensors", {}, {})  # writing is numpy's and ours
    with pytest.raises(ImportError, match="pip install safetensors"):
        load_tensors(tmp_path / "t.safetensors")


def test_the_same_model_gives_the_same_bytes(tmp_path):
    """The header is sorted: a checksum identifies a model, whatever the dicts' order."""
    import safetensors.numpy

    model = MultiLayerNet(4, [3], 2, use_batchnorm=True, rng=0)
    digests = set()
    for i in range(5):
        save(model, tmp_path / f"m{i}.safetensors")
        digests.add(hashlib.sha256((tmp_path / f"m{i}.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1
    tensors, metadata = load_tensors(tmp_path / "m0.safetensors")
    tensors["count"] = np.arange(3, dtype=np.int8)  # mixed widths: each still starts aligned
    save_tensors(tmp_path / "a.safetensors", tensors, metadata)
    backwards = {k: tensors[k] for k in reversed(tensors)}
    save_tensors(tmp_path / "b.safetensors", backwards, dict(reversed(metadata.items())))
    raw = (tmp_path / "a.safetensors").read_bytes()
    assert raw == (tmp_path / "b.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    assert list(header["__metadata__"]) == sorted([*metadata, DIGEST_KEY]) and (8 + n) % 8 == 0
    for name, entry in header.items():
        if name != "__metadata__":
            assert entry["data_offsets"][0] % np.dtype(tensors[name].dtype).itemsize == 0
    read = safetensors.numpy.load_file(tmp_path / "a.safetensors")  # the library reads it
    assert read.keys() == tensors.keys()
    for name, array in tensors.items():
        np.testing.assert_array_equal(read[name], array)
    code = (  # another process (another hash seed for the safetensors library's maps)
        "import sys; from scratchdl.files import save; from scratchdl.models import "
        "MultiLayerNet; save(MultiLayerNet(4, [3], 2, use_batchnorm=True, rng=0), sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, tmp_path / "p.safetensors"], check=True)
    assert (tmp_path / "p.safetensors").read_bytes() == (tmp_path / "m0.safetensors").read_bytes()


# --- integrity: the tensors' sha256 in the metadata -------------------------------------------


def tensor_bytes(raw: bytes, name: str) -> slice:
    """Where the bytes of tensor ``name`` lie in the safetensors file ``raw``."""
    end = header_end(raw)
    begin, stop = json.loads(raw[8:end])[name]["data_offsets"]
    return slice(end + begin, end + stop)


def test_a_changed_weight_is_refused_by_the_digest(tmp_path):
    model, _ = multilayer_net(np.float32)
    path = tmp_path / "m.safetensors"
    save(model, path)
    raw = bytearray(path.read_bytes())
    where = tensor_bytes(raw, "W1")
    raw[where.start : where.start + 4] = struct.pack("<f", 0.25)  # finite and plausible
    path.write_bytes(raw)
    expect_error(lambda: load(path), path, "damaged", "sha256")
    raw[where.stop - 1] ^= 0x01  # a single flipped bit
    path.write_bytes(raw)
    expect_error(lambda: load_tensors(path), path, "sha256")


def test_the_digest_covers_names_and_shapes(tmp_path):
    path = tmp_path / "t.safetensors"
    save_tensors(path, {"a": np.arange(4.0), "b": np.arange(4.0) + 10}, {})
    raw = path.read_bytes()
    end = header_end(raw)
    swapped = raw[:end].replace(b'"a"', b'"c"').replace(b'"b"', b'"a"').replace(b'"c"', b'"b"')
    path.write_bytes(swapped + raw[end:])  # the same bytes under each other's names
    expect_error(lambda: load_tensors(path), path, "sha256")


def test_files_written_before_digests_still_load(tmp_path):
    import safetensors.numpy

    model, _ = multilayer_net(np.float64)
    path = tmp_path / "m.safetensors"
    save(model, path)
    tensors, metadata = load_tensors(path)
    assert DIGEST_KEY not in metadata  # the reader's business, not the caller's
    safetensors.numpy.save_file(tensors, path, metadata=metadata)  # no digest, as before
    loaded = load(path)
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], array)
    with pytest.raises(ValueError, match=DIGEST_KEY):
        save_tensors(path, tensors, {DIGEST_KEY: "0" * 64})
