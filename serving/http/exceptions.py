"""Errors to HTTP, in one place: every error answer is an ``ErrorBody`` with the request id.

Domain errors carry their status and client-facing message. Litestar's own HTTP errors (404,
405, 413 ...) keep their status with a message we write. Anything else is a 500 whose details
go to the log only: no exception text or traceback ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from serving.http.errors import ErrorBody, ServingError
from serving.inference.codec import PatientCodec

logger = logging.getLogger(__name__)

JSON: Final = "application/json"

_CODES: Final = {
    400: ("bad_request", "the request is malformed"),
    401: ("unauthorized", "authentication is required"),
    403: ("forbidden", "not allowed"),
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "this route does not accept that method"),
    413: ("body_too_large", "the request body is too large"),
    415: ("unsupported_media_type", "send application/json"),
    429: ("too_many_requests", "too many requests"),
    503: ("unavailable", "the service is unavailable"),
}


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    state = request.scope.get("state") or {}
    value = state.get("request_id")
    return value if isinstance(value, str) else None


def _parameter_problem(exc: HTTPException) -> tuple[str, str] | None:
    """The first bad query/path parameter of a Litestar validation error, as (name, problem).

    Litestar puts msgspec's own message (e.g. "Expected `int` >= 1") and the parameter's name
    in ``extra``; both are safe to show, unlike the exception text.
    """
    if not isinstance(exc, ValidationException) or not isinstance(exc.extra, list):
        return None
    for item in exc.extra:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            detail = item.get("message")
            return item["key"], detail if isinstance(detail, str) else "invalid value"
    return None


def exception_handlers(codec: PatientCodec) -> ExceptionHandlersMap:
    """The app's exception handlers, sharing the codec's encoder."""

    def respond(
        body: ErrorBody, status: int, headers: dict[str, str] | None = None
    ) -> Response[Any]:
        return Response(
            content=codec.encode(body), status_code=status, media_type=JSON, headers=headers
        )

    def on_serving_error(request: Request[Any, Any, Any], exc: ServingError) -> Response[Any]:
        return respond(exc.body(_request_id(request)), exc.status_code, exc.headers)

    def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        status = exc.status_code
        code, message = _CODES.get(status, ("http_error", "the request failed"))
        if status == 405:
            allowed = (exc.headers or {}).get("allow")
            message = f"{message} (allowed: {allowed})" if allowed else message
        if status >= 500:
            logger.error("HTTP %d: %s", status, exc.detail, extra={"path": request.url.path})
            code, message = "internal_error", "internal server error"
        headers = (
            {"allow": exc.headers["allow"]} if exc.headers and "allow" in exc.headers else None
        )
        field = None
        problem = _parameter_problem(exc)
        if problem is not None:
            field, detail = problem
            code, message = "validation_error", f"{field}: {detail}"
        body = ErrorBody(
            status="error",
            code=code,
            message=message,
            request_id=_request_id(request),
            field=field,
        )
        return respond(body, status, headers)

    def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        request_id = _request_id(request)
        logger.exception(
            "unhandled error on %s %s",
            request.method,
            request.url.path,
            extra={"request_id": request_id},
        )
        body = ErrorBody(
            status="error",
            code="internal_error",
            message="internal server error",
            request_id=request_id,
        )
        return respond(body, 500)

    return {
        ServingError: on_serving_error,
        HTTPException: on_http_error,
        Exception: on_unexpected,
    }
