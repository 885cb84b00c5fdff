"""The prediction log, worker side: records go to a spool on disk, a writer fills the database.

The request path calls ``record()``: a length check, the request encoded at once into its wire
form (msgspec, in C: the body it received, the labels and the probabilities' bytes) and a
``deque.append`` (thread-safe in CPython, no lock, no I/O). The queue holds bytes: no patient
object outlives its request. The shadows (``serving.experiments.shadows``) hand over the answers
of one model call over many requests with ``record_burst()``, from their own thread: one record,
encoded once, for the burst. A shipper thread wakes every ``flush_interval`` seconds (sooner when
the queue passes a quarter of its bound), appends the queue to the worker's spool segment
(``predlog.spool``) in one write and wakes the worker's writer process (``predlog.writer``),
which reads the spool, expands the rows and commits them with how far it read; a reporter
thread reads back what was committed. The shipper only joins encoded requests, so the GIL it
holds never keeps the event loop waiting long; the database work, and the GIL it would take,
are in the writer. Costs: docs/monitoring.md.

A database that is slow, or down, makes a backlog on disk, not a loss. Records are dropped only
when a bound is reached, each counted in ``drugclf_prediction_log_dropped_total{reason}`` and
logged (at most one line per reason every ``WARN_EVERY_S``): ``queue_full`` (the memory queue
between two shipper wakes is over its bound: the shipper cannot keep up, a stalled disk),
``spool_full`` (the spool is at ``spool_max_bytes``: the database is far behind or down) and
``write_error`` (the disk refused an append, or the writer could not expand or read a record).

``stop()`` (the lifespan's exit, on SIGTERM/SIGINT) spools what is queued and tells the writer,
which writes this worker's spool for at most ``drain_s`` and exits; what is left waits on disk
for the next writer (the next start, or another worker's). A writer that exits unexpectedly is
started again and goes on from where the database is.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final, NamedTuple, TypeAlias

import anyio.to_thread
import msgspec
import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from serving.monitoring.predlog import spool
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
"""Rows per spool frame: the writer commits whole frames, so this bounds a transaction too."""
SECONDS_PER_DAY: Final = 86_400.0
RESPAWN_EVERY_S: Final = 1.0
ORPHAN_CHECK_S: Final = 2.0
DISK_CHECK_S: Final = 1.0
STOP_MARGIN_S: Final = 10.0
"""How much longer than its drain the worker waits for its writer at stop before killing it."""
DEFAULT_SPOOL_MAX_BYTES: Final = 1 << 30
_ROOT: Final = Path(__file__).resolve().parents[3]  # the folder holding the serving package
WRITER_COMMAND: Final = [sys.executable, "-m", "serving.monitoring.predlog.writer"]
_SEGMENT_SEQ: Final = re.compile(r"\.(\d{8})\.spool$")
_NOT_IN_NAMES: Final = re.compile(r"[^\w.-]")

# One queued request: its encoded ``LoggedRequest`` and its number of rows (patients).
Pending: TypeAlias = tuple[msgspec.Raw, int]


class Spooled(NamedTuple):
    """One frame this worker appended that the database does not have yet."""

    seq: int
    end: int
    rows: int
    ts: float


class LogMetrics:
    """The log's Prometheus families, on the app's registry (summed over workers)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge(
            "drugclf_prediction_log_queue_depth",
            "Prediction rows not in the database yet: in the workers' memory and in the spool.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.lag = Gauge(
            "drugclf_prediction_log_lag_seconds",
            "Age of the oldest spooled prediction not in the database yet (0: none).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.spool_bytes = Gauge(
            "drugclf_prediction_log_spool_bytes",
            "Disk the prediction log's spool takes (read segments not yet deleted included).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.written = Counter(
            "drugclf_prediction_log_written",
            "Prediction rows committed to the prediction log.",
            registry=registry,
        )
        self.dropped = Counter(
            "drugclf_prediction_log_dropped",
            "Prediction rows not recorded, by reason (queue_full, spool_full, write_error).",
            ["reason"],
            registry=registry,
        )
        self.dropped_full = self.dropped.labels("queue_full")
        self.dropped_spool_full = self.dropped.labels("spool_full")
        self.dropped_error = self.dropped.labels("write_error")


class _WriterProcess:
    """One running writer process: its input (config, wake-ups) and its reports."""

    def __init__(self, config: WriterConfig, lock_fd: int) -> None:
        env = dict(os.environ)
        # The writer imports serving.monitoring.predlog whether or not the project is installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            WRITER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            pass_fds=(lock_fd,),  # it holds the spool lock while it runs, even if we die
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.inbox = self.process.stdin.fileno()
        self.reports = self.process.stdout.fileno()
        self.failing = False  # the database fails: it retries
        self.dead = False  # its input is broken
        try:
            write_frame(self.inbox, msgspec.msgpack.encode(config))
        except OSError:
            self.dead = True
        os.set_blocking(self.inbox, False)  # a wake-up never waits

    def wake(self) -> None:
        """Tell it the spool grew (if its pipe is full, it has wake-ups to read already)."""
        try:
            os.write(self.inbox, b"\x01")
        except BlockingIOError:
            pass
        except OSError:
            self.dead = True

    def close_input(self) -> None:
        """The worker stops: it writes what the worker spooled (for a while) and exits."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()

    def wait(self, timeout: float) -> None:
        """Wait for the exit; kill it after ``timeout`` (what it did not write stays spooled)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.error("prediction log writer did not finish within %.0f s", timeout)
            self.process.kill()
            self.process.wait()

    def alive(self) -> bool:
        """Whether it runs and can be told things."""
        return not self.dead and self.process.poll() is None

    def close_reports(self) -> None:
        """After the reporter thread read everything up to the end of the pipe."""
        assert self.process.stdout is not None
        self.process.stdout.close()


class PredictionLog:
    """Record predictions without making a request wait for the disk or the database."""

    def __init__(
        self,
        backend: Backend,
        metrics: LogMetrics,
        *,
        spool_dir: Path,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        record_inputs: bool = True,
        queue_size: int = 50_000,
        flush_interval: float = 0.25,
        max_age_s: float | None = None,
        max_rows: int | None = None,
        prune_interval: float = 300.0,
        writer_niceness: int = 0,
        writer_idle: bool = False,
        drain_s: float = 5.0,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.record_inputs = record_inputs
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self.spool_dir = spool_dir
        self.spool_max_bytes = spool_max_bytes
        self.drain_s = drain_s
        host = socket.gethostname()
        self.worker = f"{host}:{os.getpid()}"
        # Unique even when a pid comes back: a spool name outlives its process.
        self.owner = f"{_NOT_IN_NAMES.sub('_', host)}-{os.getpid()}-{secrets.token_hex(4)}"
        self.config = WriterConfig(
            url=backend.url,
            spool_dir=str(spool_dir),
            owner=self.owner,
            record_inputs=record_inputs,
            max_age_s=max_age_s,
            max_rows=max_rows,
            prune_interval=prune_interval,
            niceness=writer_niceness,
            idle=writer_idle,
            drain_s=drain_s,
        )
        self._queue: deque[Pending] = deque()
        self._wake = threading.Event()
        self._wake_rows = max(1, queue_size // 4)
        self._stopping = False
        self._shipper: threading.Thread | None = None
        self._appender: spool.Appender | None = None
        self._writer: _WriterProcess | None = None
        self._reporter: threading.Thread | None = None
        self._rows_in = 0  # rows accepted by record(); only the event loop thread writes it
        self._burst_lock = threading.Lock()
        self._burst_rows_in = 0  # rows accepted by record_burst(); under _burst_lock
        self._rows_taken = 0  # rows the shipper took from the queue; only it writes it
        self._progress = threading.Condition()
        self._rows_done = 0  # accepted rows now in the database or dropped; under _progress
        self._spooled: deque[Spooled] = deque()  # under _progress
        self._spooled_rows = 0  # rows in _spooled; under _progress
        self._adopted: tuple[int, float | None] = (0, None)  # the writer's adopted backlog
        self._disk_use = 0
        self._disk_checked = -math.inf
        self._last_warning: dict[str, float] = {}
        # One encoder per thread: the request path's, the bursts' (under _burst_lock) and the
        # shipper's.
        self._record_encoder = msgspec.msgpack.Encoder()
        self._burst_encoder = msgspec.msgpack.Encoder()
        self._frame_encoder = msgspec.msgpack.Encoder()

    # The request path ------------------------------------------------------------------

    def record(  # noqa: PLR0917 - positional on purpose: called once per request
        self,
        request_id: str | None,
        version: str,
        body: bytes,
        labels: Sequence[str],
        probabilities: npt.NDArray[np.float32] | bytes,
        started: float,
        role: str = "primary",
    ) -> None:
        """Enqueue one request's predictions (``started`` is its ``time.perf_counter()``).

        ``body`` is the request body the codec accepted (one patient or an array), ``labels``
        and ``probabilities`` the answers in the same order (the probabilities may come as the
        float32 bytes ``ndarray.tobytes()`` gives). The bound counts rows (patients)
        held in memory until the shipper spools them: one request may carry 1,000.
        """
        rows = len(labels)  # one label per patient
        held = self._rows_in + self._burst_rows_in - self._rows_taken + rows
        if held > self.queue_size:
            self._drop(self.metrics.dropped_full, rows, "queue_full")
            return
        logged = LoggedRequest(
            time.time(),
            request_id,
            version,
            body if self.record_inputs else b"",
            labels if isinstance(labels, list) else list(labels),
            probabilities
            if isinstance(probabilities, bytes)
            else np.asarray(probabilities, dtype=np.float32).tobytes(),
            (time.perf_counter() - started) * 1000.0,
            role,
        )
        self._queue.append((msgspec.Raw(self._record_encoder.encode(logged)), rows))
        self._rows_in += rows
        if held > self._wake_rows and not self._wake.is_set():
            self._wake.set()  # a burst: spool it before the interval is up

    def record_burst(  # noqa: PLR0917 - the same order as record()
        self,
        version: str,
        request_ids: list[str | None],
        batch_sizes: list[int],
        labels: Sequence[str],
        probabilities: npt.NDArray[np.float32],
        seconds: float,
        role: str = "shadow",
    ) -> None:
        """Enqueue the answers of one model call over several requests, as one record.

        ``batch_sizes[i]`` of ``labels`` (and rows of ``probabilities``), in order, answer
        request ``request_ids[i]``; ``seconds`` is the call's. The writer stores one row per
        patient, as ``record()`` would have with one call per request, without the inputs. Safe
        from any thread (the shadows' calls it from theirs): its count of accepted rows is its
        own, so ``record()`` on the event loop stays the only writer of ``_rows_in``. The bound
        takes the whole burst or none of it.
        """
        rows = len(labels)
        logged = LoggedRequest(
            time.time(),
            None,
            version,
            b"",
            list(labels),
            np.asarray(probabilities, dtype=np.float32).tobytes(),
            seconds * 1000.0,
            role,
            request_ids,
            batch_sizes,
        )
        with self._burst_lock:
            held = self._rows_in + self._burst_rows_in - self._rows_taken + rows
            if held > self.queue_size:
                self._drop(self.metrics.dropped_full, rows, "queue_full")
                return
            self._queue.append((msgspec.Raw(self._burst_encoder.encode(logged)), rows))
            self._burst_rows_in += rows
        if held > self._wake_rows and not self._wake.is_set():
            self._wake.set()

    def _drop(self, counter: Counter, rows: int, reason: str) -> None:
        counter.inc(rows)
        now = time.monotonic()
        if now - self._last_warning.get(reason, -math.inf) >= WARN_EVERY_S:
            self._last_warning[reason] = now
            why = {
                "queue_full": f"more than {self.queue_size} rows wait in memory",
                "spool_full": f"the spool in {self.spool_dir} holds {self.spool_max_bytes} bytes",
                "write_error": f"the spool in {self.spool_dir} cannot be written",
            }[reason]
            logger.error(
                "prediction log: dropping records (%s): %s",
                reason,
                why,
                extra={"reason": reason, "rows": rows},
            )

    # Lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Create the table, the spool, and start the shipper thread.

        The writer process starts with the first records, or at once when the spool holds
        records of workers that are gone (a backlog from before a restart): starting it with
        every worker would make it compete with the workers' own startup.

        Raises:
            PredictionLogError: the database or the spool cannot be opened (startup fails).
        """
        self.backend.create_schema()
        self._apply_retention()
        try:
            self._appender = spool.Appender(self.spool_dir, self.owner, self.worker)
        except OSError as exc:
            raise PredictionLogError(f"cannot open the spool in {self.spool_dir}: {exc}") from exc
        self._stopping = False
        self._shipper = threading.Thread(
            target=self._ship, name="prediction-log-shipper", daemon=True
        )
        self._shipper.start()
        logger.info(
            "prediction log on %s (inputs %s), spool in %s",
            self.backend.description,
            "recorded" if self.record_inputs else "not recorded",
            self.spool_dir,
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

    def stop(self, timeout: float | None = None) -> None:
        """Spool the queue, let the writer write it, and wait (blocks; the lifespan's exit)."""
        shipper = self._shipper
        if shipper is None:
            return
        self._stopping = True
        self._wake.set()
        shipper.join(timeout if timeout is not None else self.drain_s + 2 * STOP_MARGIN_S)
        if shipper.is_alive():  # pragma: no cover - a writer that hangs past its kill
            logger.error("prediction log shipper did not finish")
        self._shipper = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything accepted so far is in the database (or dropped)."""
        target = self._rows_in + self._burst_rows_in
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(lambda: self._rows_done >= target, timeout)

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
        """Rows this worker accepted that are not in the database yet."""
        with self._progress:
            spooled = self._spooled_rows
        return self._rows_in + self._burst_rows_in - self._rows_taken + spooled

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (None when it is not running)."""
        writer = self._writer
        return writer.process.pid if writer is not None else None

    def spool_backlog(self) -> spool.Pending:
        """What the spool holds that the database does not, all workers (reads the database)."""
        return spool.backlog(self.spool_dir, self.backend.positions())

    # The shipper thread ----------------------------------------------------------------

    def _ship(self) -> None:
        last_start = -math.inf
        last_orphan_check = -math.inf
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                stopping = self._stopping
                self._spool_queue()
                writer = self._writer
                if writer is not None and not writer.alive():
                    self._stop_writer()  # and start another: it goes on from the database
                    writer = None
                now = time.monotonic()
                if writer is None and (stopping or now - last_start >= RESPAWN_EVERY_S):
                    # A writer for our rows, or for a backlog that workers now gone left: it
                    # adopts theirs.
                    wanted = self._spooled_rows > 0
                    if not wanted and not stopping and now - last_orphan_check >= ORPHAN_CHECK_S:
                        last_orphan_check = now
                        wanted = self._orphans_waiting()
                    if wanted:
                        last_start = now
                        writer = self._start_writer()
                if writer is not None:
                    writer.wake()
                self._update_gauges()
                if stopping:
                    return
        finally:
            self._stop_writer()
            self._close_spool()

    def _spool_queue(self) -> None:
        """Append what the queue holds to the spool, in frames of ``FRAME_ROWS`` rows."""
        queue, appender = self._queue, self._appender
        count = len(queue)  # what the request path adds meanwhile waits for the next wake
        if not count or appender is None:
            return
        now = time.time()
        frames: list[bytes] = []
        frame_rows: list[int] = []
        while count:
            taken: list[msgspec.Raw] = []
            rows = 0
            while count and rows < FRAME_ROWS:
                encoded, request_rows = queue.popleft()
                taken.append(encoded)
                rows += request_rows
                count -= 1
            body = self._frame_encoder.encode(taken)
            frames.append(spool.encode_frame(body, rows, len(taken), now))
            frame_rows.append(rows)
        rows = sum(frame_rows)
        size = sum(map(len, frames))
        self._rows_taken += rows
        if not self._room_for(size):
            self._drop(self.metrics.dropped_spool_full, rows, "spool_full")
            self._finished(rows)
            return
        try:
            ends = appender.append(frames, now)
        except OSError as exc:
            self._drop(self.metrics.dropped_error, rows, "write_error")
            logger.error("prediction log: the spool refused %d rows: %s", rows, exc)
            self._finished(rows)
            return
        with self._progress:
            for (seq, end), frame in zip(ends, frame_rows, strict=True):
                self._spooled.append(Spooled(seq, end, frame, now))
            self._spooled_rows += rows

    def _room_for(self, size: int) -> bool:
        """Whether the spool stays within its bound with ``size`` more bytes.

        The folder is measured at most once a second (every worker appends to it, the writers
        delete from it) and estimated in between.
        """
        now = time.monotonic()
        if now - self._disk_checked >= DISK_CHECK_S or self._disk_use + size > self.spool_max_bytes:
            self._disk_use = spool.disk_use(self.spool_dir)
            self._disk_checked = now
        if self._disk_use + size > self.spool_max_bytes:
            return False
        self._disk_use += size
        return True

    def _orphans_waiting(self) -> bool:
        """Whether the spool holds segments of a worker that is gone (its lock is free)."""
        for owner in spool.segments(self.spool_dir):
            if owner != self.owner and spool.lock_is_free(spool.lock_path(self.spool_dir, owner)):
                return True
        return False

    def _update_gauges(self) -> None:
        with self._progress:
            spooled = self._spooled_rows
            oldest_own = self._spooled[0].ts if self._spooled else None
        adopted_rows, adopted_oldest = self._adopted
        memory = self._rows_in + self._burst_rows_in - self._rows_taken
        oldest = min((t for t in (oldest_own, adopted_oldest) if t is not None), default=None)
        self.metrics.queue_depth.set(memory + spooled + adopted_rows)
        self.metrics.lag.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
        self.metrics.spool_bytes.set(self._disk_use)

    def _close_spool(self) -> None:
        appender, self._appender = self._appender, None
        if appender is None:
            return
        with self._progress:
            left = self._spooled_rows
        appender.close()
        if left:
            logger.warning(
                "prediction log: %d rows left in the spool for the next writer",
                left,
                extra={"rows": left, "spool": str(self.spool_dir)},
            )

    # The writer process ----------------------------------------------------------------

    def _start_writer(self) -> _WriterProcess | None:
        assert self._appender is not None
        try:
            writer = _WriterProcess(self.config, self._appender.lock_fd)
        except OSError as exc:
            logger.error("cannot start the prediction log writer: %s", exc)
            return None
        self._writer = writer
        self._reporter = threading.Thread(
            target=self._read_reports, args=(writer,), name="prediction-log-reports", daemon=True
        )
        self._reporter.start()
        return writer

    def _stop_writer(self) -> None:
        """Close the writer's input and wait for it to write what it can and exit."""
        writer, reporter = self._writer, self._reporter
        if writer is None:
            return
        writer.close_input()
        writer.wait(timeout=self.drain_s + STOP_MARGIN_S)
        if reporter is not None:
            reporter.join()  # it reads every report up to the end of the pipe
        writer.close_reports()
        if writer.process.returncode:
            logger.error("prediction log writer exited (status %s)", writer.process.returncode)
        self._adopted = (0, None)
        self._writer = self._reporter = None

    def _finished(self, rows: int) -> None:
        with self._progress:
            self._rows_done += rows
            self._progress.notify_all()

    def _committed(self, seq: int, position: int) -> None:
        """The database has this worker's spool up to ``position`` of segment ``seq``."""
        with self._progress:
            spooled, rows = self._spooled, 0
            while spooled and (spooled[0].seq, spooled[0].end) <= (seq, position):
                rows += spooled.popleft().rows
            self._spooled_rows -= rows
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
        self._adopted = (report.backlog_rows, report.oldest_ts)
        kind = report.kind
        if kind == "committed":
            self.metrics.written.inc(report.rows)
            seq = _SEGMENT_SEQ.search(report.segment)
            if report.own and seq is not None:
                self._committed(int(seq[1]), report.position)
        elif kind in ("malformed", "lost"):
            self.metrics.dropped_error.inc(report.rows)
            logger.error(
                "prediction log: %d rows not written (%s)", report.rows, report.message, extra=where
            )
        elif kind == "failed":
            writer.failing = True
            logger.error(
                "prediction log write failed (the rows wait in the spool): %s",
                report.message,
                extra=where,
            )
        elif kind == "recovered":
            writer.failing = False
            logger.info("prediction log writes recovered", extra=where)
        elif kind == "adopted":
            logger.warning(
                "prediction log: writing %d rows a stopped worker left in the spool (%s)",
                report.rows,
                report.message,
                extra=where,
            )
        elif kind == "warning":
            logger.error("prediction log: %s", report.message, extra=where)
        elif kind == "pruned":
            logger.info("prediction log retention removed %d rows", report.rows, extra=where)
        else:  # prune_failed: retention must never stop the writer
            logger.warning("prediction log retention failed: %s", report.message, extra=where)


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
        spool_dir=settings.data_folder() / spool.FOLDER_NAME,
        spool_max_bytes=settings.prediction_log_spool_max_bytes,
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
