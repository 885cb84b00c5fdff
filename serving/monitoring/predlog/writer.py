"""``python -m serving.monitoring.predlog.writer``: fills the database from the spool.

Each worker starts one (``predlog.log``), passing it the descriptor that holds the worker's spool
lock. It reads the worker's segments (``predlog.spool``), expands the records into rows and
commits them together with how far it read, in one transaction: a writer killed at any moment
leaves the database and the spool in agreement, and the next one goes on from there, so each
row is stored once. Segments of workers that are gone (their lock free: killed, or stopped
with a backlog) are adopted and written the same way. In its own process, at a higher nice
value, it takes only what the cores have to spare: measured in a worker's thread, the database
driver took and dropped the GIL once per row and slowed the answers.

Its stdin carries the ``WriterConfig``, then a byte per spool append (wake up), then the end of
the pipe when the worker stops or dies: it then writes what its worker spooled for at most
``drain_s`` and exits, leaving the rest on disk for the next writer. It ignores SIGINT and
SIGTERM (a terminal or ``kill`` of the group reaches it too): the worker decides when it stops.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import msgspec

from serving.monitoring.predlog import spool
from serving.monitoring.predlog.backends import Backend, Connection, open_backend
from serving.monitoring.predlog.records import Row, expand, expand_burst
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
TRANSACTION_ROWS: Final = 2000
"""Rows per transaction, at most about: bounds how long a commit holds SQLite's write lock."""
ADOPT_EVERY_S: Final = 2.0
IDLE_WAKE_S: Final = 1.0
YIELD_EVERY: Final = 200
"""Requests expanded between two offers of the core (``share_cores``), like the inserts' rows."""


def share_cores() -> None:
    """Offer the core to whatever waits for it, then go on (at once when nothing does).

    At a nice value the writer, once running, keeps its core until the scheduler's next tick
    while a worker that woke up waits for it, and the answers' p99 was made of such waits.
    Offered every couple of hundred rows, the core goes to a waiting worker soon, and the writer
    keeps its share when nothing waits (docs/serving.md, "2026-12-03 (late)").
    """
    os.sched_yield()


T = TypeVar("T")


class Stream:
    """One owner's segments, read in order: the worker's own, or adopted ones."""

    def __init__(self, folder: Path, owner: str, lock_fd: int | None = None) -> None:
        self.folder = folder
        self.owner = owner
        self.lock_fd = lock_fd  # None: our worker's (it holds the lock)
        self.seq = 0
        self.fd: int | None = None
        self.position = 0  # how far the database has the open segment
        self.worker = ""  # host:pid, from the segment's header
        self.backlog_rows = 0  # adopted: rows left (the worker counts its own)
        self.oldest_ts: float | None = None

    @property
    def own(self) -> bool:
        """The worker's own segments (not adopted)."""
        return self.lock_fd is None

    @property
    def segment(self) -> str:
        """The open segment's file name."""
        return spool.segment_name(self.owner, self.seq)

    def next_seq(self) -> int | None:
        """The first segment after the one read last, if any is on disk."""
        later = [seq for seq in spool.segments(self.folder).get(self.owner, []) if seq > self.seq]
        return later[0] if later else None

    def close_segment(self) -> None:
        """Close the open segment."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Writer:
    """Reads the spool, writes rows, reports; one database connection, kept."""

    def __init__(self, config: WriterConfig, inbox_fd: int, reports_fd: int) -> None:
        self.config = config
        self.backend: Backend = open_backend(config.url)
        self.folder = Path(config.spool_dir)
        self.inbox_fd = inbox_fd
        self.reports_fd = reports_fd
        self.conn: Connection | None = None
        self.failing = False
        self.stopping = False  # the worker stopped (or died): no more appends
        self.giving_up = False  # stopping while the database fails: leave the rest on disk
        self.parent = os.getppid()
        self.own = Stream(self.folder, config.owner)
        self.adopted: dict[str, Stream] = {}
        self.decoder = msgspec.msgpack.Decoder(list[LoggedRequest])
        self.encoder = msgspec.msgpack.Encoder()

    # Reports -------------------------------------------------------------------------------

    def report(
        self,
        kind: ReportKind,
        *,
        requests: int = 0,
        rows: int = 0,
        message: str = "",
        segment: str = "",
        position: int = 0,
        own: bool = True,
    ) -> None:
        """Tell the worker (its reporter thread logs and counts); nothing if it is gone."""
        adopted = self.adopted.values()
        report = Report(
            kind,
            requests,
            rows,
            message,
            segment,
            position,
            own,
            backlog_rows=sum(s.backlog_rows for s in adopted),
            oldest_ts=min((s.oldest_ts for s in adopted if s.oldest_ts is not None), default=None),
        )
        with contextlib.suppress(BrokenPipeError):
            _write_frame(self.reports_fd, self.encoder.encode(report))

    # The loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Write what the spool holds as it comes, until the worker stops and it is written."""
        next_prune = time.monotonic() + self.config.prune_interval  # the worker pruned at start
        next_adoption = -math.inf
        deadline = math.inf
        while not self.giving_up:
            now = time.monotonic()
            if self.stopping:
                deadline = min(deadline, now + self.config.drain_s)
                if now > deadline:
                    return
            elif now >= next_adoption:
                self.adopt()
                next_adoption = now + ADOPT_EVERY_S
            busy = self.step(self.own)
            if not self.stopping:
                for stream in list(self.adopted.values()):
                    busy = self.step(stream) or busy
            if now >= next_prune:
                self.prune()
                next_prune = time.monotonic() + self.config.prune_interval
            if busy:
                self.wait(0.0)
            elif self.stopping:
                return  # our worker's spool is written
            else:
                self.wait(min(IDLE_WAKE_S, max(0.0, next_prune - time.monotonic())))

    def wait(self, timeout: float) -> None:
        """Until the worker appends, stops or dies (or ``timeout``)."""
        if self.stopping:
            time.sleep(timeout)
            return
        readable, _, _ = select.select([self.inbox_fd], [], [], timeout)
        if readable and not os.read(self.inbox_fd, 65536):
            self.stopping = True
        if os.getppid() != self.parent:
            self.stopping = True

    def backoff(self, seconds: float) -> None:
        """Sleep between two attempts; cut short when the worker stops."""
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            self.wait(left)

    # One owner's segments --------------------------------------------------------------------

    def step(self, stream: Stream) -> bool:
        """Write the next rows of a stream; False when it has nothing more for now."""
        if stream.fd is None and not self.open_next(stream):
            return False
        assert stream.fd is not None
        # Before the read: a segment is finished for good once the next one exists.
        finished = not stream.own or self.stopping or stream.next_seq() is not None
        try:
            frames = spool.read_frames(stream.fd, stream.position, TRANSACTION_ROWS)
        except spool.SpoolCorruptError as exc:
            if not finished:
                return False  # the worker may still be writing: look again once it is done
            self.discard_rest(stream, str(exc))
            return True
        if frames:
            return self.commit(stream, frames)
        if not finished:
            return False
        if os.fstat(stream.fd).st_size > stream.position:
            self.discard_rest(stream, "a frame cut short (its worker was killed while writing)")
        self.retire(stream)
        return True

    def open_next(self, stream: Stream) -> bool:
        """Open the stream's next segment and find how far the database has it."""
        seq = stream.next_seq()
        if seq is None:
            if not stream.own:
                self.release(stream)
            return False
        path = self.folder / spool.segment_name(stream.owner, seq)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            header = spool.read_frames(fd, 0, 0)
        except spool.SpoolCorruptError:
            header = []
        if not header:  # created an instant ago, or cut short before its first frame ended
            os.close(fd)
            if not stream.own or self.stopping:
                self.report("lost", message=f"{path.name}: no header; deleted")
                path.unlink()
            return False
        name = path.name
        position = self.until_done(lambda conn: self.backend.position(conn, name))
        if position is None:
            os.close(fd)
            return False
        stream.seq, stream.fd, stream.position = seq, fd, position
        stream.worker = msgspec.msgpack.decode(header[0].body, type=spool.SegmentHeader).worker
        if stream.own:  # what a writer before us committed without telling
            self.report("committed", segment=name, position=position)
        return True

    def commit(self, stream: Stream, frames: list[spool.Frame]) -> bool:
        """Store the frames' rows and the new position in one transaction."""
        expanded = self.expand(stream, frames)
        rows = sum(map(len, expanded))
        segment, start, end = stream.segment, stream.position, frames[-1].end

        def transaction(conn: Connection) -> bool:
            if expanded:
                self.backend.insert_requests(conn, expanded, share_cores)
            if not self.backend.advance(conn, segment, start, end):
                conn.rollback()
                return False
            conn.commit()
            return True

        moved = self.until_done(transaction, rows)
        if moved is None:
            return False
        if not moved:  # never while the locks hold: read on from where the database is
            self.report("warning", message=f"{segment} was not at byte {start} in the database")
            stream.close_segment()
            stream.seq -= 1
            return True
        stream.position = end
        if not stream.own:
            stream.backlog_rows = max(0, stream.backlog_rows - sum(f.rows for f in frames))
            stream.oldest_ts = frames[-1].ts
        requests = sum(f.requests for f in frames)
        self.report(
            "committed",
            requests=requests,
            rows=rows,
            segment=segment,
            position=end,
            own=stream.own,
        )
        return True

    def expand(self, stream: Stream, frames: list[spool.Frame]) -> list[list[Row]]:
        """The rows of the frames' requests, one list per request (a burst gives several).

        A record that cannot be expanded is reported: that would be a bug in the worker, not a
        database problem, so the rest is still written.
        Inputs are stored if the setting says so now and the record has them.
        """
        expanded: list[list[Row]] = []
        for frame in frames:
            if not frame.requests:
                continue  # the segment's header
            try:
                requests = self.decoder.decode(frame.body)
            except msgspec.DecodeError as exc:  # its checksum held: written so by a bug
                self.report("malformed", requests=frame.requests, rows=frame.rows, message=str(exc))
                continue
            for n, request in enumerate(requests, 1):
                if not n % YIELD_EVERY:
                    share_cores()
                with_inputs = self.config.record_inputs and bool(request.body)
                try:
                    if request.request_ids:
                        expanded.extend(expand_burst(request, worker=stream.worker))
                    else:
                        expanded.append(
                            expand(request, with_inputs=with_inputs, worker=stream.worker)
                        )
                except ValueError as exc:
                    self.report("malformed", requests=1, rows=len(request.labels), message=str(exc))
        return expanded

    def discard_rest(self, stream: Stream, why: str) -> None:
        """A finished segment's bytes that cannot be read: counted, then skipped."""
        assert stream.fd is not None
        size = os.fstat(stream.fd).st_size
        rows = spool.rows_at(stream.fd, stream.position)  # the frames after it are unknown
        lost = size - stream.position
        self.report(
            "lost",
            rows=rows,
            message=f"{stream.segment}: {lost} bytes from byte {stream.position} ({why})",
        )
        stream.position = size

    def retire(self, stream: Stream) -> None:
        """A finished segment read to its end: delete it, then its position."""
        stream.close_segment()
        segment = stream.segment
        with contextlib.suppress(FileNotFoundError):
            (self.folder / segment).unlink()
        # Killed right here, a writer leaves a position naming a file that is gone: harmless.
        self.attempt(lambda conn: self.backend.forget(conn, segment))

    # Adoption --------------------------------------------------------------------------------

    def adopt(self) -> None:
        """Take the segments of workers that are gone (their lock is free)."""
        owners = spool.segments(self.folder)
        for owner in spool.lock_owners(self.folder):
            if owner not in owners and owner != self.own.owner:
                self.remove_lock(owner)
        for owner in owners:
            if owner == self.own.owner or owner in self.adopted:
                continue
            fd = spool.try_lock(spool.lock_path(self.folder, owner))
            if fd is None:
                continue  # its worker or writer runs, or another writer adopted it
            positions, error = self.attempt(lambda _: self.backend.positions())
            if error is not None or positions is None:
                os.close(fd)  # no use while the database fails: try again later
                return
            stream = Stream(self.folder, owner, fd)
            self.adopted[owner] = stream
            # Listed again under the lock: a writer that adopted it before may have finished.
            names = [
                spool.segment_name(owner, seq) for seq in spool.segments(self.folder).get(owner, [])
            ]
            left = [spool.pending(self.folder / name, positions.get(name, 0)) for name in names]
            stream.backlog_rows = sum(p.rows for p in left)
            stream.oldest_ts = min((p.oldest_ts for p in left if p.oldest_ts), default=None)
            if names:
                self.report(
                    "adopted",
                    rows=stream.backlog_rows,
                    message=f"{owner}: {len(names)} segments, {sum(p.bytes for p in left)} bytes",
                )

    def remove_lock(self, owner: str) -> None:
        """A lock file left by a worker that was killed before it spooled anything."""
        path = spool.lock_path(self.folder, owner)
        try:
            fd = spool.try_lock(path, create=False)
        except FileNotFoundError:
            return
        if fd is not None:
            if owner not in spool.segments(self.folder):  # it may have spooled since we looked
                path.unlink(missing_ok=True)
            os.close(fd)

    def release(self, stream: Stream) -> None:
        """An adopted owner with nothing left: remove its lock file, then let go of it."""
        assert stream.lock_fd is not None
        with contextlib.suppress(FileNotFoundError):
            spool.lock_path(self.folder, stream.owner).unlink()
        os.close(stream.lock_fd)
        del self.adopted[stream.owner]
        self.report("committed", own=False)  # the backlog it counted is gone

    # The database ----------------------------------------------------------------------------

    def until_done(self, work: Callable[[Connection], T], rows: int = 0) -> T | None:
        """Run ``work`` (one transaction), retrying with a backoff while the database fails.

        Returns its result, or None when the worker stopped with the database still failing:
        what was not written stays in the spool for the next writer.
        """
        backoff = RETRY_FIRST_S
        while True:
            result, error = self.attempt(work)
            if error is None:
                if self.failing:
                    self.failing = False
                    self.report("recovered")
                return result
            if not self.failing:
                self.failing = True
                self.report("failed", rows=rows, message=error)
            if self.stopping:
                self.giving_up = True
                return None
            self.backoff(backoff)
            backoff = min(backoff * 2, RETRY_MAX_S)

    def attempt(self, work: Callable[[Connection], T]) -> tuple[T | None, str | None]:
        """Run ``work`` once: its result, or the first line of the error.

        After an error the connection is closed; the next attempt opens a new one.
        """
        try:
            if self.conn is None:
                self.conn = self.backend.connect()
            return work(self.conn), None
        except Exception as exc:  # any driver error: keep the rows, retry, never crash
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
            self.conn = None
            text = str(exc).strip()
            return None, text.splitlines()[0] if text else type(exc).__name__

    def prune(self) -> None:
        """Retention: delete rows older than the limit and beyond the newest ``max_rows``."""
        config = self.config
        if config.max_age_s is None and config.max_rows is None:
            return  # no connection needed
        deleted, error = self.attempt(
            lambda conn: self.backend.retain(
                conn, max_age_s=config.max_age_s, max_rows=config.max_rows
            )
        )
        if error is not None:  # retention must never stop the writer
            self.report("prune_failed", message=error)
        elif deleted:
            self.report("pruned", rows=deleted)


def _lower_priority(config: WriterConfig) -> None:
    """Give the answers the cores first (best effort: a sandbox may forbid it).

    A nice value still lets the writer take a core from a batch being answered; under
    SCHED_IDLE (opt-in) it runs only on a core nothing else wants, and falls behind under
    sustained load (docs/monitoring.md, "Priority").
    """
    if config.niceness > 0:
        with contextlib.suppress(OSError):
            os.nice(min(config.niceness, NICEST))
    if config.idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def main() -> int:
    """Run until the worker stops and its spool is written (or left for the next writer)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Reports get their own descriptor; anything printed by mistake goes to stderr instead of
    # corrupting them.
    reports_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    inbox_fd = sys.stdin.fileno()
    first = read_frame(inbox_fd)
    if first is None:
        return 0
    config = msgspec.msgpack.decode(first, type=WriterConfig)
    _lower_priority(config)
    writer = Writer(config, inbox_fd, reports_fd)
    # What the imports and the setup made lives as long as the process: out of the collector's
    # way, a full collection looks at the few objects made since, not at every module's, and
    # holds the core that much shorter (docs/serving.md, "2026-12-03 (late)").
    gc.freeze()
    try:
        writer.run()
    finally:
        if writer.conn is not None:
            with contextlib.suppress(Exception):
                writer.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
