"""What a raw ASGI route handler needs to stand in for Litestar's request object.

The hottest routes (``POST /predict``, the V2 infer route, ``POST /explain``) are Litestar
``asgi`` handlers: they skip the ``Request``, its signature model and the response conversion,
most of a request's Python time (docs/serving.md, "raw ASGI routes"). They still answer exactly
what an ``@post`` handler would: 405 with ``Allow`` for another method, 413 above the body
limit (announced or streamed), and every error through the app's exception handlers.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Litestar
from litestar.types import Receive, Scope

from serving.http.errors import BadRequestError, BodyTooLargeError, MethodNotAllowedError

_CONTENT_LENGTH: Final = b"content-length"
TOO_LARGE: Final = "the request body is too large"


def require_method(scope: Scope, method: str) -> None:
    """Refuse any other method than ``method`` as Litestar's router does (405, ``Allow``).

    Raises:
        MethodNotAllowedError: e.g. ``GET /predict``.
    """
    if scope["method"] != method:  # type: ignore[typeddict-item] # an HTTP scope here
        raise MethodNotAllowedError(allow=method)


def _announced_length(scope: Scope, limit: int) -> None:
    """Refuse a ``Content-Length`` over ``limit`` before reading anything, or one that is no number.

    Raises:
        BodyTooLargeError: it announces more than ``limit`` bytes.
        BadRequestError: it is not a number.
    """
    for name, value in scope["headers"]:
        if name == _CONTENT_LENGTH:
            if not value.isdigit():
                raise BadRequestError(
                    f"the Content-Length header is not a number ({value[:40]!r})",
                    field="Content-Length",
                )
            if int(value) > limit:
                raise BodyTooLargeError(TOO_LARGE)
            return


async def read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole body, refused once it is (or says it will be) over the app's body limit.

    The limit is the app's ``request_max_body_size`` (``DRUGCLF_MAX_BODY_BYTES``).

    Raises:
        BodyTooLargeError: the ``Content-Length`` or the bytes received pass the limit.
        BadRequestError: the ``Content-Length`` is not a number, or the client left half-way.
    """
    configured = Litestar.from_scope(scope).request_max_body_size
    limit = configured if isinstance(configured, int) else None
    if limit is not None:
        _announced_length(scope, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadRequestError("the client left before sending the whole body")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLargeError(TOO_LARGE)
        if not message.get("more_body", False):
            # The usual case is one message: its bytes as they are, no join.
            return b"".join([*chunks, chunk]) if chunks else chunk
        chunks.append(chunk)


def serve_path_parameters(app: Litestar) -> None:
    """Let ``app``'s raw routes with path parameters answer HTTP requests (a Litestar 2.25 gap).

    Litestar files an ``asgi`` route's path parameters under the key ``"asgi"`` of its routing
    node, but looks them up under the request's method: every HTTP request to such a route
    (``/v2/models/{model_name}/infer``) would fail with a KeyError before the handler runs. This
    answers the ``"asgi"`` entry for any method; ``tests/serving/test_raw.py`` notices when Litestar
    changes.
    """
    nodes: list[Any] = [app.asgi_router.root_route_map_node]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children.values())
        if node.is_asgi and "asgi" in node.path_parameters:
            node.path_parameters = _AnyMethod(node.path_parameters)


class _AnyMethod(dict[str, Any]):
    """A routing node's path parameters, the same for every method (even an unknown one)."""

    def __missing__(self, method: str) -> Any:
        return self["asgi"]
