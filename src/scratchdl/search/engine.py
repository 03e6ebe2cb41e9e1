"""The search on Dask distributed: one task per trial, on an embedded ``LocalCluster`` or on
a running cluster (``dask scheduler`` and ``dask worker ADDRESS``), results streamed back as
trials finish.

Dask does the distributed part: it places the tasks, and when a worker dies mid-trial (even
by SIGKILL) the scheduler runs that trial again on another worker, so the search ends with
every trial; the embedded cluster's nannies start a new worker in place of the dead one.
A task's key is a function of the trial alone, so the same trial is the same task whatever
client submits it. Dask's own logging is held to errors the user cannot act on anyway; the
errors that matter come back as one exception each (see ``run_trials``).

``distributed`` is imported inside the functions: the rest of the package never needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

from .trial import Recipe, run_trial

DEFAULT_TIMEOUT = 10.0  # seconds to reach a scheduler, and for it to have a worker
BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
QUIET = logging.CRITICAL  # Dask's log level while a search runs: its messages are for Dask's
# embedded workers per usable core at most: a trial is one process of one thread, so more
# only share the cores (1000 workers on 2 cores started for minutes and ran nothing)
WORKERS_PER_CORE = 2


def usable_cores() -> int:
    """The cores this process may run on (the default number of embedded workers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_count(requested: int | None, trials: int) -> int:
    """The embedded workers for ``trials`` trials left to run: ``requested`` (default: the
    usable cores), at most one per trial and WORKERS_PER_CORE per usable core."""
    cores = usable_cores()
    return max(1, min(requested or cores, trials, WORKERS_PER_CORE * cores))


def worker_environment(workers: int) -> dict[str, str]:
    """The environment of the embedded workers: each holds the CNNs' batch threads to its
    share of the cores, and BLAS to one thread (see ``trial.hold_threads``)."""
    from ..engine.threads import ENV_THREADS

    share = max(1, usable_cores() // workers)
    return {ENV_THREADS: str(share), **dict.fromkeys(BLAS_VARIABLES, "1")}


@contextlib.contextmanager
def quiet_dask() -> Iterator[None]:
    """Hold the ``distributed`` loggers of this process to QUIET inside the block."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(QUIET)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None = None, *, timeout: float = DEFAULT_TIMEOUT):
    """A Dask ``Client`` for the block: on the running cluster at ``scheduler``
    (``tcp://HOST:PORT``), or on an embedded ``LocalCluster`` of ``workers`` processes of one
    thread each (default: the usable cores), bound to 127.0.0.1, without a dashboard.

    OSError, in one line that says what to do, when the scheduler cannot be reached within
    ``timeout`` seconds or has no worker by then. Everything is closed when the block ends.
    """
    from distributed import Client, LocalCluster

    with quiet_dask(), contextlib.ExitStack() as stack:
        if scheduler is None:
            workers = workers or usable_cores()
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=QUIET,
                env=worker_environment(workers),
                preload=[__name__],  # dask_setup below, in each worker process
            )
            stack.callback(cluster.close)
            client = Client(cluster, timeout=timeout)
            stack.callback(client.close)
        else:
            try:
                check_scheduler(scheduler, timeout)
                client = Client(scheduler, timeout=timeout)
            except Exception as e:  # OSError, TimeoutError, ValueError for a bad address
                reason = " ".join(str(e).split()) or type(e).__name__
                raise OSError(
                    f"--scheduler {scheduler}: cannot reach a Dask scheduler there within "
                    f"{timeout:g} s ({reason}); start one with `dask scheduler` (and workers "
                    "with `dask worker ADDRESS`), or leave --scheduler out to search on this "
                    "machine"
                ) from None
            stack.callback(client.close)
            try:
                client.wait_for_workers(1, timeout=timeout)
            except Exception:  # a TimeoutError (its class differs across Dask versions)
                raise OSError(
                    f"--scheduler {scheduler}: the scheduler has no worker after {timeout:g} s; "
                    f"start some with `dask worker {scheduler}`"
                ) from None
        yield client


def check_scheduler(address: str, timeout: float) -> None:
    """Ask ``address`` who it is, all within ``timeout`` seconds: OSError unless a Dask
    scheduler answers.

    ``Client`` alone waits forever on a port that accepts a connection and then says nothing
    Dask understands (an HTTP server, a dashboard: distributed's handshake reads without a
    timeout), so this asks first, under a deadline of its own.
    """
    import asyncio

    from distributed.comm import connect as dask_connect

    async def identity():
        comm = await dask_connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), timeout))
    except asyncio.TimeoutError:
        raise OSError(f"no Dask answer in {timeout:g} s") from None
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        raise OSError(f"it answers as {kind or 'something else'}, not as a scheduler")


def dask_setup(worker) -> None:
    """Dask's preload hook, run as each embedded worker process starts: ignore Ctrl-C.

    A terminal sends Ctrl-C to every process of the command; the command itself stops the
    search and closes the cluster, while workers that took it would each print a traceback.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def task_key(recipe: Recipe, seed: int, index: int, params: dict[str, float]) -> str:
    """The Dask key of a trial: the same for the same trial of the same search, whoever
    submits it, and different for any other."""
    digest = hashlib.sha256(repr((recipe, seed, index, sorted(params.items()))).encode())
    return f"scratchdl-trial-{index}-{digest.hexdigest()[:16]}"


def run_trials(
    client,
    recipe: Recipe,
    seed: int,
    todo: Sequence[tuple[int, dict[str, float]]],
    on_result: Callable[[dict], None],
    *,
    progress: bool = True,
    total: int | None = None,
    desc: str = "search",
) -> None:
    """Run trial ``index`` with ``params`` for each ``(index, params)`` of ``todo``, one task
    each, and call ``on_result(record)`` (``trial.run_trial``'s) as each finishes, in the
    order they finish, with a progress bar on stderr over ``total`` trials (default: those
    of ``todo``; the others count as done).

    A trial's own error (say, no MNIST on a worker) is raised as it is; a trial that killed
    its workers again and again, or a scheduler lost, raises OSError. Either way, and on
    Ctrl-C, the trials not yet finished are cancelled before this returns.
    """
    from distributed import as_completed

    total = len(todo) if total is None else total
    bar = progress_bar(total, total - len(todo), desc, progress)
    futures = [
        client.submit(
            run_trial,
            recipe,
            seed,
            index,
            params,
            key=task_key(recipe, seed, index, params),
            pure=False,
        )
        for index, params in todo
    ]
    best = None
    try:
        with quiet_dask():
            for future in as_completed(futures):
                record = result_of(future)
                on_result(record)
                if record["val_acc"] is not None and (best is None or record["val_acc"] > best):
                    best = record["val_acc"]
                if bar is not None:
                    bar.update(1)
                    if best is not None:
                        bar.set_postfix(best=f"{best:.3f}")
    finally:
        if bar is not None:
            bar.close()
        unfinished = [f for f in futures if not f.done()]
        if unfinished:
            with contextlib.suppress(Exception), quiet_dask():
                client.cancel(unfinished)


def result_of(future) -> dict:
    """The record of a finished trial's task; its own error as it is, Dask's as OSError."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as e:
        raise OSError(
            f"trial task {future.key} was running on workers that died, again and again ({e}); "
            "a trial that needs more memory than a worker has does that: use a smaller model "
            "or fewer workers per machine"
        ) from None
    except CancelledError:
        raise OSError(
            f"trial task {future.key} was cancelled: the connection to the scheduler was lost; "
            "run the same command again to resume the search"
        ) from None


def progress_bar(total: int, done: int, desc: str, enable: bool):
    """A tqdm bar on stderr over ``total`` trials, ``done`` of them already; None if off."""
    if not enable:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total,
        initial=done,
        desc=desc,
        unit="trial",
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )
