"""``python -m loadtests.bench.explain``: one patient's ``/explain`` beside ``/predict``.

The target (issue 17): one patient's explanation over HTTP within 1.5x of ``/predict``'s p50.
One server, the same single-patient bodies on both routes, wrk rounds interleaved route by
route so the machine's noise hits both alike; the figure is the median of the rounds' p50s,
and the ratio is taken round by round (each round's /explain p50 over its /predict p50).
Every body is first checked once from Python (``loadtests.checks.check_explanation``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Final

import msgspec

from drugclf.artifact import ArtifactError
from drugclf.registry import Registry
from loadtests.bench.http_bench import PREDICT_EXPECT, bodies, post
from loadtests.bench.server import HOST, ServerProcess
from loadtests.bench.wrk import WrkError, run_wrk, wrk_path
from loadtests.checks import WrongAnswerError, check_explanation, check_status

TARGET_RATIO: Final = 1.5
ROUTES: Final = ("/predict", "/explain")


class RouteFigures(msgspec.Struct, frozen=True):
    """One route at one concurrency: each round's p50 and requests per second."""

    route: str
    connections: int
    p50_us: list[float]
    requests_per_s: list[float]
    failures: int


class ExplainBench(msgspec.Struct, frozen=True):
    """Both routes at each concurrency, and /explain's p50 over /predict's, round by round."""

    figures: list[RouteFigures]
    ratios: dict[int, list[float]]

    def ratio(self, connections: int) -> float:
        """The median of the rounds' ratios."""
        return statistics.median(self.ratios[connections])


def measure(
    port: int, *, rounds: int, duration_s: float, connections: tuple[int, ...]
) -> ExplainBench:
    """Interleaved wrk rounds on both routes at each concurrency."""
    single = bodies(seed=1, count=200)
    for body in single[:50]:
        status, answer = post(port, "/explain", body)
        check_status(status)
        check_explanation(answer)
    for route in ROUTES:  # warm both routes (and the workers' caches) before measuring
        run_wrk(
            f"http://{HOST}:{port}{route}",
            connections=16,
            duration_s=1,
            method="POST",
            bodies=single,
            expect=PREDICT_EXPECT,
        )
    figures: dict[tuple[str, int], RouteFigures] = {}
    ratios: dict[int, list[float]] = {c: [] for c in connections}
    for _ in range(rounds):
        for count in connections:
            p50: dict[str, float] = {}
            for route in ROUTES:
                result = run_wrk(
                    f"http://{HOST}:{port}{route}",
                    connections=count,
                    duration_s=duration_s,
                    method="POST",
                    bodies=single,
                    expect=PREDICT_EXPECT,
                )
                p50[route] = result.p50_us
                old = figures.get((route, count)) or RouteFigures(route, count, [], [], 0)
                figures[route, count] = RouteFigures(
                    route,
                    count,
                    [*old.p50_us, result.p50_us],
                    [*old.requests_per_s, result.requests_per_s],
                    old.failures + result.failures,
                )
            ratios[count].append(p50["/explain"] / p50["/predict"])
    return ExplainBench(figures=list(figures.values()), ratios=ratios)


def render(bench: ExplainBench) -> str:
    """A Markdown table: medians of the rounds, and the ratio against the target."""
    lines = [
        "| connections | route | p50 (median of rounds) | requests/s | failures | "
        "/explain p50 / /predict p50 |",
        "|---|---|---|---|---|---|",
    ]
    for figure in bench.figures:
        ratio = ""
        if figure.route == "/explain":
            rounds = ", ".join(f"{r:.2f}" for r in bench.ratios[figure.connections])
            verdict = "met" if bench.ratio(figure.connections) <= TARGET_RATIO else "NOT met"
            ratio = (
                f"**{bench.ratio(figure.connections):.2f}** (rounds {rounds}; "
                f"target <= {TARGET_RATIO}: {verdict})"
            )
        lines.append(
            f"| {figure.connections} | `POST {figure.route}` | "
            f"{statistics.median(figure.p50_us):,.0f} µs | "
            f"{statistics.median(figure.requests_per_s):,.0f} | {figure.failures} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Serve the current version and print the table; 1: target missed, 2: not measured."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.explain", description=__doc__)
    parser.add_argument(
        "--artifacts-dir",
        type=Path,
        default=Path(os.environ.get("DRUGCLF_ARTIFACTS_DIR", "artifacts")),
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args(argv)
    try:
        Registry(args.artifacts_dir).resolve_current()
        wrk_path()
    except (ArtifactError, WrkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = {"DRUGCLF_ACCESS_LOG": "false", "DRUGCLF_PREDICTION_LOG": "false"}
    with ServerProcess(
        args.artifacts_dir, workers=args.workers, bench_routes=False, extra_env=env
    ) as server:
        try:
            bench = measure(
                server.port,
                rounds=args.rounds,
                duration_s=args.duration,
                connections=tuple(args.connections),
            )
        except WrongAnswerError as exc:  # a 409 too: the version was exported without them
            print(f"error: /explain answered wrongly, nothing measured: {exc}", file=sys.stderr)
            return 2
    print(render(bench))
    met = all(bench.ratio(c) <= TARGET_RATIO for c in args.connections)
    return 0 if met else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
