"""HTTP for explanations: ``POST /explain`` and ``GET /model/explanations``.

Each handler translates HTTP to one call on ``ExplanationService`` and returns prebuilt bytes;
``/explain`` takes exactly the bodies ``/predict`` takes, with the same errors.
"""

from __future__ import annotations

from typing import Final

from litestar import Controller, Litestar, asgi, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.types import Receive, Scope, Send

from drugclf.contract import CLASSES
from serving.explain.schemas import ExplanationResponse, ExplanationsInfo
from serving.explain.service import ExplanationService, ExplanationsUnavailableError
from serving.http.errors import (
    BatchSizeError,
    BodyTooLargeError,
    InvalidInputError,
    MalformedBodyError,
    ModelUnavailableError,
    UnsupportedMediaTypeError,
)
from serving.http.openapi import EXAMPLE_ANSWER, PatientBody, documented_by, error_responses
from serving.http.raw import read_body, require_method
from serving.http.responses import RawResponse
from serving.http.state import service
from serving.inference.codec import check_json_content_type

EXAMPLE_EXPLANATION: Final = {
    **{k: v for k, v in EXAMPLE_ANSWER.items() if k != "status"},
    "base_values": {"DrugA": 0.11, "DrugB": 0.08, "DrugC": 0.08, "DrugX": 0.27, "DrugY": 0.46},
    "values": {
        "Age": dict(zip(CLASSES, (0.32, -0.03, -0.02, -0.06, -0.21), strict=True)),
        "Sex": dict(zip(CLASSES, (0.0, 0.0, 0.0, 0.0, 0.0), strict=True)),
        "BP": dict(zip(CLASSES, (0.3, 0.0, -0.06, -0.21, -0.03), strict=True)),
        "Cholesterol": dict(zip(CLASSES, (0.1, 0.0, 0.0, -0.1, 0.0), strict=True)),
        "Na_to_K": dict(zip(CLASSES, (0.08, 0.0, 0.0, 0.12, -0.2), strict=True)),
    },
    "status": "success",
}


@post(
    "/explain",
    tags=["prediction"],
    status_code=200,
    responses={
        200: ResponseSpec(
            # A union is a valid response type; Litestar's annotation says only classes.
            ExplanationResponse | list[ExplanationResponse],  # type: ignore[arg-type]
            description="One explanation per patient, in the order sent",
            generate_examples=False,
            examples=[
                Example(summary="One patient", value=EXAMPLE_EXPLANATION),
                Example(summary="A batch", value=[EXAMPLE_EXPLANATION]),
            ],
        ),
        **error_responses(
            MalformedBodyError,
            BodyTooLargeError,
            UnsupportedMediaTypeError,
            ExplanationsUnavailableError,
            InvalidInputError,
            BatchSizeError,
            ModelUnavailableError,
        ),
    },
)
async def explain_document(data: PatientBody) -> RawResponse:  # pragma: no cover - never called
    """Predict and explain one patient, or a batch: exact Shapley values per input.

    The body is what `/predict` takes. For every class, `base_values` (the mean
    probability over the training rows) plus the five inputs' `values` equals the
    probability. A model exported without explanations answers 409.
    """
    raise NotImplementedError


class ExplainController(Controller):
    """The explanation routes of one app."""

    path = "/"

    @asgi("/explain", copy_scope=False, opt=documented_by(explain_document))
    async def explain(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /explain`` as a raw ASGI handler (documented by ``explain_document``)."""
        require_method(scope, "POST")
        check_json_content_type(scope["headers"])
        explanations = service(Litestar.from_scope(scope).state, ExplanationService)
        answer = await explanations.answer_json(await read_body(scope, receive))
        scope["state"]["model_version"] = answer.model_version
        await RawResponse(answer.body)(scope, receive, send)

    @get(
        "/model/explanations",
        tags=["model"],
        responses={
            200: ResponseSpec(
                ExplanationsInfo,
                description="The served model's explainer",
                generate_examples=False,
            ),
            **error_responses(ExplanationsUnavailableError, ModelUnavailableError),
        },
    )
    async def explanations(self, state: State) -> RawResponse:
        """How the served model is explained: background, grid, gate, global importance."""
        return RawResponse(service(state, ExplanationService).info())
