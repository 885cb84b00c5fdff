"""How each model version does, side by side: ``GET /monitoring/versions``.

Per version and role (primary, candidate, shadow) over a window: predictions, how many carry a
ground-truth label (``POST /feedback``), accuracy and macro-F1 on those, the confusion matrix,
accuracy per time bucket, how often it agrees with the primary on the same patients, and
latency percentiles. Below ``min_labels`` labelled rows the accuracy is not judged: the answer
says "not enough labels" rather than a number that would mislead.

Agreement compares a row with the prediction of a primary version for the same patient (same
request id and index): for a shadow, the answer the client got (or, when a candidate answered,
the primary's own shadow prediction); for a candidate, the primary's shadow prediction, which
the router queues for every request a candidate answers.

Macro-F1 averages the F1 of every class that appears among the labels or the predictions (as
scikit-learn's ``f1_score(average="macro")`` does by default).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Final

import msgspec
import numpy as np

from drugclf.contract import CLASSES
from serving.monitoring.predlog.backends import FEEDBACK_TABLE, TABLE, Backend, Filters

ROLE_ORDER: Final = {"primary": 0, "candidate": 1, "shadow": 2}
PERCENTILES: Final = (50, 90, 95, 99)
_CLASS_INDEX: Final = {c: i for i, c in enumerate(CLASSES)}


class BucketAccuracy(msgspec.Struct, frozen=True):
    """Accuracy on the labelled rows of one time bucket."""

    start: float
    """The bucket's start, a unix time (the UI formats it)."""
    labelled: int
    accuracy: float | None


class Agreement(msgspec.Struct, frozen=True):
    """How often a version predicted what a primary version predicted for the same patient."""

    compared: int
    rate: float | None


class VersionLatency(msgspec.Struct, frozen=True):
    """Latency per request in milliseconds (shadows: their batched model call)."""

    requests: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


class VersionReport(msgspec.Struct, frozen=True):
    """One version in one role over the window."""

    model_version: str
    role: str
    predictions: int
    labelled: int
    enough_labels: bool
    note: str | None
    """"not enough labels: 12 of 30 needed" when accuracy is not judged."""
    accuracy: float | None
    macro_f1: float | None
    confusion: list[list[int]]
    """Rows: the true class, columns: the predicted one, both in ``classes`` order."""
    accuracy_over_time: list[BucketAccuracy]
    agreement: Agreement | None
    """None for the primary itself."""
    latency_ms: VersionLatency


class VersionsReport(msgspec.Struct, frozen=True):
    """The ``GET /monitoring/versions`` answer."""

    since: float
    until: float
    bucket_seconds: float
    min_labels: int
    classes: list[str]
    sampled_rows: int
    """Rows read to compute it (the newest ``cap`` of the window at most)."""
    versions: list[VersionReport]


def fetch_rows(backend: Backend, window: Filters, cap: int) -> list[tuple[Any, ...]]:
    """(ts, request id, index, version, role, predicted, latency, true label) of the newest rows."""
    where, params = backend.where(window)
    newest = (
        "SELECT ts, request_id, batch_index, model_version, role, predicted, latency_ms "  # noqa: S608
        f"FROM {TABLE}{where} ORDER BY id DESC LIMIT {backend.placeholder}"
    )
    sql = (
        "SELECT p.ts, p.request_id, p.batch_index, p.model_version, "  # noqa: S608
        "COALESCE(p.role, 'primary'), p.predicted, p.latency_ms, f.label "
        f"FROM ({newest}) p LEFT JOIN {FEEDBACK_TABLE} f "
        "ON f.request_id = p.request_id AND f.batch_index = p.batch_index"
    )
    return backend.fetch(sql, [*params, cap])


def counts(backend: Backend, window: Filters) -> dict[tuple[str, str], int]:
    """Exact predictions per (version, role) in the window."""
    where, params = backend.where(window)
    sql = (
        f"SELECT model_version, COALESCE(role, 'primary'), COUNT(*) FROM {TABLE}{where} "  # noqa: S608
        "GROUP BY model_version, COALESCE(role, 'primary')"
    )
    return {(str(v), str(r)): int(n) for v, r, n in backend.fetch(sql, params)}


def macro_f1(confusion: np.ndarray[Any, Any]) -> float | None:
    """The mean F1 of the classes present among labels or predictions (None: no rows)."""
    true = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    present = (true + predicted) > 0
    if not present.any():
        return None
    hits = np.diag(confusion)
    scores = [
        2 * hits[k] / (true[k] + predicted[k])  # F1 = 2TP / (2TP + FP + FN)
        for k in range(len(CLASSES))
        if present[k]
    ]
    return float(np.mean(scores))


def report(
    rows: list[tuple[Any, ...]],
    totals: dict[tuple[str, str], int],
    *,
    since: float,
    until: float,
    bucket_seconds: float,
    min_labels: int,
) -> VersionsReport:
    """Every version's figures from the fetched rows (``totals``: exact prediction counts)."""
    primary_versions = {v for (v, r) in totals if r == "primary"}
    by_patient: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for _, request_id, index, version, _, predicted, _, _ in rows:
        if request_id is not None and version in primary_versions:
            by_patient[(request_id, int(index))][version] = predicted
    groups: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        groups[(str(row[3]), str(row[4]))].append(row)
    reports = []
    n_buckets = max(1, math.ceil((until - since) / bucket_seconds))
    for (version, role), group in groups.items():
        confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
        bucket_hits = np.zeros(n_buckets, dtype=np.int64)
        bucket_labels = np.zeros(n_buckets, dtype=np.int64)
        compared = agreed = 0
        latencies = []
        for ts, request_id, index, _, _, predicted, latency, label in group:
            if index == 0:
                latencies.append(float(latency))
            if label is not None and predicted in _CLASS_INDEX and label in _CLASS_INDEX:
                confusion[_CLASS_INDEX[label], _CLASS_INDEX[predicted]] += 1
                b = min(n_buckets - 1, max(0, int((float(ts) - since) // bucket_seconds)))
                bucket_labels[b] += 1
                bucket_hits[b] += label == predicted
            if role != "primary" and request_id is not None:
                others = by_patient.get((request_id, int(index)), {})
                reference = next((p for v, p in others.items() if v != version), None)
                if reference is not None:
                    compared += 1
                    agreed += reference == predicted
        labelled = int(confusion.sum())
        enough = labelled >= min_labels
        reports.append(
            VersionReport(
                model_version=version,
                role=role,
                predictions=totals.get((version, role), len(group)),
                labelled=labelled,
                enough_labels=enough,
                note=None if enough else f"not enough labels: {labelled} of {min_labels} needed",
                accuracy=_round(np.trace(confusion) / labelled) if enough else None,
                macro_f1=_round(macro_f1(confusion)) if enough else None,
                confusion=confusion.tolist(),
                accuracy_over_time=[
                    BucketAccuracy(
                        start=since + b * bucket_seconds,
                        labelled=int(bucket_labels[b]),
                        accuracy=_round(bucket_hits[b] / bucket_labels[b])
                        if bucket_labels[b]
                        else None,
                    )
                    for b in range(n_buckets)
                ],
                agreement=None
                if role == "primary"
                else Agreement(compared, _round(agreed / compared) if compared else None),
                latency_ms=_latency(latencies),
            )
        )
    reports.sort(key=lambda r: (ROLE_ORDER.get(r.role, 3), r.model_version))
    return VersionsReport(
        since=since,
        until=until,
        bucket_seconds=bucket_seconds,
        min_labels=min_labels,
        classes=list(CLASSES),
        sampled_rows=len(rows),
        versions=reports,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _latency(values: list[float]) -> VersionLatency:
    if not values:
        return VersionLatency(0, None, None, None, None)
    p50, p90, p95, p99 = (round(float(v), 3) for v in np.percentile(values, PERCENTILES))
    return VersionLatency(len(values), p50, p90, p95, p99)
