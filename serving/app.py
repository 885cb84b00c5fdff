"""The Litestar application: ``create_app(settings)`` builds the services and mounts the routers.

Each feature package owns its routes (one Controller) and its service; this module only wires
them: the services go on ``app.state`` (``serving.http.state``), the lifespan loads the model and
runs the prediction log and the reload watcher. ``docs/architecture.md`` draws the packages.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from litestar import Litestar, Router

from drugclf.registry import Registry
from serving.experiments.router import TrafficRouter
from serving.experiments.routes import RoutingController
from serving.experiments.service import Experiments
from serving.experiments.shadows import ShadowQueue
from serving.explain.routes import ExplainController
from serving.explain.service import ExplanationService
from serving.http import logs
from serving.http.auth import AccessPolicy
from serving.http.exceptions import exception_handlers
from serving.http.metrics import FLUSH_INTERVAL_S, ServerMetrics
from serving.http.middleware import RequestObserver
from serving.http.openapi import ClosedStructSchemaPlugin, openapi_config, static_router
from serving.http.raw import serve_path_parameters
from serving.http.state import services
from serving.inference import background
from serving.inference.codec import PatientCodec
from serving.inference.holder import ModelHolder
from serving.inference.routes import PredictionController
from serving.inference.service import PredictionService
from serving.lifecycle.routes import LifecycleController
from serving.lifecycle.service import Lifecycle
from serving.monitoring.monitor import Monitor
from serving.monitoring.predlog.log import prediction_log
from serving.monitoring.routes import MonitoringController
from serving.settings import Settings
from serving.ui.routes import RenderedPages, UiController
from serving.v2.codec import TensorCodec
from serving.v2.routes import OpenInferenceController
from serving.v2.service import OpenInference
from serving.v2.versions import VersionCache

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> Litestar:
    """Build the application; the model is loaded when the lifespan starts."""
    metrics = ServerMetrics()
    holder = ModelHolder(
        Registry(settings.artifacts_dir),
        threads=settings.ort_threads(),
        on_change=lambda model: metrics.set_model_version(model.version),
        on_refuse=metrics.set_refused,
    )
    codec = PatientCodec(settings.max_batch_size)
    predlog = prediction_log(settings, metrics.registry)  # None when turned off
    shadows = ShadowQueue(metrics, predlog, metrics.registry, settings.shadow_queue_size)
    router = TrafficRouter(holder.registry, holder, shadows)
    predictions = PredictionService(
        holder, codec, metrics, predlog, micro_batching=settings.micro_batching, chooser=router
    )
    lifecycle = Lifecycle(settings, holder.registry)
    explanations = ExplanationService(holder, codec)
    open_inference = OpenInference(
        predictions,
        VersionCache(holder, settings.model_versions_kept),
        TensorCodec(settings.max_batch_size),
        settings.model_name,
    )
    access = AccessPolicy(
        settings.admin_token,
        read_token=settings.read_token,
        dev_mode=settings.dev_mode,
        bind_host=settings.host,
    )

    async def flush_metrics() -> None:
        metrics.flush()

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
        async with AsyncExitStack() as stack:
            # Unwound last: what the other parts counted while stopping is written too.
            stack.callback(metrics.flush)
            await stack.enter_async_context(
                background.polling(FLUSH_INTERVAL_S, flush_metrics, "metrics flush")
            )
            await stack.enter_async_context(holder.watching(settings.reload_interval))
            if predlog is not None:
                # Exit flushes and joins the writer: nothing accepted is lost on SIGTERM.
                await stack.enter_async_context(predlog.running())
            # After the log: it stops first, so no shadow answer is recorded into a stopped log.
            await stack.enter_async_context(router.running(settings.reload_interval))
            await stack.enter_async_context(lifecycle.running())
            access.announce()
            yield

    app = Litestar(
        route_handlers=[
            PredictionController,
            ExplainController,
            Router(
                "/",
                route_handlers=[LifecycleController],
                request_max_body_size=settings.retrain_max_upload_bytes,
            ),
            MonitoringController,
            OpenInferenceController,
            RoutingController,
            UiController,
            static_router(),
        ],
        state=services(
            settings,
            metrics,
            predlog,
            predictions,
            explanations,
            lifecycle,
            open_inference,
            Experiments(holder.registry, router),
            access,
            Monitor.over(predlog, holder),
            RenderedPages(settings, access),
        ),
        lifespan=[lifespan],
        exception_handlers=exception_handlers(inference_prefix=OpenInferenceController.path),
        openapi_config=openapi_config(settings.max_batch_size),
        plugins=[ClosedStructSchemaPlugin()],
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        debug=False,
    )
    serve_path_parameters(app)
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
    full collection walks them again, a visible p99 spike on large batches. Only
    the worker factory does this: tests build many apps in one process and must free them.
    """
    gc.collect()
    gc.freeze()
    logger.debug("froze %d objects after startup", gc.get_freeze_count())
    trim_heap()


def trim_heap() -> bool:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``).

    Loading a model, checking it and building the app free much of what they allocated, but
    glibc keeps those pages in the worker's heap (what it saves: docs/serving.md,
    "2026-12-03 (night)"). False where there is no glibc.
    """
    try:
        # The process's own symbols: the C library is loaded already, and find_library would
        # start a subprocess (ldconfig) in every worker.
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # another C library (musl, macOS): nothing to give back
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True
