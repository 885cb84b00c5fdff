"""The prediction log: every prediction recorded off the request path (SQLite or PostgreSQL).

``prediction_log(settings, registry)`` builds it from the settings (None when turned off); the
app starts it in the lifespan and calls ``record()`` once per ``/predict`` request.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry

from serving.predlog.backends import Backend, Filters, PredictionLogError, open_backend
from serving.predlog.log import LogMetrics, PredictionLog
from serving.predlog.records import PredictionRecord, RecordedInputs
from serving.settings import Settings

SECONDS_PER_DAY: Final = 86_400.0


def prediction_log(settings: Settings, registry: CollectorRegistry) -> PredictionLog | None:
    """The configured log (not started yet), or None when ``prediction_log`` is off.

    Raises:
        PredictionLogError: the URL is not one the log understands.
    """
    if not settings.prediction_log:
        return None
    return PredictionLog(
        open_backend(settings.prediction_log_location()),
        LogMetrics(registry),
        record_inputs=settings.prediction_log_inputs,
        queue_size=settings.prediction_log_queue_size,
        flush_interval=settings.prediction_log_flush_interval,
        max_age_s=settings.prediction_log_max_age_days * SECONDS_PER_DAY
        if settings.prediction_log_max_age_days > 0
        else None,
        max_rows=settings.prediction_log_max_rows or None,
        writer_niceness=settings.prediction_log_writer_niceness,
    )


__all__ = [
    "Backend",
    "Filters",
    "LogMetrics",
    "PredictionLog",
    "PredictionLogError",
    "PredictionRecord",
    "RecordedInputs",
    "open_backend",
    "prediction_log",
]
