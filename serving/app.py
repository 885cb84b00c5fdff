"""The Litestar application: ``create_app(settings)`` builds it, the lifespan loads the model.

Handlers are thin: they take the raw body, call the codec and the model, and return prebuilt
bytes. Domain errors become HTTP answers in ``serving.handlers`` (one place, one JSON shape).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from litestar import Litestar, Request, get, post
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST

from drugclf.artifact import ArtifactError
from drugclf.contract import Patient
from drugclf.registry import Registry
from serving import logs
from serving.batching import MicroBatcher
from serving.codec import PatientCodec, check_json_content_type
from serving.docs import (
    ERROR_RESPONSES,
    PREDICT_EXAMPLES,
    document_body,
    error_spec,
    openapi_config,
    static_router,
)
from serving.errors import ModelUnavailableError
from serving.handlers import exception_handlers
from serving.lifecycle import Lifecycle
from serving.metrics import ServerMetrics
from serving.middleware import RequestObserver
from serving.model import DrugModel
from serving.monitoring_api import monitoring_router
from serving.predlog.log import prediction_log
from serving.reload import ModelHolder
from serving.responses import RawResponse
from serving.schemas import (
    HealthResponse,
    ModelInfoResponse,
    PredictionResponse,
    Probabilities,
    ReadyResponse,
)
from serving.settings import Settings
from serving.ui import ui_router

logger = logging.getLogger(__name__)

JSON: Final = "application/json"
_CONTENT_TYPE: Final = b"content-type"
METRICS_CONTENT_TYPE: Final = (_CONTENT_TYPE, CONTENT_TYPE_LATEST.encode())


def model_info(model: DrugModel) -> ModelInfoResponse:
    """The ``/model/info`` answer for a model."""
    meta = model.metadata
    return ModelInfoResponse(
        model_type=meta.model_type,
        model_version=meta.version,
        n_estimators=meta.params.n_estimators,
        max_leaf_nodes=meta.params.max_leaf_nodes,
        binning=meta.params.binning,
        smote=meta.params.smote,
        classes=list(meta.classes),
        features=list(meta.features),
        metrics=meta.metrics,
        created_at=meta.created_at,
        data_sha256=meta.data_sha256,
        data_rows=meta.data_rows,
        git_commit=meta.git_commit,
        parity=meta.parity,
        parity_passed=meta.parity.passed,
        library_versions=meta.library_versions,
        opset=meta.opset,
    )


def create_app(settings: Settings) -> Litestar:  # noqa: PLR0915 - the routes are closures
    """Build the application; the model is loaded when the lifespan starts."""
    metrics = ServerMetrics()
    lifecycle = Lifecycle(settings)
    holder = ModelHolder(
        Registry(settings.artifacts_dir),
        threads=settings.ort_threads(),
        on_change=lambda model: metrics.set_model_version(model.version),
    )
    codec = PatientCodec(settings.max_batch_size)
    predlog = prediction_log(settings, metrics.registry)  # None when turned off
    info_cache: dict[str, bytes] = {}

    def _model() -> DrugModel:
        model = holder.model
        if model is None:
            raise ModelUnavailableError("no model is loaded yet")
        return model

    batcher = MicroBatcher(_model) if settings.micro_batching else None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Refuse to start on a bad artifact: raising here aborts the server's startup.
        model = holder.load_current()
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]  # uvloop or asyncio
        logger.info(
            "serving model %s from %s (event loop: %s)",
            model.version,
            model.path,
            loop,
            extra={"model_version": model.version, "event_loop": loop},
        )
        async with holder.watching(settings.reload_interval):
            if predlog is None:
                yield
            else:
                # Exit flushes and joins the writer: nothing accepted is lost on SIGTERM.
                async with predlog.running():
                    yield

    @get(
        "/health",
        tags=["status"],
        responses={200: ResponseSpec(HealthResponse, description="Alive", generate_examples=False)},
    )
    async def health() -> RawResponse:
        """Liveness: the process answers. Reports whether and which model is loaded."""
        model = holder.model
        body = HealthResponse(
            status="healthy",
            model_loaded=model is not None,
            model_version=model.version if model is not None else None,
        )
        return RawResponse(codec.encode(body))

    @get(
        "/ready",
        tags=["status"],
        responses={
            503: ResponseSpec(ReadyResponse, description="No model loaded", generate_examples=False)
        },
    )
    async def ready() -> RawResponse:
        """Readiness: 200 only when a model is loaded and can answer."""
        model = holder.model
        body = ReadyResponse(
            status="ready" if model else "not_ready",
            model_version=model.version if model else None,
        )
        return RawResponse(codec.encode(body), 200 if model else 503)

    @post(
        "/predict",
        tags=["prediction"],
        status_code=200,
        dependencies={"_body_schema": Provide(document_body, sync_to_thread=False)},
        responses={
            200: ResponseSpec(
                PredictionResponse | list[PredictionResponse],
                description="One answer per patient, in the order sent",
                generate_examples=False,
                examples=PREDICT_EXAMPLES,
            ),
            **ERROR_RESPONSES,
        },
    )
    async def predict(request: Request[Any, Any, Any]) -> RawResponse:
        """Predict the drug class of one patient, or of a batch in one model call.

        The body is a patient object or an array of them. The answer carries the version of
        the model that produced it.
        """
        started = time.perf_counter()
        check_json_content_type(request.scope["headers"])
        received = await request.body()
        patients = codec.decode(received)
        model = _model()
        # The one place results are produced (a prediction log hooks in here).
        if isinstance(patients, Patient):
            if batcher is not None:
                # Shares one model call with the requests that are waiting now (if any).
                model, result = await batcher.predict(patients)
            else:
                result = model.predict_one(patients)
            label = result.labels[0]
            body = codec.encode_one(label, result.probabilities[0], model.version)
            metrics.observe_prediction(label)
        else:
            result = model.predict(patients)
            body = codec.encode_many(result.labels, result.probabilities, model.version)
            metrics.observe_predictions(result.labels)
        state = request.scope["state"]
        state["model_version"] = model.version
        if predlog is not None:
            predlog.record(
                state.get("request_id"),
                model.version,
                received,
                result.labels,
                result.probabilities,
                started,
            )
        return RawResponse(body)

    @get(
        "/model/info",
        tags=["model"],
        responses={
            200: ResponseSpec(
                ModelInfoResponse, description="The loaded model", generate_examples=False
            ),
            503: error_spec("No model loaded"),
        },
    )
    async def get_model_info() -> RawResponse:
        """What the loaded model is: type, version, params, classes, features, metrics, parity."""
        model = _model()
        body = info_cache.get(model.version)
        if body is None:
            body = info_cache[model.version] = codec.encode(model_info(model))
        return RawResponse(body)

    @get("/metrics", tags=["status"], include_in_schema=True)
    async def get_metrics() -> RawResponse:
        """Prometheus metrics in the text exposition format."""
        return RawResponse(metrics.render(), content_type=METRICS_CONTENT_TYPE)

    route_handlers: list[Any] = [
        health,
        ready,
        predict,
        get_model_info,
        get_metrics,
        static_router(),
        monitoring_router(predlog, holder),
        *lifecycle.route_handlers,
        ui_router(holder, settings),
    ]

    if settings.bench_routes:
        fixed = PredictionResponse("DrugY", Probabilities(0.0, 0.0, 0.0, 0.0, 1.0), "bench")
        fixed_one = codec.encode(fixed)

        @post(
            "/bench/reference",
            tags=["bench"],
            status_code=200,
            dependencies={"_body_schema": Provide(document_body, sync_to_thread=False)},
        )
        async def bench_reference(request: Request[Any, Any, Any]) -> RawResponse:
            """Model-free baseline for ``make bench``: /predict's decoding, a fixed answer."""
            check_json_content_type(request.scope["headers"])
            patients = codec.decode(await request.body())
            if isinstance(patients, Patient):
                body = fixed_one
            else:
                body = b"[" + b",".join([fixed_one] * len(patients)) + b"]"
            return RawResponse(body)

        route_handlers.append(bench_reference)

    app = Litestar(
        route_handlers=route_handlers,
        lifespan=[lifespan, lifecycle.lifespan],
        exception_handlers=exception_handlers(codec),
        openapi_config=openapi_config(),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        debug=False,
    )
    app.state.holder = holder
    app.state.metrics = metrics
    app.state.prediction_log = predlog
    app.state.settings = settings
    # Outermost layer, around Litestar's exception handling, so 404/405 are observed too.
    app.asgi_handler = RequestObserver(
        app.asgi_handler,
        metrics,
        access_log=logs.AccessLog() if settings.access_log else None,
        current_version=lambda: holder.model.version if holder.model is not None else None,
    )
    return app


def create_app_from_env() -> Litestar:
    """App factory for ASGI servers (``granian --factory serving.app:create_app_from_env``).

    Each worker process calls it, so it also sets up that worker's logging.
    """
    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_objects)
    return app


def _freeze_startup_objects() -> None:
    """Move everything alive after startup out of the cyclic GC's reach.

    The app, the model and the imported modules live as long as the worker; left tracked, every
    full collection walks them again (tens of ms, a visible p99 spike on large batches). Only
    the worker factory does this: tests build many apps in one process and must free them.
    """
    gc.collect()
    gc.freeze()
    logger.debug("froze %d objects after startup", gc.get_freeze_count())


__all__ = ["ArtifactError", "create_app", "create_app_from_env"]
