"""One worker pinned to one core, wrk on the other: ``/predict`` against the model-free POST.

``python -m loadtests.bench.pinned`` (and a section of ``make bench``). The server (its worker
and its prediction-log writer, as in production) may only use the first core this process may
use, wrk only the second, so the figure is what one core of this machine answers, not how the
two processes share two cores. The routes run interleaved, so noise hits both alike.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

import msgspec

from drugclf.artifact import ArtifactError
from drugclf.registry import Registry
from loadtests.bench.http_bench import PREDICT_EXPECT, bodies, check_bodies
from loadtests.bench.server import ServerProcess
from loadtests.bench.stats import Spread, format_rate, format_us, markdown_table
from loadtests.bench.wrk import WrkError, WrkResult, run_wrk, wrk_path

CONNECTIONS: Final = 16
ROUTES: Final = ("/predict", "/bench/reference")
TARGET_RPS: Final = 6500
"""Single-patient answers per second one pinned worker must reach (issue 18)."""


class PinnedRoute(msgspec.Struct, frozen=True):
    """One route's runs on the pinned worker."""

    path: str
    requests_per_s: Spread
    p50_us: Spread
    p99_us: Spread
    cpu_us: Spread
    failures: int


class PinnedResult(msgspec.Struct, frozen=True):
    """Both routes, and the cores used."""

    server_cpu: int
    client_cpu: int
    routes: list[PinnedRoute]

    def route(self, path: str) -> PinnedRoute | None:
        """The runs of ``path``, if measured."""
        return next((r for r in self.routes if r.path == path), None)


def cores() -> tuple[int, int] | None:
    """A core for the server and another for wrk, or None with fewer than two."""
    allowed = sorted(os.sched_getaffinity(0))
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else None


def run_pinned(
    artifacts_dir: Path,
    *,
    duration_s: float,
    repeats: int,
    progress: Callable[[str], None] = print,
    log_path: Path | None = None,
) -> PinnedResult | None:
    """Measure both routes on one pinned worker; None on a machine with one core."""
    chosen = cores()
    if chosen is None:
        progress("  pinned: skipped, this process may use only one core")
        return None
    server_cpu, client_cpu = chosen
    allowed = os.sched_getaffinity(0)
    single = bodies(seed=1, count=200)
    runs: dict[str, list[tuple[WrkResult, float]]] = {path: [] for path in ROUTES}
    server = ServerProcess(artifacts_dir, workers=1, log_path=log_path)
    try:
        # Children inherit the affinity: the server and everything it starts get one core,
        # and every wrk started after it the other.
        os.sched_setaffinity(0, {server_cpu})
        try:
            server.start()
        finally:
            os.sched_setaffinity(0, {client_cpu})
        check_bodies(server.port, "/predict", single[:20], batch=False)
        for path in ROUTES:
            _wrk(server, path, single, min(2.0, duration_s))
        for repeat in range(1, repeats + 1):
            for path in ROUTES:
                progress(f"  pinned repeat {repeat}/{repeats}: POST {path}")
                before = server.cpu_seconds()
                result = _wrk(server, path, single, duration_s)
                used = server.cpu_seconds() - before
                runs[path].append((result, used / max(result.requests, 1) * 1e6))
    finally:
        server.stop()
        os.sched_setaffinity(0, allowed)
    return PinnedResult(server_cpu, client_cpu, [_route(p, r) for p, r in runs.items()])


def _wrk(server: ServerProcess, path: str, single: list[bytes], duration_s: float) -> WrkResult:
    return run_wrk(
        server.base_url + path,
        connections=CONNECTIONS,
        duration_s=duration_s,
        method="POST",
        bodies=single,
        expect=PREDICT_EXPECT,
    )


def _route(path: str, runs: list[tuple[WrkResult, float]]) -> PinnedRoute:
    return PinnedRoute(
        path=path,
        requests_per_s=Spread.of([r.requests_per_s for r, _ in runs]),
        p50_us=Spread.of([r.p50_us for r, _ in runs]),
        p99_us=Spread.of([r.p99_us for r, _ in runs]),
        cpu_us=Spread.of([cpu for _, cpu in runs]),
        failures=sum(r.failures for r, _ in runs),
    )


def ratio(result: PinnedResult) -> float | None:
    """``/predict``'s requests/s over the reference's (medians)."""
    predict, reference = result.route("/predict"), result.route("/bench/reference")
    if predict is None or reference is None or not reference.requests_per_s.median:
        return None
    return predict.requests_per_s.median / reference.requests_per_s.median


def render(result: PinnedResult) -> list[str]:
    """The section's Markdown lines."""
    lines = [
        "## One worker on one core",
        "",
        f"The server (one worker, its prediction-log writer, the access log on) is pinned to core "
        f"{result.server_cpu} and wrk to core {result.client_cpu}; {CONNECTIONS} connections, "
        "one patient per request, the two routes interleaved. The writer shares the worker's "
        "core and catches up after the runs; that CPU is not in the figures.",
        "",
        *markdown_table(
            ["Route", "Requests/s", "p50", "p99", "Server CPU per request", "Failed"],
            [
                [
                    f"`POST {route.path}`",
                    format_rate(route.requests_per_s),
                    format_us(route.p50_us),
                    format_us(route.p99_us),
                    format_us(route.cpu_us),
                    str(route.failures),
                ]
                for route in result.routes
            ],
        ),
    ]
    share = ratio(result)
    if share is not None:
        lines += ["", f"`/predict` answers {share:.0%} of the model-free route's requests/s."]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run it alone and print the section; 1 if an answer failed or was wrong."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.pinned", description=__doc__)
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each route")
    parser.add_argument("--server-log", type=Path, default=None)
    args = parser.parse_args(argv)
    try:  # fail now with one line, not a server that dies before ready
        Registry(args.artifacts_dir).resolve_current()
        wrk_path()
    except (ArtifactError, WrkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run_pinned(
        args.artifacts_dir,
        duration_s=args.duration,
        repeats=args.repeats,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
        log_path=args.server_log,
    )
    if result is None:
        return 0
    print("\n".join(render(result)))
    predict = result.route("/predict")
    if predict is not None:
        print(
            f"\ntarget ≥ {TARGET_RPS:,} requests/s: "
            f"{'met' if predict.requests_per_s.median >= TARGET_RPS else 'not met'}"
        )
    return 1 if any(route.failures for route in result.routes) else 0


if __name__ == "__main__":
    sys.exit(main())
