"""Shadow predictions: after a request is answered, the policy's shadow versions predict it too.

The request path only appends to a bounded queue (``offer``: no model call, no I/O); one task
per worker drains it once the event loop has sent what it was answering, and runs each shadow
version once over every request waiting for it (one model call for a burst, as the
micro-batcher does). What a full queue refuses is counted in
``drugclf_shadow_skipped_total{version}``; a shadow never changes an answer, its status or,
beyond the loop's share of one batched call, its latency. Shadow answers go to the prediction
log with role ``shadow``,
without the inputs (the answered row of the same request id has them): one small row each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Final

from prometheus_client import CollectorRegistry, Counter

from drugclf.contract import Patient
from serving.http.metrics import ServerMetrics
from serving.inference import background
from serving.inference.model import DrugModel
from serving.inference.service import PredictionRecorder

logger = logging.getLogger(__name__)

MAX_PATIENTS_PER_CALL: Final = 1000
"""Most patients a shadow version predicts in one model call (a drained burst is cut)."""


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
    """A bounded queue of answered requests and the task that predicts them with the shadows.

    Args:
        metrics: the server's families (shadow predictions count by version, role ``shadow``).
        recorder: the prediction log (None: shadows are only counted).
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
        self._wake: asyncio.Event | None = None  # made by the loop that runs the task
        self.done = 0
        """Shadow predictions made by this worker (requests × shadow versions)."""

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
        if self._wake is not None:
            self._wake.set()
        return True

    @property
    def waiting(self) -> int:
        """Requests in the queue now."""
        return len(self._jobs)

    async def run(self) -> None:
        """Predict queued requests with their shadows until cancelled."""
        wake = self._wake = asyncio.Event()
        while True:
            if not self._jobs:
                await wake.wait()
            wake.clear()
            # Let the loop first send the answers that queued these jobs.
            await asyncio.sleep(0)
            while self._jobs:
                self.drain()
                await asyncio.sleep(0)  # requests arriving meanwhile go first

    def drain(self) -> None:
        """Predict what is queued now: each shadow version once per up to 1,000 patients."""
        jobs = list(self._jobs)
        self._jobs.clear()
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
        started = time.perf_counter()
        patients = [p for job in jobs for p in job.patients]
        result = model.predict(patients)
        seconds = time.perf_counter() - started
        offset = 0
        for job in jobs:
            n = len(job.patients)
            labels = result.labels[offset : offset + n]
            self.metrics.observe_version(model.version, "shadow", n, seconds)
            if self.recorder is not None:
                self.recorder.record(
                    job.request_id,
                    model.version,
                    b"",  # the answered row of this request id holds the inputs
                    labels,
                    result.probabilities[offset : offset + n],
                    started,
                    "shadow",
                )
            offset += n
        self.done += len(jobs)

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Run the shadow task for the lifespan; what is still queued at exit is dropped."""
        return background.running(self.run(), name="drugclf-shadows")
