"""What a request may hand the server, checked before the library sees it.

Every limit is a named constant. A request that breaks one gets a ``ClientError``: a 4xx
status and a message that names the value and the fix, which the app sends as JSON. Nothing
here trusts the client: the body is counted while it is read (Content-Length may lie), an
image's size is read from its header before anything is decoded, and JSON pixels are checked
for shape, type and range, NaN included.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import warnings
from collections.abc import AsyncIterator

import numpy as np

from ..files.images import DECODE_SIDE, FORMATS, MNIST_SIZE, ImageError, prepare_image

# A drawing is a few kB and a phone photo a few MB.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Bodies are read before a request asks the pool for a place, so that a slow client holds
# none; what they hold in memory at once is bounded here instead, by the bytes that arrived
# (the pool's 66 places x MAX_BODY_BYTES, the bound when the pool bounded them).
MAX_HELD_BYTES = 64 * MAX_BODY_BYTES
# A whole body must arrive within this (408 after): a drawing needs milliseconds, a 4 MB
# photo ~3 s at 10 Mbit/s; a client that sends 2 bytes and waits is let go.
BODY_SECONDS = 10.0
# Checked from the header, before decoding: 10 MP is 40 MB as RGBA, and a few float32 copies
# of the gray levels in prepare_image; a JPEG counts at the scale it decodes (DECODE_SIDE).
# Lower than images.MAX_PIXELS (a scan on one's own disk): here many strangers send images.
MAX_IMAGE_PIXELS = 10_000_000
JSON_TYPES = ("application/json",)
# the image types a browser sends for FORMATS, and what a client sends when it does not know
IMAGE_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/bmp",
    "image/webp",
    "image/tiff",
    "application/octet-stream",
)


class ClientError(Exception):
    """A request the server refuses: ``status`` (4xx or 503) and a message for the client;
    ``close``: end the connection after the answer (a body left unread)."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


class Upload(io.BytesIO):
    """An uploaded image's bytes, named in prepare_image's messages as "the uploaded image"
    (it takes a path or a file object, and puts it in its messages)."""

    def __str__(self) -> str:
        return "the uploaded image"

    __repr__ = __str__  # some of Pillow's messages use the repr


class Bodies:
    """The request bodies held in memory, counted as their bytes arrive, across requests.

    ``read`` gives a request's body within ``seconds`` (ClientError 408 after) and at most
    ``limit`` bytes (413, counted while it streams in, so a false Content-Length changes
    nothing); ClientError 503 when all bodies held would pass MAX_HELD_BYTES. The bytes count
    until the ``async with`` block ends. Used on the event loop only (no lock needed)."""

    def __init__(self, held_limit: int = MAX_HELD_BYTES, seconds: float = BODY_SECONDS) -> None:
        self.held_limit, self.seconds = held_limit, seconds
        self.held = 0

    @contextlib.asynccontextmanager
    async def read(self, request, limit: int = MAX_BODY_BYTES) -> AsyncIterator[bytes]:
        counted = [0]  # this request's bytes in self.held, also when the read is cancelled
        try:
            try:
                body = await asyncio.wait_for(self._read(request, limit, counted), self.seconds)
            except asyncio.TimeoutError:
                raise ClientError(
                    408,
                    f"the request body did not arrive within {self.seconds:g} s "
                    f"({counted[0]:,} bytes came); send the whole body at once",
                    close=True,
                ) from None
            yield body
        finally:
            self.held -= counted[0]

    async def _read(self, request, limit: int, counted: list[int]) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(int(declared), limit)
        chunks = []
        async for chunk in request.stream():
            if counted[0] + len(chunk) > limit:
                raise too_large(counted[0] + len(chunk), limit, at_least=True)
            if self.held + len(chunk) > self.held_limit:
                raise ClientError(
                    503,
                    f"the server holds {self.held:,} bytes of request bodies, its limit; "
                    "try again in a moment",
                    close=True,
                )
            self.held += len(chunk)
            counted[0] += len(chunk)
            chunks.append(chunk)
        return b"".join(chunks)


def too_large(size: int, limit: int, *, at_least: bool = False) -> ClientError:
    more = "more than " if at_least else ""
    return ClientError(
        413,
        f"the request body has {more}{size:,} bytes, more than the limit of {limit:,}; "
        "send a smaller image (a 28x28 digit needs a few kB)",
        close=True,  # the rest of the body is not read
    )


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def body_type(content_type: str | None) -> str:
    """The media type of a predict request's Content-Type, one of JSON_TYPES or IMAGE_TYPES;
    ClientError 415 for any other, and for none: a form of another web site sends one of
    its own types (text/plain, multipart) or none, never these without asking first."""
    kind = media_type(content_type)
    if kind in JSON_TYPES or kind in IMAGE_TYPES:
        return kind
    got = f"Content-Type {kind!r}" if kind else "no Content-Type"
    raise ClientError(
        415,
        f"the request has {got}; send application/json with pixels, or an image as one of "
        f"{', '.join(IMAGE_TYPES)}",
    )


def read_input(content_type: str | None, body: bytes) -> np.ndarray:
    """The network input of a predict request: JSON pixels, or an image's bytes prepared as
    ``scratchdl predict`` prepares a file. Shape: -> (1, 1, 28, 28) float32 in [0, 1]."""
    kind = body_type(content_type)
    if not body:
        raise ClientError(
            400,
            "the request body is empty; send the bytes of a PNG or JPEG image, or JSON "
            '{"pixels": [[...28 rows of 28 numbers in 0..1...]]}',
        )
    if kind in JSON_TYPES:
        return parse_pixels(body)
    return decode_image(body)


def decode_image(data: bytes) -> np.ndarray:
    """An image's bytes as a centred 28x28 MNIST-like digit, its size checked before decoding.

    Image bombs (a small file whose header claims a huge image) get ClientError 413 from the
    header alone; anything unreadable gets 400. Shape: -> (1, 1, 28, 28) float32.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            Image.init()
            with Image.open(Upload(data), formats=FORMATS) as im:  # reads the header only
                width, height = im.size
                im.draft("L", (DECODE_SIDE, DECODE_SIDE))  # a JPEG's size when decoded small
                w, h = im.size
    except Image.DecompressionBombError as e:  # beyond Pillow's own limit: refused at open
        raise ClientError(413, f"the image is too large: {e}; scale it down first") from None
    except UnidentifiedImageError:
        raise ClientError(
            400, f"the body is not an image in one of the formats {', '.join(FORMATS)}"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # a header Pillow cannot parse
        raise ClientError(400, f"cannot read the uploaded image's header: {e}") from None
    if w * h > MAX_IMAGE_PIXELS:
        raise ClientError(
            413,
            f"the image has {width}x{height} = {width * height:,} pixels, more than the limit "
            f"of {MAX_IMAGE_PIXELS:,}; scale it down first",
        )
    try:
        return prepare_image(Upload(data))
    except ImageError as e:  # blank, truncated or damaged: its message says which
        raise ClientError(400, str(e)) from None
    except (MemoryError, RecursionError, ArithmeticError, LookupError, TypeError) as e:
        # an untrusted file reaching a corner of a decoder: the client's problem, not ours
        raise ClientError(400, f"cannot read the uploaded image ({type(e).__name__})") from None


def parse_pixels(body: bytes) -> np.ndarray:
    """JSON ``{"pixels": [[...]]}``: 28 rows of 28 finite numbers in [0, 1], taken as they
    are (an MNIST-like image, already centred). Shape: -> (1, 1, 28, 28) float32."""
    shape = f"{MNIST_SIZE} rows of {MNIST_SIZE} numbers in 0..1"
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ClientError(400, f"the body is not valid JSON: {reason}") from None
    if not isinstance(data, dict) or set(data) != {"pixels"}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ClientError(400, f'the JSON must be {{"pixels": [...{shape}...]}}, got {keys}')
    rows = data["pixels"]
    if not isinstance(rows, list) or len(rows) != MNIST_SIZE:
        got = f"{len(rows)} rows" if isinstance(rows, list) else type(rows).__name__
        raise ClientError(400, f"pixels must be {shape}, got {got}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != MNIST_SIZE:
            got = f"{len(row)} numbers" if isinstance(row, list) else type(row).__name__
            raise ClientError(400, f"pixels row {i} must hold {MNIST_SIZE} numbers, got {got}")
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ClientError(400, f"pixels[{i}][{j}] must be a number, got {v!r}")
            # an int is finite, and may be too large for math.isfinite (OverflowError)
            if not ((isinstance(v, int) or math.isfinite(v)) and 0 <= v <= 1):
                raise ClientError(400, f"pixels[{i}][{j}] must lie in 0..1, got {v!r}")
    return np.asarray(rows, dtype=np.float32).reshape(1, 1, MNIST_SIZE, MNIST_SIZE)


def _refuse_constant(name: str) -> float:
    """json.loads takes NaN and Infinity by default; a pixel is never one."""
    raise ValueError(f"{name} is not a number JSON allows; pixels must lie in 0..1")
