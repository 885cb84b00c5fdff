"""The error vocabulary: the JSON error shapes and one error class per concept.

Every error answer is an ``ErrorBody``, except on the Open Inference Protocol (V2) routes, which
answer the protocol's own ``InferenceErrorBody`` (``{"error": "..."}``) for the same errors.

Handlers, services and the model raise the typed errors below (features add their own
subclasses); ``serving.http.exceptions`` answers them, and Litestar's own HTTP errors, in one
place. Every message is written for the client: raw exception text never reaches one.
Each class documents itself: its docstring and ``example`` become its entry in the OpenAPI
document (``serving.http.openapi.error_responses``).
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """The JSON body of every error answer.

    ``field`` and ``index`` locate a validation problem (``index`` is the position in a batch),
    ``expected`` says what the field accepts.
    """

    status: str
    code: str
    message: str
    request_id: str | None = None
    field: str | None = None
    index: int | None = None
    expected: str | None = None


class InferenceErrorBody(msgspec.Struct, frozen=True):
    """The JSON body of every error answer of the Open Inference Protocol (V2) routes.

    The protocol's own shape: one message. It names the tensor, the element and what is
    expected when a tensor is refused; the request id is in the ``X-Request-ID`` header.
    """

    error: str


class ErrorExample(msgspec.Struct, frozen=True):
    """An error as a client would read it, for the OpenAPI document."""

    message: str
    field: str | None = None
    index: int | None = None
    expected: str | None = None


class ServingError(Exception):
    """Something unexpected went wrong on the server (details in the server log only)."""

    status_code: int = 500
    code: str = "internal_error"
    headers: dict[str, str] | None = None
    """Response headers the status calls for (401's ``WWW-Authenticate``, 405's ``Allow``)."""
    example: ClassVar[ErrorExample] = ErrorExample("internal server error")

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        expected: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.index = index
        self.expected = expected

    def body(self, request_id: str | None) -> ErrorBody:
        """The error shape for this error."""
        return ErrorBody(
            status="error",
            code=self.code,
            message=self.message,
            request_id=request_id,
            field=self.field,
            index=self.index,
            expected=self.expected,
        )


class MalformedBodyError(ServingError):
    """The body is empty, or not JSON at all."""

    status_code = 400
    code = "malformed_json"
    example = ErrorExample(
        "the request body is not valid JSON (JSON is malformed: invalid character (byte 12))",
        expected="a JSON object or array",
    )


class InvalidParameterError(ServingError):
    """A query parameter is not acceptable: ``field`` names it, ``expected`` says what it takes."""

    status_code = 400
    code = "validation_error"
    example = ErrorExample(
        "limit must be a whole number from 1 to 1000 (got 0)",
        field="limit",
        expected="an integer >= 1 and <= 1000",
    )


class BadRequestError(ServingError):
    """The request cannot be read (for example a broken multipart form)."""

    status_code = 400
    code = "bad_request"
    example = ErrorExample("the request is malformed")


class InvalidInputError(ServingError):
    """A value in the body is wrong, missing or unknown.

    ``field``, ``index`` (in a batch) and ``expected`` say which and what it takes.
    """

    status_code = 422
    code = "validation_error"
    example = ErrorExample(
        "Age must be a whole number from 0 to 120 (got -5)",
        field="Age",
        index=1,
        expected="an integer >= 0 and <= 120",
    )


class BatchSizeError(ServingError):
    """An empty array, or more patients than the batch limit."""

    status_code = 422
    code = "batch_size"
    example = ErrorExample(
        "a batch holds 1 to 1000 patients (got 0)",
        expected="a JSON array of 1 to 1000 patient objects",
    )


class InvalidTensorError(ServingError):
    """An Open Inference Protocol (V2) tensor is refused.

    It is unknown, missing, of the wrong datatype or shape, or one of its elements is not what
    the feature contract accepts; the message names the tensor, the element index and what is
    expected.
    """

    status_code = 400
    code = "invalid_tensor"
    example = ErrorExample(
        "input 'Age' element 1: must be a whole number from 0 to 120 (got -5)",
        field="Age",
        index=1,
        expected="an integer >= 0 and <= 120",
    )


class InferenceHeaderError(ServingError):
    """The binary tensor data extension's framing disagrees with the body.

    The ``Inference-Header-Content-Length`` header, or the tensors' ``binary_data_size``, do not
    add up to the bytes that were sent.
    """

    status_code = 400
    code = "invalid_binary_framing"
    example = ErrorExample(
        "Inference-Header-Content-Length is 900 but the body has 512 bytes",
        field="Inference-Header-Content-Length",
    )


class NotFoundError(ServingError):
    """Nothing at this path: no route answers it, or what it names does not exist."""

    status_code = 404
    code = "not_found"
    example = ErrorExample("no such route")


class VersionNotFoundError(ServingError):
    """No published model version by that name."""

    status_code = 404
    code = "version_not_found"
    example = ErrorExample("no published version '20990101-000000-abcdef'", field="version")


class ModelNotFoundError(ServingError):
    """No model by that name: the Open Inference Protocol routes serve one name (a setting)."""

    status_code = 404
    code = "model_not_found"
    example = ErrorExample("unknown model 'resnet' (this server serves 'drug-classifier')")


class MethodNotAllowedError(ServingError):
    """The route exists but not with this method (the ``Allow`` header lists the methods)."""

    status_code = 405
    code = "method_not_allowed"
    example = ErrorExample("this route does not accept that method (allowed: POST)")

    def __init__(self, *, allow: str) -> None:
        super().__init__(f"this route does not accept that method (allowed: {allow})")
        self.headers = {"allow": allow}


class BodyTooLargeError(ServingError):
    """The body is larger than the configured limit."""

    status_code = 413
    code = "body_too_large"
    example = ErrorExample("the request body is too large")


class UnsupportedMediaTypeError(ServingError):
    """The request declares a content type other than JSON."""

    status_code = 415
    code = "unsupported_media_type"
    example = ErrorExample(
        "content type 'text/plain' is not supported",
        expected="application/json",
    )


class ModelUnavailableError(ServingError):
    """No model is loaded (only possible while starting or shutting down)."""

    status_code = 503
    code = "model_unavailable"
    example = ErrorExample("no model is loaded yet")
