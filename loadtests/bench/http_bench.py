"""HTTP figures with wrk: /predict against the model-free reference and /health, and big batches.

The Open Inference Protocol (V2) route is measured beside /predict on the same patients, its
tensors inline (JSON) and as binary data, one patient and 1,000 at a time.

Every body is first sent once from Python and its answer checked in full (known drug,
probabilities summing to 1, model version, one prediction per patient); under load the wrk Lua hook
then checks each answer's status and shape. The server is deterministic, so the same bodies get
the same answers: a full check once plus a cheap check on every answer covers every request.
"""

from __future__ import annotations

import http.client
import logging
import random
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Final

import msgspec

from loadtests.bench.server import HOST
from loadtests.bench.stats import Spread
from loadtests.bench.v2 import HEADER_LENGTH, INFER_PATH, V2Body, check_v2_answer, post_v2, v2_body
from loadtests.bench.wrk import WrkResult, run_wrk
from loadtests.checks import check_explanation, check_predict_body, check_status
from loadtests.patients import PatientSource, load_dataset

logger = logging.getLogger(__name__)

CONNECTIONS: Final = (1, 16, 64)
BATCH_PATIENTS: Final = 1000
# Every /predict answer names the model that gave it; a refusal or an error body does not.
PREDICT_EXPECT: Final = '"model_version"'
# The log's series in /metrics; the first exists only when the log is on.
_LOG_SERIES: Final = (
    "drugclf_prediction_log_written_total",
    "drugclf_prediction_log_dropped_total",
    "drugclf_prediction_log_queue_depth",
)
LOG_POLL_S: Final = 0.3
"""Longer than the shipper's 0.25 s: the queue depth is updated at each of its wakes."""
LOG_SETTLE_TIMEOUT_S: Final = 300.0
"""A flood leaves a backlog in the spool: the writers drain it once the answers stop."""


class Target(msgspec.Struct, frozen=True):
    """One endpoint under load."""

    key: str
    label: str
    method: str
    path: str
    bodies: list[bytes] = []
    expect: str | None = None
    headers: list[dict[str, str]] | None = None
    """More headers for each body (the binary tensor data's header length)."""


class Point(msgspec.Struct, frozen=True):
    """One target at one concurrency, over the repeats."""

    target: str
    connections: int
    requests_per_s: Spread
    p50_us: Spread
    p99_us: Spread
    requests: int
    failures: int
    cpu_us: Spread | None = None
    """Server CPU time (all workers) per request, the log's catching up included."""
    log_dropped: int | None = None
    """Prediction-log rows the server dropped during these runs (None: no log)."""
    log_drain_s: Spread | None = None
    """Seconds from the end of a run until the log's database had every row it answered."""


class LogProgress(msgspec.Struct, frozen=True):
    """The prediction log's counters from ``/metrics``, summed over the workers."""

    written: float
    dropped: float
    queued: float


class HttpResult(msgspec.Struct, frozen=True):
    """Everything measured over HTTP."""

    points: list[Point]
    batch: Point | None
    reference_missing: str | None = None
    v2_batches: list[Point] = []
    """The 1,000-patient batch through the V2 route (JSON, binary), beside ``batch``."""

    def point(self, target: str, connections: int) -> Point | None:
        """The point of one target at one concurrency, if measured."""
        for point in self.points:
            if point.target == target and point.connections == connections:
                return point
        return None


def post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    """One POST to the local server: status and body."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def metrics_text(port: int) -> str:
    """The local server's ``/metrics`` page (Prometheus text, every worker's series)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def log_progress(port: int) -> LogProgress | None:
    """The log's counters now; None when the server runs without a prediction log."""
    text = metrics_text(port)
    sums = dict.fromkeys(_LOG_SERIES, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in sums:
            sums[name] += float(line.rsplit(" ", 1)[1])
    if _LOG_SERIES[0] not in text:
        return None
    written, dropped, queued = sums.values()
    return LogProgress(written=written, dropped=dropped, queued=queued)


def wait_for_log(port: int, timeout_s: float = LOG_SETTLE_TIMEOUT_S) -> float | None:
    """Wait until the log has written what the last run queued: no backlog, the count steady.

    After a run of big batches the writers are seconds behind; the next run must not compete
    with them (nor the last one's CPU figure leave them out). Returns the seconds until the
    backlog (memory and spool) first read 0: the drain time (None: no log, or never drained).
    """
    started = time.monotonic()
    last = log_progress(port)
    drained = 0.0 if last is not None and last.queued == 0 else None
    while last is not None and time.monotonic() - started < timeout_s:
        time.sleep(LOG_POLL_S)
        now = log_progress(port)
        if now is None:
            return None
        if now.queued == 0 and drained is None:
            drained = time.monotonic() - started
        if now.queued == 0 and now.written == last.written:
            return drained
        last = now
    if last is not None:
        logger.warning("the prediction log had not caught up after %.0f s", timeout_s)
    return None


def check_bodies(port: int, path: str, bodies: Sequence[bytes], batch: bool) -> None:
    """Send each body once and check its answer in full.

    Raises:
        WrongAnswerError: an answer is wrong (the benchmark must not time wrong answers).
    """
    for body in bodies:
        status, answer = post(port, path, body)
        check_status(status)
        expected = len(msgspec.json.decode(body)) if batch else None
        check_predict_body(answer, expected)


def bodies(seed: int, count: int, batch_size: int | None = None) -> list[bytes]:
    """Request bodies: single patients, or batches of ``batch_size``."""
    source = PatientSource(random.Random(seed), load_dataset(), dataset_share=0.5)
    if batch_size is None:
        return [msgspec.json.encode(source.one()) for _ in range(count)]
    return [msgspec.json.encode(source.many(batch_size)) for _ in range(count)]


def targets(single: list[bytes]) -> list[Target]:
    """/predict, the reference (same bodies, same stack, no model), /health, /explain, V2."""
    return [
        Target("predict", "POST /predict", "POST", "/predict", single, PREDICT_EXPECT),
        Target("reference", "POST /bench/reference", "POST", "/bench/reference", single),
        Target("health", "GET /health", "GET", "/health"),
        Target("explain", "POST /explain", "POST", "/explain", single, PREDICT_EXPECT),
        *v2_targets(single, "", batch=False),
    ]


def v2_targets(predict_bodies: list[bytes], label: str, *, batch: bool) -> list[Target]:
    """The V2 route on the patients of ``predict_bodies``, inline JSON and binary tensors."""
    found = []
    for binary in (False, True):
        requests = [
            v2_body(patients if batch else [patients], binary=binary)
            for patients in map(msgspec.json.decode, predict_bodies)
        ]
        kind = "binary" if binary else "JSON"
        found.append(
            Target(
                f"v2-{kind.lower()}",
                f"POST {INFER_PATH} ({kind}{label})",
                "POST",
                INFER_PATH,
                [r.body for r in requests],
                PREDICT_EXPECT,
                [r.headers() for r in requests],
            )
        )
    return found


def check_v2_bodies(port: int, target: Target, batch: bool) -> None:
    """Send each V2 body once and check its answer in full.

    Raises:
        WrongAnswerError: an answer is wrong.
    """
    for index, body in enumerate(target.bodies):
        headers = target.headers[index] if target.headers else {}
        length = headers.get(HEADER_LENGTH)
        request = V2Body(body, int(length) if length else None)
        status, answer_headers, answer = post_v2(port, request)
        header = msgspec.json.decode(body[: request.header_length or len(body)])
        patients = header["inputs"][0]["shape"][0] if batch else 1
        check_v2_answer(status, answer_headers, answer, patients)


def _point(
    target: Target,
    connections: int,
    results: list[WrkResult],
    cpu: list[float] | None = None,
    *,
    log_dropped: list[int] | None = None,
    log_drain: list[float] | None = None,
) -> Point:
    return Point(
        target=target.key,
        connections=connections,
        requests_per_s=Spread.of([r.requests_per_s for r in results]),
        p50_us=Spread.of([r.p50_us for r in results]),
        p99_us=Spread.of([r.p99_us for r in results]),
        requests=sum(r.requests for r in results),
        failures=sum(r.failures for r in results),
        cpu_us=Spread.of(cpu) if cpu else None,
        log_dropped=sum(log_dropped) if log_dropped is not None else None,
        log_drain_s=Spread.of(log_drain) if log_drain else None,
    )


def _run(port: int, target: Target, connections: int, duration_s: float, threads: int) -> WrkResult:
    result = run_wrk(
        f"http://{HOST}:{port}{target.path}",
        connections=connections,
        duration_s=duration_s,
        threads=threads,
        method=target.method,
        bodies=target.bodies,
        body_headers=target.headers,
        expect=target.expect,
    )
    if result.failures:
        logger.warning(
            "%s at %d connections: %d failed or wrong answers",
            target.label,
            connections,
            result.failures,
        )
    return result


def explains(port: int, single: Sequence[bytes]) -> bool:
    """Whether the served version explains; its first 50 explanations are checked in full.

    Only a 409 on the first body means a version exported without explanations: any other
    refusal is the server's fault and must fail the run, not drop the route from the report.

    Raises:
        WrongAnswerError: a refusal other than that 409, or an explanation that is wrong.
    """
    for index, body in enumerate(single[:50]):
        status, answer = post(port, "/explain", body)
        if index == 0 and status == HTTPStatus.CONFLICT:
            return False
        check_status(status)
        check_explanation(answer)
    return True


def run_http(
    port: int,
    *,
    duration_s: float,
    repeats: int,
    threads: int = 1,
    connections: Sequence[int] = CONNECTIONS,
    progress: Callable[[str], None] = print,
    cpu_seconds: Callable[[], float] | None = None,
) -> HttpResult:
    """Measure every target at every concurrency, interleaved so noise hits all alike."""
    single = bodies(seed=1, count=200)
    check_bodies(port, "/predict", single[:50], batch=False)
    batch_bodies = bodies(seed=2, count=4, batch_size=BATCH_PATIENTS)
    check_bodies(port, "/predict", batch_bodies, batch=True)

    # /explain only when the served version explains (one exported without answers 409).
    chosen = [t for t in targets(single) if t.key != "explain" or explains(port, single)]
    for target in chosen:
        if target.key.startswith("v2-"):
            check_v2_bodies(port, msgspec.structs.replace(target, bodies=target.bodies[:50]), False)
    v2_batch_targets = [
        msgspec.structs.replace(target, key=f"{target.key}-batch")
        for target in v2_targets(batch_bodies, ", 1,000 patients", batch=True)
    ]
    for target in v2_batch_targets:
        check_v2_bodies(port, target, True)
    reference_missing = None
    status, _ = post(port, "/bench/reference", single[0])
    if status != 200:
        reference_missing = f"POST /bench/reference answered {status}"
        chosen = [t for t in chosen if t.key != "reference"]

    warm = min(2.0, duration_s)
    for target in chosen:
        _run(port, target, 16, warm, threads)

    wait_for_log(port)
    runs: dict[tuple[str, int], list[WrkResult]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    dropped: dict[tuple[str, int], list[int]] = {}
    drain: dict[tuple[str, int], list[float]] = {}

    def measured(target: Target, count: int) -> WrkResult:
        key = (target.key, count)
        before = cpu_seconds() if cpu_seconds else 0.0
        log_before = log_progress(port)
        result = _run(port, target, count, duration_s, threads if count > 1 else 1)
        log_after = log_progress(port)
        drained = wait_for_log(port)  # the log's work for this run is counted here, not later
        if cpu_seconds and result.requests:
            used = cpu_seconds() - before
            cpu.setdefault(key, []).append(used / result.requests * 1e6)
        if log_before is not None and log_after is not None:
            dropped.setdefault(key, []).append(round(log_after.dropped - log_before.dropped))
            if drained is not None:
                drain.setdefault(key, []).append(drained)
        return result

    batch_target = Target("batch", "POST /predict (1,000 patients)", "POST", "/predict")
    batch_target = msgspec.structs.replace(batch_target, bodies=batch_bodies, expect=PREDICT_EXPECT)
    batch_runs: list[WrkResult] = []
    v2_batch_runs: dict[str, list[WrkResult]] = {t.key: [] for t in v2_batch_targets}
    for repeat in range(1, repeats + 1):
        for count in connections:
            for target in chosen:
                progress(f"  repeat {repeat}/{repeats}: {target.label} at {count} connections")
                runs.setdefault((target.key, count), []).append(measured(target, count))
        progress(f"  repeat {repeat}/{repeats}: {batch_target.label}, 1 connection")
        batch_runs.append(measured(batch_target, 1))
        for target in v2_batch_targets:  # beside /predict's batch, so noise hits both alike
            progress(f"  repeat {repeat}/{repeats}: {target.label}, 1 connection")
            v2_batch_runs[target.key].append(measured(target, 1))

    by_key = {t.key: t for t in chosen}
    points = [
        _point(
            by_key[key],
            count,
            results,
            cpu.get((key, count)),
            log_dropped=dropped.get((key, count)),
            log_drain=drain.get((key, count)),
        )
        for (key, count), results in runs.items()
    ]
    batch_key = ("batch", 1)
    return HttpResult(
        points=points,
        batch=_point(
            batch_target,
            1,
            batch_runs,
            cpu.get(batch_key),
            log_dropped=dropped.get(batch_key),
            log_drain=drain.get(batch_key),
        ),
        reference_missing=reference_missing,
        v2_batches=[
            _point(
                target,
                1,
                v2_batch_runs[target.key],
                cpu.get((target.key, 1)),
                log_dropped=dropped.get((target.key, 1)),
                log_drain=drain.get((target.key, 1)),
            )
            for target in v2_batch_targets
        ],
    )
