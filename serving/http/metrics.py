"""Prometheus metrics: requests and latency by route and status, predictions by class, model.

Each app gets its own ``CollectorRegistry`` (tests build many apps in one process). With several
worker processes, ``python -m serving`` sets ``PROMETHEUS_MULTIPROC_DIR`` so every worker writes
its samples there and ``/metrics`` on any worker reports the sum over all of them.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from drugclf.contract import CLASSES

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# Fine buckets where single patients are answered, coarser ones up to a full batch on a busy
# machine.
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class ServerMetrics:
    """The server's metric families, registered on one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "drugclf_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "drugclf_http_request_duration_seconds",
            "HTTP request latency in seconds by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "drugclf_predictions",
            "Predictions served, by predicted class.",
            ["drug"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "drugclf_model_loaded",
            "1 for the model version this worker serves.",
            ["version"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.reloads = Counter(
            "drugclf_model_reloads",
            "Model loads by outcome (loaded, refused).",
            ["outcome"],
            registry=self.registry,
        )
        self.refused = Gauge(
            "drugclf_model_refused",
            "1 for the version `current` names while this worker refuses to load it "
            "(it keeps serving drugclf_model_loaded's version).",
            ["version"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.version_predictions = Counter(
            "drugclf_version_predictions",
            "Predictions (patients) by model version and role (primary, candidate, shadow).",
            ["version", "role"],
            registry=self.registry,
        )
        self.version_latency = Histogram(
            "drugclf_version_prediction_duration_seconds",
            "Time from decoded request to answer (shadows: their model call), by model version "
            "and role.",
            ["version", "role"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._by_version: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._refused: str | None = None
        # Resolve the labelled children once: `labels()` costs a dict lookup and a lock.
        self._by_class = {c: self.predictions.labels(c) for c in CLASSES}
        self._observers: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._version: str | None = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        key = (route, method, status)
        pair = self._observers.get(key)
        if pair is None:
            labels = (route, method, str(status))
            pair = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._observers[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def observe_predictions(self, labels: Iterable[str]) -> None:
        """Count predicted classes."""
        for drug, count in Tally(labels).items():
            child = self._by_class.get(drug)
            if child is not None:
                child.inc(count)

    def observe_prediction(self, label: str) -> None:
        """Count one predicted class (the single-patient fast path)."""
        child = self._by_class.get(label)
        if child is not None:
            child.inc()

    def observe_version(self, version: str, role: str, rows: int, seconds: float) -> None:
        """Count a request's predictions and its latency for the version and role that made them."""
        key = (version, role)
        pair = self._by_version.get(key)
        if pair is None:
            pair = self._by_version[key] = (
                self.version_predictions.labels(version, role),
                self.version_latency.labels(version, role),
            )
        pair[0].inc(rows)
        pair[1].observe(seconds)

    def set_refused(self, version: str | None) -> None:
        """Mark ``version`` as refused (None: nothing is refused any more); counts a refusal."""
        if self._refused is not None and self._refused != version:
            self.refused.labels(self._refused).set(0)
        if version is not None:
            self.refused.labels(version).set(1)
            self.reloads.labels("refused").inc()
        self._refused = version

    def set_model_version(self, version: str) -> None:
        """Mark ``version`` as the one this worker serves; counts a load."""
        self.reloads.labels("loaded").inc()
        if self._version is not None and self._version != version:
            self.model_info.labels(self._version).set(0)
        self.model_info.labels(version).set(1)
        self._version = version

    def render(self) -> bytes:
        """The exposition text: this worker's, or all workers' in multiprocess mode."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
