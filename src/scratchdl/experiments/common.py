"""Helpers shared by the experiment modules: results, options, data, progress."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from .plots import save_figure


def save_result(out: str | os.PathLike, name: str, fig, numbers: dict) -> dict:
    """Write ``out/name.png`` and ``out/name.json`` (both atomically); return ``numbers``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out / f"{name}.png")
    atomic_write(out / f"{name}.json", json.dumps(plain(numbers), indent=1).encode())
    return numbers


def plain(value):
    """numpy scalars and arrays -> JSON-able Python values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def options(given: dict, defaults: dict, name: str) -> dict:
    """``defaults`` updated by ``given``, converted to the defaults' types.

    Raises ValueError naming unknown options and the accepted ones.
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"experiment {name} has no option {', '.join(unknown)}; "
            f"options: {', '.join(f'{k}={v!r}' for k, v in defaults.items()) or 'none'}"
        )
    merged = dict(defaults)
    for key, value in given.items():
        kind = type(defaults[key])
        try:
            merged[key] = value if defaults[key] is None or isinstance(value, kind) else kind(value)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"option {key} of {name} must be {kind.__name__}, got {value!r}"
            ) from e
    return merged


def progress(iterable: Iterable, *, total: int | None = None, desc: str = "", enable: bool = True):
    """A tqdm progress bar over ``iterable`` when tqdm is installed and ``enable``."""
    if enable:
        try:
            from tqdm.auto import tqdm

            return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
        except ImportError:
            pass
    return iterable


def mnist(*, flatten: bool = True, quick: bool = False, progress: bool = True):
    """MNIST for an experiment: the full set, or in ``quick`` mode the 2000/1000-image sample
    shipped with the package (offline, no download)."""
    from ..datasets import load_mnist, load_mnist_sample

    if quick:
        return load_mnist_sample(flatten=flatten)
    return load_mnist(flatten=flatten, progress=progress)
