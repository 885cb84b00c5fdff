"""Errors to HTTP, in one place: every error answer is an ``ErrorBody`` with the request id.

The Open Inference Protocol (V2) routes answer the same errors, statuses and messages in the
protocol's ``{"error": "..."}`` shape: their controller installs
``exception_handlers(inference=True)``, and the app's own handlers use that shape below the
protocol's prefix (``inference_prefix``) for what is refused before a route is found.

Domain errors carry their status and client-facing message. Litestar's own HTTP errors (404,
405, 413 ...) keep their status with the vocabulary's code and a message we write; its
query-parameter validation errors go through the same translator as request bodies
(``serving.http.validation``).
Anything else is a 500 whose details go to the log only: no exception text or traceback ever
reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from serving.http.errors import (
    BadRequestError,
    BodyTooLargeError,
    ErrorBody,
    InferenceErrorBody,
    InvalidParameterError,
    MethodNotAllowedError,
    NotFoundError,
    ServingError,
    UnsupportedMediaTypeError,
)
from serving.http.validation import invalid_parameter, parameter_rule

logger = logging.getLogger(__name__)

JSON: Final = "application/json"

_LITESTAR: Final[dict[int, tuple[str, str]]] = {
    400: (BadRequestError.code, "the request is malformed"),
    401: ("unauthorized", "authentication is required"),
    403: ("forbidden", "not allowed"),
    404: (NotFoundError.code, "no such route"),
    405: (MethodNotAllowedError.code, "this route does not accept that method"),
    413: (BodyTooLargeError.code, "the request body is too large"),
    415: (UnsupportedMediaTypeError.code, "send application/json"),
    429: ("too_many_requests", "too many requests"),
}
"""Code and message of each status Litestar raises by itself."""


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    state = request.scope.get("state") or {}
    value = state.get("request_id")
    return value if isinstance(value, str) else None


def parameter_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> InvalidParameterError | None:
    """The first refused query parameter of a Litestar validation error, in our words.

    Litestar names the parameter in ``extra`` (msgspec's own text beside it); its rule comes
    from the handler's declaration, the refused text from the request.
    """
    if not isinstance(exc.extra, list):
        return None
    for item in exc.extra:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        name: str = item["key"]
        if item.get("source") not in (None, "query"):
            continue
        declared = request.route_handler.parsed_fn_signature.parameters.get(name)
        rule = parameter_rule(declared) if declared is not None else None
        return invalid_parameter(name, request.query_params.get(name, ""), rule)
    return None


def exception_handlers(
    *, inference: bool = False, inference_prefix: str | None = None
) -> ExceptionHandlersMap:
    """The app's exception handlers.

    Args:
        inference: answer every error in the Open Inference Protocol's shape.
        inference_prefix: answer in that shape below this path too (``/v2``): a path no route
            matches, or a method a route does not take, is refused before any V2 handler runs.
    """
    encoder = msgspec.json.Encoder()

    def protocol(request: Request[Any, Any, Any]) -> bool:
        if inference or inference_prefix is None:
            return inference
        path: str = request.scope["path"]
        return path == inference_prefix or path.startswith(inference_prefix + "/")

    def respond(
        request: Request[Any, Any, Any],
        body: ErrorBody,
        status: int,
        headers: dict[str, str] | None = None,
    ) -> Response[Any]:
        shaped = InferenceErrorBody(error=body.message) if protocol(request) else body
        return Response(
            content=encoder.encode(shaped), status_code=status, media_type=JSON, headers=headers
        )

    def on_serving_error(request: Request[Any, Any, Any], exc: ServingError) -> Response[Any]:
        return respond(request, exc.body(_request_id(request)), exc.status_code, exc.headers)

    def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        status = exc.status_code
        if status >= 500:
            logger.error("HTTP %d: %s", status, exc.detail, extra={"path": request.url.path})
            return internal(request, status)
        if isinstance(exc, ValidationException):
            problem = parameter_error(request, exc)
            if problem is not None:
                return on_serving_error(request, problem)
        code, message = _LITESTAR.get(status, ("http_error", "the request failed"))
        allowed = (exc.headers or {}).get("allow")
        if status == 405 and allowed:
            message = f"{message} (allowed: {allowed})"
        body = ErrorBody(
            status="error", code=code, message=message, request_id=_request_id(request)
        )
        return respond(request, body, status, {"allow": allowed} if allowed else None)

    def internal(request: Request[Any, Any, Any], status: int) -> Response[Any]:
        body = ServingError(ServingError.example.message).body(_request_id(request))
        return respond(request, body, status)

    def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        logger.exception(
            "unhandled error on %s %s",
            request.method,
            request.url.path,
            extra={"request_id": _request_id(request)},
        )
        return internal(request, 500)

    return {
        ServingError: on_serving_error,
        HTTPException: on_http_error,
        Exception: on_unexpected,
    }
