"""Threads for the convolutional networks: each works through its own part of the batch.

``BatchParts`` runs the leading per-sample layers of a model on parts of a batch, one
thread per part, each part through its own twins of those layers (``Layer.twin``: the same
parameter arrays, caches of its own), and sums the parameter gradients over the parts.

numpy lets go of the GIL while it copies arrays and while BLAS multiplies them, so Python
threads over disjoint parts of a batch run truly in parallel. For the book's CNNs that beats
BLAS's own threads, which only help inside the matrix products: the im2col copies, ReLU and
pooling run on one core, and a convolution's products are many small ones (one per band of
rows, ``conv.ConvEngine``), each too small to split well.

Two threads that each call a multi-threaded BLAS oversubscribe the cores, so while the parts
run, BLAS is held to one thread per caller with threadpoolctl (in the ``cli`` extra).
Without threadpoolctl, or with one thread, everything runs in the calling thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

import numpy as np

R = TypeVar("R")

ENV_THREADS = "SCRATCHDL_NUM_THREADS"
MAX_DEFAULT_THREADS = 8  # batch parts of 100 / 8 samples are already too thin to pay off

_num_threads: int | None = None  # None: read the environment on first use
_pool: ThreadPoolExecutor | None = None
_controller = None  # a threadpoolctl.ThreadpoolController, or False without threadpoolctl
_blas_libs = None  # its BLAS libraries


def _forget_pool() -> None:
    global _pool
    _pool = None  # in a forked child: the pool's threads did not survive the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not available on macOS and Windows
        return os.cpu_count() or 1


def _default_threads() -> int:
    value = os.environ.get(ENV_THREADS)
    if value is not None:
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"{ENV_THREADS} must be a whole number >= 1, got {value!r}")
        return int(value)
    return min(_usable_cores(), MAX_DEFAULT_THREADS)


def get_num_threads() -> int:
    """Threads a CNN splits its batch over: ``set_num_threads``, else ``$SCRATCHDL_NUM_THREADS``,
    else the usable cores (at most 8). In effect 1 when threadpoolctl is not installed."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(n: int | None) -> None:
    """Split CNN batches over ``n`` threads (an int >= 1) from now on; 1 turns threads off;
    None goes back to the default (``$SCRATCHDL_NUM_THREADS``, else the cores), read anew.

    Results depend on ``n`` only through the order of floating-point sums: a parameter's
    gradient is the sum of one partial gradient per part.
    """
    global _num_threads, _pool
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"the number of threads must be an int >= 1 or None, got {n!r}")
    if _pool is not None and n != _num_threads:
        _pool.shutdown(wait=True)
        _pool = None
    _num_threads = n


def _blas_controller():
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _controller


def blas_threads() -> int:
    """The BLAS threads a matrix product may use now, as threadpoolctl reads them (a few µs;
    1 while ``run_all`` runs its parts), or, without threadpoolctl, the usable cores
    (OpenBLAS's default)."""
    global _blas_libs
    controller = _blas_controller()
    if not controller:
        return _usable_cores()
    if _blas_libs is None:
        _blas_libs = controller.select(user_api="blas").lib_controllers
    return max((lib.num_threads for lib in _blas_libs), default=1)  # read live from BLAS


def threads_for(N: int) -> int:
    """How many parts a batch of ``N`` samples is split into (1: run it as it is)."""
    n = min(get_num_threads(), N)
    if n > 1 and not _blas_controller():
        return 1
    return n


def split(N: int, n: int) -> list[tuple[int, int]]:
    """``n`` contiguous parts ``(lo, hi)`` of ``range(N)``, as equal as can be."""
    cuts = [N * k // n for k in range(n + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def one_blas_thread() -> contextlib.AbstractContextManager:
    """A context that holds BLAS to one thread: for a batch too small to split, whose
    products are too small to share too (BLAS's idle threads spin while they wait, and take
    the CPU from other work; benchmarks/RESULTS.md). Nothing to do without threadpoolctl or
    when BLAS already runs one thread."""
    controller = _blas_controller()
    if not controller or blas_threads() == 1:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def run_all(tasks: Sequence[Callable[[], R]]) -> list[R]:
    """Run the tasks at once, one per thread, BLAS held to one thread; return their results.

    The calling thread runs the first task. All tasks have finished when this returns or
    raises (the first exception is re-raised), so none is left writing into shared arrays.
    """
    global _pool
    if len(tasks) == 1:
        return [tasks[0]()]
    if _pool is None:
        _pool = ThreadPoolExecutor(get_num_threads(), thread_name_prefix="scratchdl")
    with _blas_controller().limit(limits=1, user_api="blas"):
        futures = [_pool.submit(task) for task in tasks[1:]]
        try:
            first = tasks[0]()
        finally:
            wait(futures)
    return [first] + [f.result() for f in futures]


def _forward_part(layers: Sequence[Any], x: np.ndarray, train: bool) -> np.ndarray:
    for layer in layers:
        x = layer.forward(x, train=train)
    return x


def _backward_part(layers: Sequence[Any], dout: np.ndarray) -> None:
    for layer in reversed(layers[1:]):
        dout = layer.backward(dout)
    layers[0].backward_params(dout)  # the model's first layers: the input needs no gradient


class BatchParts:
    """The leading layers of a model, run on parts of a batch at once, one thread a part.

    Part 0 goes through the model's own layers, part i > 0 through the i-th twin of each
    (``layer.twin()``: the very parameter and buffer arrays, caches of its own), made on
    first use and kept, so that a twin's buffers are reused from step to step. ``backward``
    leaves in each of the model's layers the sum of the parts' gradients (the loss is a mean
    over the batch, so partial sums add up to the whole batch's gradient).
    """

    def __init__(self) -> None:
        self.parts: list[tuple[int, int]] = []  # the latest forward's parts, for backward
        self.stacks: list[list[Any]] = []  # the latest forward's layers, one list per part
        self._twins: dict[int, tuple[Any, dict, list]] = {}  # id(layer) -> its twins

    def forward(self, layers: Sequence[Any], x: np.ndarray, train: bool) -> np.ndarray:
        """``x`` through ``layers``, in ``threads_for(len(x))`` parts; the outputs stacked."""
        self.parts = split(len(x), threads_for(len(x)))
        self.stacks = [list(layers)]
        self.stacks += [
            [self._twin(layer, i) for layer in layers] for i in range(1, len(self.parts))
        ]
        outs = run_all(
            [
                functools.partial(_forward_part, stack, x[lo:hi], train)
                for stack, (lo, hi) in zip(self.stacks, self.parts, strict=True)
            ]
        )
        return np.concatenate(outs)

    def backward(self, dout: np.ndarray) -> None:
        """Back through the layers of the latest forward, part by part, and sum the gradients
        into the model's own layers. The first layer computes no input gradient."""
        run_all(
            [
                functools.partial(_backward_part, stack, dout[lo:hi])
                for stack, (lo, hi) in zip(self.stacks, self.parts, strict=True)
            ]
        )
        for i, layer in enumerate(self.stacks[0]):
            layer.grads = {
                key: functools.reduce(np.add, [stack[i].grads[key] for stack in self.stacks])
                for key in layer.grads
            }

    def _twin(self, layer: Any, i: int) -> Any:
        """The twin of ``layer`` that part ``i`` (>= 1) goes through."""
        held = self._twins.get(id(layer))
        if held is None or held[0] is not layer or held[1] is not layer.params:
            held = self._twins[id(layer)] = (layer, layer.params, [])  # new, or new params
        twins = held[2]
        while len(twins) < i:
            twins.append(layer.twin())
        return twins[i - 1]
