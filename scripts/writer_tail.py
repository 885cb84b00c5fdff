"""How much of `/predict`'s tail is the log writer's: one server, writer states interleaved.

One server (2 workers, access and prediction logs on, as in production) answers wrk runs of
single patients while its log writer processes are, in turn: as configured (nice 10),
``SCHED_IDLE``, and stopped (``SIGSTOP``; ``SIGCONT`` after, so nothing is lost: the spool holds
what it did not write meanwhile). Rounds alternate the order, so a machine that gets busier or
quieter affects every state alike; the table gives medians.

    .venv/bin/python -m scripts.writer_tail ARTIFACTS_DIR [--connections 1 16] [--rounds 4]

Linux only (``SCHED_IDLE``). Figures and what they showed: docs/serving.md, "2026-12-03 (night)".
"""

# ruff: noqa: T201 - a CLI that prints its table
from __future__ import annotations

import argparse
import os
import signal
import statistics
from pathlib import Path

import psutil

from loadtests.bench.http_bench import bodies, targets
from loadtests.bench.server import ServerProcess
from loadtests.bench.wrk import run_wrk

STATES = ("configured", "idle", "stopped")
WRITER_MODULE = "serving.monitoring.predlog.writer"


def writers(server: ServerProcess) -> list[int]:
    """The server's prediction-log writer processes."""
    assert server.process is not None
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [p.pid for p in children if WRITER_MODULE in " ".join(p.cmdline())]


def put(pids: list[int], state: str, configured: dict[int, tuple[int, int]]) -> None:
    """Set every writer to ``state``; ``configured`` holds each one's own policy and nice."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP if state == "stopped" else signal.SIGCONT)
        policy, nice = configured[pid]
        if state == "idle":
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.sched_setscheduler(pid, policy, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, pid, nice)


def main() -> None:
    """Run the rounds and print the medians per state and connection count."""
    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    target = next(t for t in targets(bodies(seed=1, count=200)) if t.key == "predict")
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    with ServerProcess(args.artifacts.resolve(), workers=2) as server:
        url = f"{server.base_url}{target.path}"
        run_wrk(url, connections=16, duration_s=1.0, method="POST", bodies=target.bodies)
        pids = writers(server)
        if not pids:
            raise SystemExit("no prediction-log writer is running (is the log on?)")
        configured = {
            pid: (os.sched_getscheduler(pid), os.getpriority(os.PRIO_PROCESS, pid)) for pid in pids
        }
        try:
            for number in range(args.rounds):
                order = STATES if number % 2 == 0 else STATES[::-1]
                for state in order:
                    put(pids, state, configured)
                    for connections in args.connections:
                        run = run_wrk(
                            url,
                            connections=connections,
                            duration_s=args.seconds,
                            method="POST",
                            bodies=target.bodies,
                        )
                        if run.failures:
                            raise SystemExit(f"{run.failures} failed answers ({state})")
                        results.setdefault((state, connections), []).append(
                            (run.requests_per_s, run.p50_us, run.p99_us)
                        )
        finally:
            put(pids, "configured", configured)
    print(f"| Writer | Connections | requests/s | p50 µs | p99 µs (median of {args.rounds}) |")
    print("|---|---|---|---|---|")
    for (state, connections), rows in sorted(results.items(), key=lambda kv: kv[0][1]):
        rate, p50, p99 = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"| {state} | {connections} | {rate:,.0f} | {p50:,.0f} | {p99:,.0f} |")


if __name__ == "__main__":
    main()
