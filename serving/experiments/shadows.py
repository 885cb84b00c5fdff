"""Shadow predictions: after a request is answered, the policy's shadow versions predict it too.

The request path only appends to a bounded queue (``offer``: no model call, no I/O). One thread
per worker, at a lower CPU priority (``SHADOW_NICENESS``), lets requests gather for
``GATHER_S``, then runs each shadow version once over every request waiting for it (one model
call for a burst); onnxruntime releases the GIL while it computes, so the event loop keeps
answering. On a busy machine the answers get the cores first and the shadows take what is
left: when they cannot keep up, the queue fills and what it refuses is counted in
``drugclf_shadow_skipped_total{version}``. A shadow never changes an answer or its status.
Each model call is counted once in the version metrics (its patients, its seconds) and handed
to the prediction log as one burst (``record_burst``, from this thread: the event loop does no
per-request work for a shadow but ``offer``); the log stores one row per patient with role
``shadow``, without the inputs: the answered row of the same request id has them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Final

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter

from drugclf.contract import Patient
from serving.http.metrics import ServerMetrics
from serving.inference.model import DrugModel
from serving.inference.service import PredictionRecorder

logger = logging.getLogger(__name__)

MAX_PATIENTS_PER_CALL: Final = 1000
"""Most patients a shadow version predicts in one model call (a drained burst is cut)."""
SHADOW_NICENESS: Final = 10
"""Added to the shadow thread's nice value (Linux): answers first, shadows with what is left
(measured in docs/experiments.md)."""
STOP_WAIT_S: Final = 5.0
GATHER_S: Final = 0.02
"""How long the shadow thread lets requests gather after the first one: a model call's fixed
cost dominates a small batch, so one call for a burst costs far less CPU than one per request,
and a shadow's answer has no client waiting for it."""


class ShadowJob:
    """One answered request a set of shadow versions should also predict."""

    __slots__ = ("models", "patients", "request_id")

    def __init__(
        self, models: tuple[DrugModel, ...], patients: list[Patient], request_id: str | None
    ) -> None:
        self.models = models
        self.patients = patients
        self.request_id = request_id


class ShadowQueue:
    """A bounded queue of answered requests and the thread that predicts them with the shadows.

    Args:
        metrics: the server's families (shadow predictions count by version, role ``shadow``).
        recorder: the prediction log (None: shadows are only counted).
        registry: where ``drugclf_shadow_skipped_total`` is registered.
        max_requests: requests waiting at most; beyond it a request is skipped (counted).
    """

    def __init__(
        self,
        metrics: ServerMetrics,
        recorder: PredictionRecorder | None,
        registry: CollectorRegistry,
        max_requests: int = 1000,
    ) -> None:
        self.metrics = metrics
        self.recorder = recorder
        self.max_requests = max_requests
        self.skipped = Counter(
            "drugclf_shadow_skipped",
            "Requests a shadow version did not predict because the shadow queue was full.",
            ["version"],
            registry=registry,
        )
        self._jobs: deque[ShadowJob] = deque()
        self._wake = threading.Event()
        self._stopping = False

    def offer(
        self,
        models: tuple[DrugModel, ...],
        patients: Patient | list[Patient],
        request_id: str | None,
    ) -> bool:
        """Queue a request for ``models``; False (and counted) when the queue is full."""
        if len(self._jobs) >= self.max_requests:
            for model in models:
                self.skipped.labels(model.version).inc()
            return False
        batch = [patients] if isinstance(patients, Patient) else patients
        self._jobs.append(ShadowJob(models, batch, request_id))
        if not self._wake.is_set():  # set() takes a lock every time; the job is queued first
            self._wake.set()
        return True

    @property
    def waiting(self) -> int:
        """Requests in the queue now."""
        return len(self._jobs)

    def _work(self) -> None:
        """The shadow thread: wait for jobs, predict them, until the lifespan ends."""
        _lower_priority()
        while not self._stopping:
            self._wake.wait()
            time.sleep(GATHER_S)
            self._wake.clear()
            while self._jobs and not self._stopping:
                self.drain()

    def drain(self) -> None:
        """Predict what is queued now: each shadow version once per up to 1,000 patients."""
        jobs = []
        while self._jobs:  # popleft, not a copy and clear: offer() appends meanwhile
            jobs.append(self._jobs.popleft())
        by_model: dict[DrugModel, list[ShadowJob]] = {}
        for job in jobs:
            for model in job.models:
                by_model.setdefault(model, []).append(job)
        for model, waiting in by_model.items():
            start = 0
            while start < len(waiting):
                chunk: list[ShadowJob] = []
                rows = 0
                while start < len(waiting) and (
                    not chunk or rows + len(waiting[start].patients) <= MAX_PATIENTS_PER_CALL
                ):
                    chunk.append(waiting[start])
                    rows += len(waiting[start].patients)
                    start += 1
                try:
                    self._predict(model, chunk)
                except Exception:  # a shadow's failure must never reach the data plane
                    logger.exception(
                        "shadow %s failed", model.version, extra={"model_version": model.version}
                    )

    def _predict(self, model: DrugModel, jobs: list[ShadowJob]) -> None:
        patients = [p for job in jobs for p in job.patients]
        started = time.perf_counter()
        result = model.predict(patients)
        seconds = time.perf_counter() - started
        # One observation and one log record per call: per request, this Python work held the
        # GIL the event loop needs for the answers (docs/experiments.md).
        self.metrics.observe_version(model.version, "shadow", len(patients), seconds)
        if self.recorder is not None:
            self.recorder.record_burst(
                model.version,
                [job.request_id for job in jobs],
                [len(job.patients) for job in jobs],
                result.labels,
                result.probabilities,
                seconds,
                "shadow",
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the shadow thread for the lifespan; what is still queued at exit is dropped."""
        self._stopping = False
        thread = threading.Thread(target=self._work, name="drugclf-shadows", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stopping = True
            self._wake.set()
            await anyio.to_thread.run_sync(thread.join, STOP_WAIT_S)


def _lower_priority() -> None:
    """Raise this thread's nice value (a Linux thread has its own); elsewhere, nothing."""
    try:
        tid = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + SHADOW_NICENESS)
        )
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: same priority
        logger.debug("shadow thread keeps its priority: %s", exc)
