"""The prediction-log writer's CPU per single-patient request, phase by phase (a CLI).

Builds the records a worker spools for ``--requests`` single-patient `/predict` answers (the
load tests' patients, encoded as ``PredictionLog.record`` encodes them), then times, on one
SQLite connection kept open as the writer keeps it: decoding the frame, expanding the rows,
inserting them (the backend's own ``insert_requests``) and committing. Medians of ``--repeats``.

    .venv/bin/python -m scripts.writer_cost [--requests 2000] [--repeats 7]

Figures and what they are for: docs/serving.md, "2026-12-03 (night)" (issue 18's p99).
"""

# ruff: noqa: T201 - a CLI that prints its figures
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np

from loadtests.bench.http_bench import bodies
from serving.monitoring.predlog.backends import open_backend
from serving.monitoring.predlog.records import expand
from serving.monitoring.predlog.wire import LoggedRequest

VERSION = "20261203-153212-f2bdf1"


def per_request_us(work: Callable[[], object], requests: int, repeats: int) -> float:
    """Median over ``repeats`` of ``work``'s time, per request, in µs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(times)


def main() -> None:
    """Time each phase and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n = args.requests
    probabilities = np.array([[0.1, 0.2, 0.3, 0.2, 0.2]], dtype=np.float32).tobytes()
    patients = bodies(seed=1, count=200)
    records = [
        LoggedRequest(
            time.time(), f"req-{i:08d}", VERSION, patients[i % 200], ["DrugY"], probabilities, 0.4
        )
        for i in range(n)
    ]
    frame = msgspec.msgpack.encode(records)
    decoder = msgspec.msgpack.Decoder(list[LoggedRequest])
    decoded = decoder.decode(frame)
    rows = [expand(r, with_inputs=True, worker="host:1") for r in decoded]
    with tempfile.TemporaryDirectory(prefix="drugclf-writer-cost-") as tmp:
        backend = open_backend(f"sqlite:///{Path(tmp) / 'log.db'}")
        backend.create_schema()
        with backend.session() as conn:

            def insert() -> None:
                backend.insert_requests(conn, rows)
                conn.rollback()

            def insert_and_commit() -> None:
                backend.insert_requests(conn, rows)
                conn.commit()

            figures = {
                "decode the frame": per_request_us(lambda: decoder.decode(frame), n, args.repeats),
                "expand the rows": per_request_us(
                    lambda: [expand(r, with_inputs=True, worker="host:1") for r in decoded],
                    n,
                    args.repeats,
                ),
                "insert (rolled back)": per_request_us(insert, n, args.repeats),
                "insert and commit": per_request_us(insert_and_commit, n, args.repeats),
            }
    print(f"| Phase ({n:,} single-patient requests, SQLite) | µs per request |")
    print("|---|---|")
    for phase, us in figures.items():
        print(f"| {phase} | {us:.2f} |")


if __name__ == "__main__":
    main()
