"""Model files: a model's weights with its class and config, in one safetensors file.

``save(model, path)`` writes the model's ``state_dict()`` (parameters and batch-norm running
statistics) with metadata ``format="scratchdl"``, ``format_version``, ``class``, ``config``
(JSON) and ``scratchdl_version``; ``load(path)`` rebuilds the model with
``model_from_config`` and copies the tensors in, refusing (``ModelFileError``, naming the
file) anything that does not fit.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from .. import weight_init as init
from ..models import MODELS, Sequential, model_from_config
from ..support.checks import check_path
from ..support.checks import short_repr as _short
from .book_pickle import load_book_model
from .safetensors_file import (
    ModelFileError,
    check_finite_tensors,
    is_int,
    load_tensors,
    save_tensors,
    strict_json,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "save", "scratchdl_version"]

FORMAT = "scratchdl"
FORMAT_VERSION = "1"
MIN_CONFIG_INT_LIMIT = 4096  # see _check_config_ints
# ``load`` lets a file's config draw at most max(4 x the values the file holds, 2**20) weights:
# a forged size fails before gigabytes are allocated, a merely wrong one gets the precise
# message about the shapes that do not match.
VALUE_BUDGET_FACTOR, MIN_VALUE_BUDGET = 4, 1 << 20
PICKLE_SUFFIXES = (".pkl", ".pickle")  # names save refuses: load_model reads .pkl as a pickle


def scratchdl_version() -> str:
    """The installed scratchdl's version, or "unknown" when it runs from a source tree."""
    try:
        return version("scratchdl")
    except PackageNotFoundError:
        return "unknown"


def save(model: Sequential, path: str | os.PathLike) -> None:
    """Save a model (parameters, batch-norm running statistics, class and config) atomically.

    The file is safetensors: one tensor per ``model.state_dict()`` entry, and metadata
    ``format="scratchdl"``, ``format_version="1"``, ``class``, ``config`` (JSON) and
    ``scratchdl_version``. ``load`` rebuilds the model bit for bit. The same model gives
    the same bytes (sorted header), so a checksum identifies it. NaN or infinite weights (a
    diverged run) raise ValueError and write nothing; so does a name ending in .pkl or
    .pickle (PICKLE_SUFFIXES), which every loader would take for the book's pickled weights.
    """
    if os.fspath(check_path("path", path)).lower().endswith(PICKLE_SUFFIXES):
        raise ValueError(
            f"save writes safetensors, but {path} is named like a pickle, which the loaders "
            "would read as the book's weights; name it .safetensors"
        )
    name = type(model).__name__
    if MODELS.get(name) is not type(model):
        raise ValueError(
            f"save needs one of the model classes {sorted(MODELS)} (load rebuilds it from its "
            f"config), got {name}"
        )
    try:
        config = json.dumps(model.config, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}.config must be JSON-serialisable, got {model.config!r}") from e
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "config": config,
        "scratchdl_version": scratchdl_version(),
    }
    state = model.state_dict()
    check_finite_tensors(path, state, writing=True)
    save_tensors(path, state, metadata)


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
        elif is_int(value) and abs(value) > limit:
            raise ModelFileError(
                f"{path}: {where} = {_short(value)} is larger than any model this file's stored "
                f"values could hold (limit {limit}); the file is corrupt"
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
            f"expected {FORMAT!r}); write model files with scratchdl.files.save"
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
        config = strict_json(metadata.get("config", ""))
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
    check_finite_tensors(path, tensors)
    try:
        with np.errstate(over="ignore"):  # a value beyond the model's dtype: refused below
            model.load_state_dict(tensors)
    except ValueError as e:  # the checks above should leave nothing to refuse
        raise ModelFileError(f"{path}: {e}") from None
    for name, array in model.state_dict().items():
        if not np.isfinite(array).all():
            largest = float(np.abs(tensors[name]).max())
            raise ModelFileError(
                f"{path}: tensor {name!r} holds values up to {largest:.3g}, beyond the range "
                f"of {array.dtype} (the dtype of its config, at most "
                f"{float(np.finfo(array.dtype).max):.3g}); the file is damaged or its config "
                "names the wrong dtype"
            )
    return model


BOOK_SUFFIX = ".pkl"  # the book's sample code pickles its weights into .pkl files


def load_model(path: str | os.PathLike) -> tuple[Sequential, str]:
    """A model from a scratchdl model file, or from one of the book's pickled weight files
    (``.pkl``: ch03's ``sample_weight.pkl``, ch07's ``params.pkl``, ch08's
    ``deep_convnet_params.pkl``, recognised by their parameters; see ``load_book_model``).

    Returns the model and one line that says what was loaded.
    """
    if os.fspath(path).endswith(BOOK_SUFFIX):
        model, report = load_book_model(path)
        return model, f"{path}: {report['title']}, read as {type(model).__name__}"
    model = load(path)
    return model, f"{path}: {type(model).__name__}"
