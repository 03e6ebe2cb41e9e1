"""The walk of one batch through the package: a real call trace of ``SimpleConvNet.gradient``.

One thread (``set_num_threads(1)``), a batch of 8 MNIST-shaped images, float32, in steady
state (after a few warm-up steps). ``sys.setprofile`` records every Python call that the main
thread makes into scratchdl; each call is put in its room, a top-level module or subpackage
of scratchdl (``scratchdl.layers.affine`` -> ``layers``, ``scratchdl.support.checks`` ->
``support``), and consecutive calls in the same room are merged into one stay. Calls into
numpy or the standard library do not count: they leave no trace in the walk between
scratchdl's rooms.

Prints the rooms walked, the number of stays, and the number of re-entries: stays in a room
that the walk had already left. Issue 22's target: at most 12 stays, at most 5 re-entries.

    python benchmarks/call_trace.py [--verbose]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import scratchdl
from scratchdl import SimpleConvNet, set_num_threads

BATCH = 8
WARMUP = 3
PACKAGE = "scratchdl"


def room(module: str) -> str:
    """``scratchdl.layers.affine`` -> ``layers``; ``scratchdl.support.checks`` -> ``checks``;
    the package's own ``__init__`` -> ``scratchdl``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def trace(model, x: np.ndarray, t: np.ndarray) -> list[tuple[str, str]]:
    """(room, function) of every Python call into scratchdl during one ``model.gradient``."""
    calls: list[tuple[str, str]] = []

    def profile(frame, event, arg):
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if module == PACKAGE or module.startswith(PACKAGE + "."):
            calls.append((room(module), f"{module}.{frame.f_code.co_qualname}"))

    sys.setprofile(profile)  # this thread only: the main thread
    try:
        model.gradient(x, t)
    finally:
        sys.setprofile(None)
    return calls


def stays(calls: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Consecutive calls in one room, merged: (room, the functions called there)."""
    out: list[tuple[str, list[str]]] = []
    for where, name in calls:
        if out and out[-1][0] == where:
            out[-1][1].append(name)
        else:
            out.append((where, [name]))
    return out


def re_entries(walk: list[str]) -> int:
    """Stays in a room that the walk had been in, and left, before."""
    return sum(1 for i, where in enumerate(walk) if where in walk[:i])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--verbose", action="store_true", help="list the functions of each stay")
    args = p.parse_args()
    set_num_threads(1)
    rng = np.random.default_rng(0)
    model = SimpleConvNet(rng=0)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, BATCH)
    for _ in range(WARMUP):  # buffers allocated, plans made: the steady state
        model.gradient(x, t)
    walk = stays(trace(model, x, t))
    rooms = [where for where, _ in walk]
    print(f"scratchdl {scratchdl.__version__}: SimpleConvNet.gradient, batch {BATCH}, 1 thread")
    print(" -> ".join(rooms))
    print(f"{len(rooms)} stays, {re_entries(rooms)} re-entries into a room already left")
    if args.verbose:
        for where, names in walk:
            print(f"[{where}]")
            seen: list[str] = []
            for name in names:
                if name not in seen:
                    seen.append(name)
            for name in seen:
                print(f"    {name} x{names.count(name)}")


if __name__ == "__main__":
    main()
