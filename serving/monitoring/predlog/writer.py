"""``python -m serving.monitoring.predlog.writer``: writes one worker's prediction log.

Each worker starts one (``predlog.log``) and sends it frames of answered requests on its
stdin; it expands them into rows, commits one transaction per frame and reports back on its
stdout. Measured in a worker's own writer thread, the database's Python driver took and dropped
the GIL once per row (thousands of hand-offs per large batch) and slowed the answers; in its own
process, at a higher nice value, it takes only what the cores have to spare.

It ignores SIGINT and SIGTERM (a terminal or ``kill`` of the group would otherwise cut it off
before the worker shipped its last frames): it stops when the worker closes its stdin, after
writing everything, or on SIGUSR1, which the worker sends when the database keeps failing.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from types import FrameType
from typing import Final

import msgspec

from serving.monitoring.predlog.backends import Backend, Connection, open_backend
from serving.monitoring.predlog.records import Row, expand
from serving.monitoring.predlog.wire import (
    LoggedRequest,
    Report,
    ReportKind,
    WriterConfig,
    read_frame,
)
from serving.monitoring.predlog.wire import write_frame as _write_frame

RETRY_MAX_S: Final = 5.0
RETRY_FIRST_S: Final = 0.25
NICEST: Final = 19


class GiveUpError(BaseException):
    """SIGUSR1: the worker is stopping and the database still fails: stop retrying.

    A BaseException, so that no ``except Exception`` around a database call swallows it.
    """


class _GiveUp:
    requested = False
    sleeping = False
    parent = 0  # the worker's pid: a new parent means the worker died without telling us

    @classmethod
    def due(cls) -> bool:
        return cls.requested or os.getppid() != cls.parent


def _on_give_up(signum: int, frame: FrameType | None) -> None:
    _GiveUp.requested = True
    if _GiveUp.sleeping:  # only a backoff's sleep is cut short; a write finishes first
        raise GiveUpError


class Writer:
    """Reads frames, writes rows, reports; one connection, kept across frames."""

    def __init__(self, config: WriterConfig, frames_fd: int, reports_fd: int) -> None:
        self.config = config
        self.backend: Backend = open_backend(config.url)
        self.frames_fd = frames_fd
        self.reports_fd = reports_fd
        self.conn: Connection | None = None
        self.failing = False
        self.decoder = msgspec.msgpack.Decoder(list[LoggedRequest])
        self.encoder = msgspec.msgpack.Encoder()

    def report(self, kind: ReportKind, requests: int = 0, rows: int = 0, message: str = "") -> None:
        """Tell the worker (its reporter thread logs and counts); nothing if it is gone."""
        with contextlib.suppress(BrokenPipeError):
            _write_frame(
                self.reports_fd, self.encoder.encode(Report(kind, requests, rows, message))
            )

    def run(self) -> None:
        """Until the worker closes the pipe: read a frame, write it, report."""
        last_prune = time.monotonic()  # the worker applied retention when it started
        while True:
            wait = max(0.0, last_prune + self.config.prune_interval - time.monotonic())
            readable, _, _ = select.select([self.frames_fd], [], [], wait)
            if not readable:
                self.prune()
                last_prune = time.monotonic()
                continue
            frame = read_frame(self.frames_fd)
            if frame is None:
                return  # the worker stopped: everything it sent is written
            requests = self.decoder.decode(frame)
            expanded = self.expand_frame(requests)
            rows = sum(map(len, expanded))
            if rows:
                self.write_until_done(expanded, len(requests), rows)
            else:
                self.report("written", len(requests), 0)

    def expand_frame(self, requests: list[LoggedRequest]) -> list[list[Row]]:
        """The rows of each request of the frame; one that cannot be expanded is reported.

        That would be a bug in the worker, not a database problem: the rest is still written.
        """
        expanded: list[list[Row]] = []
        for request in requests:
            try:
                expanded.append(
                    expand(
                        request, with_inputs=self.config.record_inputs, worker=self.config.worker
                    )
                )
            except ValueError as exc:
                self.report("malformed", 1, len(request.labels), str(exc))
        return expanded

    def write_until_done(self, expanded: list[list[Row]], requests: int, rows: int) -> None:
        """Commit the rows, retrying with a backoff while the database fails.

        No frame is read meanwhile: the pipe fills, the worker's queue fills, and new records
        are dropped there (counted), so a database outage never grows this process's memory.
        """
        backoff = RETRY_FIRST_S
        while True:
            error = self.write(expanded)
            if error is None:
                if self.failing:
                    self.failing = False
                    self.report("recovered")
                self.report("written", requests, rows)
                return
            if not self.failing:
                self.failing = True
                self.report("failed", requests, rows, error)
            if not _GiveUp.due():
                try:
                    _GiveUp.sleeping = True
                    time.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                except GiveUpError:
                    pass
                finally:
                    _GiveUp.sleeping = False
            error = self.write(expanded)  # one last attempt before the worker exits
            if error is None:
                self.report("written", requests, rows)
            else:
                self.report("lost", requests, rows, error)
            raise GiveUpError

    def write(self, expanded: list[list[Row]]) -> str | None:
        """One transaction; None on success, else the error (the connection is reopened)."""
        try:
            if self.conn is None:
                self.conn = self.backend.connect()
            self.backend.insert_requests(self.conn, expanded)
            self.conn.commit()
        except Exception as exc:  # any driver error: keep the rows, retry, never crash
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
            self.conn = None
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None

    def prune(self) -> None:
        """Retention: delete rows older than the limit and beyond the newest ``max_rows``."""
        config = self.config
        if config.max_age_s is None and config.max_rows is None:
            return  # no connection needed
        try:
            if self.conn is None:
                self.conn = self.backend.connect()
            deleted = self.backend.retain(
                self.conn, max_age_s=config.max_age_s, max_rows=config.max_rows
            )
        except Exception as exc:  # retention must never stop the writer
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.rollback()
            self.report("prune_failed", message=str(exc))
            return
        if deleted:
            self.report("pruned", rows=deleted)


def _lower_priority(config: WriterConfig) -> None:
    """Give the answers the cores first (best effort: a sandbox may forbid it).

    A nice value still lets the writer take a core from a batch being answered; under
    SCHED_IDLE (opt-in) it runs only on a core nothing else wants, and falls behind under
    sustained load. Measured in docs/monitoring.md ("Priority").
    """
    if config.niceness > 0:
        with contextlib.suppress(OSError):
            os.nice(min(config.niceness, NICEST))
    if config.idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def main() -> int:
    """Run until the worker closes the pipe; exit status 0, or 1 if rows were lost."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, _on_give_up)
    _GiveUp.parent = os.getppid()
    # Reports get their own descriptor; anything printed by mistake goes to stderr instead of
    # corrupting them.
    reports_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    frames_fd = sys.stdin.fileno()
    first = read_frame(frames_fd)
    if first is None:
        return 0
    config = msgspec.msgpack.decode(first, type=WriterConfig)
    _lower_priority(config)
    writer = Writer(config, frames_fd, reports_fd)
    try:
        writer.run()
    except GiveUpError:
        return 1
    finally:
        if writer.conn is not None:
            with contextlib.suppress(Exception):
                writer.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
