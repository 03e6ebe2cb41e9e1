"""The Train tab's jobs: worker processes, a bounded queue, stop, resume, and what they report.

Each job trains in a process of its own (multiprocessing's spawn: a fresh interpreter, no
copy of the server's threads or sockets), running ``job_worker.main`` into a run folder under
``--runs`` named after the job (its id). At most ``max_jobs`` run at once (default: the cores,
at most MAX_JOBS_CAP), each with BLAS and the CNN threads held to its share of the cores; at
most ``queue_limit`` more wait, in order, and a request for more gets 429.

One thread (``_watch``) owns the processes: it starts waiting jobs, reads the workers'
messages (JSON on a one-way pipe each), and notices a worker's end by its pipe closing. A
worker that ended without saying how (killed, out of memory) leaves its job ``failed``,
naming the exit code, and the server goes on. What the workers report is kept per job and
appended to a numbered log of events that ``jobs_api`` streams to the page: a client that
connects gets a snapshot, then the events after it.

Every job also leaves ``job.json`` (its settings) in its run folder, so a server started again
lists the jobs that a stop (Ctrl-C included) left with a checkpoint, ready to resume.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from pathlib import Path

from . import job_records, job_worker
from .job_records import ENDED, RESUMABLE, Job, new_folder, slug, write_job_file
from .job_worker import CHECKPOINT
from .safety import ClientError

MAX_JOBS_CAP = 4  # jobs at once by default: one per core, at most this many
MAX_JOBS_LIMIT = 32  # what --max-jobs accepts
QUEUE_LIMIT = 8  # jobs that may wait; one more gets 429
MAX_KEPT = 50  # jobs remembered; beyond, the oldest ended one is forgotten (its run stays)
MAX_EVENTS = 4000  # the stream's backlog; a client further behind gets a new snapshot
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a resumed run's restored history: 100 000 losses
MESSAGES_PER_ROUND = 200  # a chatty worker cannot starve the others
STOP_SECONDS = 30.0  # a worker told to stop writes its checkpoint within this, or is killed
WATCH_SECONDS = 0.5
log = logging.getLogger("scratchdl.serve")


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_max_jobs() -> int:
    return min(usable_cores(), MAX_JOBS_CAP)


class JobManager:
    """The jobs of one server: ``submit``, ``stop``, ``resume``, their records and events."""

    def __init__(
        self,
        runs_dir,
        *,
        max_jobs: int | None = None,
        queue_limit: int = QUEUE_LIMIT,
        data_dir=None,
        recover: bool = True,
    ) -> None:
        self.runs_dir = Path(runs_dir)
        self.max_jobs = default_max_jobs() if max_jobs is None else max_jobs
        if not 1 <= self.max_jobs <= MAX_JOBS_LIMIT or not 0 <= queue_limit:
            raise ValueError(
                f"max_jobs must be 1..{MAX_JOBS_LIMIT} and queue_limit >= 0, got "
                f"{self.max_jobs!r} and {queue_limit!r}"
            )
        self.queue_limit = queue_limit
        self.data_dir = data_dir
        self.threads = max(1, usable_cores() // self.max_jobs)  # each job's share of the cores
        self.jobs: dict[str, Job] = {}
        self.queue: list[str] = []
        self.lock = threading.RLock()
        self.events: collections.deque = collections.deque(maxlen=MAX_EVENTS)
        self.seq = 0
        self.submits = 0
        self.closing = False  # set by begin_close, perhaps from a signal handler
        self.close_deadline: float | None = None
        self.thread: threading.Thread | None = None
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.streams = 0  # clients following the stream (jobs_api bounds them)
        if recover:
            self.jobs.update((job.id, job) for job in job_records.recover(self.runs_dir, MAX_KEPT))

    # -- what the API calls ------------------------------------------------------------------

    def submit(self, runs: list[tuple[dict, str]], preset: str | None = None) -> list[Job]:
        """Queue one job per (checked settings, label) of ``runs``, all or none: ClientError 429
        when the free places and the queue cannot take them all."""
        with self.lock:
            if self.closing:
                raise ClientError(503, "the server is stopping; start the job after its restart")
            if len(runs) > self.free():
                raise ClientError(
                    429,
                    f"the queue is full: {self.running()} jobs run and {len(self.queue)} wait "
                    f"(at most {self.max_jobs} and {self.queue_limit}), so {len(runs)} more "
                    "cannot start; wait for one to end, or stop one",
                )
            self.submits += 1
            group = f"{preset or 'run'}-{self.submits}"
            stamp = time.strftime("%Y%m%d-%H%M%S")
            jobs = []
            for settings, label in runs:
                base = slug(f"{preset}-{label}" if preset else label)
                job = Job(
                    new_folder(self.runs_dir, f"{base}-{stamp}"),
                    settings,
                    label,
                    group,
                    time.time(),
                )
                write_job_file(self.runs_dir, job)
                self.jobs[job.id] = job
                self.queue.append(job.id)
                jobs.append(job)
            self.forget_old()
            for job in jobs:
                self.emit_job(job)
        self.wake()
        return jobs

    def stop(self, job_id: str) -> Job:
        with self.lock:
            job = self.get(job_id)
            if job.state == "queued":
                self.queue.remove(job.id)
                self.set_state(job, "stopped", "stopped before it started")
            elif job.state == "running":
                job.stop.set()
                self.set_state(job, "stopping", "stopping at the next step")
            elif job.state != "stopping":
                raise ClientError(409, f"job {job.id} has already ended ({job.state})")
            return job

    def resume(self, job_id: str, lr: float | None = None) -> Job:
        """Queue a stopped, diverged or failed job again: from its checkpoint if it has one,
        else from the start; ``lr``: a new learning rate (say, after a divergence)."""
        with self.lock:
            job = self.get(job_id)
            if job.state not in RESUMABLE:
                raise ClientError(
                    409,
                    f"job {job.id} is {job.state}; only a stopped, diverged or failed "
                    "job can be resumed",
                )
            if self.closing or self.free() < 1:
                raise ClientError(429, "the queue is full; wait for a job to end, or stop one")
            if lr is not None:
                job.settings = {**job.settings, "lr": lr}
                write_job_file(self.runs_dir, job)
            job.checkpoint = (self.runs_dir / job.id / CHECKPOINT).is_file()
            job.resume = job.checkpoint
            if not job.resume:  # nothing kept: it starts over
                self.emit(job.forget_curves())
            job.end, job.final_test_acc = None, None
            self.queue.append(job.id)
            self.set_state(job, "queued", "")
        self.wake()
        return job

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise ClientError(404, f"no job {job_id[:80]!r}; GET /api/jobs lists them")
        return job

    def position(self, job: Job) -> int | None:
        return self.queue.index(job.id) + 1 if job.id in self.queue else None

    def listing(self) -> dict:
        with self.lock:
            return {
                **self.limits(),
                "jobs": [j.summary(self.position(j)) for j in self.jobs.values()],
            }

    def limits(self) -> dict:
        return {
            "max_jobs": self.max_jobs,
            "queue_limit": self.queue_limit,
            "running": self.running(),
            "waiting": len(self.queue),
        }

    def snapshot(self) -> tuple[dict, int]:
        """Every job in full, and the number of the latest event it includes."""
        with self.lock:
            jobs = [j.detail(self.position(j)) for j in self.jobs.values()]
            return {"type": "snapshot", **self.limits(), "jobs": jobs}, self.seq

    def events_since(self, seq: int) -> tuple[list[dict] | None, int]:
        """The events after number ``seq``, and the latest number; None when some of them are
        no longer kept (the caller takes a new snapshot)."""
        with self.lock:
            if seq >= self.seq:
                return [], self.seq
            if not self.events or self.events[0][0] > seq + 1:
                return None, self.seq
            return [e for n, e in self.events if n > seq], self.seq

    def free(self) -> int:
        """Jobs that may still be submitted: free places to run, and in the queue."""
        return self.max_jobs - self.running() + self.queue_limit - len(self.queue)

    def running(self) -> int:
        return sum(1 for j in self.jobs.values() if j.process is not None)

    # -- events --------------------------------------------------------------------------------

    def emit(self, event: dict) -> None:
        self.seq += 1
        self.events.append((self.seq, event))

    def emit_job(self, job: Job) -> None:
        self.emit({"type": "job", "job": job.summary(self.position(job))})

    def set_state(self, job: Job, state: str, message: str) -> None:
        job.state, job.message = state, message
        self.emit_job(job)
        for other in self.queue:  # their places in the queue changed
            if other != job.id:
                self.emit_job(self.jobs[other])

    # -- the run folders -------------------------------------------------------------------------

    def forget_old(self) -> None:
        ended = [j for j in self.jobs.values() if j.state in ENDED]
        while len(self.jobs) > MAX_KEPT and ended:
            job = ended.pop(0)
            del self.jobs[job.id]
            self.emit({"type": "removed", "id": job.id})

    # -- the watcher thread: processes and their messages ----------------------------------------

    def wake(self) -> None:
        """Wake the watcher (starting it the first time); safe in a signal handler."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.wake_w, b"!")
        if self.thread is None and not self.closing:
            self.thread = threading.Thread(target=self.watch, name="scratchdl-jobs", daemon=True)
            self.thread.start()

    def begin_close(self) -> None:
        """Tell the jobs to stop (with their checkpoints) and the streams to end; returns at
        once, so a signal handler may call it."""
        self.closing = True
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.wake_w, b"!")

    def close(self, timeout: float = STOP_SECONDS) -> list[Job]:
        """Stop every job, waiting up to ``timeout`` s for their checkpoints; return the jobs
        that were running and are now stopped."""
        self.close_deadline = time.monotonic() + timeout
        self.begin_close()
        if self.thread is not None:
            self.thread.join(timeout + 10)
        with self.lock:
            return [j for j in self.jobs.values() if j.closed_by_server]

    def watch(self) -> None:
        while True:
            with self.lock:
                if self.closing:
                    self.stop_all()
                else:
                    self.start_waiting()
                running = [j for j in self.jobs.values() if j.conn is not None]
            if self.closing and not running:
                return
            conns = {j.conn: j for j in running}
            ready = multiprocessing.connection.wait([*conns, self.wake_r], WATCH_SECONDS)
            for obj in ready:
                if obj == self.wake_r:
                    with contextlib.suppress(BlockingIOError, OSError):
                        os.read(self.wake_r, 4096)
                else:
                    self.read(conns[obj])

    def start_waiting(self) -> None:
        while self.queue and self.running() < self.max_jobs:
            job = self.jobs[self.queue.pop(0)]
            public = {str(self.runs_dir / job.id): f"{self.runs_dir.name}/{job.id}"}
            public[str(self.runs_dir)] = self.runs_dir.name
            spec = {
                "settings": job.settings,
                "run_dir": str(self.runs_dir / job.id),
                "public": public,
                "resume": job.resume,
                "threads": self.threads,
                "data_dir": self.data_dir,
            }
            context = multiprocessing.get_context("spawn")
            receive, send = context.Pipe(duplex=False)
            job.stop = context.Event()
            process = context.Process(
                target=job_worker.main,
                args=(spec, send, job.stop),
                name=f"scratchdl-job-{job.id}",
                daemon=True,  # a server that exits without close() takes them along
            )
            try:
                process.start()
            except (OSError, RuntimeError) as e:  # out of memory or processes; a __main__
                # that starts a server on import (multiprocessing's spawn imports it again):
                # this job fails, the server stays
                receive.close()
                log.error("cannot start a worker process for %s", job.id, exc_info=e)
                reason = e.strerror if isinstance(e, OSError) else type(e).__name__
                self.set_state(job, "failed", f"cannot start a worker process ({reason})")
                continue
            finally:
                send.close()  # the worker holds the only writing end: its end closes the pipe
            job.process, job.conn = process, receive
            self.set_state(job, "running", "starting")

    def stop_all(self) -> None:
        if self.close_deadline is None:
            self.close_deadline = time.monotonic() + STOP_SECONDS
        for job_id in self.queue:
            self.set_state(self.jobs[job_id], "stopped", "the server stopped before it started")
        self.queue.clear()
        for job in self.jobs.values():
            if job.process is None:
                continue
            if job.state == "running":
                job.stop.set()
                job.closed_by_server = True
                self.set_state(job, "stopping", "the server is stopping")
            if time.monotonic() > self.close_deadline:
                job.process.kill()  # it had STOP_SECONDS to write its checkpoint

    def read(self, job: Job) -> None:
        try:
            for _ in range(MESSAGES_PER_ROUND):
                if not job.conn.poll():
                    return
                message = json.loads(job.conn.recv_bytes(MAX_MESSAGE_BYTES))
                with self.lock:
                    events, changed = job.take(message)
                    for event in events:
                        self.emit(event)
                    if changed:
                        self.emit_job(job)
        except (EOFError, OSError, ValueError):  # the worker ended (or sent nonsense)
            with self.lock:
                self.finish(job)

    def finish(self, job: Job) -> None:
        """The worker's pipe closed: it ended, one way or another."""
        with contextlib.suppress(OSError):
            job.conn.close()
        job.conn = None
        job.process.join(5)
        if job.process.is_alive():  # closed its pipe but hangs: it will not report again
            job.process.kill()
            job.process.join(5)
        code, job.process, job.stop = job.process.exitcode, None, None
        job.checkpoint = (self.runs_dir / job.id / CHECKPOINT).is_file()
        end = job.end or {}
        if end.get("state") in ENDED:
            job.final_test_acc = end.get("final_test_acc")
            self.set_state(job, end["state"], str(end.get("message", "")))
        else:
            how = f"exit code {code}"
            if code is not None and code < 0:
                with contextlib.suppress(ValueError):
                    how = f"killed by {signal.Signals(-code).name}"
            kept = "its last checkpoint is kept: resume it" if job.checkpoint else "no checkpoint"
            self.set_state(job, "failed", f"the worker process died ({how}); {kept}")
        self.wake()  # a place is free
