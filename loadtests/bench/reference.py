"""The app ``make bench`` serves: the production app plus ``POST /bench/reference``.

The reference route reads and decodes the body exactly as ``/predict`` does (same content-type
check, same codec, same middleware), then answers a fixed prediction without the model. The
difference between the two routes is the model, the encoding and the prediction log. It lives
here, not in ``serving``: production never mounts it.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Litestar, Request, post
from litestar.di import Provide

from serving.app import create_app_from_env as create_production_app
from serving.http.openapi import document_body
from serving.http.responses import RawResponse
from serving.http.state import service
from serving.inference.codec import check_json_content_type
from serving.inference.schemas import PredictionResponse, Probabilities
from serving.inference.service import PredictionService

FIXED: Final = msgspec.json.encode(
    PredictionResponse("DrugY", Probabilities(0.0, 0.0, 0.0, 0.0, 1.0), "bench")
)


@post(
    "/bench/reference",
    tags=["bench"],
    status_code=200,
    dependencies={"_body_schema": Provide(document_body, sync_to_thread=False)},
)
async def bench_reference(request: Request[Any, Any, Any]) -> RawResponse:
    """Model-free baseline for ``make bench``: /predict's decoding, a fixed answer."""
    check_json_content_type(request.scope["headers"])
    codec = service(request.app.state, PredictionService).codec
    patients = codec.decode(await request.body())
    body = (
        FIXED
        if not isinstance(patients, list)
        else b"[" + b",".join([FIXED] * len(patients)) + b"]"
    )
    return RawResponse(body)


def with_reference_route(app: Litestar) -> Litestar:
    """``app`` with ``POST /bench/reference`` registered."""
    app.register(bench_reference)
    return app


def create_app_from_env() -> Litestar:
    """The production worker factory's app, plus the reference route."""
    return with_reference_route(create_production_app())
