"""HTTP for the Open Inference Protocol (V2): ``/v2``, health, model metadata, readiness, infer.

Each handler translates HTTP to one call on ``OpenInference`` and returns prebuilt bytes. Errors
are the house's ``ServingError``s, answered in the protocol's ``{"error": "..."}`` shape by this
controller's own handlers (``serving.http.exceptions.exception_handlers(inference=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

from litestar import Controller, Litestar, asgi, get, post
from litestar.datastructures import State
from litestar.enums import ParamType, RequestEncodingType
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.params import Body, PathParameter
from litestar.types import Receive, Scope, Send

from serving.http.errors import (
    BodyTooLargeError,
    InferenceHeaderError,
    InvalidTensorError,
    MalformedBodyError,
    ModelNotFoundError,
    ModelUnavailableError,
    VersionNotFoundError,
)
from serving.http.exceptions import exception_handlers as error_handlers
from serving.http.openapi import (
    EXAMPLE_PATIENT,
    EXAMPLE_PATIENT_2,
    documented_by,
    error_responses,
)
from serving.http.raw import read_body, require_method
from serving.http.responses import RawResponse
from serving.http.state import service
from serving.v2.binary import HEADER_LENGTH
from serving.v2.codec import CLASS_ORDER, FEATURES
from serving.v2.schemas import (
    InferenceRequest,
    InferenceResponse,
    LiveResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ReadyResponse,
    ServerMetadataResponse,
)
from serving.v2.service import OpenInference
from serving.v2.versions import EXAMPLE_VERSION

TAG: Final = "open inference protocol (V2)"
HEADER_LENGTH_BYTES: Final = HEADER_LENGTH.lower().encode()
OCTET_STREAM: Final = (b"content-type", b"application/octet-stream")
MODEL_VERSION_HEADER: Final = b"x-model-version"
"""Names who answered, as on ``/predict``."""


def _columns(*patients: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "shape": [len(patients), 1],
            "datatype": FEATURES[name].datatypes[0],
            "data": [patient[name] for patient in patients],
        }
        for name in patients[0]
    ]


EXAMPLE_REQUEST: Final = {"id": "42", "inputs": _columns(EXAMPLE_PATIENT, EXAMPLE_PATIENT_2)}
EXAMPLE_RESPONSE: Final = {
    "model_name": "drug-classifier",
    "model_version": EXAMPLE_VERSION,
    "id": "42",
    "outputs": [
        {
            "name": "label",
            "shape": [2],
            "datatype": "BYTES",
            "parameters": {"content_type": "str"},
            "data": ["DrugY", "DrugA"],
        },
        {
            "name": "probabilities",
            "shape": [2, 5],
            "datatype": "FP32",
            "parameters": {"classes": CLASS_ORDER},
            "data": [0.16, 0.0, 0.0, 0.0, 0.84, 0.91, 0.05, 0.0, 0.02, 0.02],
        },
    ],
}

ModelName = Annotated[str, PathParameter(description="The model's name (`drug-classifier`).")]
ModelVersion = Annotated[
    str | None,
    PathParameter(
        description="A published version that passed its parity gate (listed in the model's "
        "metadata); without it, the served version answers."
    ),
]

InferenceBody = Annotated[
    InferenceRequest,
    Body(
        title="An inference request",
        description="One input tensor per feature (`Age` INT64, `Sex`, `BP`, `Cholesterol` "
        "BYTES, `Na_to_K` FP64 or FP32), each of shape [N] or [N, 1] with the same N. With the "
        "binary tensor data extension the JSON is followed by the tensors' bytes: send "
        f"`{HEADER_LENGTH}` (the JSON's length) and each binary input's "
        "`parameters.binary_data_size`. See docs/v2.md.",
        media_type=RequestEncodingType.JSON,
        examples=[Example(summary="Two patients, inline data", value=EXAMPLE_REQUEST)],
    ),
]


@dataclass
class _BinaryAnswer(Operation):
    """Infer's operation, with what Litestar cannot derive: the binary tensor data extension.

    The request may carry the ``Inference-Header-Content-Length`` header; the 200 answer may be
    the JSON followed by the binary outputs' bytes (``application/octet-stream``).
    """

    def __post_init__(self) -> None:
        header = OpenAPIParameter(
            name=HEADER_LENGTH,
            param_in=ParamType.HEADER,
            required=False,
            schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
            description="Binary tensor data extension: the length in bytes of the JSON request "
            "header; the binary inputs' bytes follow it.",
        )
        self.parameters = [*(self.parameters or []), header]
        answer = (self.responses or {}).get("200")
        if isinstance(answer, OpenAPIResponse) and answer.content is not None:
            answer.content["application/octet-stream"] = OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.STRING,
                    format=OpenAPIFormat.BINARY,
                    description="The JSON answer, then the binary outputs' bytes; the "
                    f"`{HEADER_LENGTH}` response header gives the JSON's length.",
                )
            )


NOT_FOUND: Final = (ModelNotFoundError, VersionNotFoundError)
INFER_ERRORS: Final = (
    MalformedBodyError,
    InvalidTensorError,
    InferenceHeaderError,
    *NOT_FOUND,
    BodyTooLargeError,
    ModelUnavailableError,
)


def _answer(body: bytes) -> RawResponse:
    return RawResponse(body)


@post(
    [
        "/v2/models/{model_name:str}/infer",
        "/v2/models/{model_name:str}/versions/{model_version:str}/infer",
    ],
    tags=[TAG],
    status_code=200,
    operation_class=_BinaryAnswer,
    responses={
        200: ResponseSpec(
            InferenceResponse,
            description="The outputs asked for (all by default); `model_version` names the "
            "version that answered",
            generate_examples=False,
            examples=[Example(summary="Two patients", value=EXAMPLE_RESPONSE)],
        ),
        **error_responses(*INFER_ERRORS, inference=True),
    },
)
async def infer_document(  # pragma: no cover - never called
    data: InferenceBody, model_name: ModelName, model_version: ModelVersion = None
) -> RawResponse:
    """Inference: one tensor per feature in, `label` and `probabilities` out.

    The same answers as `POST /predict` for the same patients, inline JSON or with the
    binary tensor data extension (both directions).
    """
    raise NotImplementedError


class OpenInferenceController(Controller):
    """The Open Inference Protocol (V2) REST routes, errors in the protocol's shape."""

    path = "/v2"
    tags = [TAG]  # noqa: RUF012 - Litestar's declaration
    exception_handlers = error_handlers(inference=True)

    @get(
        "/",
        responses={200: ResponseSpec(ServerMetadataResponse, generate_examples=False)},
    )
    async def server_metadata(self, state: State) -> RawResponse:
        """Server metadata: name, version and the protocol extensions spoken."""
        return _answer(service(state, OpenInference).server_metadata())

    @get("/health/live", responses={200: ResponseSpec(LiveResponse, generate_examples=False)})
    async def live(self, state: State) -> RawResponse:
        """Server live: the process answers."""
        return _answer(service(state, OpenInference).live())

    @get(
        "/health/ready",
        responses={
            200: ResponseSpec(ReadyResponse, generate_examples=False),
            503: ResponseSpec(
                ReadyResponse, description="No model loaded", generate_examples=False
            ),
        },
    )
    async def ready(self, state: State) -> RawResponse:
        """Server ready: the served model is loaded and answers."""
        body, ready = service(state, OpenInference).ready()
        return RawResponse(body, 200 if ready else 503)

    @get(
        ["/models/{model_name:str}", "/models/{model_name:str}/versions/{model_version:str}"],
        responses={
            200: ResponseSpec(ModelMetadataResponse, generate_examples=False),
            **error_responses(*NOT_FOUND, inference=True),
        },
    )
    async def model_metadata(
        self, state: State, model_name: ModelName, model_version: ModelVersion = None
    ) -> RawResponse:
        """Model metadata: the servable versions, the platform, the input and output tensors."""
        metadata = await service(state, OpenInference).model_metadata(model_name, model_version)
        return _answer(metadata)

    @get(
        [
            "/models/{model_name:str}/ready",
            "/models/{model_name:str}/versions/{model_version:str}/ready",
        ],
        responses={
            200: ResponseSpec(ModelReadyResponse, generate_examples=False),
            **error_responses(*NOT_FOUND, ModelUnavailableError, inference=True),
        },
    )
    async def model_ready(
        self, state: State, model_name: ModelName, model_version: ModelVersion = None
    ) -> RawResponse:
        """Model ready: the model (that version: loaded now if need be) can answer."""
        return _answer(await service(state, OpenInference).model_ready(model_name, model_version))

    @asgi(
        [
            "/models/{model_name:str}/infer",
            "/models/{model_name:str}/versions/{model_version:str}/infer",
        ],
        copy_scope=False,
        opt=documented_by(infer_document),
    )
    async def infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The infer route as a raw ASGI handler (documented by ``infer_document``)."""
        require_method(scope, "POST")
        path = scope["path_params"]
        header_length = None
        headers = scope["headers"]
        for key, value in headers:
            if key == HEADER_LENGTH_BYTES:
                header_length = value.decode("latin-1")
        state = scope["state"]
        answer = await service(Litestar.from_scope(scope).state, OpenInference).infer(
            path["model_name"],
            path.get("model_version"),
            await read_body(scope, receive),
            header_length=header_length,
            headers=headers,
            request_id=state.get("request_id"),
        )
        state["model_version"] = answer.model_version
        version = (MODEL_VERSION_HEADER, answer.model_version.encode())
        if answer.header_length is None:
            response = RawResponse(answer.body, headers=(version,))
        else:
            response = RawResponse(
                answer.body,
                content_type=OCTET_STREAM,
                headers=((HEADER_LENGTH_BYTES, b"%d" % answer.header_length), version),
            )
        await response(scope, receive, send)
