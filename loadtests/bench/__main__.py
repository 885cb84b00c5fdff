"""``python -m loadtests.bench``: measure everything side by side, print and write the report.

Order matters on a 2-core machine: the in-process timings run first with no server up, then the
HTTP runs against one server, then the scenarios, each on its own server.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from drugclf.artifact import ArtifactError, read_metadata
from drugclf.registry import Registry
from loadtests.bench.http_bench import CONNECTIONS, run_http
from loadtests.bench.inprocess import run_inprocess
from loadtests.bench.pinned import run_pinned
from loadtests.bench.report import Report, Settings, now, render, total_failures
from loadtests.bench.scenarios import ScenarioError, ScenarioResult, run_scenario, scenarios
from loadtests.bench.server import ServerError, ServerProcess
from loadtests.bench.stats import Spread
from loadtests.bench.wrk import WrkError, wrk_path

PARTS = ("inprocess", "http", "pinned", "scenarios")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``make bench`` passes the Makefile's variables)."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__)
    parser.add_argument(
        "--artifacts-dir",
        type=Path,
        default=Path(os.environ.get("DRUGCLF_ARTIFACTS_DIR", "artifacts")),
        help="registry whose current version is benchmarked",
    )
    parser.add_argument("--data", type=Path, default=Path("data/drug200.csv"))
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=Path(os.environ.get("DRUGCLF_RUNS_DIR", "runs")),
        help="training runs (where the fitted pipeline is)",
    )
    parser.add_argument("--output", type=Path, help="write the Markdown report here")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of every figure")
    parser.add_argument(
        "--workers", type=int, default=None, help="server workers (default: the server's own)"
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--connections", type=int, nargs="+", default=list(CONNECTIONS), help="wrk connections"
    )
    parser.add_argument(
        "--skip", nargs="+", choices=PARTS, default=[], help="parts of the benchmark to skip"
    )
    parser.add_argument("--quick", action="store_true", help="tiny runs (tests, trying it out)")
    parser.add_argument(
        "--server-log", type=Path, default=None, help="append the servers' output to this file"
    )
    return parser.parse_args(argv)


def progress(message: str) -> None:
    """One progress line on stderr (the report goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def measure_startup(args: argparse.Namespace, starts: int) -> list[float]:
    """Start and stop fresh servers, timing each to ready."""
    times = []
    for attempt in range(1, starts + 1):
        with ServerProcess(
            args.artifacts_dir, workers=args.workers, log_path=args.server_log
        ) as server:
            assert server.startup_s is not None
            times.append(server.startup_s)
            progress(f"  start {attempt}/{starts}: ready in {server.startup_s:.2f} s")
        time.sleep(0.2)  # let the port and the workers go
    return times


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (1 if any answer was failed or wrong)."""
    args = parse_args(argv)
    if args.quick:
        args.duration, args.repeats = min(args.duration, 1.0), 1
    try:  # fail now with one line, not a traceback, when nothing is published yet
        version_dir = Registry(args.artifacts_dir).resolve_current()
        metadata = read_metadata(version_dir)
    except ArtifactError as exc:
        progress(f"error: {exc} (make pipeline publishes one)")
        return 2
    server_settings = ServerProcess(args.artifacts_dir, workers=args.workers).settings()
    report = Report(
        settings=Settings(
            duration_s=args.duration,
            repeats=args.repeats,
            workers=int(str(server_settings["workers"])),
            wrk_threads=args.wrk_threads,
            access_log=bool(server_settings["access_log"]),
            event_loop=str(server_settings["event_loop"]),
            prediction_log=(
                None
                if server_settings["prediction_log"] is None
                else bool(server_settings["prediction_log"])
            ),
        ),
        model=metadata,
        started_at=now(),
        load_before=os.getloadavg(),
    )
    started = time.perf_counter()
    failed_scenarios: list[str] = []
    if {"http", "pinned", "scenarios"} - set(args.skip):
        wrk_path()  # fail now, not after minutes of in-process timings

    if "inprocess" not in args.skip:
        progress("In-process: onnxruntime against scikit-learn")
        report.inprocess = run_inprocess(
            version_dir,
            metadata,
            runs_dir=args.runs_dir,
            data_path=args.data,
            repeats=args.repeats,
            quick=args.quick,
        )

    if "http" not in args.skip:
        progress("Startup and HTTP")
        startups = measure_startup(args, max(0, args.repeats - 1))
        with ServerProcess(
            args.artifacts_dir, workers=args.workers, log_path=args.server_log
        ) as server:
            assert server.startup_s is not None
            startups.append(server.startup_s)
            progress(f"  start {len(startups)}/{args.repeats}: ready in {server.startup_s:.2f} s")
            report.http = run_http(
                server.port,
                duration_s=args.duration,
                repeats=args.repeats,
                threads=args.wrk_threads,
                connections=args.connections,
                progress=progress,
                cpu_seconds=server.cpu_seconds,
            )
            report.worker_rss = server.worker_rss_bytes()
        report.startup_s = Spread.of(startups)

    if "pinned" not in args.skip:
        progress("One worker pinned to one core")
        report.pinned = run_pinned(
            args.artifacts_dir,
            duration_s=args.duration,
            repeats=args.repeats,
            progress=progress,
            log_path=args.server_log,
        )

    if "scenarios" not in args.skip:
        progress("Scenarios")
        for scenario in scenarios():
            try:
                result = run_scenario(
                    scenario,
                    args.artifacts_dir,
                    data_path=args.data,
                    duration_s=args.duration,
                    repeats=args.repeats,
                    workers=args.workers,
                    progress=progress,
                )
            except (ScenarioError, ServerError, WrkError) as exc:
                # One broken condition must not cost the rest of the report; it still fails
                # the run (exit status 1).
                progress(f"  {scenario.name} failed: {exc}")
                failed_scenarios.append(scenario.name)
                note = f"failed: {exc}"[:120]
                result = ScenarioResult(
                    scenario.name, scenario.off_label, scenario.on_label, note=note
                )
            report.scenarios.append(result)

    report.load_after = os.getloadavg()
    text = render(report)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        progress(f"Wrote {args.output}")
    progress(f"Benchmark took {time.perf_counter() - started:.0f} s")

    return 1 if total_failures(report) or failed_scenarios else 0


if __name__ == "__main__":
    sys.exit(main())
