"""The cheapest possible HTTP answer: prebuilt JSON bytes sent as two ASGI messages.

Litestar's ``Response``/``ASGIResponse`` build header containers, cookies and background tasks
for every request; the hot routes need none of that. A handler annotated to return this class
is treated by Litestar as an ASGI app and called as is.
"""

from __future__ import annotations

from typing import Final

from litestar.types import Receive, Scope, Send

JSON_CONTENT_TYPE: Final = (b"content-type", b"application/json")


class RawResponse:
    """Already-encoded body bytes with a status, a content type and any other headers."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: bytes,
        status: int = 200,
        content_type: tuple[bytes, bytes] = JSON_CONTENT_TYPE,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the start message (status, content type and length) and the body."""
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    self.content_type,
                    (b"content-length", b"%d" % len(self.body)),
                    *self.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
