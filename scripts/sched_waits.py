"""Who holds the cores while `/predict`'s workers wait for one: `perf sched`, servers interleaved.

For each named set of settings a server is started (2 workers, logs on, as in production) and
sent single patients by wrk; during the run `perf sched record` captures every context switch.
From `perf sched timehist` it takes each time a worker thread waited more than 1 ms for a core
after it woke (its run-queue delay) and adds up what ran on that core meanwhile: how much of it
was the prediction log's writer, and whose the rest was. Then a run without perf (``--seconds``)
gives the plain p50 and p99.
Rounds alternate the order of the settings; the table gives medians.

    .venv/bin/python -m scripts.sched_waits ARTIFACTS_DIR [--rounds 6] [--connections 16]
        [--setting NAME KEY=VALUE ...]

Needs `perf` and the right to trace the scheduler (root). Name two settings or more, e.g.
`--setting default --setting nice19 DRUGCLF_PREDICTION_LOG_WRITER_NICENESS=19`.
Figures and what they showed: docs/serving.md, "2026-12-03 (late)".
"""

# ruff: noqa: T201 - a CLI that prints its table
from __future__ import annotations

import argparse
import bisect
import itertools
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from loadtests.bench.http_bench import bodies, targets
from loadtests.bench.server import ServerProcess
from loadtests.bench.wrk import WrkResult, run_wrk
from scripts.writer_tail import writers

LONG_WAIT_S = 0.001
TRACE_S = 3.0
# perf sched timehist: time, [cpu], name[tid/pid] (or name[pid]), wait, sch delay, run time (ms)
_LINE = re.compile(
    r"^\s*([\d.]+)\s+\[(\d+)\]\s+.*?\[(\d+)(?:/(\d+))?\]\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$"
)


WRITER, SAME_WORKER, OTHER_WORKER, WRK, OTHER = (
    "log writer",
    "the waiting worker's other threads",
    "the other worker",
    "wrk",
    "anything else (kernel threads, perf, the server's main process)",
)


@dataclass(frozen=True)
class Waits:
    """One trace: the workers' waits over ``LONG_WAIT_S``, and who had their cores meanwhile."""

    long_waits_ms: float
    held_ms: dict[str, float]
    """CPU time on the waiting thread's core during its wait, by who ran (the categories)."""
    writer_cpu_ms: float

    @property
    def writer_within_ms(self) -> float:
        """The log writers' CPU time inside the long waits."""
        return self.held_ms.get(WRITER, 0.0)


def _who(pid: int, name: str, waiting: int, workers: set[int], writers: set[int]) -> str:
    """The category of a task that ran while worker ``waiting`` waited."""
    if pid in writers:
        return WRITER
    if pid == waiting:
        return SAME_WORKER
    if pid in workers:
        return OTHER_WORKER
    return WRK if name.startswith("wrk") else OTHER


def long_waits(timehist: Iterable[str], workers: set[int], writers: set[int]) -> Waits:
    """Sum the workers' long run-queue waits and who ran on those cores meanwhile."""
    runs: dict[int, list[tuple[float, float, int, int, str]]] = defaultdict(list)
    waits: list[tuple[int, float, float, int, int]] = []  # cpu, start, end, tid, pid
    writer_cpu = 0.0
    for line in timehist:
        match = _LINE.match(line)
        if match is None:
            continue
        end, cpu, tid = float(match[1]), int(match[2]), int(match[3])
        pid = int(match[4] or match[3])
        delay, ran = float(match[6]) / 1000, float(match[7]) / 1000
        started = end - ran
        name = line[match.end(2) + 1 : match.start(3)].strip().rstrip("[")
        runs[cpu].append((started, end, tid, pid, name))
        if pid in writers:
            writer_cpu += ran
        elif pid in workers and delay > LONG_WAIT_S:
            waits.append((cpu, started - delay, started, tid, pid))
    for on_cpu in runs.values():
        on_cpu.sort()  # the runs on one core follow each other
    held: dict[str, float] = defaultdict(float)
    for cpu, start, end, tid, pid in waits:
        on_cpu = runs[cpu]
        at = max(0, bisect.bisect_left(on_cpu, (start,)) - 1)
        for r_start, r_end, r_tid, r_pid, name in itertools.islice(on_cpu, at, None):
            if r_start >= end:
                break
            if r_end <= start or r_tid == tid:
                continue
            who = _who(r_pid, name, pid, workers, writers)
            held[who] += (min(end, r_end) - max(start, r_start)) * 1000
    total = sum(end - start for _, start, end, _, _ in waits)
    return Waits(total * 1000, dict(held), writer_cpu * 1000)


def _processes(server: ServerProcess) -> tuple[set[int], set[int]]:
    """The server's workers and its log writers (the main process is neither)."""
    assert server.process is not None
    children = psutil.Process(server.process.pid).children(recursive=True)
    log_writers = set(writers(server))
    return {p.pid for p in children} - log_writers, log_writers


def _traced_run(server: ServerProcess, url: str, payloads: list[bytes], conns: int) -> Waits:
    workers, writers = _processes(server)
    done: list[WrkResult] = []
    load = threading.Thread(
        target=lambda: done.append(
            run_wrk(
                url, connections=conns, duration_s=TRACE_S + 1.5, method="POST", bodies=payloads
            )
        )
    )
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "sched.data"
        load.start()
        time.sleep(0.7)
        record = ["perf", "sched", "record", "-o", str(trace), "--", "sleep", str(TRACE_S)]
        recorded = subprocess.run(record, capture_output=True, text=True, check=False)  # noqa: S603
        load.join()
        if recorded.returncode:  # most often: no right to trace the scheduler (not root)
            raise SystemExit(f"perf sched record failed: {recorded.stderr.strip()[-300:]}")
        show = ["perf", "sched", "timehist", "-i", str(trace)]
        text = subprocess.run(show, capture_output=True, text=True, check=True).stdout  # noqa: S603
    return long_waits(text.splitlines(), workers, writers)


def main() -> None:
    """Run the rounds and print the medians per setting."""
    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--setting", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"))
    args = parser.parse_args()
    settings: dict[str, dict[str, str]] = {}
    for name, *env in args.setting or []:
        if bad := [kv for kv in env if "=" not in kv]:
            raise SystemExit(f"--setting {name}: {', '.join(bad)} is not KEY=VALUE")
        settings[name] = dict(kv.split("=", 1) for kv in env)
    if len(settings) < 2:
        raise SystemExit("name at least two --setting to compare")
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (Debian: linux-perf)")
    target = next(t for t in targets(bodies(seed=1, count=200)) if t.key == "predict")
    rows: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    holders: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for number in range(args.rounds):
        names = list(settings) if number % 2 == 0 else list(settings)[::-1]
        for name in names:
            with ServerProcess(args.artifacts.resolve(), workers=2, extra_env=settings[name]) as s:
                url = f"{s.base_url}{target.path}"
                run_wrk(url, connections=args.connections, duration_s=1.0, method="POST",
                        bodies=target.bodies)  # fmt: skip
                waits = _traced_run(s, url, target.bodies, args.connections)
                plain = run_wrk(url, connections=args.connections, duration_s=args.seconds,
                                method="POST", bodies=target.bodies)  # fmt: skip
            for who, held in waits.held_ms.items():
                holders[name][who] += held
            rows[name].append(
                (
                    waits.long_waits_ms,
                    waits.writer_within_ms,
                    waits.writer_cpu_ms,
                    plain.requests_per_s,
                    plain.p50_us,
                    plain.p99_us,
                )
            )
    print(
        f"| Setting | worker waits > 1 ms (ms per {TRACE_S:.0f} s) | writer's CPU within them"
        f" | writer's CPU | requests/s | p50 µs | p99 µs (medians of {args.rounds}) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, values in rows.items():
        waits_ms, within, cpu, rate, p50, p99 = (
            statistics.median(c) for c in zip(*values, strict=True)
        )
        print(
            f"| {name} | {waits_ms:.0f} | {within:.1f} ms | {cpu:.0f} ms | {rate:,.0f} | {p50:,.0f}"
            f" | {p99:,.0f} |"
        )
    print("\nWho had the waiting thread's core during those waits (all rounds):\n")
    categories = (WRITER, SAME_WORKER, OTHER_WORKER, WRK, OTHER)
    print(f"| Setting | {' | '.join(categories)} |")
    print(f"|---|{'---|' * len(categories)}")
    for name, held_by in holders.items():
        total = sum(held_by.values()) or 1.0
        shares = " | ".join(f"{held_by.get(who, 0.0) / total:.0%}" for who in categories)
        print(f"| {name} | {shares} |")


if __name__ == "__main__":
    main()
