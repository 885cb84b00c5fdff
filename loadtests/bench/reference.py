"""The app ``make bench`` serves: the production app plus ``POST /bench/reference``.

The reference route reads and decodes the body exactly as ``/predict`` does (a raw ASGI
handler, the same content-type check, codec and middleware), then answers a fixed prediction
without the model. The difference between the two routes is the model, the encoding and the
prediction log. It lives here, not in ``serving``: production never mounts it.
"""

from __future__ import annotations

from typing import Final

import msgspec
from litestar import Litestar, asgi
from litestar.types import Receive, Scope, Send

from serving.app import create_app_from_env as create_production_app
from serving.http.raw import read_body, require_method
from serving.http.responses import RawResponse
from serving.http.state import service
from serving.inference.codec import check_json_content_type
from serving.inference.schemas import PredictionResponse, Probabilities
from serving.inference.service import PredictionService

FIXED: Final = msgspec.json.encode(
    PredictionResponse("DrugY", Probabilities(0.0, 0.0, 0.0, 0.0, 1.0), "bench")
)


@asgi("/bench/reference", copy_scope=False)
async def bench_reference(scope: Scope, receive: Receive, send: Send) -> None:
    """Model-free baseline for ``make bench``: /predict's decoding, a fixed answer."""
    require_method(scope, "POST")
    check_json_content_type(scope["headers"])
    app = Litestar.from_scope(scope)
    codec = service(app.state, PredictionService).codec
    patients = codec.decode(await read_body(scope, receive))
    body = (
        FIXED
        if not isinstance(patients, list)
        else b"[" + b",".join([FIXED] * len(patients)) + b"]"
    )
    await RawResponse(body)(scope, receive, send)


def with_reference_route(app: Litestar) -> Litestar:
    """``app`` with ``POST /bench/reference`` registered."""
    app.register(bench_reference)
    return app


def create_app_from_env() -> Litestar:
    """The production worker factory's app, plus the reference route."""
    return with_reference_route(create_production_app())
