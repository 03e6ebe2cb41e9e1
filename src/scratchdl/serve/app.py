"""The web app of ``scratchdl serve``: the page, and the JSON API the page itself uses.

- ``GET /``: the page (static/index.html, app.js, style.css; no build step, nothing from a CDN);
  ``GET /docs``: the API described from ``GET /openapi.json``, by a local page (FastAPI's own
  /docs loads Swagger UI from a CDN, so it is turned off).
- ``GET /api/health``, ``GET /api/models``.
- ``POST /api/predict?model=ID&layers=1``: the body is an image's bytes or JSON pixels.
- ``GET /api/testset?model=ID&count=N&mistakes=1``: test images with their predictions.
- ``GET /api/runs``, ``GET /api/runs/{name}``: the training runs under ``--runs``.
- ``/api/jobs`` and ``/api/presets``: the Train tab's jobs (jobs_api.py), given a JobManager.

The app answers only its own Host names (middleware.AllowedHosts: loopback, the listen
address, ``--allow-host``); the routes that make it work refuse pages of other origins (403);
a POST must say a Content-Type the API documents (415). A handler validates (safety.py), then
calls the library on the bounded pool (inference.py). Every error is JSON ``{"detail":
message}`` with a 4xx status (503 when the pool is full); no traceback reaches the client.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from . import inference
from .inference import MnistTestImages, Models, Pool
from .jobs import JobManager
from .jobs_api import jobs_router
from .middleware import AllowedHosts, HeadAsGet, SecurityHeaders, allowed_hosts, same_origin
from .runs import list_runs, read_run
from .safety import IMAGE_TYPES, MAX_BODY_BYTES, Bodies, ClientError, body_type, read_input

STATIC = Path(__file__).parent / "static"
MAX_ID = 100  # characters of a model id or run name in a query
MAX_COUNT = 100  # test images per request
log = logging.getLogger("scratchdl.serve")

PREDICT_BODY = {
    "required": True,
    "description": (
        f"An image (PNG, JPEG, ...; at most {MAX_BODY_BYTES:,} bytes), prepared like "
        "`scratchdl predict` does (cropped, scaled, centred by mass in 28x28); or JSON pixels "
        "taken as they are."
    ),
    "content": {
        **{t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES},
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["pixels"],
                "properties": {
                    "pixels": {
                        "type": "array",
                        "minItems": 28,
                        "maxItems": 28,
                        "items": {
                            "type": "array",
                            "minItems": 28,
                            "maxItems": 28,
                            "items": {"type": "number", "minimum": 0, "maximum": 1},
                        },
                    }
                },
            }
        },
    },
}
ERRORS = {
    status: {"description": text, "content": {"application/json": {"example": {"detail": "..."}}}}
    for status, text in [
        (400, "a malformed body or query"),
        (403, "a request from a page of another origin"),
        (404, "an unknown model or run"),
        (408, "a body that did not arrive in time"),
        (413, "a body or image too large"),
        (415, "a body without one of the content types above"),
        (503, "the inference pool is full; try again"),
    ]
}


def create_app(
    models: Models,
    runs_dir: Path,
    test_images: MnistTestImages | None = None,
    pool: Pool | None = None,
    hosts: frozenset[str] | None = None,
    bodies: Bodies | None = None,
    jobs: JobManager | None = None,
) -> FastAPI:
    """The app, serving ``models`` (by id), the runs under ``runs_dir`` and ``test_images``
    (default: MnistTestImages.find()); inference on ``pool`` (default: a new Pool); only to
    the Host names ``hosts`` (default: middleware.allowed_hosts(), this machine's); request
    bodies read through ``bodies`` (default: a new safety.Bodies, its limits); the Train tab's
    training jobs on ``jobs`` (default: none, and no /api/jobs)."""
    test_images = test_images or MnistTestImages.find()
    pool = pool or Pool()
    bodies = bodies or Bodies()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        pool.close()

    app = FastAPI(
        title="scratchdl serve",
        summary="Look inside the networks of 'Deep Learning from Scratch'",
        version="1",
        docs_url=None,  # Swagger UI comes from a CDN; /docs below is a local page
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(HeadAsGet)
    app.add_middleware(AllowedHosts, names=hosts or allowed_hosts())
    app.add_middleware(SecurityHeaders)  # added last, so outermost: on the 400s above too
    add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def find_model(model_id: str | None) -> inference.ModelEntry:
        """models.get, looking in the runs folder again for an id not known yet (a run that
        has just written its model); ClientError 404 if it is not there either."""
        if model_id is not None and model_id not in models.entries:
            await run_in_threadpool(models.refresh)
        return models.get(model_id)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(STATIC / "docs.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(status_code=204)  # no icon, and no 404 in the browser's console

    @app.get("/api/health", summary="Whether the server answers")
    async def health() -> dict:
        return {"status": "ok", "models": len(models.entries), "busy": pool.admitted}

    @app.get("/api/models", summary="The models to choose from, by id")
    async def list_models() -> dict:
        await run_in_threadpool(models.refresh)  # a run may have written its model since
        entries = list(models.entries.values())
        return {
            "default": entries[0].id,
            "models": [e.info() for e in entries],
            "test_set": test_images.source,
        }

    @app.post(
        "/api/predict",
        summary="Classify a digit; with layers=1, also what every layer sees",
        description=(
            "Returns `{model, class, probabilities}`; with `layers=1` also `input` (the 28x28 "
            "image the network saw), `layers` (each layer's output for the image) and "
            "`filters` (the first convolution's weights). Arrays travel as "
            "`{shape, min, max, data}`: `data` is base64 of one byte per value, 0 at `min` "
            "and 255 at `max`. The Server-Timing header gives the inference time."
        ),
        openapi_extra={"requestBody": PREDICT_BODY},
        responses=ERRORS,
        dependencies=[Depends(same_origin)],
    )
    async def predict(
        request: Request,
        model: str | None = Query(None, max_length=MAX_ID, description="an id of /api/models"),
        layers: bool = Query(False, description="add every layer's activations"),
    ) -> JSONResponse:
        content_type = request.headers.get("content-type")
        body_type(content_type)  # 415 before anything is read
        entry = await find_model(model)
        # the body first, then a place in the pool: a slow client holds no place while it
        # sends (bodies bounds the bytes held, and the time a body may take)
        async with bodies.read(request) as body, pool.admit():

            def job() -> dict:  # decoding runs on the pool too: it bounds the images' memory
                return inference.predict(entry, read_input(content_type, body), layers)

            result = await pool.call(job)
        ms = result.pop("server_ms")
        return JSONResponse(result, headers={"server-timing": f"infer;dur={ms}"})

    @app.get(
        "/api/testset",
        summary="Random test images with the model's predictions",
        responses=ERRORS,
        dependencies=[Depends(same_origin)],  # a pass over the test set is work too
    )
    async def testset(
        model: str | None = Query(None, max_length=MAX_ID),
        count: int = Query(24, ge=1, le=MAX_COUNT),
        mistakes: bool = Query(False, description="only the misclassified images"),
        seed: int = Query(0, ge=0, le=2**32 - 1),
    ) -> dict:
        entry = await find_model(model)
        return await pool.run(test_images.sample, entry, count, mistakes, seed)

    @app.get("/api/runs", summary="The run folders under --runs, newest first")
    async def runs() -> dict:  # parsed on a thread: a large history never stalls the loop
        return {"root": runs_dir.name, "runs": await run_in_threadpool(list_runs, runs_dir)}

    @app.get("/api/runs/{name}", summary="A run's learning curves", responses=ERRORS)
    async def run(name: str) -> dict:
        return {"name": name, **await run_in_threadpool(read_run, runs_dir, name[: MAX_ID + 1])}

    if jobs is not None:
        app.include_router(jobs_router(jobs, bodies))

    schema = app.openapi

    def openapi() -> dict:  # a bad query is a 400 here (bad_query), not FastAPI's 422
        spec = schema()
        for operations in spec["paths"].values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        return spec

    app.openapi = openapi
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error as JSON {"detail": message}; 400 for a bad query; never a traceback."""

    @app.exception_handler(ClientError)
    async def client_error(request, exc: ClientError):
        headers = {"connection": "close"} if exc.close else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def gone(request, exc: ClientDisconnect):  # nobody reads the answer: no log either
        return JSONResponse({"detail": "the client closed the connection"}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def bad_query(request, exc: RequestValidationError):
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error.get("loc", ()))
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(problems)[:500]}, status_code=400)

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):
        log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"detail": "internal error; the server's log has the details"}, status_code=500
        )
