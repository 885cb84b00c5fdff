"""Interactive API docs at ``/docs`` that work offline, and the static files they need.

Litestar's Swagger UI plugin loads its JavaScript from a CDN by default; here every asset
(Swagger UI 5, Apache-2.0, vendored under ``serving/static/vendor/swagger-ui``) is served by
this server, so ``/docs`` works on a machine with no internet access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Tag
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

STATIC_DIR: Final = Path(__file__).parent / "static"
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
