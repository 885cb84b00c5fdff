"""The OpenAPI document at ``/docs/openapi.json``, the offline Swagger UI at ``/docs``.

The document is part of the API: clients generate code from it, and a schemathesis run against
the real server checks that the server does what it says (``tests/serving/
test_openapi_conformance.py``). So every error answer is documented from the error vocabulary
itself (``error_responses``), a ``Struct`` that refuses unknown fields says so
(``additionalProperties: false``), and what Litestar cannot derive from the handlers (the batch
bounds of this app's settings) is added when the document is rendered (``refine``).

Litestar's Swagger UI plugin loads its JavaScript from a CDN by default; here every asset
(Swagger UI 5, Apache-2.0, vendored under ``serving/static/vendor/swagger-ui``) is served by
this server, so ``/docs`` works on a machine with no internet access.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from litestar import Litestar
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.enums import RequestEncodingType
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    Link,
    OpenAPIResponse,
    Operation,
    SecurityScheme,
    Tag,
)
from litestar.params import Body
from litestar.routes import ASGIRoute
from litestar.static_files import create_static_files_router

from drugclf.contract import SAMPLE_PATIENT, Patient
from serving.http.errors import ErrorBody, InferenceErrorBody, ServingError

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.connection import Request
    from litestar.handlers import HTTPRouteHandler
    from litestar.openapi.spec import Schema
    from litestar.types import ControllerRouterHandler
    from litestar.typing import FieldDefinition

STATIC_DIR: Final = Path(__file__).parents[1] / "static"
STATIC_PATH: Final = "/static"
DOCS_PATH: Final = "/docs"
_SWAGGER: Final = f"{STATIC_PATH}/vendor/swagger-ui"
ADMIN_SECURITY: Final = "AdminToken"
"""The security scheme of the admin routes (``Authorization: Bearer <token>``)."""
READ_SECURITY: Final = "ReadToken"
"""The security scheme of recorded patient data: the read token, or the admin token."""

DESCRIPTION: Final = """\
Predicts which of five drugs (DrugA, DrugB, DrugC, DrugX, DrugY) suits a patient, from age,
sex, blood pressure, cholesterol and the blood sodium-to-potassium ratio. A RandomForest
trained on the Kaggle *drug200* teaching dataset, served with onnxruntime.
**A teaching dataset, not a clinical tool.**

`POST /predict` takes one patient object or a JSON array of them. Bodies are decoded strictly:
no type coercion (`"45"` is not an Age), no unknown fields. Every error answer has the same
shape (`status`, `code`, `message`, `request_id`, and `field`, `index`, `expected` when they
apply): `message` is for people ("Age must be a whole number from 0 to 120 (got -5)"), the
other keys for programs. Every response carries an `X-Request-ID` header (yours, echoed, or a
new one).
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
EXAMPLE_REQUEST_ID: Final = "5f0c2f3e9a4b4f8c8d1e2a3b4c5d6e7f"

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


PREDICT_EXAMPLES: Final = [
    Example(summary="One patient", value=EXAMPLE_ANSWER),
    Example(summary="A batch", value=[EXAMPLE_ANSWER, EXAMPLE_ANSWER]),
]


def _summary(error: type[ServingError]) -> str:
    return " ".join((inspect.getdoc(error) or error.code).split())


def error_responses(
    *errors: type[ServingError], inference: bool = False
) -> dict[int, ResponseSpec]:
    """The documented error answers of a route, from the error classes it can raise.

    One entry per status: the error body's schema (``ErrorBody``, or the Open Inference
    Protocol's ``InferenceErrorBody`` when ``inference``), a description listing each ``code``
    with what it means (the class's docstring), and one example per code (the class's
    ``example``).
    """
    by_status: dict[int, list[type[ServingError]]] = {}
    for error in errors:
        by_status.setdefault(error.status_code, []).append(error)
    return {
        status: ResponseSpec(
            InferenceErrorBody if inference else ErrorBody,
            description="\n".join(f"- `{e.code}`: {_summary(e)}" for e in group),
            generate_examples=False,
            examples=[Example(summary=e.code, value=_example(e, inference)) for e in group],
        )
        for status, group in sorted(by_status.items())
    }


def _example(error: type[ServingError], inference: bool) -> dict[str, Any]:
    example = error.example
    body: InferenceErrorBody | ErrorBody
    if inference:
        body = InferenceErrorBody(error=example.message)
    else:
        body = ErrorBody(
            status="error",
            code=error.code,
            message=example.message,
            request_id=EXAMPLE_REQUEST_ID,
            field=example.field,
            index=example.index,
            expected=example.expected,
        )
    value: dict[str, Any] = msgspec.to_builtins(body)
    return value


def link(path: str, method: str, **parameters: str) -> Link:
    """An OpenAPI link to the operation at ``path`` and ``method``.

    Its parameters are taken from the answer (``version="$response.body#/current_version"``):
    how one answer leads to the next call, for clients and for schemathesis' stateful tests.
    """
    pointer = path.replace("~", "~0").replace("/", "~1")
    return Link(operation_ref=f"#/paths/{pointer}/{method.lower()}", parameters=parameters)


def linked(links: Mapping[int, Mapping[str, Link]]) -> type[Operation]:
    """A handler's ``operation_class`` whose answers carry ``links`` (by status, then name)."""

    @dataclass
    class LinkedOperation(Operation):
        def __post_init__(self) -> None:
            for status, named in links.items():
                answer = (self.responses or {}).get(str(status))
                if isinstance(answer, OpenAPIResponse):
                    answer.links = {**(answer.links or {}), **named}

    return LinkedOperation


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's schema of a msgspec ``Struct`` that refuses unknown fields, closed to them.

    Litestar leaves ``additionalProperties: false`` out, so a body the document allows could be
    refused.
    """

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        """Structs declared with ``forbid_unknown_fields=True``."""
        config = getattr(field_definition.type_, "__struct_config__", None)
        return (
            super().is_plugin_supported_field(field_definition)
            and config is not None
            and config.forbid_unknown_fields
        )

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        """The struct's schema, closed to other properties."""
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


DOCUMENT_OPT: Final = "openapi_document"
"""The ``opt`` key under which a raw ``asgi`` handler names the handler that documents it."""


def documented_by(document: HTTPRouteHandler) -> dict[str, Any]:
    """``opt`` for a raw ``asgi`` route: ``document`` (an ``@post`` never served) describes it.

    Litestar leaves ``asgi`` handlers out of the document. The hot routes are raw handlers
    (``serving.http.raw``), so each names a twin declared like any other route (body, answers,
    errors, docstring); the twins' operations are generated by Litestar in an app of their own
    and added to this app's document (``raw_route_document``).
    """
    return {DOCUMENT_OPT: document}


def raw_route_document(app: Litestar) -> dict[str, Any]:
    """The OpenAPI document of the twins of ``app``'s raw routes (empty when it has none)."""
    twins: list[HTTPRouteHandler] = []
    for route in app.routes:
        if isinstance(route, ASGIRoute):
            twin = route.route_handler.opt.get(DOCUMENT_OPT)
            if twin is not None and twin not in twins:
                twins.append(twin)
    if not twins:
        return {}
    documenting = Litestar(
        route_handlers=twins,
        openapi_config=OpenAPIConfig(title="raw routes", version="0", use_handler_docstrings=True),
        plugins=[ClosedStructSchemaPlugin()],
    )
    document: dict[str, Any] = documenting.openapi_schema.to_schema()
    return document


def merge(document: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Add ``extra``'s operations and component schemas to ``document`` (idempotent)."""
    paths = document.setdefault("paths", {})
    for path, operations in extra.get("paths", {}).items():
        paths.setdefault(path, {}).update(operations)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in extra.get("components", {}).get("schemas", {}).items():
        schemas.setdefault(name, schema)


def _is_litestar_400(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return {"detail", "status_code"} <= set(schema.get("properties", {}))


def refine(document: dict[str, Any], max_batch_size: int) -> None:
    """Complete the document where Litestar cannot (idempotent).

    Every JSON request body that may be an array of patients gets this app's batch bounds.
    Litestar documents a 400 in its own shape (``detail``, ``status_code``) on every route that
    has parameters; our answers never have that shape, and the routes that can answer 400
    document it themselves (``error_responses``), so the leftover ones go.
    """
    patient = "#/components/schemas/Patient"
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.get("responses", {})
            if "400" in responses and _is_litestar_400(responses["400"]):
                del responses["400"]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            for option in (body or {}).get("schema", {}).get("oneOf", ()):
                if option.get("type") == "array" and option["items"].get("$ref") == patient:
                    option["minItems"] = 1
                    option["maxItems"] = max_batch_size


class _Refining:
    """Refines the document before a render plugin renders it.

    Litestar caches the document, so refining it again changes nothing.
    """

    def __init__(self, max_batch_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_batch_size = max_batch_size
        self._raw_routes: dict[str, Any] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """Add the raw routes, refine, then render as the Litestar plugin does."""
        if self._raw_routes is None:
            self._raw_routes = raw_route_document(request.app)
        merge(openapi_schema, self._raw_routes)
        refine(openapi_schema, self.max_batch_size)
        rendered: bytes = super().render(request, openapi_schema)  # type: ignore[misc]
        return rendered


class _RefinedJson(_Refining, JsonRenderPlugin):
    """The JSON document, refined."""


class _RefinedSwagger(_Refining, SwaggerRenderPlugin):
    """The Swagger UI page (it embeds the document), refined."""


def openapi_config(max_batch_size: int, version: str = "1.0.0") -> OpenAPIConfig:
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
            Tag(
                name="open inference protocol (V2)",
                description="The KServe / Triton V2 REST protocol, with Triton's binary tensor "
                "data extension: standard clients (tritonclient, KServe, MLServer) work "
                'unchanged. Errors here are the protocol\'s `{"error": "..."}`.',
            ),
        ],
        components=Components(
            security_schemes={
                ADMIN_SECURITY: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="DRUGCLF_ADMIN_TOKEN, as `Authorization: Bearer <token>`",
                ),
                READ_SECURITY: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="DRUGCLF_READ_TOKEN or DRUGCLF_ADMIN_TOKEN, as "
                    "`Authorization: Bearer <token>`",
                ),
            }
        ),
        render_plugins=[
            _RefinedSwagger(
                max_batch_size,
                path="/",
                js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
                css_url=f"{_SWAGGER}/swagger-ui.css",
                standalone_preset_js_url=f"{_SWAGGER}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{_SWAGGER}/favicon-32x32.png'>",
            ),
            _RefinedJson(max_batch_size, path="/openapi.json"),
        ],
    )


def static_router() -> ControllerRouterHandler:
    """Serve ``serving/static`` (the vendored docs UI; later the web UI) at ``/static``."""
    return create_static_files_router(
        path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False
    )
