"""``python -m loadtests.bench.logflood``: whether the prediction log keeps every row of a flood.

Issue 14's second scenario: one server (the production one, default workers), wrk sending
1,000-patient batches at 4 connections for 15 s, then single patients at 64 connections for
10 s. Then it waits for the log to catch up and prints, as one JSON line, the patients answered,
the predictions the server counted, the rows stored in the database, the rows the log counted
as dropped, the backlog when the load stopped and the seconds it took to drain. The server's
data folder (the SQLite log and its spool) is private and deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import msgspec

from loadtests.bench.http_bench import (
    BATCH_PATIENTS,
    PREDICT_EXPECT,
    LogProgress,
    bodies,
    check_bodies,
    log_progress,
    metrics_text,
)
from loadtests.bench.server import HOST, ServerProcess
from loadtests.bench.wrk import WrkResult, run_wrk

POLL_S: Final = 0.2


class Phase(msgspec.Struct, frozen=True):
    """One wrk run of the flood."""

    name: str
    connections: int
    seconds: float
    patients_answered: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    failures: int


class FloodResult(msgspec.Struct, frozen=True):
    """What the flood did to the log."""

    phases: list[Phase]
    patients_answered: int
    """Counted by wrk: answers received (requests cut off at the end are not)."""
    server_predictions: int
    """Counted by the server (``drugclf_predictions_total``): every patient it answered."""
    rows_stored: int
    rows_dropped: int
    backlog_rows_at_end: int
    """The log's queue-depth gauge when the load stopped (what it counts depends on the code)."""
    drain_s: float | None
    """Seconds from the end of the load until the gauge read 0 and the count stopped moving."""
    load_before: float
    load_after: float


def _phase(name: str, result: WrkResult, connections: int, patients_per_request: int) -> Phase:
    return Phase(
        name=name,
        connections=connections,
        seconds=result.duration_us / 1e6,
        patients_answered=(result.answers - result.bad) * patients_per_request,
        requests_per_s=round(result.requests_per_s, 1),
        p50_ms=round(result.p50_us / 1000, 2),
        p99_ms=round(result.p99_us / 1000, 2),
        failures=result.failures,
    )


def wait_for_drain(port: int, timeout_s: float) -> tuple[float | None, LogProgress | None]:
    """Seconds until the log's gauge is 0 and its written count steady (None: timed out)."""
    started = time.monotonic()
    last = log_progress(port)
    while last is not None and time.monotonic() - started < timeout_s:
        time.sleep(POLL_S)
        now = log_progress(port)
        if now is None:
            return None, None
        if now.queued == 0 and now.written == last.written:
            return time.monotonic() - started - POLL_S, now
        last = now
    return None, last


def server_predictions(port: int) -> int:
    """The patients the server answered, summed over classes and workers."""
    text = metrics_text(port)
    lines = [line for line in text.splitlines() if line.startswith("drugclf_predictions_total")]
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in lines))


def stored_rows(data_dir: Path) -> int:
    """Rows in the server's SQLite prediction log."""
    with sqlite3.connect(data_dir / "predictions.db") as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()
    return int(count)


def run_flood(args: argparse.Namespace) -> FloodResult:
    """Start a server, flood it, wait for the log, count."""
    data_dir = Path(tempfile.mkdtemp(prefix="drugclf-flood-data-"))
    batch = bodies(seed=2, count=4, batch_size=BATCH_PATIENTS)
    single = bodies(seed=1, count=200)
    load_before = os.getloadavg()[0]
    try:
        with ServerProcess(
            args.artifacts_dir,
            workers=args.workers,
            bench_routes=False,
            extra_env={"DRUGCLF_DATA_DIR": str(data_dir)},
            log_path=args.server_log,
        ) as server:
            check_bodies(server.port, "/predict", batch[:1], batch=True)
            check_bodies(server.port, "/predict", single[:1], batch=False)
            url = f"http://{HOST}:{server.port}/predict"
            before = log_progress(server.port)
            phases = []
            for name, connections, seconds, sent, size in (
                ("1,000-patient batches", args.batch_connections, args.batch_seconds, batch, 1000),
                ("single patients", args.single_connections, args.single_seconds, single, 1),
            ):
                result = run_wrk(
                    url,
                    connections=connections,
                    duration_s=seconds,
                    threads=min(2, connections),
                    method="POST",
                    bodies=sent,
                    expect=PREDICT_EXPECT,
                )
                phases.append(_phase(name, result, connections, size))
            at_end = log_progress(server.port)
            drain_s, after = wait_for_drain(server.port, args.drain_timeout)
            predictions = server_predictions(server.port)
            rows = stored_rows(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    dropped = (after.dropped if after else 0.0) - (before.dropped if before else 0.0)
    return FloodResult(
        phases=phases,
        # The two bodies checked before the flood are in the log too.
        patients_answered=sum(p.patients_answered for p in phases) + BATCH_PATIENTS + 1,
        server_predictions=predictions,
        rows_stored=rows,
        rows_dropped=round(dropped),
        backlog_rows_at_end=round(at_end.queued) if at_end else 0,
        drain_s=None if drain_s is None else round(drain_s, 2),
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.logflood", description=__doc__)
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--batch-seconds", type=float, default=15.0)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--single-seconds", type=float, default=10.0)
    parser.add_argument("--single-connections", type=int, default=64)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--server-log", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the flood once and print its result as one JSON line."""
    result = run_flood(parse_args(argv))
    print(msgspec.json.encode(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
