"""The IDX file format of MNIST and Fashion-MNIST: parse, read (raw or gzipped) and write.

IDX: 2 zero bytes, a dtype code, the number of dimensions, each dimension as a big-endian
uint32, then the data, big-endian, C order (LeCun & Cortes, the MNIST database page).
Every size is checked against the bytes actually there before anything large is allocated,
and gzip output is capped, so a damaged or hostile file gives a ValueError, never a crash.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..support.atomic import atomic_write as _atomic_write
from ..support.checks import check_path, check_positive_int

__all__ = ["IDX_CODES", "IDX_DTYPES", "MAX_IDX_BYTES", "parse_idx", "read_idx", "write_idx"]

IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
MAX_IDX_DIMS = 4
MAX_IDX_BYTES = 100_000_000  # cap on a file, raw or decompressed; MNIST's largest is 47_040_016
GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes | bytearray | memoryview, *, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an uncompressed IDX file; uint8 data is a view on ``data``, no copy.

    IDX: 2 zero bytes, a dtype code, the number of dimensions, each dimension as a big-endian
    uint32, then the data, big-endian, C order (LeCun & Cortes, the MNIST database page).
    The declared size is checked against the actual length before anything is allocated.

    Shape: the dimensions in the header, e.g. (60000, 28, 28) for images, (60000,) for labels.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"parse_idx needs the bytes of an IDX file, got {type(data).__name__}")
    data = memoryview(data).cast("B")
    n = len(data)
    if n < 4:
        raise ValueError(
            f"{name}: {n} bytes is too short for an IDX file: the header alone needs at least 4 "
            "(two zero bytes, a dtype code, the number of dimensions)"
        )
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{name}: bad IDX magic number 0x{magic:08x}: its first two bytes must be 0 "
            "(is this an IDX file? MNIST images start 0x00000803, labels 0x00000801)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        choices = ", ".join(f"0x{c:02x} ({d.name})" for c, d in IDX_DTYPES.items())
        raise ValueError(
            f"{name}: unknown IDX dtype code 0x{code:02x} in magic number 0x{magic:08x}; "
            f"expected one of {choices}"
        )
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise ValueError(
            f"{name}: IDX header declares {ndim} dimensions (magic number 0x{magic:08x}); "
            f"expected 1 to {MAX_IDX_DIMS}"
        )
    header = 4 + 4 * ndim
    if n < header:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions need a {header}-byte header, "
            f"but the file has only {n} bytes"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    need = math.prod(shape) * dtype.itemsize  # Python ints: a forged header cannot overflow
    have = n - header
    if have < need:
        raise ValueError(
            f"{name}: truncated IDX file: dimensions {shape} of {dtype.name} need {need} data "
            f"bytes after the {header}-byte header, but only {have} are there"
        )
    if have > need:
        raise ValueError(
            f"{name}: IDX file has {have - need} trailing bytes: dimensions {shape} of "
            f"{dtype.name} need {need} data bytes after the {header}-byte header, found {have}"
        )
    x = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header).reshape(shape)
    if dtype.itemsize > 1:
        x = x.astype(dtype.newbyteorder("="))  # IDX is big-endian; compute in native order
    return x


def read_idx(
    source: str | os.PathLike | bytes | bytearray | memoryview,
    *,
    max_bytes: int = MAX_IDX_BYTES,
) -> np.ndarray:
    """Read an IDX file (a path, or its bytes), raw or gzipped: gzip is told by its magic bytes.

    ``max_bytes`` caps both the file and its decompressed content, so a gzip bomb is refused
    after at most that much output. The result may be read-only (a view on the file's bytes).

    Shape: the dimensions in the header, e.g. (10000, 28, 28).
    """
    check_positive_int("max_bytes", max_bytes)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, raw = "<bytes>", source
    else:
        path = check_path("source", source)
        name, raw = str(path), read_capped(path, max_bytes)
    return parse_idx(decompress(raw, name=name, max_bytes=max_bytes), name=name)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``; atomic.

    Shape: 1 to 4 dimensions, each below 2**32; dtype uint8, int8, int16, int32, float32 or
    float64 (cast other integer labels first, e.g. ``t.astype(np.uint8)``).
    """
    x = np.asarray(array)
    code = IDX_CODES.get(x.dtype.newbyteorder("="))
    if code is None:
        choices = ", ".join(d.name for d in IDX_DTYPES.values())
        raise ValueError(
            f"IDX has no code for dtype {x.dtype}; cast the array to one of {choices} "
            "(e.g. x.astype(np.uint8))"
        )
    if not 1 <= x.ndim <= MAX_IDX_DIMS:
        raise ValueError(f"IDX arrays have 1 to {MAX_IDX_DIMS} dimensions, got shape {x.shape}")
    if any(d >= 2**32 for d in x.shape):
        raise ValueError(f"IDX dimensions are uint32, got shape {x.shape}")
    header = bytes([0, 0, code, x.ndim]) + b"".join(d.to_bytes(4, "big") for d in x.shape)
    payload = header + np.ascontiguousarray(x, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)  # mtime=0: the same array gives the same file
    _atomic_write(path, payload)
    return path


def read_capped(path: Path, max_bytes: int) -> bytes:
    """Return the bytes of the file at ``path``, refusing a file of more than ``max_bytes``."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(
            f"{path}: {size} bytes is more than the cap of {max_bytes} bytes for an IDX file "
            "(MNIST's largest is 47040016); pass a larger max_bytes if the file is genuine"
        )
    return path.read_bytes()


def decompress(raw: bytes | bytearray | memoryview, *, name: str, max_bytes: int) -> bytes:
    """Return the content of ``raw``: itself, or its gunzipped bytes when it starts 1f 8b."""
    if bytes(raw[:2]) != GZIP_MAGIC:
        return raw
    return _gunzip(raw, name=name, max_bytes=max_bytes)


def _gunzip(raw: bytes | bytearray | memoryview, *, name: str, max_bytes: int) -> bytes:
    """Gunzip ``raw`` (one or more members), refusing more than ``max_bytes`` of output."""
    pieces: list[bytes] = []
    size = 0
    rest = memoryview(raw).cast("B")
    while len(rest):
        if bytes(rest[:2]) != GZIP_MAGIC:
            raise ValueError(f"{name}: {len(rest)} bytes of trailing garbage after the gzip data")
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # 16+: expect a gzip header
        buf: bytes | memoryview = rest
        while not d.eof:
            try:
                # max_length bounds each step: a bomb is stopped after max_bytes + 1 bytes
                piece = d.decompress(buf, max_bytes - size + 1)
            except zlib.error as e:
                raise ValueError(f"{name}: corrupt gzip data ({e})") from e
            size += len(piece)
            if size > max_bytes:
                raise ValueError(
                    f"{name}: decompresses to more than the cap of {max_bytes} bytes; refusing "
                    "it (a gzip bomb?); pass a larger max_bytes if the file is genuine"
                )
            pieces.append(piece)
            buf = d.unconsumed_tail
            if not buf and not piece and not d.eof:
                raise ValueError(f"{name}: truncated gzip data: it ends before its gzip trailer")
        rest = memoryview(d.unused_data)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
