"""Interactive API docs at ``/docs`` that work offline, and the static files they need.

Litestar's Swagger UI plugin loads its JavaScript from a CDN by default; here every asset
(Swagger UI 5, Apache-2.0, vendored under ``serving/static/vendor/swagger-ui``) is served by
this server, so ``/docs`` works on a machine with no internet access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import msgspec
from litestar.enums import RequestEncodingType
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Example, Tag
from litestar.params import Body
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from drugclf.contract import SAMPLE_PATIENT, Patient
from serving.http.errors import ErrorBody

STATIC_DIR: Final = Path(__file__).parents[1] / "static"
STATIC_PATH: Final = "/static"
DOCS_PATH: Final = "/docs"
_SWAGGER: Final = f"{STATIC_PATH}/vendor/swagger-ui"

DESCRIPTION: Final = """\
Predicts which of five drugs (DrugA, DrugB, DrugC, DrugX, DrugY) suits a patient, from age,
sex, blood pressure, cholesterol and the blood sodium-to-potassium ratio. A RandomForest
trained on the Kaggle *drug200* teaching dataset, served with onnxruntime.
**A teaching dataset, not a clinical tool.**

`POST /predict` takes one patient object or a JSON array of them. Bodies are decoded strictly:
no type coercion (`"45"` is not an Age), no unknown fields. Every error answer has the same
shape (`status`, `code`, `message`, `request_id`, and `field`, `index`, `expected` when they
apply). Every response carries an `X-Request-ID` header (yours, echoed, or a new one).
"""


EXAMPLE_PATIENT: Final = msgspec.to_builtins(SAMPLE_PATIENT)
EXAMPLE_PATIENT_2: Final = {
    "Age": 61,
    "Sex": "F",
    "BP": "LOW",
    "Cholesterol": "HIGH",
    "Na_to_K": 25.4,
}
EXAMPLE_ANSWER: Final = {
    "prediction": "DrugA",
    "probabilities": {"DrugA": 0.91, "DrugB": 0.05, "DrugC": 0.0, "DrugX": 0.02, "DrugY": 0.02},
    "model_version": "20261127-101500-3f9a2c",
    "status": "success",
}
EXAMPLE_ERROR: Final = {
    "status": "error",
    "code": "validation_error",
    "message": "Expected `int`, got `str`",
    "request_id": "5f0c2f3e9a4b4f8c8d1e2a3b4c5d6e7f",
    "field": "Age",
    "index": 1,
    "expected": "an integer >= 0 and <= 120",
}

PatientBody = Annotated[
    Patient | list[Patient],
    Body(
        title="A patient, or an array of patients",
        description="One patient object, or a JSON array of them (1 to the max batch size). "
        "Decoded strictly: no type coercion, no unknown fields.",
        media_type=RequestEncodingType.JSON,
        examples=[
            Example(summary="One patient", value=EXAMPLE_PATIENT),
            Example(summary="A batch of two", value=[EXAMPLE_PATIENT, EXAMPLE_PATIENT_2]),
        ],
    ),
]


def document_body(data: PatientBody) -> None:  # pragma: no cover - never called
    """Only for the OpenAPI schema: handlers read the raw body and decode it strictly."""


def error_spec(description: str) -> ResponseSpec:
    """A documented error answer, with the error shape as its example."""
    return ResponseSpec(
        ErrorBody,
        description=description,
        generate_examples=False,
        examples=[Example(summary="Error shape", value=EXAMPLE_ERROR)],
    )


ERROR_RESPONSES: Final = {
    400: error_spec("Empty or malformed JSON body"),
    413: error_spec("Body larger than the limit"),
    415: error_spec("Content type is not JSON"),
    422: error_spec("Invalid patient or batch: names the field, its index and what it takes"),
    503: error_spec("No model loaded"),
}


PREDICT_EXAMPLES: Final = [
    Example(summary="One patient", value=EXAMPLE_ANSWER),
    Example(summary="A batch", value=[EXAMPLE_ANSWER, EXAMPLE_ANSWER]),
]


def openapi_config(version: str = "1.0.0") -> OpenAPIConfig:
    """OpenAPI schema at ``/docs/openapi.json``, Swagger UI at ``/docs``, all assets local."""
    return OpenAPIConfig(
        title="drug-classifier",
        version=version,
        description=DESCRIPTION,
        path=DOCS_PATH,
        use_handler_docstrings=True,
        tags=[
            Tag(name="prediction", description="Drug-class predictions"),
            Tag(name="model", description="The loaded model"),
            Tag(name="status", description="Liveness, readiness and metrics"),
        ],
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
                css_url=f"{_SWAGGER}/swagger-ui.css",
                standalone_preset_js_url=f"{_SWAGGER}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{_SWAGGER}/favicon-32x32.png'>",
            ),
            JsonRenderPlugin(path="/openapi.json"),
        ],
    )


def static_router() -> ControllerRouterHandler:
    """Serve ``serving/static`` (the vendored docs UI; later the web UI) at ``/static``."""
    return create_static_files_router(
        path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False
    )
