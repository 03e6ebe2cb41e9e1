"""The layers around the app that every request passes: which Host names it answers to, the
security headers, HEAD, and where a request that starts work may come from.

- ``AllowedHosts``: a request whose Host header is not one of the server's names gets 400.
  A web page on another site can point a name of its own at 127.0.0.1 (DNS rebinding); the
  browser then sends that name as the Host, so answering only our own names keeps such a
  page from reading the runs, curves and models.
- ``SecurityHeaders``: the page runs only its own files, in no frame of another site.
- ``HeadAsGet``: HEAD on any GET route answers as GET does, without the body.
- ``same_origin``: a request that makes the server work (a prediction, a pass over the test
  set) from a page of another origin gets 403, so no web site can make it compute.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse

from .safety import ClientError

# the names of this machine a browser on it uses; the listen address and --allow-host's are added
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
# the page runs only its own files: no inline script, nothing from another origin
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def host_name(text: str) -> str:
    """A host name or IP address as Host headers carry it: lower case, an IPv6 address in
    brackets and compressed; ValueError naming the text if it is neither."""
    name = text.strip().lower()
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        if HOST_NAME.fullmatch(name) and len(name) <= 253:
            return name
        raise ValueError(
            f"{text!r} is not a host name or IP address (give a name such as myhost.lan, "
            "without scheme or port)"
        ) from None
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def allowed_hosts(listen_host: str = "127.0.0.1", extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host names a server listening on ``listen_host`` answers to: that address,
    LOOPBACK_HOSTS and the names in ``extra`` (``--allow-host``), each with any port."""
    names = {host_name(h) for h in (*LOOPBACK_HOSTS, *extra)}
    try:
        names.add(host_name(listen_host))
    except ValueError:  # a name that is not valid in a Host header: nobody can send it
        pass
    return frozenset(names)


def split_host(value: str) -> str | None:
    """The name of a Host header ``name[:port]`` (host_name's form), or None if malformed."""
    if value.startswith("["):
        name, bracket, port = value.partition("]")
        name += bracket
    else:
        name, _, port = value.partition(":")
        port = ":" + port if port else ""
    if port and not (port[:1] == ":" and port[1:].isdigit() and int(port[1:]) <= 65535):
        return None
    try:
        return host_name(name)
    except ValueError:
        return None


class AllowedHosts:
    """ASGI middleware: 400 JSON for a request whose Host is not one of ``names``."""

    def __init__(self, app, names: frozenset[str]) -> None:
        self.app, self.names = app, names

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            hosts = [v for k, v in scope["headers"] if k == b"host"]
            value = hosts[0].decode("latin-1") if len(hosts) == 1 else ""
            if split_host(value) not in self.names:
                refused = JSONResponse(
                    {
                        "detail": f"this server does not answer to the Host {value[:100]!r}; "
                        "open it as localhost, 127.0.0.1 or [::1] (any port), by the address "
                        "it listens on, or start scratchdl serve with --allow-host NAME"
                    },
                    status_code=400,
                )
                return await refused(scope, receive, send)
        await self.app(scope, receive, send)


class HeadAsGet:
    """ASGI middleware: HEAD answered as GET is, without the body (RFC 9110, 9.3.2); the
    app's routes are declared for GET alone, and answered HEAD with 405. A streamed answer
    (an event stream may never end) is stopped once its headers are sent."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)
        streamed = asyncio.Event()

        async def head_only(message) -> None:
            if message["type"] != "http.response.body":
                return await send(message)
            # the headers keep GET's content-length; the body ends here
            await send({**message, "body": b"", "more_body": False})
            if message.get("more_body", False):  # a stream: nothing more goes out
                streamed.set()
                await asyncio.Future()  # until the app is cancelled below

        app = asyncio.ensure_future(self.app({**scope, "method": "GET"}, receive, head_only))
        stop = asyncio.ensure_future(streamed.wait())
        try:
            await asyncio.wait({app, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            app.cancel()  # no-op once it has ended
        try:
            await app  # its exception, if it raised one
        except asyncio.CancelledError:
            if not streamed.is_set():  # cancelled from outside, not by us
                raise


class SecurityHeaders:
    """ASGI middleware: SECURITY_HEADERS on every response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def same_origin(request: Request) -> None:
    """A FastAPI dependency of the routes that start work: ClientError 403 when a browser
    says the request comes from a page of another origin (Origin, Sec-Fetch-Site).

    A request without those headers (curl, a script, the browser's own address bar) passes:
    it is not a web page acting for its visitor."""
    site = request.headers.get("sec-fetch-site", "")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '').lower()}"
    if site in ("cross-site", "same-site") or (origin is not None and origin.lower() != own):
        shown = origin if origin is not None else f"a {site} page"
        raise ClientError(
            403,
            f"requests from {shown[:100]!r} may not use this server; open the page the server "
            "serves itself, or call the API from a script (without an Origin header)",
        )
