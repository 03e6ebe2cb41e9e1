"""The connections uvicorn holds for the server, with a deadline for every request's head.

uvicorn's own HTTP protocol waits for a request's line and headers as long as a client
likes, and counts every open connection against ``limit_concurrency``: 200 connections that
never finish their headers made it answer 503 to everyone, /api/health included.
``GuardedH11Protocol`` (uvicorn's h11 protocol, and two rules) changes that:

- a connection waiting for a request (a new one, or a kept-alive one after its answer) must
  send the whole head within ``head_seconds``, or it is answered 408 (JSON) and closed;
- at most ``max_waiting`` connections wait at once; a new one closes the longest waiting,
  so waiting connections never fill the server: the others are serving requests.

A request's body has the app's own deadline (safety.Bodies). ``guarded_protocol`` makes the
class with the limits a server uses; cli_serve.server_config hands it to uvicorn.
"""

from __future__ import annotations

import json
import weakref
from collections import OrderedDict

from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_SECONDS = 10.0  # a request line and headers are a few hundred bytes: milliseconds
MAX_WAITING = 200  # connections waiting for a request; a browser keeps about 6 per server


def timeout_answer(seconds: float) -> bytes:
    """The raw 408 answer for a connection whose request head did not arrive in time."""
    body = json.dumps(
        {
            "detail": f"the request's line and headers did not arrive within {seconds:g} s; "
            "send them at once"
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


# the connections of each server (uvicorn's ServerState) that wait for a request, oldest first
_waiting: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head and a bound on the
    connections waiting for one (see the module's docstring)."""

    head_seconds = HEAD_SECONDS
    max_waiting = MAX_WAITING

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._deadline = None
        self._partial = False  # bytes of a request head came: a timeout is answered 408
        self._wait()

    def data_received(self, data: bytes) -> None:
        if self._idle():
            self._partial = True
        super().data_received(data)
        if not self._idle():  # the head came: the request is being served
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._idle() and not self.transport.is_closing():  # kept alive for the next one
            self._partial = False
            self._wait()

    def connection_lost(self, exc) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _wait(self) -> None:
        waiting = _waiting.setdefault(self.server_state, OrderedDict())
        waiting[self] = None
        waiting.move_to_end(self)
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.head_seconds, self._let_go)
        while len(waiting) > self.max_waiting:
            next(iter(waiting))._let_go()  # the longest waiting; it leaves `waiting`

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        waiting = _waiting.get(self.server_state)
        if waiting is not None:
            waiting.pop(self, None)

    def _let_go(self) -> None:
        """Close a connection that waits too long, or the longest waiting of too many: with
        408 if it began a request, silently if it was idle (as a keep-alive timeout does)."""
        self._stop_waiting()
        if self.transport.is_closing():
            return
        if self._partial:
            self.transport.write(timeout_answer(self.head_seconds))
        self.transport.close()


def guarded_protocol(
    head_seconds: float = HEAD_SECONDS, max_waiting: int = MAX_WAITING
) -> type[GuardedH11Protocol]:
    """GuardedH11Protocol with these limits, for uvicorn.Config(http=...)."""
    limits = {"head_seconds": head_seconds, "max_waiting": max_waiting}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), limits)
