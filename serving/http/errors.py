"""Domain errors of the server and the one JSON error shape every 4xx/5xx answer uses.

Handlers and the model raise the typed errors below; ``serving.app`` maps them (and Litestar's
own 404/405/413/500) to HTTP in one place. Raw exception text never reaches a client: every
message here is written for the client.
"""

from __future__ import annotations

import re
from typing import ClassVar, Final

import msgspec

from drugclf.contract import FIELDS_BY_NAME, FieldSpec


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


class ServingError(Exception):
    """Base of the errors a client can be told about."""

    status_code: int = 500
    code: str = "internal_error"
    headers: ClassVar[dict[str, str] | None] = None
    """Response headers the status calls for (401's ``WWW-Authenticate``)."""

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


class InvalidInputError(ServingError):
    """The body is JSON but not a valid patient (or batch of patients)."""

    status_code = 422
    code = "validation_error"


class MalformedBodyError(ServingError):
    """The body is empty or not JSON at all."""

    status_code = 400
    code = "malformed_json"


class BatchSizeError(ServingError):
    """More patients than the batch limit, or an empty batch."""

    status_code = 422
    code = "batch_size"


class UnsupportedMediaTypeError(ServingError):
    """The request declares a content type other than JSON."""

    status_code = 415
    code = "unsupported_media_type"


class ModelUnavailableError(ServingError):
    """No model is loaded (only possible while starting or shutting down)."""

    status_code = 503
    code = "model_unavailable"


# msgspec messages end in " - at `$[3].Age`"; the path names the batch index and the field.
_PATH = re.compile(r" - at `\$(?:\[(?P<index>\d+)\])?(?:\.(?P<field>\w+))?`$")
_NAMED_FIELD = re.compile(r"field `(?P<field>[^`]+)`")


def expected_for(spec: FieldSpec) -> str:
    """Human wording of what a field accepts, built from the feature contract."""
    if spec.allowed is not None:
        return "one of " + ", ".join(spec.allowed)
    low = "> " if spec.exclusive_minimum else ">= "
    kind = "an integer" if spec.type == "integer" else "a finite number"
    return f"{kind} {low}{_number(spec.minimum)} and <= {_number(spec.maximum)}"


def _number(value: float | None) -> str:
    if value is None:  # pragma: no cover - every numeric field of the contract is bounded
        return "?"
    return str(int(value)) if float(value).is_integer() else str(value)


EXPECTED: Final[dict[str, str]] = {name: expected_for(s) for name, s in FIELDS_BY_NAME.items()}
PATIENT_EXPECTED: Final = "a patient object with exactly " + ", ".join(FIELDS_BY_NAME)


def from_validation_error(exc: msgspec.ValidationError) -> InvalidInputError:
    """Turn msgspec's message into an error that names the field, its index and what it takes."""
    text = str(exc)
    index: int | None = None
    field: str | None = None
    match = _PATH.search(text)
    if match:
        text = text[: match.start()]
        index = int(match["index"]) if match["index"] is not None else None
        field = match["field"]
    if field is None:
        named = _NAMED_FIELD.search(text)  # "Object missing required field `Age`"
        field = named["field"] if named else None
    expected = EXPECTED.get(field, PATIENT_EXPECTED) if field else _top_level_expected(text)
    if field is None and index is not None and "got" in text:
        expected = PATIENT_EXPECTED
    return InvalidInputError(text, field=field, index=index, expected=expected)


def _top_level_expected(text: str) -> str:
    if text.startswith("Expected `object | array`"):
        return f"{PATIENT_EXPECTED}, or a non-empty array of them"
    return PATIENT_EXPECTED
