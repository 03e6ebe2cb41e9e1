"""The book's pickled weights (``params.pkl``), imported without trusting the pickle.

``import_book_params(path, model)`` reads a file written by the book's sample code into a model
you built; ``load_book_model(path)`` also recognises which of the book's networks the file
holds (ch03's inference network, SimpleConvNet, DeepConvNet) and builds it. Both read through an
unpickler that resolves only the globals a numpy array needs, each to a stand-in that checks
its arguments; arrays are rebuilt from their bytes here, never by numpy's own pickle code,
and the opcodes are walked before unpickling so that nothing is allocated beyond what the file
holds. Every problem raises ``ModelFileError`` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import pickletools

import numpy as np

from ..layers import Affine, AvgPooling, Convolution, Dropout, Flatten, Pooling, Relu
from ..models import DeepConvNet, MultiLayerNet, Sequential, SimpleConvNet
from ..support.checks import check_path, open_regular_file
from ..support.checks import short_repr as _short
from .safetensors_file import ModelFileError, is_int

__all__ = ["BOOK_NETWORKS", "BOOK_PICKLE_GLOBALS", "import_book_params", "load_book_model"]

MAX_PICKLE_BYTES = 1 << 30  # the book's files are 1-4 MB; refuse to read more than 1 GiB


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
    if not isinstance(shape, tuple) or not all(is_int(n) and n >= 0 for n in shape):
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
    with open_regular_file(check_path("path", path), error=ModelFileError) as f:
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
    return _load_into(path, model, params, sha256)


def _load_into(path, model: Sequential, params: dict, sha256: str) -> dict[str, object]:
    """Check the file's arrays against ``model`` and copy them in (see import_book_params)."""
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


# The book's networks that a weight file can hold, recognised by their parameter shapes:
# name -> (what the book calls it, a builder for the given dtype).
BOOK_NETWORKS = {
    "ch03": (
        "the book's ch03 inference network (neuralnet_mnist.py, 784-50-100-10, sigmoid)",
        lambda dtype: MultiLayerNet(
            784, [50, 100], 10, activation="sigmoid", weight_init_std="sigmoid", dtype=dtype
        ),
    ),
    "SimpleConvNet": ("the book's ch07 SimpleConvNet", lambda dtype: SimpleConvNet(dtype=dtype)),
    "DeepConvNet": ("the book's ch08 DeepConvNet", lambda dtype: DeepConvNet(dtype=dtype)),
}


def load_book_model(path: str | os.PathLike, *, dtype=np.float32) -> tuple[Sequential, dict]:
    """Read one of the book's weight files and build the network it belongs to.

    The network is recognised from the file's parameter names and shapes: ch03's
    ``sample_weight.pkl`` (784-50-100-10 with sigmoid hidden layers, as a MultiLayerNet),
    ch07's ``params.pkl`` (SimpleConvNet) or ch08's ``deep_convnet_params.pkl`` (DeepConvNet).
    Returns the model and ``import_book_params``'s report, with ``network`` naming what was
    recognised. A file of any other network raises ModelFileError listing what it holds.
    """
    params, sha256 = _read_book_pickle(path)
    shapes = {name: a.shape for name, a in params.items()}
    for key, (title, build) in BOOK_NETWORKS.items():
        model = build(dtype)
        if shapes == {name: a.shape for name, a in model.params.items()}:
            report = _load_into(path, model, params, sha256)
            return model, {**report, "network": key, "title": title}
    held = ", ".join(f"{n} {tuple(s)}" for n, s in sorted(shapes.items()))
    raise ModelFileError(
        f"{path}: not one of the book's networks ({', '.join(BOOK_NETWORKS)}): it holds {held}; "
        "build the network it belongs to and use import_book_params(path, model)"
    )
