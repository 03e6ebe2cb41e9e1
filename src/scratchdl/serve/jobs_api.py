"""The Train tab's API: start, list, follow, stop and resume training jobs (``jobs.py``).

- ``GET /api/presets``: the book's chapter 6 experiments (presets.py);
- ``POST /api/jobs``: ``{"settings": {...}, "label": "..."}`` starts one run,
  ``{"preset": "fig6-9", "settings": {...}}`` every run of a preset; 202 with the jobs;
- ``GET /api/jobs``, ``GET /api/jobs/{id}``: the jobs, one with its curves and histograms;
- ``POST /api/jobs/{id}/stop``, ``POST /api/jobs/{id}/resume``;
- ``GET /api/jobs/stream``: Server-Sent Events, a snapshot and then every change as it comes,
  so that the page draws without polling.

What starts or stops work takes only ``application/json`` (so that a browser asks first, with
a CORS preflight, before another site may send it, and this server never says yes) and is
refused when its ``Origin`` is another site's (``middleware.same_origin``). Every setting is
checked, and every network built once, before a job is queued: a bad one gets 400 naming
it, a full queue 429. Errors are JSON ``{"detail": message}`` as in the rest of the API.
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..models.recipes import DEFAULT_LR
from . import job_settings, presets
from .job_records import MAX_LABEL
from .jobs import JobManager
from .middleware import same_origin
from .safety import Bodies, ClientError, media_type

MAX_JOB_BODY = 16 * 1024  # a job's settings are a few hundred bytes
MAX_STREAMS = 32  # clients following the stream at once
# a stream ends after this; the browser reconnects by itself (RETRY_MS) and gets a snapshot,
# so that no client (a HEAD answered as GET, a tab left open) holds a place for ever
STREAM_SECONDS = 300.0
STREAM_TICK = 0.25  # seconds between looks for new events
HEARTBEAT_SECONDS = 15.0  # a comment line now and then keeps proxies from closing the stream
RETRY_MS = 2000  # how soon a browser reconnects a broken stream
BODY_KEYS = ("settings", "label", "preset")

SETTINGS_SCHEMA = {
    "type": "object",
    "description": "Every setting may be left out; job_settings.DEFAULTS fills it in.",
    "properties": {
        "model": {"enum": list(job_settings.NETWORKS)},
        "hidden_layers": {"type": "integer", "maximum": job_settings.MAX_HIDDEN_LAYERS},
        "hidden_size": {"type": "integer", "maximum": job_settings.MAX_HIDDEN_SIZE},
        "activation": {"enum": list(job_settings.ACTIVATIONS)},
        "dataset": {"enum": list(job_settings.DATA_CHOICES)},
        "train_size": {"type": "integer", "description": "the first N training images"},
        "optimizer": {"type": "string"},
        "lr": {"type": "number", "maximum": job_settings.MAX_LR},
        "batch_size": {"type": "integer", "maximum": job_settings.MAX_BATCH_SIZE},
        "epochs": {"type": "integer", "maximum": job_settings.MAX_EPOCHS},
        "init": {"enum": list(job_settings.INITS)},
        "init_std": {"type": "number"},
        "batchnorm": {"type": "boolean"},
        "dropout": {"type": "number", "maximum": job_settings.MAX_DROPOUT},
        "weight_decay": {"type": "number", "maximum": job_settings.MAX_WEIGHT_DECAY},
        "augment": {"type": "boolean"},
        "seed": {"type": "integer"},
        "eval_samples": {"type": "integer", "maximum": job_settings.MAX_EVAL_SAMPLES},
    },
}
JOB_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "settings": SETTINGS_SCHEMA,
                    "label": {"type": "string", "maxLength": MAX_LABEL},
                    "preset": {"enum": list(presets.PRESETS)},
                },
            },
            "example": {"settings": {"model": "mlp", "dataset": "mnist-sample", "epochs": 2}},
        }
    },
}
RESUME_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"lr": {"type": "number"}}},
            "example": {},
        }
    },
}
STOP_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"type": "object"}, "example": {}}},
}
ERRORS = {
    status: {"description": text, "content": {"application/json": {"example": {"detail": "..."}}}}
    for status, text in [
        (400, "a setting that is wrong or beyond one of the server's limits"),
        (403, "a request from another web site"),
        (404, "an unknown job"),
        (409, "a job that cannot be stopped or resumed now"),
        (413, "a body too large"),
        (415, "a body that is not application/json"),
        (429, "the queue is full"),
    ]
}


async def json_body(request: Request, bodies: Bodies) -> dict:
    """The JSON object of a request that starts or stops work (its Origin was checked by
    middleware.same_origin), its type checked: ClientError 415 for anything but JSON."""
    if media_type(request.headers.get("content-type")) != "application/json":
        raise ClientError(
            415,
            "send the body as JSON with Content-Type: application/json (for example {} when "
            "there is nothing to say)",
        )
    async with bodies.read(request, MAX_JOB_BODY) as body:  # in time, and bounded
        try:
            data = json.loads(body or b"{}", parse_constant=refuse_constant)
        except (ValueError, RecursionError) as e:
            raise ClientError(400, f"the body is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise ClientError(400, f"the body must be a JSON object, got {type(data).__name__}")
    return data


def refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def checked_runs(body: dict) -> tuple[list[tuple[dict, str]], str | None]:
    """The (checked settings, label) of each run a POST /api/jobs body asks for, each network
    built once by the library (its own checks); ClientError 400 naming what is wrong."""
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:
        raise ClientError(400, f"unknown key {unknown[0][:40]!r}; the body takes {BODY_KEYS}")
    preset = body.get("preset")
    if preset is not None:
        if "label" in body:
            raise ClientError(400, "a preset labels its runs itself: leave out label")
        raw = presets.preset_runs(preset, body.get("settings", {}))
    else:
        raw = [(body.get("settings", {}), body.get("label"))]
    runs = []
    for settings, label in raw:
        where = f"run {label!r} of {preset}: " if preset else ""
        try:
            s = job_settings.check_settings(settings)
            job_settings.build_network(s)
        except ValueError as e:
            raise ClientError(400, f"{where}{e}") from None
        runs.append((s, check_label(label, s)))
    return runs, preset


def check_label(label: object, s: dict) -> str:
    if label is None or label == "":
        return f"{s['model']} {s['optimizer']} lr={s['lr']:g}"
    if not isinstance(label, str) or len(label) > MAX_LABEL or not label.isprintable():
        raise ClientError(400, f"label must be printable text of at most {MAX_LABEL} characters")
    return label


def sse(event: dict) -> str:
    return f"data: {json.dumps(event, separators=(',', ':'))}\n\n"


async def stream_events(jobs: JobManager):
    """The stream of one client: a snapshot, then the events after it, until the server stops
    or STREAM_SECONDS have passed."""
    jobs.streams += 1
    try:
        snapshot, seq = jobs.snapshot()
        yield f"retry: {RETRY_MS}\n" + sse(snapshot)
        quiet = 0.0
        end = time.monotonic() + STREAM_SECONDS
        while not jobs.closing and time.monotonic() < end:
            await asyncio.sleep(STREAM_TICK)
            events, seq = jobs.events_since(seq)
            if events is None:  # fell behind the backlog: start again from the whole picture
                snapshot, seq = jobs.snapshot()
                events = [snapshot]
            if events:
                yield "".join(sse(e) for e in events)
                quiet = 0.0
            else:
                quiet += STREAM_TICK
                if quiet >= HEARTBEAT_SECONDS:
                    yield ": still here\n\n"
                    quiet = 0.0
        if jobs.closing:
            yield sse({"type": "closing"})
    finally:
        jobs.streams -= 1


def jobs_router(jobs: JobManager, bodies: Bodies) -> APIRouter:
    """The routes above, on ``jobs``, reading bodies through the app's ``bodies``."""
    router = APIRouter(prefix="/api", tags=["train"])
    starts_work = [Depends(same_origin)]  # 403 for a page of another origin

    @router.get(
        "/presets",
        summary="The book's chapter 6 experiments, as presets; scratchdl train's learning rates",
    )
    async def list_presets() -> dict:
        return {"presets": presets.listing(), "default_lr": DEFAULT_LR}

    @router.get("/jobs", summary="The training jobs: running, waiting and ended")
    async def list_jobs() -> dict:
        return jobs.listing()

    @router.post(
        "/jobs",
        status_code=202,
        summary="Start a training run, or every run of a preset",
        dependencies=starts_work,
        description=(
            "Each job trains in its own process into a run folder under --runs (its id), "
            "written by the Trainer: history.json, model.safetensors, checkpoint.safetensors. "
            "Limits: " + ", ".join(f"{k} = {getattr(job_settings, k):,}" for k in LIMITS) + "."
        ),
        openapi_extra={"requestBody": JOB_BODY},
        responses=ERRORS,
    )
    async def start(request: Request) -> dict:
        body = await json_body(request, bodies)
        runs, preset = await run_in_threadpool(checked_runs, body)
        created = jobs.submit(runs, preset)
        return {"jobs": [job.summary(jobs.position(job)) for job in created]}

    @router.get(
        "/jobs/stream",
        summary="Server-Sent Events: every change of every job, as it happens",
        description=(
            "Each event's data is JSON with a `type`: `snapshot` first (every job in full), "
            "then `job` (a job's summary changed), `loss` (`from`: the iteration of the first "
            "of `values`), `epoch`, `histograms`, `filters`, `restored`, `removed`, and "
            "`closing` when the server stops."
        ),
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, 503: ERRORS[429]},
    )
    async def stream():
        if jobs.streams >= MAX_STREAMS:
            raise ClientError(503, f"{MAX_STREAMS} clients follow the jobs already; try later")
        return StreamingResponse(
            stream_events(jobs),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    @router.get("/jobs/{job_id}", summary="A job with its curves and histograms", responses=ERRORS)
    async def job(job_id: str) -> dict:
        found = jobs.get(job_id)
        return found.detail(jobs.position(found))

    @router.post(
        "/jobs/{job_id}/stop",
        status_code=202,
        summary="Stop a job at its next step; its checkpoint is kept",
        dependencies=starts_work,
        openapi_extra={"requestBody": STOP_BODY},
        responses=ERRORS,
    )
    async def stop(job_id: str, request: Request) -> dict:
        await json_body(request, bodies)
        found = jobs.stop(job_id)
        return found.summary(jobs.position(found))

    @router.post(
        "/jobs/{job_id}/resume",
        status_code=202,
        summary="Resume a stopped, diverged or failed job from its checkpoint",
        dependencies=starts_work,
        description="`lr`: a new learning rate, say after the run diverged.",
        openapi_extra={"requestBody": RESUME_BODY},
        responses=ERRORS,
    )
    async def resume(job_id: str, request: Request) -> dict:
        body = await json_body(request, bodies)
        unknown = sorted(set(body) - {"lr"})
        if unknown:
            raise ClientError(400, f"unknown key {unknown[0][:40]!r}; resume takes only lr")
        lr = body.get("lr")
        if lr is not None:
            try:
                lr = job_settings.check_settings({"lr": lr, "dataset": job_settings.SAMPLE})["lr"]
            except ValueError as e:
                raise ClientError(400, str(e)) from None
        found = jobs.resume(job_id, lr)
        return found.summary(jobs.position(found))

    return router


LIMITS = (
    "MAX_EPOCHS",
    "MAX_HIDDEN_LAYERS",
    "MAX_HIDDEN_SIZE",
    "MAX_PARAMETERS",
    "MAX_BATCH_SIZE",
    "MAX_ITERATIONS",
)
