"""What a retrain request carries: JSON or multipart parameters, an optional CSV, ``?wait=``.

HTTP-side parsing only; the job itself is ``serving.lifecycle.jobs``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import Example
from litestar.params import Body

from serving.http.errors import InvalidInputError, MalformedBodyError
from serving.http.validation import (
    Rule,
    Subject,
    invalid_input,
    invalid_parameter,
    rules_of,
    untyped,
)
from serving.lifecycle.schemas import RetrainRequest

UPLOAD_FIELD: Final = "file"
PARAMS_FIELD: Final = "params"
RetrainBody = Annotated[
    RetrainRequest,
    Body(
        title="Retrain parameters",
        description="JSON, every field optional. To upload a CSV instead send multipart/form-data "
        f"with the file in `{UPLOAD_FIELD}` and the parameters either as a JSON object in "
        f"`{PARAMS_FIELD}` or as one form field each.",
        media_type=RequestEncodingType.JSON,
        examples=[
            Example(
                summary="The original API's body",
                value={
                    "n_estimators": 150,
                    "max_leaf_nodes": 40,
                    "test_size": 0.3,
                    "apply_smote": True,
                },
            ),
            Example(summary="Do not wait: 202 and a job URL", value={"wait": False}),
        ],
    ),
]


def document_body(data: RetrainBody) -> None:  # pragma: no cover - never called
    """Only for the OpenAPI schema: the handler reads JSON or multipart itself."""


RETRAIN: Final = Subject(
    rules=rules_of(RetrainRequest), body_expected="a JSON object of retrain parameters"
)
"""How errors describe retrain parameters, worded from ``RetrainRequest``'s own bounds."""
WAIT_WORDS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
"""What ``?wait=`` accepts, in any letter case."""
WAIT_PATTERN: Final = (
    "^(?:"
    + "|".join(
        "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word) for word in WAIT_WORDS
    )
    + ")$"
)
"""``WAIT_WORDS`` as the OpenAPI document states them (JSON Schema has no case-blind flag)."""
_WAIT_RULE: Final = Rule(name="wait", kind="boolean")


def decode_request(raw: bytes) -> RetrainRequest:
    """A JSON body (empty means every default).

    Raises:
        MalformedBodyError: not JSON.
        InvalidInputError: a field is unknown or out of range (names it and what it takes).
    """
    if not raw.strip():
        return RetrainRequest()
    try:
        return msgspec.json.decode(raw, type=RetrainRequest)
    except msgspec.ValidationError as exc:
        raise invalid_input(exc, RETRAIN, lambda: untyped(raw)) from None
    except msgspec.DecodeError:
        raise MalformedBodyError("the body is not valid JSON") from None


def convert_form(fields: dict[str, Any]) -> RetrainRequest:
    """Parameters from multipart fields: a JSON object in ``params``, or one field each."""
    if PARAMS_FIELD in fields:
        value = fields[PARAMS_FIELD]
        return decode_request(value.encode() if isinstance(value, str) else bytes(value))
    try:
        return msgspec.convert(fields, RetrainRequest, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid_input(exc, RETRAIN, lambda: fields) from None


async def read_retrain_request(
    request: Request[Any, Any, Any],
) -> tuple[RetrainRequest, bytes | None, str | None]:
    """The parameters and the uploaded CSV (bytes and client file name) of a retrain request."""
    media = request.content_type[0]
    if media != RequestEncodingType.MULTI_PART:
        return decode_request(await request.body()), None, None
    form = await request.form()
    upload: bytes | None = None
    name: str | None = None
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key != UPLOAD_FIELD:
                raise InvalidInputError(
                    f"unexpected file field '{key}'",
                    field=key,
                    expected=f"the CSV in '{UPLOAD_FIELD}'",
                )
            upload, name = await value.read(), value.filename
        else:
            fields[key] = value
    if upload is not None and not upload.strip():
        raise InvalidInputError("the uploaded file is empty", field=UPLOAD_FIELD)
    return convert_form(fields), upload, name


def parse_wait(value: str | None, default: bool) -> bool:
    """The ``?wait=`` query parameter: one of ``WAIT_WORDS``; absent means ``default``.

    Raises:
        InvalidParameterError: any other text.
    """
    if value is None:
        return default
    answer = WAIT_WORDS.get(value.lower()) if value.isascii() else None
    if answer is None:
        raise invalid_parameter("wait", value, _WAIT_RULE)
    return answer
