"""The raw ASGI routes' body reader and method check answer what an ``@post`` handler would."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from litestar import Litestar

from serving.http.errors import BadRequestError, BodyTooLargeError, MethodNotAllowedError
from serving.http.raw import read_body, require_method

LIMIT = 10


def _scope(headers: Sequence[tuple[bytes, bytes]] = (), method: str = "POST") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "headers": list(headers),
        "litestar_app": Litestar(route_handlers=[], request_max_body_size=LIMIT),
    }


def _read(messages: list[dict[str, Any]], headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return asyncio.run(read_body(_scope(headers), receive))  # type: ignore[arg-type]


def _chunk(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


def test_one_message_and_several_chunks_give_the_same_body() -> None:
    assert _read([_chunk(b"0123456789", False)]) == b"0123456789"
    assert _read([_chunk(b"0123", True), _chunk(b"", True), _chunk(b"456", False)]) == b"0123456"


def test_an_announced_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(BodyTooLargeError):
        _read([], headers=[(b"content-length", b"11")])
    assert _read([_chunk(b"12345", False)], headers=[(b"content-length", b"5")]) == b"12345"


def test_a_streamed_body_over_the_limit_is_refused_without_reading_it_all() -> None:
    endless = [_chunk(b"123456", True) for _ in range(3)]
    with pytest.raises(BodyTooLargeError):
        _read(endless)
    assert endless, "stopped reading at the chunk that passed the limit"
    with pytest.raises(BodyTooLargeError):
        _read([_chunk(b"x" * (LIMIT + 1), False)])


def test_a_content_length_that_is_no_number_names_the_header() -> None:
    with pytest.raises(BadRequestError) as refused:
        _read([], headers=[(b"content-length", b"12abc")])
    assert refused.value.field == "Content-Length"
    assert "12abc" in refused.value.message


def test_a_client_that_leaves_half_way_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="left before"):
        _read([_chunk(b"12", True), {"type": "http.disconnect"}])


def test_another_method_is_405_with_allow() -> None:
    require_method(_scope(), "POST")  # type: ignore[arg-type]
    with pytest.raises(MethodNotAllowedError) as refused:
        require_method(_scope(method="PUT"), "POST")  # type: ignore[arg-type]
    assert refused.value.headers == {"allow": "POST"}
    assert refused.value.status_code == 405


def _app_with_a_raw_route_with_a_path_parameter(fixed: bool) -> Litestar:
    from litestar import asgi
    from litestar.types import Receive, Scope, Send

    from serving.http.exceptions import exception_handlers
    from serving.http.raw import serve_path_parameters
    from serving.http.responses import RawResponse

    @asgi("/things/{name:str}/go", copy_scope=False)
    async def go(scope: Scope, receive: Receive, send: Send) -> None:
        require_method(scope, "POST")
        await RawResponse(scope["path_params"]["name"].encode())(scope, receive, send)

    app = Litestar(route_handlers=[go], exception_handlers=exception_handlers())
    if fixed:
        serve_path_parameters(app)
    return app


def test_raw_routes_with_path_parameters_need_serve_path_parameters() -> None:
    from litestar.testing import TestClient

    with TestClient(_app_with_a_raw_route_with_a_path_parameter(fixed=True)) as client:
        answer = client.post("/things/abc/go")
        assert (answer.status_code, answer.content) == (200, b"abc")
        refused = client.request("QUERY", "/things/abc/go")
        assert refused.status_code == 405
        assert refused.json()["code"] == "method_not_allowed"
    # Litestar 2.25 cannot route them by itself; when this fails, Litestar fixed it and
    # serve_path_parameters can go.
    unfixed = _app_with_a_raw_route_with_a_path_parameter(fixed=False)
    with TestClient(unfixed, raise_server_exceptions=False) as client:
        assert client.post("/things/abc/go").status_code == 500
