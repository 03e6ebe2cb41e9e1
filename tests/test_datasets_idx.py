"""The IDX format: write_idx / read_idx / parse_idx round trip byte for byte against the spec,
raw or gzipped; malformed, truncated, oversized or damaged files are refused, naming the cause."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from scratchdl import datasets as ds
from tests.conftest import encode_idx, listing

CASES = [
    (np.uint8, (3, 28, 28)),
    (np.int8, (7,)),
    (np.int16, (2, 3)),
    (np.int32, (2, 1, 2, 3)),
    (np.float32, (4, 2)),
    (np.float64, (3,)),
    (np.uint8, (0, 5)),
]


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(("dtype", "shape"), CASES)
def test_idx_round_trip(tmp_path, dtype, shape, gz):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    assert ds.write_idx(path, x) == path
    raw = path.read_bytes()
    assert raw[:2] == (b"\x1f\x8b" if gz else b"\x00\x00")
    assert (gzip.decompress(raw) if gz else raw) == encode_idx(x)  # the IDX spec, byte for byte
    for y in (ds.read_idx(path), ds.read_idx(raw), ds.parse_idx(encode_idx(x))):
        assert y.dtype == x.dtype and y.dtype.isnative
        np.testing.assert_array_equal(y, x)
    assert listing(tmp_path) == [path.name]  # no temp file left behind


def test_idx_header_bytes_are_the_spec():
    x = np.array([[1, 2], [3, 4]], dtype=np.int16)
    expected = bytes.fromhex("0000 0b02 00000002 00000002 0001 0002 0003 0004")
    assert encode_idx(x) == expected
    np.testing.assert_array_equal(ds.parse_idx(expected), x)


def test_uint8_parse_is_a_view_not_a_copy():
    data = bytearray(encode_idx(np.arange(6, dtype=np.uint8)))
    x = ds.parse_idx(data)
    data[-1] = 99
    assert x[-1] == 99


def header(code: int, *shape: int) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


MALFORMED = {
    "empty": (b"", "0 bytes"),
    "short header": (b"\x00\x00\x08", "3 bytes"),
    "bad magic": (b"\x01\x00\x08\x01" + bytes(5), "0x01000801"),
    "gzip-looking": (b"\x00\x1f\x08\x01" + bytes(5), "0x001f0801"),
    "bad dtype code": (header(0x0A, 2) + bytes(2), "0x0a"),
    "zero dims": (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    "too many dims": (header(0x08, 1, 1, 1, 1, 1) + b"\x07", "declares 5 dimensions"),
    "dims cut short": (header(0x08, 2, 3)[:10], "12-byte header"),
    "truncated": (header(0x08, 10, 28, 28) + bytes(100), "need 7840 data bytes"),
    "truncated int32": (header(0x0C, 3) + bytes(11), "(3,) of int32 need 12"),
    "huge dims": (header(0x08, 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(4), "only 4 are there"),
    "trailing": (header(0x08, 2, 2) + bytes(4 + 5), "5 trailing bytes"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_idx_is_refused(tmp_path, case):
    data, words = MALFORMED[case]
    with pytest.raises(ValueError, match="^<bytes>: .*" + re.escape(words)):
        ds.parse_idx(data)
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + re.escape(words)):
        ds.read_idx(path)
    gz = tmp_path / "bad-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(data))
    with pytest.raises(ValueError, match=re.escape(words)):
        ds.read_idx(gz)


def test_gzip_bomb_is_capped(tmp_path):
    bomb = gzip.compress(header(0x08, 100_000) + bytes(100_000))
    assert len(bomb) < 1000
    with pytest.raises(ValueError, match="more than the cap of 10000 bytes"):
        ds.read_idx(bomb, max_bytes=10_000)
    assert ds.read_idx(bomb, max_bytes=100_008).shape == (100_000,)
    big = tmp_path / "big"
    big.write_bytes(header(0x08, 20_000) + bytes(20_000))
    with pytest.raises(ValueError, match=f"{big}: 20008 bytes is more than the cap of 10000"):
        ds.read_idx(big, max_bytes=10_000)


@pytest.mark.parametrize(
    ("mangle", "words"),
    [
        (lambda gz: gz[:-6], "truncated gzip data"),
        (lambda gz: gz + b"junk", "4 bytes of trailing garbage"),
        (lambda gz: gz[:10] + bytes(len(gz) - 10), "corrupt gzip data"),
    ],
    ids=["truncated", "trailing", "corrupt"],
)
def test_damaged_gzip_is_refused(mangle, words):
    gz = gzip.compress(encode_idx(np.arange(50, dtype=np.uint8)))
    with pytest.raises(ValueError, match=words):
        ds.read_idx(mangle(gz))


def test_multi_member_gzip_is_read():
    data = encode_idx(np.arange(50, dtype=np.uint8))
    two = gzip.compress(data[:20]) + gzip.compress(data[20:])
    np.testing.assert_array_equal(ds.read_idx(two), np.arange(50))


@pytest.mark.parametrize(
    ("x", "words"),
    [
        (np.zeros(3, dtype=np.int64), "no code for dtype int64"),
        (np.zeros(3, dtype=bool), "no code for dtype bool"),
        (np.array(5, dtype=np.uint8), "got shape ()"),
        (np.zeros((1,) * 5, dtype=np.uint8), "got shape (1, 1, 1, 1, 1)"),
    ],
)
def test_write_idx_refuses_what_idx_cannot_hold(tmp_path, x, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        ds.write_idx(tmp_path / "x", x)
    assert listing(tmp_path) == []
