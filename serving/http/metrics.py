"""Prometheus metrics: requests and latency by route and status, predictions by class, model.

Each app gets its own ``CollectorRegistry`` (tests build many apps in one process). With several
worker processes, ``python -m serving`` sets ``PROMETHEUS_MULTIPROC_DIR`` so every worker writes
its samples there and ``/metrics`` on any worker reports the sum over all of them.

Every answered request updates three counters and two histograms. Written one by one, in
multiprocess mode each update takes a lock, a pid check and a write into the worker's mmap'd
file (an observation two of them): more CPU per request than the table lookup, the encoding and
the prediction log together. So the per-request series add to plain numbers in the worker
(``_Pending``), and ``flush`` writes the sums: the app's lifespan calls it every
``FLUSH_INTERVAL_S`` and at shutdown, and ``render`` calls it first. A worker's own ``/metrics``
is therefore exact; another worker's series can be up to ``FLUSH_INTERVAL_S`` behind.
"""

from __future__ import annotations

import bisect
import os
import threading
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
FLUSH_INTERVAL_S: Final = 0.1
"""How often a worker writes its tallies into the metric series (a Prometheus scrape is rarer)."""


class _Pending:
    """A counter's and a latency histogram's observations not yet written to them.

    Prometheus's ``Histogram`` offers no way to add several observations at once, so ``write``
    adds to the child's sum and bucket values directly (``_sum``, ``_buckets``: prometheus_client
    0.26; ``tests/serving/test_metrics.py`` compares the result with ``observe``).
    """

    __slots__ = ("buckets", "count", "counter", "histogram", "seconds")

    def __init__(self, counter: Counter, histogram: Histogram) -> None:
        self.counter = counter
        self.histogram = histogram
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf

    def add(self, count: int, seconds: float) -> None:
        """``count`` more on the counter, and one observation of ``seconds``."""
        self.count += count
        self.seconds += seconds
        # Prometheus's buckets count values up to their bound (le): the first bound >= seconds.
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def take(self) -> tuple[int, float, list[int]] | None:
        """What was added since the last take (None: nothing), and start again from zero."""
        if not self.count and not any(self.buckets):
            return None
        taken = (self.count, self.seconds, self.buckets)
        self.count, self.seconds, self.buckets = 0, 0.0, [0] * len(self.buckets)
        return taken

    def write(self, taken: tuple[int, float, list[int]]) -> None:
        """Add what ``take`` returned to the counter and the histogram."""
        count, seconds, buckets = taken
        if count:
            self.counter.inc(count)
        self.histogram._sum.inc(seconds)
        for index, observed in enumerate(buckets):
            if observed:
                self.histogram._buckets[index].inc(observed)


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
        self._refused: str | None = None
        self._version: str | None = None
        # Labelled children are resolved once per label set: `labels()` costs a lookup and a lock.
        self._by_class = {c: self.predictions.labels(c) for c in CLASSES}
        self._classes: dict[str, int] = dict.fromkeys(CLASSES, 0)
        self._request_tallies: dict[tuple[str, str, int], _Pending] = {}
        self._version_tallies: dict[tuple[str, str], _Pending] = {}
        # The shadows observe from their own thread; flush swaps the tallies out.
        self._lock = threading.Lock()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        key = (route, method, status)
        with self._lock:
            tally = self._request_tallies.get(key)
            if tally is None:
                labels = (route, method, str(status))
                tally = self._request_tallies[key] = _Pending(
                    self.requests.labels(*labels), self.latency.labels(*labels)
                )
            tally.add(1, seconds)

    def observe_predictions(self, labels: Iterable[str]) -> None:
        """Count predicted classes."""
        counted = Tally(labels)
        with self._lock:
            classes = self._classes
            for drug, count in counted.items():
                if drug in classes:
                    classes[drug] += count

    def observe_prediction(self, label: str) -> None:
        """Count one predicted class (the single-patient fast path)."""
        with self._lock:
            classes = self._classes
            if label in classes:
                classes[label] += 1

    def observe_version(self, version: str, role: str, rows: int, seconds: float) -> None:
        """Count a request's predictions and its latency for the version and role that made them."""
        key = (version, role)
        with self._lock:
            tally = self._version_tallies.get(key)
            if tally is None:
                tally = self._version_tallies[key] = _Pending(
                    self.version_predictions.labels(version, role),
                    self.version_latency.labels(version, role),
                )
            tally.add(rows, seconds)

    def flush(self) -> None:
        """Write what the requests added since the last flush into the metric series."""
        with self._lock:
            classes = [(drug, n) for drug, n in self._classes.items() if n]
            for drug, _ in classes:
                self._classes[drug] = 0
            tallies = [
                (tally, taken)
                for group in (self._request_tallies, self._version_tallies)
                for tally in group.values()
                if (taken := tally.take()) is not None
            ]
        for drug, count in classes:
            self._by_class[drug].inc(count)
        for tally, taken in tallies:
            tally.write(taken)

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
        self.flush()
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
