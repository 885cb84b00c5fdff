"""The outermost ASGI layer: request ids, access logs and request metrics for every answer.

It wraps Litestar's exception-handling router (not a route's handler stack), so 404/405 and
errors raised before routing get a request id, a log line and a metric as well. Pure ASGI:
a Litestar middleware would add a per-request object allocation on the hot path.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Final

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from serving.http.errors import UnsupportedMediaTypeError
from serving.http.logs import AccessLog
from serving.http.metrics import ServerMetrics
from serving.http.responses import JSON_CONTENT_TYPE

REQUEST_ID_HEADER: Final = b"x-request-id"
CONTENT_ENCODING_HEADER: Final = b"content-encoding"
_IDENTITY: Final = frozenset({b"", b"identity"})
# Echo a client's id only if it is short and harmless in logs and headers.
_SAFE_ID: Final = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")
UNMATCHED_ROUTE: Final = "unmatched"
ID_BYTES: Final = 16
"""128 random bits per request id, written as 32 hex digits (the format of uuid4().hex)."""


class RandomIds:
    """Request ids from the system's random source, read ``batch`` ids at a time.

    ``os.urandom`` releases the GIL around its system call. Once per request, that let the
    worker's other threads (the prediction log's shipper and its reports) take the GIL between
    two requests, each handover a futex wake and an interrupt to the other core: in process,
    about 9 µs more CPU per logged request (docs/serving.md). One read per ``batch`` ids keeps
    the ids as random as before. A child forked after a read must not hand out its parent's
    ids: the buffer is emptied in every child (``os.register_at_fork``).
    """

    def __init__(self, batch: int = 256) -> None:
        self._size = batch * ID_BYTES
        self._pool = b""
        self._offset = 0

    def next(self) -> bytes:
        """A new id: 32 lowercase hex digits."""
        offset = self._offset
        if offset >= len(self._pool):
            self._pool, offset = os.urandom(self._size), 0
        self._offset = offset + ID_BYTES
        return self._pool[offset : offset + ID_BYTES].hex().encode()

    def forget(self) -> None:
        """Drop what was read (a forked child reads its own)."""
        self._pool, self._offset = b"", 0


_IDS: Final = RandomIds()
os.register_at_fork(after_in_child=_IDS.forget)


def _read_headers(scope: Scope) -> tuple[bytes, bytes | None]:
    """The request id (the client's if safe, else a new one) and any non-identity encoding."""
    request_id: bytes | None = None
    encoding: bytes | None = None
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            request_id = value if _SAFE_ID.match(value) else None
        elif name == CONTENT_ENCODING_HEADER and value.strip().lower() not in _IDENTITY:
            encoding = value
    return request_id or _IDS.next(), encoding


async def _refuse_encoding(encoding: bytes, request_id: str, send: Send) -> None:
    """415 for a compressed body: read as JSON it would only be refused as malformed."""
    shown = encoding.decode("latin-1")[:40]
    error = UnsupportedMediaTypeError(
        f"the body is sent with Content-Encoding {shown!r}: send it uncompressed",
        field="Content-Encoding",
        expected="no Content-Encoding (identity)",
    )
    body = msgspec.json.encode(error.body(request_id))
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [JSON_CONTENT_TYPE, (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class RequestObserver:
    """Give every HTTP request an id (echoed or new), then log and count its answer."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServerMetrics,
        *,
        access_log: AccessLog | None,
        current_version: Callable[[], str | None],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.current_version = current_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app with an id header added to the response start."""
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, encoding = _read_headers(scope)
        state = scope["state"]
        state["request_id"] = request_id_text = request_id.decode()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or ())
                headers.append((REQUEST_ID_HEADER, request_id))
                message["headers"] = headers
            await send(message)

        try:
            if encoding is None:
                await self.app(scope, receive, send_with_id)
            else:
                await _refuse_encoding(encoding, request_id_text, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or UNMATCHED_ROUTE
            method = scope["method"]
            self.metrics.observe_request(route, method, status, elapsed)
            if self.access_log is not None:
                self.access_log.write(
                    request_id_text,
                    method,
                    route,
                    scope["path"],
                    status,
                    elapsed,
                    # The version that answered, else the one loaded now.
                    state.get("model_version") or self.current_version(),
                )
