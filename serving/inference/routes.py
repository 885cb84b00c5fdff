"""HTTP for the data plane: ``/predict``, ``/model/info``, ``/health``, ``/ready``, ``/metrics``.

Each handler translates HTTP to one call on ``PredictionService`` (or the metrics) and returns
prebuilt bytes. Errors are ``ServingError``s, answered by ``serving.http.exceptions``.
"""

from __future__ import annotations

from typing import Final

from litestar import Controller, Litestar, asgi, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.types import Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST

from serving.http.errors import (
    BatchSizeError,
    BodyTooLargeError,
    InvalidInputError,
    MalformedBodyError,
    ModelUnavailableError,
    UnsupportedMediaTypeError,
)
from serving.http.metrics import ServerMetrics
from serving.http.openapi import (
    PREDICT_EXAMPLES,
    PatientBody,
    documented_by,
    error_responses,
)
from serving.http.raw import read_body, require_method
from serving.http.responses import RawResponse
from serving.http.state import service
from serving.inference.codec import check_json_content_type
from serving.inference.schemas import (
    HealthResponse,
    ModelInfoResponse,
    PredictionResponse,
    ReadyResponse,
)
from serving.inference.service import PredictionService

METRICS_CONTENT_TYPE: Final = (b"content-type", CONTENT_TYPE_LATEST.encode())
MODEL_VERSION_HEADER: Final = b"x-model-version"
"""Names the version that answered (a traffic policy may pick another than the served one)."""


@post(
    "/predict",
    tags=["prediction"],
    status_code=200,
    responses={
        200: ResponseSpec(
            # A union is a valid response type; Litestar's annotation says only classes.
            PredictionResponse | list[PredictionResponse],  # type: ignore[arg-type]
            description="One answer per patient, in the order sent",
            generate_examples=False,
            examples=PREDICT_EXAMPLES,
        ),
        **error_responses(
            MalformedBodyError,
            BodyTooLargeError,
            UnsupportedMediaTypeError,
            InvalidInputError,
            BatchSizeError,
            ModelUnavailableError,
        ),
    },
)
async def predict_document(data: PatientBody) -> RawResponse:  # pragma: no cover - never called
    """Predict the drug class of one patient, or of a batch in one model call.

    The body is a patient object or an array of them. The answer carries the version of
    the model that produced it, in each `model_version` and the `x-model-version` header:
    with a traffic policy (`/routing`) a candidate may answer; a batch goes to one version.
    """
    raise NotImplementedError


class PredictionController(Controller):
    """The prediction and status routes of one app."""

    path = "/"

    @get(
        "/health",
        tags=["status"],
        responses={200: ResponseSpec(HealthResponse, description="Alive", generate_examples=False)},
    )
    async def health(self, state: State) -> RawResponse:
        """Liveness: the process answers. Reports whether and which model is loaded."""
        return RawResponse(service(state, PredictionService).health())

    @get(
        "/ready",
        tags=["status"],
        responses={
            503: ResponseSpec(ReadyResponse, description="No model loaded", generate_examples=False)
        },
    )
    async def ready(self, state: State) -> RawResponse:
        """Readiness: 200 only when a model is loaded and can answer."""
        body, ready = service(state, PredictionService).readiness()
        return RawResponse(body, 200 if ready else 503)

    @asgi("/predict", copy_scope=False, opt=documented_by(predict_document))
    async def predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /predict`` as a raw ASGI handler (documented by ``predict_document``)."""
        require_method(scope, "POST")
        headers = scope["headers"]
        check_json_content_type(headers)
        app = Litestar.from_scope(scope)
        state = scope["state"]
        answer = await service(app.state, PredictionService).answer_json(
            await read_body(scope, receive),
            state.get("request_id"),
            headers,
        )
        state["model_version"] = answer.model_version
        await RawResponse(answer.body, headers=((MODEL_VERSION_HEADER, answer.version_bytes),))(
            scope, receive, send
        )

    @get(
        "/model/info",
        tags=["model"],
        responses={
            200: ResponseSpec(
                ModelInfoResponse, description="The loaded model", generate_examples=False
            ),
            **error_responses(ModelUnavailableError),
        },
    )
    async def model_info(self, state: State) -> RawResponse:
        """What the loaded model is: type, version, params, classes, features, metrics, parity."""
        return RawResponse(service(state, PredictionService).model_info())

    @get(
        "/metrics",
        tags=["status"],
        media_type=CONTENT_TYPE_LATEST,
        responses={
            200: ResponseSpec(
                str,
                description="Prometheus text exposition format",
                media_type=CONTENT_TYPE_LATEST,
                generate_examples=False,
            )
        },
    )
    async def metrics(self, state: State) -> RawResponse:
        """Prometheus metrics in the text exposition format."""
        return RawResponse(
            service(state, ServerMetrics).render(), content_type=METRICS_CONTENT_TYPE
        )
