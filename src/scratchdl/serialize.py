"""Model files: save and load models as safetensors; import the book's pickled weights safely.

- ``save_tensors`` / ``load_tensors``: a safetensors file of named arrays plus string metadata,
  written atomically and read with every length, offset and dtype checked before the bytes
  reach the safetensors library (used by ``save`` / ``load`` and by the Trainer's checkpoints).
- ``save`` / ``load``: a model's ``state_dict()`` (parameters and batch-norm running
  statistics) with its class and ``config``; ``load`` rebuilds it with ``model_from_config``.
- ``import_book_params``: the ``params.pkl`` files written by the book's sample code, read
  through an unpickler that lets nothing but numpy arrays through and never runs numpy's own
  pickle code on the file's data.

Every problem with a file raises ``ModelFileError`` (a ValueError) naming the file and what
is wrong. safetensors is the optional ``cli`` extra: it is imported where it is used.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import pickletools
import struct
from typing import Any

import numpy as np

from . import init
from .atomic import atomic_write
from .checks import check_path
from .checks import short_repr as _short
from .layers import Affine, AvgPooling, Convolution, Dropout, Flatten, Pooling, Relu
from .models import MODELS, Sequential, model_from_config

__all__ = [
    "ModelFileError",
    "save_tensors",
    "load_tensors",
    "save",
    "load",
    "import_book_params",
]

FORMAT = "scratchdl"
FORMAT_VERSION = "1"
HEADER_LENGTH_BYTES = 8  # safetensors: a little-endian u64 header length comes first
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
MAX_PICKLE_BYTES = 1 << 30  # the book's files are 1-4 MB; refuse to read more than 1 GiB
MIN_CONFIG_INT_LIMIT = 4096  # see _check_config_ints
# ``load`` lets a file's config draw at most max(4 x the values the file holds, 2**20) weights:
# a forged size fails before gigabytes are allocated, a merely wrong one gets the precise
# message about the shapes that do not match.
VALUE_BUDGET_FACTOR, MIN_VALUE_BUDGET = 4, 1 << 20

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
            "model files need the safetensors package: pip install safetensors "
            "(or pip install 'scratchdl[cli]')"
        ) from e
    return safetensors.numpy


# --- safetensors: low level ------------------------------------------------------------------


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str]
) -> None:
    """Write named arrays and string metadata to a safetensors file, atomically.

    Arrays are stored little-endian and C-contiguous; dtypes are those of
    ``SAFETENSORS_DTYPES`` (float16/32/64, int8..64, uint8..64, bool). The bytes go to a
    temporary file in the same folder (written, flushed, fsync'ed) that os.replace renames over
    ``path``; the folder is then fsync'ed. On any failure the temporary file is removed and an
    existing file at ``path`` is left as it was.
    """
    st = _require_safetensors()
    check_path("path", path)
    if not isinstance(tensors, dict):
        raise ValueError(f"tensors must be a dict name -> numpy array, got {type(tensors)}")
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError(f"metadata must be a dict of str -> str, got {_short(metadata)}")
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
        little = array.dtype.newbyteorder("<")
        # safetensors copies nbytes from the data pointer: it must be contiguous
        arrays[name] = np.ascontiguousarray(array, dtype=little)
    data = st.save(arrays, metadata=dict(metadata))
    atomic_write(path, data)  # temp file, fsync, os.replace, fsync the folder


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate keys {dup}")
    return dict(pairs)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
        header = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
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
        if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
            raise fail(f"tensor {name!r}: shape must be a list of sizes >= 0, got {_short(shape)}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(n) for n in offsets)
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
    ModelFileError naming the file and the problem, never allocates more than the file holds.
    """
    st = _require_safetensors()
    with open(check_path("path", path), "rb") as f:
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
    return tensors, dict(metadata)


# --- models ----------------------------------------------------------------------------------


def _scratchdl_version() -> str:
    try:
        from . import __version__
    except ImportError:
        return "unknown"
    return str(__version__)


def save(model: Sequential, path: str | os.PathLike) -> None:
    """Save a model (parameters, batch-norm running statistics, class and config) atomically.

    The file is safetensors: one tensor per ``model.state_dict()`` entry, and metadata
    ``format="scratchdl"``, ``format_version="1"``, ``class``, ``config`` (JSON) and
    ``scratchdl_version``. ``load`` rebuilds the model bit for bit.
    """
    name = type(model).__name__
    if MODELS.get(name) is not type(model):
        raise ValueError(
            f"save needs one of the model classes {sorted(MODELS)} (load rebuilds it from its "
            f"config), got {name}"
        )
    try:
        config = json.dumps(model.config, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}.config must be JSON-serialisable, got {model.config!r}") from e
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "config": config,
        "scratchdl_version": _scratchdl_version(),
    }
    save_tensors(path, model.state_dict(), metadata)


def _check_config_ints(path: object, config: dict, limit: int, list_limit: int) -> None:
    """Refuse sizes no model stored in this file could have, before anything is allocated.

    A valid file stores every parameter, so no size in its config exceeds the number of values
    it holds (beyond a small floor for odd input shapes), and no list (of hidden sizes) is
    longer than the number of tensors it holds; a corrupt digit must not make ``model_from_config``
    allocate gigabytes before the shapes are compared (``load`` also caps the weights drawn).
    """
    todo: list[tuple[str, object]] = [("config", config)]
    while todo:  # a loop, not recursion: the JSON may nest deeply
        where, value = todo.pop()
        if isinstance(value, dict):
            todo += [(f"{where}[{k!r}]", v) for k, v in value.items()]
        elif isinstance(value, list):
            if len(value) > list_limit:
                raise ModelFileError(
                    f"{path}: {where} has {len(value)} entries, more than any model this file's "
                    f"{list_limit} tensors could have; the file is corrupt"
                )
            todo += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        elif _is_int(value) and abs(value) > limit:
            raise ModelFileError(
                f"{path}: {where} = {_short(value)} is larger than any model this file's stored "
                f"values could hold (limit {limit}); the file is corrupt"
            )


def _check_finite(path: object, tensors: dict[str, np.ndarray]) -> None:
    """Refuse weights that are NaN or infinite: a damaged file, or a run saved as it diverged."""
    for name, array in tensors.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = array[~np.isfinite(array)]
            raise ModelFileError(
                f"{path}: tensor {name!r} holds {bad.size} values that are not finite (e.g. "
                f"{bad[0]}); the file is damaged or was saved from a diverged run"
            )


def load(path: str | os.PathLike, *, rng: np.random.Generator | int | None = None) -> Sequential:
    """Load a model written by ``save``: rebuild it from its class and config, copy the tensors in.

    ``rng`` seeds the rebuilt model's Dropout layers (its weights come from the file).
    Raises ModelFileError naming the file and the problem: not a scratchdl model file, unknown
    class, bad config, missing or unexpected tensors, non-float tensors, wrong shapes.
    """
    tensors, metadata = load_tensors(path)
    if metadata.get("format") != FORMAT:
        raise ModelFileError(
            f"{path}: not a scratchdl model file (metadata format={metadata.get('format')!r}, "
            f"expected {FORMAT!r}); write model files with scratchdl.serialize.save"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format_version {metadata.get('format_version')!r} is not "
            f"supported (this scratchdl reads {FORMAT_VERSION!r}); upgrade scratchdl"
        )
    class_name = metadata.get("class")
    if class_name not in MODELS:
        raise ModelFileError(
            f"{path}: unknown model class {_short(class_name)}; choices: {sorted(MODELS)}"
        )
    try:
        config = json.loads(
            metadata.get("config", ""),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as e:
        raise ModelFileError(
            f"{path}: config {_short(metadata.get('config'))} is not valid JSON ({e})"
        ) from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: config must be a JSON object, got {_short(config)}")
    n_values = sum(a.size for a in tensors.values())
    _check_config_ints(path, config, max(n_values, MIN_CONFIG_INT_LIMIT), len(tensors))
    try:
        with init.value_budget(max(VALUE_BUDGET_FACTOR * n_values, MIN_VALUE_BUDGET)):
            model = model_from_config(class_name, config, rng=rng)
    except (ValueError, TypeError) as e:  # the constructors' checks: a config that does not fit
        raise ModelFileError(
            f"{path}: config {_short(config)} does not fit {class_name}: {e}"
        ) from None
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or extra:
        raise ModelFileError(
            f"{path}: tensors do not match the {class_name} of its config: missing {missing}, "
            f"unexpected {extra}"
        )
    for name, array in own.items():
        value = tensors[name]
        if value.dtype.kind != "f":
            raise ModelFileError(
                f"{path}: tensor {name!r} has dtype {value.dtype}; model weights must be "
                "floating point (F16, F32 or F64)"
            )
        if value.shape != array.shape:
            raise ModelFileError(
                f"{path}: tensor {name!r} has shape {value.shape}, but the {class_name} of its "
                f"config needs {array.shape}"
            )
    _check_finite(path, tensors)
    try:
        model.load_state_dict(tensors)
    except ValueError as e:  # the checks above should leave nothing to refuse
        raise ModelFileError(f"{path}: {e}") from None
    return model


# --- the book's pickled parameters -----------------------------------------------------------


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list: the pickle asks to import and call something else."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _NdarrayType:
    """Stands for ``numpy.ndarray`` in the pickle: an argument of _reconstruct, not callable."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayType()

# dtype strings as numpy pickles them ('f8' with the byte order in the state)
BOOK_DTYPES = ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1")


class _DtypeStub:
    """Stands for ``numpy.dtype(spec, align, copy)``; its ``__setstate__`` checks the state."""

    def __init__(self, spec: object, align: object = False, copy: object = True) -> None:
        if not isinstance(spec, str) or spec not in BOOK_DTYPES:
            raise pickle.UnpicklingError(
                f"dtype {_short(spec)} refused: only plain numeric arrays are read "
                f"({', '.join(BOOK_DTYPES)}); object and structured arrays are not"
            )
        self.spec = spec
        self.dtype: np.dtype | None = None

    def __setstate__(self, state: object) -> None:
        # numpy writes (3, byteorder, None, None, None, -1, -1, 0) for a plain numeric dtype
        if not (
            isinstance(state, tuple)
            and len(state) == 8
            and state[0] == 3
            and state[1] in ("<", ">", "|", "=")
            and state[2:] == (None, None, None, -1, -1, 0)
        ):
            raise pickle.UnpicklingError(f"dtype state {_short(state)} is not a plain dtype")
        dtype = np.dtype(self.spec)
        self.dtype = dtype if state[1] == "|" else dtype.newbyteorder(state[1])


class _ArrayStub:
    """Stands for the array ``_reconstruct`` makes; ``__setstate__`` builds it from the bytes.

    numpy's own ``ndarray.__setstate__`` is never given the file's data: the shape, dtype and
    byte count are checked here and the array is copied out of the pickled bytes.
    """

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) == 5:  # (version, shape, ...) since numpy 1.0
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4):
            raise pickle.UnpicklingError(f"array state must be a 4- or 5-tuple, got {type(state)}")
        shape, dtype, is_fortran, raw = state
        if not isinstance(is_fortran, bool):
            raise pickle.UnpicklingError(f"array order flag {_short(is_fortran)} is not a bool")
        self.array = _array_from_bytes(raw, dtype, shape, "F" if is_fortran else "C")


def _array_from_bytes(raw: object, dtype: object, shape: object, order: str) -> np.ndarray:
    """A C-ordered copy of the array whose bytes, dtype and shape a pickle gives, all checked."""
    if not isinstance(shape, tuple) or not all(_is_int(n) and n >= 0 for n in shape):
        raise pickle.UnpicklingError(f"array shape {_short(shape)} is not a tuple of sizes")
    if not isinstance(dtype, _DtypeStub) or dtype.dtype is None:
        raise pickle.UnpicklingError(f"array dtype {_short(dtype)} is not a plain dtype")
    if not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError("array data must be bytes")
    need = math.prod(shape) * dtype.dtype.itemsize
    if len(raw) != need:
        raise pickle.UnpicklingError(
            f"array of shape {shape} and dtype {dtype.dtype} needs {need} bytes, "
            f"the pickle holds {len(raw)}"
        )
    flat = np.frombuffer(raw, dtype=dtype.dtype)
    return np.array(flat.reshape(shape, order=order), order="C")


def _reconstruct(subtype: object, shape: object, typecode: object) -> _ArrayStub:
    """Stands for ``numpy._core.multiarray._reconstruct``: an empty array to be filled by BUILD."""
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError(f"_reconstruct of {_short(subtype)}: only numpy.ndarray")
    return _ArrayStub()


def _frombuffer(buf: object, dtype: object, shape: object, order: object) -> _ArrayStub:
    """Stands for ``numpy._core.numeric._frombuffer``, which pickle protocol 5 (Python 3.14's
    default) uses for contiguous arrays: the bytes come in the pickle itself."""
    if order not in ("C", "F"):
        raise pickle.UnpicklingError(f"array order {_short(order)} must be 'C' or 'F'")
    stub = _ArrayStub()
    stub.array = _array_from_bytes(buf, dtype, shape, order)
    return stub


# The globals the book's files reference (pickletools.dis: numpy.core.multiarray._reconstruct,
# numpy.ndarray, numpy.dtype), with numpy 2's name for the first, and what protocol 5 uses
# instead of _reconstruct; each maps to a stand-in.
BOOK_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeStub,
}


class _BookUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``BOOK_PICKLE_GLOBALS``, to stand-ins; refuses the rest."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return BOOK_PICKLE_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("persistent ids are not allowed")


MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _scan_pickle(path: object, data: bytes) -> None:
    """Walk the opcodes before unpickling: complete, one pickle, lengths and memo indices sane.

    pickletools checks each length-prefixed argument against the bytes that remain, so the
    unpickler that follows never allocates for a length the file does not hold.
    """
    n_ops = 0
    try:
        for op, arg, pos in pickletools.genops(data):
            n_ops += 1
            # pickle numbers its memo 0, 1, 2, ...; a huge index would make it allocate
            if op.name in MEMO_OPS and not 0 <= arg <= n_ops:
                raise ValueError(f"memo index {arg} at byte {pos} is out of range")
            if op.name == "FRAME" and arg > len(data) - pos:
                raise ValueError(f"frame of {arg} bytes at byte {pos} runs past the end")
            if op.name == "STOP" and pos + 1 != len(data):
                raise ValueError(f"{len(data) - pos - 1} bytes follow the end of the pickle")
    except Exception as e:  # pickletools raises ValueError, but a fuzzed file may do anything
        text = str(e)
        kind = "truncated" if "exhausted" in text or "remain" in text else "malformed"
        raise ModelFileError(
            f"{path}: not a book parameter file: {kind} pickle ({_short(text)})"
        ) from None
    if n_ops == 0:
        raise ModelFileError(f"{path}: not a book parameter file: empty")


def _read_book_pickle(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], str]:
    """Safely unpickle a dict name -> float array; return it with the file's sha256."""
    with open(check_path("path", path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_PICKLE_BYTES:
            raise ModelFileError(
                f"{path}: {size} bytes is more than the {MAX_PICKLE_BYTES} a book parameter "
                "file can be; not a book parameter file"
            )
        data = f.read(size + 1)  # read(n) allocates n bytes first: never ask for more
    _scan_pickle(path, data)
    try:
        obj = _BookUnpickler(io.BytesIO(data)).load()
    except _Refused as e:
        allowed = ", ".join(f"{m}.{n}" for m, n in BOOK_PICKLE_GLOBALS)
        raise ModelFileError(
            f"{path}: refused to load global {e.name}: a book parameter file holds only numpy "
            f"arrays ({allowed}); this pickle could run code, do not open it with pickle"
        ) from None
    except Exception as e:  # any other failure of a hand-made or damaged pickle
        raise ModelFileError(
            f"{path}: malformed pickle ({type(e).__name__}: {_short(str(e))})"
        ) from None
    if not isinstance(obj, dict):
        raise ModelFileError(
            f"{path}: a book parameter file holds a dict name -> array, got {type(obj).__name__}"
        )
    params = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ModelFileError(f"{path}: parameter names must be strings, got {_short(key)}")
        if not isinstance(value, _ArrayStub):
            raise ModelFileError(
                f"{path}: {key!r} must be a numpy array, got {type(value).__name__}"
            )
        if value.array is None:
            raise ModelFileError(f"{path}: {key!r} is an array without its data (malformed)")
        if value.array.dtype.kind != "f":
            raise ModelFileError(
                f"{path}: {key!r} has dtype {value.array.dtype}; the book's weights are floating"
            )
        params[key] = value.array
    return params, hashlib.sha256(data).hexdigest()


# Layers f with f(c * x) = c * f(x) for c > 0: a scale factor passes through them unchanged
POSITIVELY_HOMOGENEOUS = (Relu, Pooling, AvgPooling, Flatten, Dropout)


def _book_dropout_scales(model: Sequential) -> dict[str, float]:
    """Factors that fold the book's test-time Dropout (x * (1 - ratio)) into the weights.

    Walking ``model.layers`` in order: a Dropout multiplies the pending factor by
    (1 - ratio); the next weight layer (Affine, Convolution) takes it into its W, since
    (c x) W + b = x (c W) + b; a Dropout after the last weight layer scales that layer's W and
    b, since c (x W + b) = x (c W) + c b. Only positively homogeneous layers (ReLU, pooling,
    Flatten) may stand in between; anything else raises ValueError.
    """
    names = {id(array): name for name, array in model.params.items()}
    scales: dict[str, float] = {}
    pending = 1.0
    last = None  # the last weight layer, while only homogeneous layers follow it
    for layer in model.layers:
        if isinstance(layer, Dropout):
            pending *= 1.0 - layer.dropout_ratio
        elif isinstance(layer, (Affine, Convolution)):
            if pending != 1.0:
                W = names[id(layer.params["W"])]
                scales[W] = scales.get(W, 1.0) * pending
                pending = 1.0
            last = layer
        elif not isinstance(layer, POSITIVELY_HOMOGENEOUS):
            if pending != 1.0:
                raise ValueError(
                    f"cannot fold the book's test-time Dropout scaling through {layer!r}: "
                    "only ReLU, pooling and Flatten may lie between a Dropout and the next "
                    "Affine or Convolution"
                )
            last = None
    if pending != 1.0:
        if last is None:
            raise ValueError(
                "cannot fold the book's test-time Dropout scaling after the last weight layer: "
                "no Affine or Convolution precedes it with only ReLU or pooling in between"
            )
        for key in ("W", "b"):
            name = names[id(last.params[key])]
            scales[name] = scales.get(name, 1.0) * pending
    return scales


def import_book_params(path: str | os.PathLike, model: Sequential) -> dict[str, object]:
    """Load a parameter file pickled by the book's sample code into ``model``, in place.

    The file (e.g. the book's ``ch07/params.pkl`` for SimpleConvNet, keys W1..W3, b1..b3, or
    ``ch08/deep_convnet_params.pkl`` for DeepConvNet, W1..W8, b1..b8) is a pickled dict
    name -> numpy.ndarray. It is read without ever running code from the file:

    - only the globals numpy arrays need are resolved (``BOOK_PICKLE_GLOBALS``:
      ``numpy.core.multiarray._reconstruct`` and numpy 2's ``numpy._core.multiarray.
      _reconstruct``, ``numpy.ndarray``, ``numpy.dtype``, and ``numpy._core.numeric.
      _frombuffer`` for pickle protocol 5), each to a stand-in that checks its arguments; any
      other global is refused, naming it;
    - arrays are rebuilt from their bytes here (plain numeric dtypes only, byte counts
      checked), never by numpy's ``__setstate__``; lengths and memo indices are checked before
      unpickling, so nothing is allocated beyond what the file holds.

    The names and shapes must be exactly those of ``model.params`` (buffers such as batch-norm
    running statistics are kept as they are); values are cast to the model's dtype.

    Dropout conversion: the book's Dropout is not inverted (at test time it multiplies by
    1 - ratio) while ours is the identity at test time, so each book Dropout's factor is folded
    into the weights (see ``_book_dropout_scales``): into the W of the next Affine/Convolution,
    or, after the last one, into that layer's W and b. For DeepConvNet (ratio 0.5, Dropout
    before and after the last Affine) that is W8 <- 0.25 W8, b8 <- 0.5 b8, and our ``predict``
    then equals the book's.

    Returns a report: file, sha256, model, params (name -> shape), dtype (from -> to) and
    dropout_scaling (name -> factor).
    """
    if not isinstance(model, Sequential):
        raise ValueError(f"model must be a scratchdl model (Sequential), got {type(model)}")
    params, sha256 = _read_book_pickle(path)
    class_name = type(model).__name__
    missing = sorted(set(model.params) - set(params))
    extra = sorted(set(params) - set(model.params))
    if missing or extra:
        raise ModelFileError(
            f"{path}: parameters do not fit this {class_name}: missing {missing}, unexpected "
            f"{extra} (build the model with the sizes the book used, e.g. {class_name}())"
        )
    wrong = {
        name: (params[name].shape, array.shape)
        for name, array in model.params.items()
        if params[name].shape != array.shape
    }
    if wrong:
        detail = ", ".join(
            f"{n} is {got} in the file but {want} here" for n, (got, want) in wrong.items()
        )
        raise ModelFileError(f"{path}: shapes do not fit this {class_name}: {detail}")
    scales = _book_dropout_scales(model)
    from_dtypes = sorted({str(a.dtype) for a in params.values()})
    state = {}
    for name in model.params:
        value = params[name].astype(np.float64) * scales.get(name, 1.0)
        with np.errstate(over="ignore"):  # values beyond the model's dtype are refused below
            cast = value.astype(model.dtype)
        if not np.all(np.isfinite(cast)):
            bad = value[~np.isfinite(cast)]
            raise ModelFileError(
                f"{path}: {name} has {bad.size} values that are not finite in {model.dtype} "
                f"(e.g. {bad[0]})"
            )
        state[name] = cast
    model.load_state_dict({**state, **model.buffers})
    return {
        "file": str(path),
        "sha256": sha256,
        "model": class_name,
        "params": {name: list(a.shape) for name, a in state.items()},
        "dtype": f"{'/'.join(from_dtypes)} -> {model.dtype}",
        "dropout_scaling": scales,
    }
