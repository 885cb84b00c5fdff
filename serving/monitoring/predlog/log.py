"""The prediction log, worker side: a bounded in-memory queue and a writer process per worker.

The request path calls ``record()``: a length check, the request encoded at once into its wire
form (msgspec, in C: the body it received, the labels and the probabilities' bytes; 1.3 µs for
one patient, measured in-process) and a ``deque.append`` (thread-safe in CPython, no lock, no
I/O). The queue holds bytes: no patient object outlives its request. A shipper thread wakes
every ``flush_interval`` seconds and sends the queue, a frame of up to ``FRAME_ROWS`` rows at a
time, to the worker's writer process (``predlog.writer``), which decodes the patients,
expands the requests into rows and commits them; a reporter thread reads back what was written.
The shipper only joins encoded requests (about 6 µs for 600 of them), so the GIL it holds never
keeps the event loop waiting long; encoding in the shipper, as it used to, held it for about
1.1 µs per request, some 0.6 ms per frame at 2,400 requests/s. The database work, and the GIL it
would take, are in the writer.
``stop()`` (the lifespan's exit, on SIGTERM/SIGINT) ships everything accepted, closes the pipe
and waits for the writer to commit and exit.

Queue full policy: the new request's record is dropped (the answer is not delayed or failed),
counted in ``drugclf_prediction_log_dropped_total{reason="queue_full"}`` and logged (at most one
warning per ``WARN_EVERY_S``). A write that fails is retried by the writer with a backoff;
rows that still cannot be written at shutdown, or that a crashed writer took with it, are
counted with ``reason="write_error"``. A writer that exits unexpectedly is started again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final, TypeAlias

import anyio.to_thread
import msgspec
import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from serving.monitoring.predlog.backends import Backend, PredictionLogError, open_backend
from serving.monitoring.predlog.wire import (
    LoggedRequest,
    Report,
    WriterConfig,
    read_frame,
    write_frame,
)
from serving.settings import Settings

logger = logging.getLogger(__name__)

WARN_EVERY_S: Final = 10.0
FRAME_ROWS: Final = 2000
"""Rows per frame (one transaction in the writer): bounds how long a commit holds SQLite's lock."""
SECONDS_PER_DAY: Final = 86_400.0
RESPAWN_EVERY_S: Final = 1.0
POLL_S: Final = 0.05
MAX_STARTS_WHEN_STOPPING: Final = 2
_ROOT: Final = Path(__file__).resolve().parents[3]  # the folder holding the serving package
WRITER_COMMAND: Final = [sys.executable, "-m", "serving.monitoring.predlog.writer"]

# One queued request: its encoded ``LoggedRequest`` and its number of rows (patients).
Pending: TypeAlias = tuple[msgspec.Raw, int]


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


class _WriterProcess:
    """One running writer process, and the frames it was sent but has not reported on."""

    def __init__(self, config: WriterConfig) -> None:
        env = dict(os.environ)
        # The writer imports serving.monitoring.predlog whether or not the project is installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            WRITER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.frames = self.process.stdin.fileno()
        self.reports = self.process.stdout.fileno()
        # The requests of each frame not reported on yet, oldest first: sent again to the next
        # writer if this one dies.
        self.sent: deque[list[Pending]] = deque()
        self.failing = False  # the database fails: it retries, and must be told to give up
        self.dead = False  # a frame could not be written to it
        self.told = False  # it was told to give up (SIGUSR1)
        write_frame(self.frames, msgspec.msgpack.encode(config))

    def close_input(self) -> None:
        """End of frames: the writer commits what it has and exits."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()

    def wait(self, timeout: float) -> None:
        """Wait for the exit; a writer stuck on a failing database is told to give up.

        Its ``failed`` report may arrive while we wait (the last frame failed), so the
        failure is checked again on every poll.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.failing:
                self.give_up()
            try:
                self.process.wait(POLL_S)
                return
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:  # pragma: no cover - a database that hangs
                    break
        logger.error("prediction log writer did not finish within %.0f s", timeout)
        self.process.kill()
        self.process.wait()

    def give_up(self) -> None:
        """Tell it (once) to stop retrying: one last attempt, then it reports the rows lost."""
        if not self.told:
            self.told = True
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGUSR1)

    def alive(self) -> bool:
        """Whether frames can still be sent to it."""
        return not self.dead and self.process.poll() is None

    def close_reports(self) -> None:
        """After the reporter thread read everything up to the end of the pipe."""
        assert self.process.stdout is not None
        self.process.stdout.close()


class PredictionLog:
    """Record predictions without making a request wait for the disk."""

    def __init__(
        self,
        backend: Backend,
        metrics: LogMetrics,
        *,
        record_inputs: bool = True,
        queue_size: int = 50_000,
        flush_interval: float = 0.25,
        max_age_s: float | None = None,
        max_rows: int | None = None,
        prune_interval: float = 300.0,
        writer_niceness: int = 0,
        writer_idle: bool = False,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.record_inputs = record_inputs
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.config = WriterConfig(
            url=backend.url,
            worker=self.worker,
            record_inputs=record_inputs,
            max_age_s=max_age_s,
            max_rows=max_rows,
            prune_interval=prune_interval,
            niceness=writer_niceness,
            idle=writer_idle,
        )
        self._queue: deque[Pending] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._shipper: threading.Thread | None = None
        self._writer: _WriterProcess | None = None
        self._reporter: threading.Thread | None = None
        self._accepted = 0  # requests; only the event loop thread writes it
        self._rows_in = 0  # rows accepted; only the event loop thread writes it
        self._rows_done = 0  # rows written or given up; under _progress
        self._processed = 0  # requests written or given up; under _progress
        self._progress = threading.Condition()
        self._last_warning = 0.0
        # One encoder per thread: the request path's and the shipper's.
        self._record_encoder = msgspec.msgpack.Encoder()
        self._frame_encoder = msgspec.msgpack.Encoder()

    # The request path ------------------------------------------------------------------

    def record(  # noqa: PLR0917 - positional on purpose: called once per request
        self,
        request_id: str | None,
        version: str,
        body: bytes,
        labels: Sequence[str],
        probabilities: npt.NDArray[np.float32],
        started: float,
    ) -> None:
        """Enqueue one request's predictions (``started`` is its ``time.perf_counter()``).

        ``body`` is the request body the codec accepted (one patient or an array), ``labels``
        and ``probabilities`` the answers in the same order. The bound counts rows (patients),
        queued or sent and not yet written: one request may carry 1,000.
        """
        rows = len(labels)  # one label per patient
        if self._rows_in - self._rows_done + rows > self.queue_size:
            self._drop(rows)
            return
        logged = LoggedRequest(
            time.time(),
            request_id,
            version,
            body if self.record_inputs else b"",
            list(labels),
            np.asarray(probabilities, dtype=np.float32).tobytes(),
            (time.perf_counter() - started) * 1000.0,
        )
        self._queue.append((msgspec.Raw(self._record_encoder.encode(logged)), rows))
        self._accepted += 1
        self._rows_in += rows

    def _drop(self, rows: int) -> None:
        self.metrics.dropped_full.inc(rows)
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            logger.warning(
                "prediction log queue full (%d rows): dropping records",
                self.queue_size,
                extra={"queue_size": self.queue_size},
            )

    # Lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Create the table and start the shipper thread (the writer starts with the first frame).

        Starting the writer with the worker would make it compete for the CPU with the workers'
        own startup (~0.2 s later to ready with two workers, measured).

        Raises:
            PredictionLogError: the database cannot be opened or created (startup fails).
        """
        self.backend.create_schema()
        self._apply_retention()
        self._stopping = False
        self._shipper = threading.Thread(
            target=self._ship, name="prediction-log-shipper", daemon=True
        )
        self._shipper.start()
        logger.info(
            "prediction log on %s (inputs %s)",
            self.backend.description,
            "recorded" if self.record_inputs else "not recorded",
        )

    def _apply_retention(self) -> None:
        """Retention once at startup (the writer repeats it every ``prune_interval``)."""
        config = self.config
        try:
            with self.backend.session() as conn:
                deleted = self.backend.retain(
                    conn, max_age_s=config.max_age_s, max_rows=config.max_rows
                )
        except Exception as exc:  # retention must never stop the server
            logger.warning("prediction log retention failed: %s", exc)
            return
        if deleted:
            logger.info("prediction log retention removed %d rows", deleted)

    def stop(self, timeout: float = 30.0) -> None:
        """Ship the queue, let the writer commit it, and wait (blocks; the lifespan's exit)."""
        shipper = self._shipper
        if shipper is None:
            return
        self._stopping = True
        self._give_up_if_failing()  # else a full pipe would keep the shipper waiting
        self._wake.set()
        shipper.join(timeout)
        if shipper.is_alive():  # pragma: no cover - a writer that hangs for `timeout`
            logger.error("prediction log shipper did not finish within %.0f s", timeout)
        self._shipper = None

    def _give_up_if_failing(self) -> None:
        writer = self._writer
        if self._stopping and writer is not None and writer.failing:
            writer.give_up()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything accepted so far is committed (for tests and shutdown)."""
        target = self._accepted
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(lambda: self._processed >= target, timeout)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PredictionLog]:
        """Run the log for the lifespan; the blocking start and stop run in a thread."""
        await anyio.to_thread.run_sync(self.start)
        try:
            yield self
        finally:
            await anyio.to_thread.run_sync(self.stop)

    @property
    def depth(self) -> int:
        """Requests waiting in the queue."""
        return len(self._queue)

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (None when it is not running)."""
        writer = self._writer
        return writer.process.pid if writer is not None else None

    # The shipper thread ----------------------------------------------------------------

    def _ship(self) -> None:
        last_start = -math.inf
        starts_while_stopping = 0
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                stopping = self._stopping
                self.metrics.queue_depth.set(len(self._queue))
                while True:
                    writer = self._writer
                    if writer is not None and writer.alive():
                        if not self._queue:
                            break
                        if not self._send(writer):
                            writer.dead = True  # restart it and send the frame again
                        continue
                    if not self._queue and (writer is None or not writer.sent):
                        break  # nothing to write: a new writer can wait for work
                    if stopping and writer is not None and writer.told:
                        self._give_up_queue("the database still fails")
                        break
                    if stopping and starts_while_stopping >= MAX_STARTS_WHEN_STOPPING:
                        self._give_up_queue("the writer process keeps exiting")
                        break
                    if not stopping and time.monotonic() - last_start < RESPAWN_EVERY_S:
                        break  # a writer that keeps dying: try again at the next wake
                    starts_while_stopping += stopping
                    self._restart_writer()  # what the dead one was sent goes back in the queue
                    last_start = time.monotonic()
                self.metrics.queue_depth.set(len(self._queue))
                if stopping and not self._queue:
                    return
        finally:
            self._stop_writer()

    def _give_up_queue(self, reason: str) -> None:
        requests, rows = 0, 0
        while self._queue:
            requests += 1
            rows += _rows(self._queue.popleft())
        self.metrics.dropped_error.inc(rows)
        logger.error("prediction log: %d rows lost at shutdown (%s)", rows, reason)
        self._finished(requests, rows)

    def _send(self, writer: _WriterProcess) -> bool:
        """Ship one frame from the queue; False if the writer is gone.

        The frame stays in ``writer.sent``: the restart puts it back in the queue.
        """
        queue, taken, rows = self._queue, [], 0
        while queue and rows < FRAME_ROWS:
            pending = queue.popleft()
            taken.append(pending)
            rows += _rows(pending)
        frame = self._frame_encoder.encode([encoded for encoded, _ in taken])
        with self._progress:
            writer.sent.append(taken)
        try:
            write_frame(writer.frames, frame)
        except OSError:
            return False
        return True

    # The writer process ----------------------------------------------------------------

    def _start_writer(self) -> None:
        try:
            writer = _WriterProcess(self.config)
        except OSError as exc:
            raise PredictionLogError(f"cannot start the prediction log writer: {exc}") from exc
        self._writer = writer
        self._reporter = threading.Thread(
            target=self._read_reports, args=(writer,), name="prediction-log-reports", daemon=True
        )
        self._reporter.start()

    def _stop_writer(self, *, resend: bool = False) -> None:
        """Close the writer's input and wait for it to finish.

        Frames it never reported on (it crashed, or was killed) go back to the front of the
        queue for the next writer when ``resend`` (a restart); at shutdown they are lost.
        """
        writer, reporter = self._writer, self._reporter
        if writer is None:
            return
        writer.close_input()
        writer.wait(timeout=30.0)
        if reporter is not None:
            reporter.join()  # it reads every report up to the end of the pipe
        writer.close_reports()
        with self._progress:
            unanswered = [pending for frame in writer.sent for pending in frame]
            writer.sent.clear()
        if unanswered and resend:
            self._queue.extendleft(reversed(unanswered))
        elif unanswered:
            rows = sum(_rows(pending) for pending in unanswered)
            self.metrics.dropped_error.inc(rows)
            logger.error(
                "prediction log: %d rows lost with the writer process (exit status %s)",
                rows,
                writer.process.returncode,
            )
            self._finished(len(unanswered), rows)
        self._writer = self._reporter = None

    def _restart_writer(self) -> None:
        if self._writer is not None:
            code = self._writer.process.poll()
            logger.error("prediction log writer exited (status %s): starting a new one", code)
            self._stop_writer(resend=True)
        try:
            self._start_writer()
        except PredictionLogError as exc:
            logger.error("%s", exc)

    def _finished(self, requests: int, rows: int) -> None:
        with self._progress:
            self._processed += requests
            self._rows_done += rows
            self._progress.notify_all()

    # The reporter thread ---------------------------------------------------------------

    def _read_reports(self, writer: _WriterProcess) -> None:
        decoder = msgspec.msgpack.Decoder(Report)
        while True:
            try:
                frame = read_frame(writer.reports)
            except (OSError, EOFError):
                return
            if frame is None:
                return
            self._on_report(writer, decoder.decode(frame))

    def _on_report(self, writer: _WriterProcess, report: Report) -> None:
        where = {"log": self.backend.description}
        if report.kind == "malformed":
            self.metrics.dropped_error.inc(report.rows)
            logger.error(
                "prediction log: %d rows not written (%s)", report.rows, report.message, extra=where
            )
        elif report.kind in ("written", "lost"):
            with self._progress:
                frame = writer.sent.popleft() if writer.sent else []
            if report.kind == "written":
                self.metrics.written.inc(report.rows)
            else:
                self.metrics.dropped_error.inc(report.rows)
                logger.error(
                    "prediction log: %d rows lost (%s)", report.rows, report.message, extra=where
                )
            self._finished(report.requests, sum(_rows(pending) for pending in frame))
        elif report.kind == "failed":
            writer.failing = True
            self._give_up_if_failing()  # the failure came in while stopping
            logger.error(
                "prediction log write failed (%d rows kept for retry): %s",
                report.rows,
                report.message,
                extra=where,
            )
        elif report.kind == "recovered":
            writer.failing = False
            logger.info("prediction log writes recovered", extra=where)
        elif report.kind == "pruned":
            logger.info("prediction log retention removed %d rows", report.rows, extra=where)
        else:  # prune_failed: retention must never stop the writer
            logger.warning("prediction log retention failed: %s", report.message, extra=where)


def _rows(pending: Pending) -> int:
    return pending[1]


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
        writer_idle=settings.prediction_log_writer_idle,
    )


__all__ = ["LogMetrics", "PredictionLog", "PredictionLogError", "prediction_log"]
