"""What the model is doing in production, read back from the prediction log.

``Monitor`` answers the two monitoring endpoints without HTTP: recent records (paginated,
filtered) and a summary (predictions per hour, class mix per model version, latency
percentiles, per-feature drift against the training distribution of a model version, and how
far the log is behind the answers).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import numpy as np

from drugclf.artifact import ArtifactError, ArtifactMetadata, read_metadata
from drugclf.contract import CLASSES, FEATURE_NAMES
from drugclf.registry import RegistryError
from serving.http.errors import ErrorExample, ServingError, VersionNotFoundError
from serving.http.validation import shown
from serving.inference.holder import ModelHolder
from serving.monitoring import versions as by_version
from serving.monitoring.drift import MIN_ROWS, PSI_THRESHOLD, FeatureDrift, feature_drift
from serving.monitoring.feedback import FeedbackReply, FeedbackStore
from serving.monitoring.predlog.backends import Backend, Filters
from serving.monitoring.predlog.log import PredictionLog
from serving.monitoring.predlog.records import COLUMNS, PredictionRecord, RecordedInputs
from serving.monitoring.predlog.spool import Pending

logger = logging.getLogger(__name__)

DEFAULT_WINDOW_S: Final = 24 * 3600.0
SAMPLE_ROWS: Final = 50_000
"""Latency percentiles and feature distributions use at most the newest this-many rows."""
PERCENTILES: Final = (50, 90, 95, 99)
_PROBABILITY_START: Final = COLUMNS.index("p_druga")
_INPUT_START: Final = COLUMNS.index("age")


class PredictionLogOffError(ServingError):
    """The prediction log is turned off, so there is nothing to read."""

    status_code = 404
    code = "prediction_log_off"
    example = ErrorExample("the prediction log is turned off (DRUGCLF_PREDICTION_LOG=false)")


class PredictionLogUnavailableError(ServingError):
    """The prediction log's database cannot be read right now."""

    status_code = 503
    code = "prediction_log_unavailable"
    example = ErrorExample("the prediction log cannot be read right now")


class PredictionPage(msgspec.Struct, frozen=True):
    """Recent predictions, newest first; pass ``next_cursor`` as ``before_id`` for more."""

    items: list[PredictionRecord]
    next_cursor: int | None


class HourCount(msgspec.Struct, frozen=True):
    """Predictions (rows, a batch counts each patient) in one UTC hour."""

    hour: str
    predictions: int


class ClassMix(msgspec.Struct, frozen=True):
    """How often each class was predicted by one model version."""

    model_version: str
    predictions: int
    counts: dict[str, int]
    shares: dict[str, float]


class LatencySummary(msgspec.Struct, frozen=True):
    """Handler latency of requests, in milliseconds (None when there are none)."""

    requests: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


class DriftReport(msgspec.Struct, frozen=True):
    """Live inputs of one model version against that version's training distribution."""

    model_version: str
    threshold: float
    min_rows: int
    rows: int
    """Live rows with recorded inputs that were compared."""
    drifted: bool
    """True if any feature's PSI is above the threshold (with at least ``min_rows`` rows)."""
    features: list[FeatureDrift]


class LogStatus(msgspec.Struct, frozen=True):
    """How far the prediction log's database is behind the answers, now (not the window)."""

    logged_up_to: str | None
    """The time of the newest row in the database (None: it has none)."""
    backlog_rows: int
    """Rows answered that wait in this server's spool for the database."""
    backlog_seconds: float
    """How long the oldest of them has waited (0 when there are none)."""
    spool_bytes: int
    """The disk those rows take."""


class MonitoringSummary(msgspec.Struct, frozen=True):
    """The ``GET /monitoring/summary`` answer."""

    since: str
    until: str
    model_version: str | None
    """The filter applied to counts and latency (None: every version)."""
    predictions: int
    requests: int
    per_hour: list[HourCount]
    class_mix: list[ClassMix]
    latency_ms: LatencySummary
    drift: DriftReport | None
    """None when no model version is known to compare with."""
    log: LogStatus | None = None
    """None when the spool cannot be read (its folder is not this server's)."""


def iso(ts: float) -> str:
    """A unix time as ISO 8601 in UTC with a Z, to the millisecond."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def to_record(row: tuple[Any, ...]) -> PredictionRecord:
    """A stored row (``id`` then ``COLUMNS``) as the API's record."""
    ident, values = row[0], row[1:]
    ts, request_id, index, size, version, label, latency = values[:_INPUT_START]
    inputs = values[_INPUT_START:_PROBABILITY_START]
    probs = values[_PROBABILITY_START : _PROBABILITY_START + len(CLASSES)]
    return PredictionRecord(
        id=int(ident),
        time=iso(float(ts)),
        request_id=request_id,
        batch_index=int(index),
        batch_size=int(size),
        model_version=str(version),
        prediction=str(label),
        latency_ms=round(float(latency), 3),
        inputs=None if inputs[0] is None else RecordedInputs(*inputs),
        probabilities=None if probs[0] is None else dict(zip(CLASSES, probs, strict=True)),
        worker=values[COLUMNS.index("worker")],
        role=values[COLUMNS.index("role")] or "primary",
    )


def metadata_lookup(holder: ModelHolder) -> Callable[[str], ArtifactMetadata | None]:
    """Find a version's metadata: the loaded model's, else the registry's copy."""

    def lookup(version: str) -> ArtifactMetadata | None:
        model = holder.model
        if model is not None and model.version == version:
            return model.metadata
        try:
            return read_metadata(holder.registry.version_dir(version))
        except (ArtifactError, RegistryError):
            return None

    return lookup


class Monitor:
    """Reads the prediction log for the monitoring endpoints (blocking: call from a thread)."""

    def __init__(
        self,
        backend: Backend | None,
        metadata_for: Callable[[str], ArtifactMetadata | None],
        current_version: Callable[[], str | None],
        spool_backlog: Callable[[], Pending] | None = None,
    ) -> None:
        self.backend = backend
        self.metadata_for = metadata_for
        self.current_version = current_version
        self.spool_backlog = spool_backlog

    @classmethod
    def over(cls, log: PredictionLog | None, holder: ModelHolder) -> Monitor:
        """A monitor of ``log`` (None: the log is off) for the model ``holder`` serves."""
        return cls(
            log.backend if log is not None else None,
            metadata_lookup(holder),
            lambda: holder.model.version if holder.model is not None else None,
            log.spool_backlog if log is not None else None,
        )

    def _backend(self) -> Backend:
        if self.backend is None:
            raise PredictionLogOffError(
                "the prediction log is turned off (DRUGCLF_PREDICTION_LOG=false)"
            )
        return self.backend

    def predictions(self, filters: Filters, limit: int, before_id: int | None) -> PredictionPage:
        """Newest records matching ``filters``, ``limit`` at most, below ``before_id``."""
        backend = self._backend()
        try:
            rows = backend.recent(filters, limit + 1, before_id)
        except Exception as exc:  # any driver error: one 503, details in the log
            raise self._unavailable(exc) from None
        items = [to_record(row) for row in rows[:limit]]
        cursor = items[-1].id if len(rows) > limit and items else None
        return PredictionPage(items=items, next_cursor=cursor)

    def summary(
        self, since: float | None, until: float | None, model_version: str | None
    ) -> MonitoringSummary:
        """Counts, class mix, latency and drift over a window (default: the last 24 hours)."""
        backend = self._backend()
        end = until if until is not None else time.time()
        start = since if since is not None else end - DEFAULT_WINDOW_S
        # What the server answered: shadows' predictions are in /monitoring/versions.
        window = Filters(since=start, until=end, model_version=model_version, answered=True)
        drift_version = model_version or self.current_version()
        reference = self.metadata_for(drift_version) if drift_version else None
        if model_version is not None and reference is None:
            raise VersionNotFoundError(
                f"no published version {shown(model_version)} "
                "(its metadata is not in the registry)",
                field="model_version",
            )
        try:
            predictions, requests = backend.count(window)
            per_hour = [HourCount(iso(hour * 3600.0), n) for hour, n in backend.hourly(window)]
            mix = _class_mix(backend.class_mix(window))
            latency = _latency(backend.latencies(window, SAMPLE_ROWS))
            drift = None
            if reference is not None:
                live = Filters(
                    since=start, until=end, model_version=reference.version, answered=True
                )
                drift = _drift(reference, backend.inputs(live, SAMPLE_ROWS))
            log = self._log_status(backend)
        except Exception as exc:  # any driver error: one 503, details in the log
            raise self._unavailable(exc) from None
        return MonitoringSummary(
            since=iso(start),
            until=iso(end),
            model_version=model_version,
            predictions=predictions,
            requests=requests,
            per_hour=per_hour,
            class_mix=mix,
            latency_ms=latency,
            drift=drift,
            log=log,
        )

    def add_feedback(self, items: list[tuple[str, int, str]]) -> FeedbackReply:
        """Store ground-truth labels (``feedback.decode_feedback``'s items), all or nothing.

        Raises:
            PredictionNotFoundError, LabelConflictError: see ``FeedbackStore.add``.
        """
        store = FeedbackStore(self._backend())
        try:
            return store.add(items)
        except ServingError:
            raise
        except Exception as exc:  # any driver error: one 503, details in the log
            raise self._unavailable(exc) from None

    def versions(
        self, since: float | None, until: float | None, bucket_seconds: float, min_labels: int
    ) -> by_version.VersionsReport:
        """Each version and role side by side over a window (default: the last 24 hours)."""
        backend = self._backend()
        end = until if until is not None else time.time()
        start = since if since is not None else end - DEFAULT_WINDOW_S
        window = Filters(since=start, until=end)
        try:
            totals = by_version.counts(backend, window)
            rows = by_version.fetch_rows(backend, window, SAMPLE_ROWS)
        except Exception as exc:  # any driver error: one 503, details in the log
            raise self._unavailable(exc) from None
        return by_version.report(
            rows,
            totals,
            since=start,
            until=end,
            bucket_seconds=bucket_seconds,
            min_labels=min_labels,
        )

    def _log_status(self, backend: Backend) -> LogStatus | None:
        newest = backend.newest()
        if self.spool_backlog is None:
            return None
        try:
            backlog = self.spool_backlog()
        except OSError as exc:
            logger.warning("prediction log spool unreadable: %s", exc)
            return None
        waited = 0.0 if backlog.oldest_ts is None else max(0.0, time.time() - backlog.oldest_ts)
        return LogStatus(
            logged_up_to=None if newest is None else iso(newest),
            backlog_rows=backlog.rows,
            backlog_seconds=round(waited, 3),
            spool_bytes=backlog.bytes,
        )

    def _unavailable(self, exc: Exception) -> PredictionLogUnavailableError:
        logger.error("prediction log read failed: %s", exc, extra={"error": type(exc).__name__})
        return PredictionLogUnavailableError("the prediction log cannot be read right now")


def _class_mix(triples: list[tuple[str, str, int]]) -> list[ClassMix]:
    by_version: dict[str, dict[str, int]] = {}
    for version, label, n in triples:
        by_version.setdefault(version, dict.fromkeys(CLASSES, 0))[label] = n
    result = []
    for version, counts in by_version.items():
        total = sum(counts.values())
        shares = {c: round(n / total, 6) if total else 0.0 for c, n in counts.items()}
        result.append(ClassMix(version, total, counts, shares))
    return result


def _latency(values: list[float]) -> LatencySummary:
    if not values:
        return LatencySummary(0, None, None, None, None, None)
    p50, p90, p95, p99 = (round(float(v), 3) for v in np.percentile(values, PERCENTILES))
    return LatencySummary(len(values), p50, p90, p95, p99, round(max(values), 3))


def _drift(reference: ArtifactMetadata, rows: list[tuple[Any, ...]]) -> DriftReport:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in FEATURE_NAMES]
    by_name = dict(zip(FEATURE_NAMES, columns, strict=True))
    features = [
        feature_drift(dist, by_name.get(dist.name, ())) for dist in reference.training_distribution
    ]
    return DriftReport(
        model_version=reference.version,
        threshold=PSI_THRESHOLD,
        min_rows=MIN_ROWS,
        rows=len(rows),
        drifted=any(f.drift for f in features),
        features=features,
    )
