"""The prediction log: a bounded in-memory queue and one background writer thread per worker.

The request path calls ``record()``: a length check and a ``deque.append`` of one tuple per
request (thread-safe in CPython, no lock, no I/O). The writer thread wakes every
``flush_interval`` seconds, drains the queue, expands each request into rows and commits them in
one transaction per chunk. ``stop()`` (the lifespan's exit, on SIGTERM/SIGINT) drains and commits
everything accepted before it returns.

Queue full policy: the new request's record is dropped (the answer is not delayed or failed),
counted in ``drugclf_prediction_log_dropped_total{reason="queue_full"}`` and logged (at most one
warning per ``WARN_EVERY_S``). A write that fails is retried with a backoff; rows that still
cannot be written at shutdown are counted with ``reason="write_error"``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Final

import anyio.to_thread
import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from drugclf.contract import Patient
from serving.predlog.backends import Backend, Connection, PredictionLogError
from serving.predlog.records import Pending, Row, expand

logger = logging.getLogger(__name__)

WARN_EVERY_S: Final = 10.0
COMMIT_ROWS: Final = 2000
"""Rows per transaction: bounds how long one commit holds SQLite's write lock."""
RETRY_MAX_S: Final = 5.0
NICEST: Final = 19


class LogMetrics:
    """The log's Prometheus families, on the app's registry (summed over workers)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge(
            "drugclf_prediction_log_queue_depth",
            "Requests waiting in the prediction log's queue (sum over workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.written = Counter(
            "drugclf_prediction_log_written",
            "Prediction rows committed to the prediction log.",
            registry=registry,
        )
        self.dropped = Counter(
            "drugclf_prediction_log_dropped",
            "Prediction rows not recorded, by reason (queue_full, write_error).",
            ["reason"],
            registry=registry,
        )
        self.dropped_full = self.dropped.labels("queue_full")
        self.dropped_error = self.dropped.labels("write_error")


class PredictionLog:
    """Record predictions without making a request wait for the disk."""

    def __init__(
        self,
        backend: Backend,
        metrics: LogMetrics,
        *,
        record_inputs: bool = True,
        queue_size: int = 10_000,
        flush_interval: float = 0.25,
        max_age_s: float | None = None,
        max_rows: int | None = None,
        prune_interval: float = 300.0,
        writer_niceness: int = 0,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.record_inputs = record_inputs
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self.max_age_s = max_age_s
        self.max_rows = max_rows
        self.prune_interval = prune_interval
        self.writer_niceness = writer_niceness
        self._queue: deque[Pending] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._accepted = 0  # only the event loop thread writes it
        self._processed = 0  # only the writer thread writes it
        self._progress = threading.Condition()
        self._last_warning = 0.0
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._failing = False

    # The request path ------------------------------------------------------------------

    def record(  # noqa: PLR0917 - positional on purpose: called once per request
        self,
        request_id: str | None,
        version: str,
        patients: Patient | Sequence[Patient],
        labels: Sequence[str],
        probabilities: npt.NDArray[np.float32],
        started: float,
    ) -> None:
        """Enqueue one request's predictions (``started`` is its ``time.perf_counter()``)."""
        queue = self._queue
        if len(queue) >= self.queue_size:
            self._drop(patients)
            return
        queue.append(
            (
                time.time(),
                request_id,
                version,
                patients,
                labels,
                probabilities,
                (time.perf_counter() - started) * 1000.0,
            )
        )
        self._accepted += 1

    def _drop(self, patients: Patient | Sequence[Patient]) -> None:
        self.metrics.dropped_full.inc(1 if isinstance(patients, Patient) else len(patients))
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            logger.warning(
                "prediction log queue full (%d requests): dropping records",
                self.queue_size,
                extra={"queue_size": self.queue_size},
            )

    # Lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Create the table, prune once, start the writer thread.

        Raises:
            PredictionLogError: the database cannot be opened or created (startup fails).
        """
        self.backend.create_schema()
        conn = self.backend.connect()
        self._prune(conn)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="prediction-log-writer", daemon=True
        )
        self._thread.start()
        logger.info(
            "prediction log on %s (inputs %s)",
            self.backend.description,
            "recorded" if self.record_inputs else "not recorded",
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Drain the queue, commit, and join the writer (blocks; the lifespan's exit)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():  # pragma: no cover - a database that hangs for `timeout`
            logger.error("prediction log writer did not finish within %.0f s", timeout)
        self._thread = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything accepted so far is committed (for tests and shutdown)."""
        target = self._accepted
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(lambda: self._processed >= target, timeout)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PredictionLog]:
        """Run the writer for the lifespan; the blocking start and stop run in a thread."""
        await anyio.to_thread.run_sync(self.start)
        try:
            yield self
        finally:
            await anyio.to_thread.run_sync(self.stop)

    @property
    def depth(self) -> int:
        """Requests waiting in the queue."""
        return len(self._queue)

    # The writer thread -----------------------------------------------------------------

    def _run(self, conn: Connection | None) -> None:
        _lower_priority(self.writer_niceness)
        last_prune = time.monotonic()
        backlog: list[Row] = []
        backoff = self.flush_interval
        try:
            while True:
                self._wake.wait(backoff if self._failing else self.flush_interval)
                self._wake.clear()
                stopping = self._stopping
                self.metrics.queue_depth.set(len(self._queue))
                # Expand and write a chunk at a time: expanding the whole queue first held
                # every row of a burst of large batches at once (tens of MiB per worker).
                while True:
                    taken = self._drain(backlog, COMMIT_ROWS)
                    conn, ok = self._write(conn, backlog)
                    if ok:
                        backlog.clear()
                        backoff = self.flush_interval
                    else:
                        backoff = min(backoff * 2, RETRY_MAX_S)
                    self._finish(taken)
                    if not ok or not self._queue:
                        break
                self.metrics.queue_depth.set(len(self._queue))
                if stopping and not self._queue:
                    if backlog:
                        self._give_up(conn, backlog)
                    return
                if time.monotonic() - last_prune >= self.prune_interval:
                    last_prune = time.monotonic()
                    self._prune(conn)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _drain(self, backlog: list[Row], limit: int) -> int:
        """Expand queued requests into ``backlog`` until it holds ``limit`` rows or more."""
        queue, taken = self._queue, 0
        while queue and len(backlog) < limit:
            backlog.extend(
                expand(queue.popleft(), with_inputs=self.record_inputs, worker=self.worker)
            )
            taken += 1
        return taken

    def _finish(self, taken: int) -> None:
        with self._progress:
            self._processed += taken
            self._progress.notify_all()

    def _write(self, conn: Connection | None, rows: list[Row]) -> tuple[Connection | None, bool]:
        """Commit ``rows`` in chunks; on failure reconnect next time and report False."""
        if not rows:
            return conn, True
        written = 0
        try:
            if conn is None:
                conn = self.backend.connect()
            for start in range(0, len(rows), COMMIT_ROWS):
                chunk = rows[start : start + COMMIT_ROWS]
                self.backend.insert(conn, chunk)
                conn.commit()
                written += len(chunk)
                self.metrics.written.inc(len(chunk))
        except Exception as exc:  # any driver error: keep the rows, retry, never crash
            del rows[:written]
            if not self._failing:
                logger.error(
                    "prediction log write failed (%d rows kept for retry): %s",
                    len(rows),
                    exc,
                    extra={"log": self.backend.description},
                )
            self._failing = True
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            return None, False
        if self._failing:
            logger.info("prediction log writes recovered")
            self._failing = False
        return conn, True

    def _give_up(self, conn: Connection | None, rows: list[Row]) -> None:
        _, ok = self._write(conn, rows)
        if not ok:
            self.metrics.dropped_error.inc(len(rows))
            logger.error("prediction log: %d rows lost at shutdown (database error)", len(rows))

    def _prune(self, conn: Connection | None) -> None:
        if conn is None or (self.max_age_s is None and self.max_rows is None):
            return
        older = time.time() - self.max_age_s if self.max_age_s is not None else None
        try:
            deleted = self.backend.prune(conn, older_than=older, max_rows=self.max_rows)
        except Exception as exc:  # retention must never stop the writer
            logger.warning("prediction log retention failed: %s", exc)
            with contextlib.suppress(Exception):
                conn.rollback()
            return
        if deleted:
            logger.info("prediction log retention removed %d rows", deleted)


def _lower_priority(niceness: int) -> None:
    """Raise the calling thread's nice value by ``niceness`` (Linux only; best effort).

    On a machine whose cores all run workers, the writer's inserts compete with the answers for
    CPU (a 1,000-patient batch costs the writer ~3 ms); a nicer writer lets the answer go first
    and catches up between requests. Linux keeps a nice value per thread; elsewhere the call
    would renice the whole process, so it is skipped there.
    """
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    thread_id = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(current + niceness, NICEST))
    except OSError as exc:  # a sandbox that forbids it: keep writing at the same priority
        logger.warning("prediction log writer keeps its priority: %s", exc)


__all__ = ["LogMetrics", "PredictionLog", "PredictionLogError"]
