"""``ServerMetrics``: the hot path's tallies give exactly what observing each request would.

The request, class and version series are added up in the worker and written by ``flush``
(every ``FLUSH_INTERVAL_S`` in a running app, and before every render); the histogram's sum and
buckets are written through prometheus_client's private ``_sum`` and ``_buckets``, so these
tests compare them with ``Histogram.observe`` itself, in this process and in multiprocess mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry, Counter, Histogram

from serving.http.metrics import FLUSH_INTERVAL_S, LATENCY_BUCKETS, ServerMetrics
from serving.http.state import service
from tests.support import PATIENT, ROOT

# On a bound, between bounds, zero, and past the last bound (+Inf).
DURATIONS = (0.0, 0.0005, 0.0007, 0.001, 0.003, 0.05, 2.5, 7.0, 0.0005, 1e-9)
ROUTE = ("/predict", "POST", 200)


def _expected(durations: tuple[float, ...]) -> CollectorRegistry:
    """What ``observe`` gives for the same requests, on a registry of its own."""
    registry = CollectorRegistry()
    requests = Counter(
        "drugclf_http_requests", "", ["route", "method", "status"], registry=registry
    )
    latency = Histogram(
        "drugclf_http_request_duration_seconds",
        "",
        ["route", "method", "status"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    labels = (ROUTE[0], ROUTE[1], str(ROUTE[2]))
    for seconds in durations:
        requests.labels(*labels).inc()
        latency.labels(*labels).observe(seconds)
    return registry


def _samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name.startswith(prefix) and not sample.name.endswith("_created")
    }


def test_flushed_tallies_equal_one_observation_per_request() -> None:
    metrics = ServerMetrics()
    for seconds in DURATIONS[:4]:
        metrics.observe_request(*ROUTE, seconds)
    metrics.flush()  # two flushes add up, as a running worker's do
    for seconds in DURATIONS[4:]:
        metrics.observe_request(*ROUTE, seconds)
    metrics.flush()
    metrics.flush()  # nothing new: writes nothing

    prefix = "drugclf_http_request"
    found, expected = _samples(metrics.registry, prefix), _samples(_expected(DURATIONS), prefix)
    # The sum is added up in another order: equal within float rounding, the counts exactly.
    total = ("drugclf_http_request_duration_seconds_sum", "")
    assert found.pop(total) == pytest.approx(expected.pop(total), rel=1e-12)
    assert found == expected
    inf = metrics.registry.get_sample_value(
        "drugclf_http_request_duration_seconds_bucket",
        {"route": "/predict", "method": "POST", "status": "200", "le": "+Inf"},
    )
    assert inf == len(DURATIONS)


def test_render_writes_what_is_pending() -> None:
    metrics = ServerMetrics()
    metrics.observe_version("v1", "primary", 3, 0.002)
    metrics.observe_prediction("DrugY")
    metrics.observe_predictions(["DrugX", "DrugY", "DrugY", "not-a-class"])

    text = metrics.render().decode()

    assert 'drugclf_version_predictions_total{role="primary",version="v1"} 3.0' in text
    assert 'drugclf_predictions_total{drug="DrugY"} 3.0' in text
    assert 'drugclf_predictions_total{drug="DrugX"} 1.0' in text
    assert "not-a-class" not in text


def test_observations_from_threads_are_never_lost() -> None:
    """The shadows observe from their own thread while the event loop observes and flushes."""
    metrics = ServerMetrics()
    per_thread, threads = 20_000, 4
    stop = threading.Event()

    def flushing() -> None:
        while not stop.is_set():
            metrics.flush()

    def observing(role: str) -> None:
        for _ in range(per_thread):
            metrics.observe_version("v1", role, 2, 0.001)
            metrics.observe_request(*ROUTE, 0.001)

    flusher = threading.Thread(target=flushing)
    flusher.start()
    workers = [
        threading.Thread(target=observing, args=(role,))
        for role in ("primary", "shadow", "primary", "shadow")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    flusher.join()
    metrics.flush()

    registry = metrics.registry
    for role in ("primary", "shadow"):
        labels = {"version": "v1", "role": role}
        rows = registry.get_sample_value("drugclf_version_predictions_total", labels)
        count = registry.get_sample_value(
            "drugclf_version_prediction_duration_seconds_count", labels
        )
        assert (rows, count) == (2 * 2 * per_thread, 2 * per_thread)
    requests = registry.get_sample_value(
        "drugclf_http_requests_total", {"route": "/predict", "method": "POST", "status": "200"}
    )
    assert requests == threads * per_thread


def test_a_running_app_writes_its_tallies_without_a_render(app: Litestar) -> None:
    with TestClient(app) as client:
        metrics = service(client.app.state, ServerMetrics)
        labels = {"route": "/predict", "method": "POST", "status": "200"}
        before = metrics.registry.get_sample_value("drugclf_http_requests_total", labels) or 0.0
        for _ in range(3):
            assert client.post("/predict", json=PATIENT).status_code == 200
        deadline = time.monotonic() + 10 * FLUSH_INTERVAL_S + 2
        while metrics.registry.get_sample_value("drugclf_http_requests_total", labels) != (
            before + 3
        ):
            assert time.monotonic() < deadline, "the lifespan never flushed the tallies"
            time.sleep(FLUSH_INTERVAL_S / 2)


MULTIPROCESS_SCRIPT = """
from serving.http.metrics import ServerMetrics
metrics = ServerMetrics()
for seconds in DURATIONS:
    metrics.observe_request("/predict", "POST", 200, seconds)
metrics.flush()
ServerMetrics()  # a second worker's files are summed in
print(metrics.render().decode())
"""


def test_the_same_figures_in_multiprocess_mode(tmp_path: Path) -> None:
    """With several workers the values live in mmap'd files: the private path writes there too."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", f"DURATIONS = {DURATIONS!r}\n{MULTIPROCESS_SCRIPT}"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = _samples(_expected(DURATIONS), "drugclf_http_request")
    lines = dict(
        line.rsplit(" ", 1)
        for line in result.stdout.splitlines()
        if line.startswith("drugclf_http")
    )
    for (name, le), value in expected.items():
        labels = 'method="POST",route="/predict",status="200"'
        if le:
            labels = f'le="{le}",{labels}'
        assert float(lines[f"{name}{{{labels}}}"]) == pytest.approx(value, rel=1e-12), (name, le)
