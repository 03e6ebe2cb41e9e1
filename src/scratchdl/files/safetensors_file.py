"""The safetensors format, read with every length, offset and dtype checked.

``save_tensors`` / ``load_tensors`` write and read a file of named arrays plus string
metadata: written atomically, and read with the header length, the JSON header and every
dtype, shape and offset checked before the bytes reach the safetensors library, so a
damaged or foreign file raises ``ModelFileError`` naming the file and what is wrong. Model
files (model_file.py) and the Trainer's checkpoints (checkpoint.py) are such files.

Integrity: the metadata also holds ``DIGEST_KEY``, the sha256 of every tensor's name, dtype,
shape and bytes (``tensor_digest``). A reader recomputes it from the bytes in the file and
refuses a mismatch: a changed byte (a flipped bit, a hand-edited learning rate) is found
however plausible the value it makes. Files written before it existed have none and load.

Writing needs numpy only; reading hands the checked bytes to the safetensors library (a
dependency), imported where it is used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from typing import Any

import numpy as np

from ..support.atomic import atomic_write
from ..support.checks import check_finite, check_path, open_regular_file
from ..support.checks import short_repr as _short

__all__ = [
    "ModelFileError",
    "DIGEST_KEY",
    "SAFETENSORS_DTYPES",
    "check_finite_tensors",
    "is_int",
    "load_tensors",
    "save_tensors",
    "strict_json",
    "tensor_digest",
]

HEADER_LENGTH_BYTES = 8  # safetensors: a little-endian u64 header length comes first
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
HEADER_ALIGN = 8  # the header is padded with spaces so that the data starts 8-byte aligned
DIGEST_KEY = "scratchdl_sha256"  # metadata: tensor_digest of the tensors, checked on load

# safetensors dtype names accepted, with the numpy dtype each stands for (little-endian)
SAFETENSORS_DTYPES = {
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"),
    "U16": np.dtype("<u2"),
    "U32": np.dtype("<u4"),
    "U64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
}
_NUMPY_TO_SAFETENSORS = {dt.newbyteorder("="): name for name, dt in SAFETENSORS_DTYPES.items()}


class ModelFileError(ValueError):
    """A model, checkpoint or parameter file that cannot be read; the message names the file."""


def _require_safetensors():
    try:
        import safetensors.numpy
    except ImportError as e:
        raise ImportError(
            "model files need the safetensors package, a dependency of scratchdl: "
            "pip install safetensors"
        ) from e
    return safetensors.numpy


def is_int(value: object) -> bool:
    """True for an int that is not a bool (JSON's ``true`` would pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate keys {dup}")
    return dict(pairs)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses duplicate keys and NaN / Infinity (ValueError)."""
    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


def tensor_digest(tensors: list[tuple[str, str, list[int], memoryview | np.ndarray]]) -> str:
    """The sha256 (hex) of tensors given as (name, safetensors dtype, shape, bytes).

    Sorted by name; each contributes a JSON line ``[name, dtype, shape]`` and then its bytes,
    as stored (little-endian). The line fixes how many bytes follow, so no two different sets
    of tensors give the same stream. Independent of the order of the data in the file.
    """
    h = hashlib.sha256()
    for name, dtype, shape, data in sorted(tensors, key=lambda item: item[0]):
        h.update(json.dumps([name, dtype, list(shape)]).encode() + b"\n")
        h.update(data)
    return h.hexdigest()


def check_finite_tensors(path: object, tensors: dict[str, np.ndarray], *, writing=False) -> None:
    """Refuse weights that are NaN or infinite. Read from a file (ModelFileError): the file is
    damaged or was saved as a run diverged. About to be written (``writing``, ValueError naming
    the file): they would load only to predict NaN."""
    fix = (
        "the run diverged; train again with a smaller learning rate"
        if writing
        else "the file is damaged or was saved from a diverged run"
    )
    for name, array in tensors.items():
        try:
            check_finite(f"tensor {name!r}", array, fix=fix)
        except ValueError as e:
            if writing:
                raise ValueError(f"refusing to write {path}: {e}") from None
            raise ModelFileError(f"{path}: {e}") from None


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str]
) -> None:
    """Write named arrays and string metadata to a safetensors file, atomically.

    Arrays are stored little-endian and C-contiguous; dtypes are those of
    ``SAFETENSORS_DTYPES`` (float16/32/64, int8..64, uint8..64, bool). The same tensors and
    metadata give the same bytes, whatever the order of the dicts: the header lists the
    metadata and the tensors sorted by name (the tensors' data widest dtype first, as the
    safetensors library lays it out, so every tensor starts aligned), so ``sha256sum``
    identifies a file's content. The metadata gains ``DIGEST_KEY``, the tensors' sha256,
    which ``load_tensors`` checks. The bytes go to a temporary file in the same folder (written,
    flushed, fsync'ed) that os.replace renames over ``path``; the folder is then fsync'ed. On
    any failure the temporary file is removed and an existing file at ``path`` is left as it was.
    """
    check_path("path", path)
    if not isinstance(tensors, dict):
        raise ValueError(f"tensors must be a dict name -> numpy array, got {type(tensors)}")
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError(f"metadata must be a dict of str -> str, got {_short(metadata)}")
    if DIGEST_KEY in metadata:
        raise ValueError(f"metadata key {DIGEST_KEY!r} is reserved: save_tensors writes it")
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(
                f"tensor names must be strings other than '__metadata__', got {name!r}"
            )
        array = np.asarray(value)
        if array.dtype.newbyteorder("=") not in _NUMPY_TO_SAFETENSORS:
            kinds = ", ".join(str(dt.newbyteorder("=")) for dt in SAFETENSORS_DTYPES.values())
            raise ValueError(f"tensor {name!r} has dtype {array.dtype}; supported: {kinds}")
        arrays[name] = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    atomic_write(path, _serialize(arrays, metadata))  # temp file, fsync, rename, fsync folder


def _serialize(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> bytearray:
    """The safetensors bytes of little-endian contiguous ``arrays``, in a fixed order.

    Layout (the format's specification): a u64 header length, the JSON header padded with
    spaces to a multiple of HEADER_ALIGN bytes, then the tensors' bytes one after another.
    """
    order = sorted(arrays, key=lambda name: (-arrays[name].dtype.itemsize, name))
    digest = tensor_digest(
        [
            (
                n,
                _NUMPY_TO_SAFETENSORS[a.dtype.newbyteorder("=")],
                a.shape,
                a.reshape(-1).view(np.uint8),
            )
            for n, a in arrays.items()
        ]
    )
    header: dict[str, Any] = {
        "__metadata__": dict(sorted({**metadata, DIGEST_KEY: digest}.items()))
    }
    offset = 0
    for name in order:
        array = arrays[name]
        dtype = _NUMPY_TO_SAFETENSORS[array.dtype.newbyteorder("=")]
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()  # ASCII: \u escapes
    text += b" " * (-len(text) % HEADER_ALIGN)
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(
            f"the safetensors header would take {len(text)} bytes, more than the "
            f"{MAX_HEADER_BYTES} a reader accepts: too many tensors or too much metadata"
        )
    out = bytearray(HEADER_LENGTH_BYTES + len(text) + offset)
    out[:HEADER_LENGTH_BYTES] = struct.pack("<Q", len(text))
    start = HEADER_LENGTH_BYTES + len(text)
    out[HEADER_LENGTH_BYTES:start] = text
    view = memoryview(out)
    for name in order:
        array = arrays[name]
        begin, end = header[name]["data_offsets"]
        view[start + begin : start + end] = array.reshape(-1).view(np.uint8)
    return out


def _parse_header(path: object, raw: bytes) -> tuple[dict[str, str], dict[str, dict]]:
    """Parse and check a safetensors JSON header: (metadata, tensor name -> entry)."""

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"{path}: corrupt safetensors header: {problem}")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail(f"not UTF-8 text ({e})") from None
    if not text.startswith("{"):
        raise fail(f"it must be a JSON object starting with '{{', got {_short(text[:20])}")
    try:
        header = strict_json(text)
    except (ValueError, RecursionError) as e:
        raise fail(f"not valid JSON ({_short(str(e))})") from None
    if not isinstance(header, dict):
        raise fail(f"expected a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail(f"__metadata__ must map strings to strings, got {_short(metadata)}")
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise fail(
                f"tensor {name!r} must be an object with keys dtype, shape, data_offsets, "
                f"got {_short(entry)}"
            )
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:  # [..] is unhashable
            raise ModelFileError(
                f"{path}: tensor {name!r} has unsupported dtype {_short(dtype)}; "
                f"supported: {', '.join(SAFETENSORS_DTYPES)}"
            )
        if not isinstance(shape, list) or not all(is_int(n) and n >= 0 for n in shape):
            raise fail(f"tensor {name!r}: shape must be a list of sizes >= 0, got {_short(shape)}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(is_int(n) for n in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise fail(
                f"tensor {name!r}: data_offsets must be [begin, end] with 0 <= begin <= end, "
                f"got {_short(offsets)}"
            )
    return metadata, header


def _check_layout(path: object, entries: dict[str, dict], data_len: int) -> None:
    """Each tensor's bytes fit dtype x shape; together they tile the data exactly."""
    for name, entry in entries.items():
        begin, end = entry["data_offsets"]
        need = math.prod(entry["shape"]) * SAFETENSORS_DTYPES[entry["dtype"]].itemsize
        if end - begin != need:
            raise ModelFileError(
                f"{path}: corrupt safetensors header: tensor {name!r} ({entry['dtype']} "
                f"{entry['shape']}) needs {need} bytes, but its data_offsets "
                f"[{begin}, {end}] hold {end - begin}"
            )
        if end > data_len:
            raise ModelFileError(
                f"{path}: truncated: tensor {name!r} ends at byte {end} of the data, but the "
                f"file holds only {data_len} bytes of data"
            )
    expected = 0
    for name, entry in sorted(entries.items(), key=lambda item: item[1]["data_offsets"]):
        begin, end = entry["data_offsets"]
        if begin != expected:
            raise ModelFileError(
                f"{path}: corrupt safetensors header: tensor {name!r} starts at byte {begin} "
                f"of the data, expected {expected} (tensors must follow one another)"
            )
        expected = end
    if expected != data_len:
        raise ModelFileError(
            f"{path}: corrupt safetensors file: the tensors take {expected} bytes but "
            f"{data_len} bytes of data follow the header"
        )


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file: (name -> array, metadata). Arrays are writable copies.

    The header length, the JSON header, every dtype, shape and offset are checked before any
    data is read or handed to the safetensors library, so a damaged or foreign file raises
    ModelFileError naming the file and the problem, never allocates more than the file holds;
    so does a path that is not a regular file (a FIFO would block the read forever).
    """
    st = _require_safetensors()
    with open_regular_file(check_path("path", path), error=ModelFileError) as f:
        size = os.fstat(f.fileno()).st_size
        if size < HEADER_LENGTH_BYTES:
            raise ModelFileError(
                f"{path}: not a safetensors file: {size} bytes, shorter than the "
                f"{HEADER_LENGTH_BYTES}-byte header length (empty or truncated)"
            )
        (n,) = struct.unpack("<Q", f.read(HEADER_LENGTH_BYTES))
        if n > MAX_HEADER_BYTES:
            raise ModelFileError(
                f"{path}: not a safetensors file: its header length field says {n} bytes, "
                f"more than the {MAX_HEADER_BYTES} allowed (another format, or corrupt)"
            )
        if n > size - HEADER_LENGTH_BYTES:
            raise ModelFileError(
                f"{path}: truncated or not a safetensors file: the header length field says "
                f"{n} bytes but only {size - HEADER_LENGTH_BYTES} bytes follow it"
            )
        metadata, entries = _parse_header(path, f.read(n))
        _check_layout(path, entries, size - HEADER_LENGTH_BYTES - n)
        f.seek(0)
        data = f.read()
    if len(data) != size:
        raise ModelFileError(f"{path}: the file changed while it was read ({size} -> {len(data)})")
    _check_digest(path, metadata, entries, memoryview(data)[HEADER_LENGTH_BYTES + n :])
    try:
        loaded = st.load(data)
    except Exception as e:  # the checks above should leave the library nothing to reject
        raise ModelFileError(f"{path}: the safetensors library rejected it: {e}") from None
    if set(loaded) != set(entries):
        raise ModelFileError(f"{path}: the safetensors library read other tensors than listed")
    tensors = {}
    for name, entry in entries.items():
        array = loaded[name]
        if entry["dtype"] == "BOOL":  # any byte but 0 is True; numpy would keep the raw byte
            array = array.view(np.uint8) != 0
        tensors[name] = np.array(array, dtype=array.dtype.newbyteorder("="), copy=True)
    return tensors, {k: v for k, v in metadata.items() if k != DIGEST_KEY}


def _check_digest(path: object, metadata: dict, entries: dict, data: memoryview) -> None:
    """Refuse a file whose tensors' bytes are not those its digest was computed from."""
    stored = metadata.get(DIGEST_KEY)
    if stored is None:  # written before digests: nothing to check against
        return
    found = tensor_digest(
        [
            (name, e["dtype"], e["shape"], data[e["data_offsets"][0] : e["data_offsets"][1]])
            for name, e in entries.items()
        ]
    )
    if found != stored:
        raise ModelFileError(
            f"{path}: damaged: its tensors' sha256 is {found[:16]}..., not the "
            f"{_short(stored[:16])}... stored with them, so bytes changed after it was written; "
            "use another copy of the file, or train again"
        )
