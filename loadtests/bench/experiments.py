"""Two models at once, measured: latency under a traffic policy, and memory per version.

/predict with a 90/10 split and a 100 % shadow against one model, and each worker's memory with
one, two and three versions loaded. ``make bench`` runs the latency comparison as one of its
scenarios (item 5); ``python -m loadtests.bench.experiments`` runs it alone, interleaved (one
model, then the policy, repeated), and adds the memory figures. The extra versions are copies
of the served one under other names (the same forest, so the same cost per call): what is
measured is the cost of the routing, the shadow calls and the extra sessions, not of a bigger
model. ``--shadow-path`` measures instead, without a server, the CPU the shadow thread spends per
shadowed request, and how much of it is the model calls.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import msgspec

from drugclf import routing
from drugclf.artifact import METADATA_FILE, ArtifactError
from drugclf.contract import Patient
from drugclf.registry import Registry
from drugclf.routing import Candidate, RoutingPolicy, Shadow
from loadtests.bench.http_bench import PREDICT_EXPECT, bodies, metrics_text
from loadtests.bench.server import HOST, ServerProcess
from loadtests.bench.wrk import WrkError, WrkResult, run_wrk, wrk_path

CANDIDATE: Final = "29990101-000000-ab0001"
SHADOW: Final = "29990101-000000-ab0002"
CONNECTIONS: Final = 16
SPLIT: Final = 0.1
MIB: Final = 1 << 20
BURST: Final = 50
"""Requests per drained burst in ``shadow_path_cpu``: about what a worker gathers in the shadow
thread's 20 ms at the rates the latency runs reach."""


def clone(registry: Registry, name: str) -> str:
    """Publish a copy of the served version as ``name`` (same model, metadata renamed)."""
    source = registry.resolve_current()
    target = registry.root / name
    if not target.exists():
        shutil.copytree(source, target)
        meta = msgspec.json.decode((target / METADATA_FILE).read_bytes())
        meta["version"] = name
        (target / METADATA_FILE).write_bytes(msgspec.json.encode(meta))
    return name


def ab_policy(registry: Registry, *, shadow: bool = True, split: float = SPLIT) -> RoutingPolicy:
    """The measured policy: a candidate answering ``split``, a shadow seeing every request."""
    primary = registry.current_version()
    assert primary is not None
    return RoutingPolicy(
        primary,
        [Candidate(clone(registry, CANDIDATE), split)],
        [Shadow(clone(registry, SHADOW), 1.0)] if shadow else [],
    )


def apply(registry: Registry, on: bool) -> None:
    """Write the measured policy (``on``) or remove it (one model answers)."""
    if on:
        policy = ab_policy(registry)
        routing.check(policy, registry)
        routing.write(registry, policy)
    else:
        routing.clear(registry)


def _load(port: int, duration_s: float) -> WrkResult:
    return run_wrk(
        f"http://{HOST}:{port}/predict",
        connections=CONNECTIONS,
        duration_s=duration_s,
        method="POST",
        bodies=bodies(seed=3, count=200),
        expect=PREDICT_EXPECT,
    )


def roles_served(port: int) -> dict[str, float]:
    """Predictions per role so far, from the server's ``/metrics`` (all workers)."""
    counts: dict[str, float] = {}
    for line in metrics_text(port).splitlines():
        if line.startswith("drugclf_version_predictions_total{"):
            role = line.split('role="', 1)[1].split('"', 1)[0]
            counts[role] = counts.get(role, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def _rss(server: ServerProcess) -> float:
    """The largest worker's resident memory in MiB, after a short warm-up load."""
    _load(server.port, 2)
    return max(server.worker_rss_bytes()) / MIB


def measure_memory(registry: Registry, workers: int) -> dict[str, float]:
    """The largest worker's RSS (MiB) with one, two (a candidate) and three (and a shadow)."""
    layouts = {
        "1 version": None,
        "2 versions": ab_policy(registry, shadow=False),
        "3 versions": ab_policy(registry),
    }
    found = {}
    for name, policy in layouts.items():
        if policy is None:
            routing.clear(registry)
        else:
            routing.write(registry, policy)
        with ServerProcess(registry.root, workers=workers) as server:
            found[name] = _rss(server)
    return found


def shadow_path_cpu(registry: Registry, bursts: int = 60, repeats: int = 5) -> tuple[float, float]:
    """CPU µs per shadowed request in the shadow thread, and in its model calls alone (medians).

    No server: a shadow queue as a worker holds it (the prediction log on SQLite, whose writer
    process is not counted; the CLI puts the metrics in multiprocess mode) is offered bursts of
    ``BURST`` single patients, a tenth of them for a second version too (the primary listening
    to the candidate's share), and drained as the shadow thread does; the same model calls are
    then timed alone. Thread CPU time, not wall time: steadier than latency on a shared machine.
    """
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from serving.experiments.shadows import ShadowQueue  # noqa: PLC0415
    from serving.http.metrics import ServerMetrics  # noqa: PLC0415
    from serving.inference.model import DrugModel  # noqa: PLC0415
    from serving.monitoring.predlog.backends import open_backend  # noqa: PLC0415
    from serving.monitoring.predlog.log import LogMetrics, PredictionLog  # noqa: PLC0415

    version_dir = registry.resolve_current()
    shadow, primary = DrugModel.load(version_dir), DrugModel.load(version_dir)
    patients = [msgspec.json.decode(body, type=Patient) for body in bodies(seed=3, count=200)]
    metrics = ServerMetrics()
    path_us: list[float] = []
    model_us: list[float] = []
    with tempfile.TemporaryDirectory(prefix="drugclf-shadow-log-") as tmp:
        log = PredictionLog(
            open_backend(f"sqlite:///{tmp}/predictions.db"),
            LogMetrics(CollectorRegistry()),
            spool_dir=Path(tmp) / "spool",
        )
        log.start()
        queue = ShadowQueue(metrics, log, metrics.registry)
        try:
            for _ in range(repeats):
                in_path = in_model = 0.0
                for b in range(bursts):
                    batch = [patients[(b * BURST + j) % len(patients)] for j in range(BURST)]
                    for j, patient in enumerate(batch):
                        listeners = (shadow, primary) if j % 10 == 0 else (shadow,)
                        queue.offer(listeners, patient, f"r{b}-{j}")
                    started = time.thread_time()
                    queue.drain()
                    in_path += time.thread_time() - started
                    started = time.thread_time()
                    shadow.predict(batch)
                    primary.predict(batch[::10])
                    in_model += time.thread_time() - started
                    time.sleep(0.002)  # let the log's shipper take its turn, as it would
                path_us.append(in_path * 1e6 / (bursts * BURST))
                model_us.append(in_model * 1e6 / (bursts * BURST))
        finally:
            log.stop()
    return statistics.median(path_us), statistics.median(model_us)


def _report_shadow_path(artifacts_dir: Path) -> int:
    # As in a worker, where each metric update writes a shared file; read when serving first
    # imports prometheus_client, which this process has not done yet.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="drugclf-shadow-"))
    try:
        path_us, model_us = shadow_path_cpu(Registry(artifacts_dir))
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"shadow thread CPU per shadowed request: {path_us:.1f} µs, of which the model calls "
        f"{model_us:.1f} µs (medians; bursts of {BURST} requests, 10 % of them for two versions)"
    )
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--shadow-path",
        action="store_true",
        help="only the shadow thread's CPU per shadowed request (no server, no wrk)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print the figures as Markdown (for docs/experiments.md); 1 if any answer was wrong."""
    args = _arguments(argv)
    if args.shadow_path:
        return _report_shadow_path(args.artifacts_dir)
    try:  # fail now with a message, not with a server that dies before ready
        Registry(args.artifacts_dir).resolve_current()
        wrk_path()
    except (ArtifactError, WrkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    p99: dict[bool, list[float]] = {False: [], True: []}
    rps: dict[bool, list[float]] = {False: [], True: []}
    failures = 0
    cpu_us: dict[bool, list[float]] = {False: [], True: []}
    shares: list[float] = []
    shadowed: list[float] = []
    memory: dict[str, list[float]] = {"1 version": [], "2 versions": [], "3 versions": []}
    from serving.http.metrics import FLUSH_INTERVAL_S as flush_interval_s  # noqa: PLC0415, N811

    with tempfile.TemporaryDirectory(prefix="drugclf-ab-bench-") as tmp:
        registry = Registry(Path(tmp) / "artifacts")
        shutil.copytree(args.artifacts_dir.resolve(), registry.root, symlinks=True)
        for repeat in range(1, args.repeats + 1):
            for on in (False, True):
                apply(registry, on)
                label = "90/10 + 100 % shadow" if on else "one model"
                print(f"repeat {repeat}/{args.repeats}: {label}", file=sys.stderr)
                with ServerProcess(registry.root, workers=args.workers) as server:
                    time.sleep(0.5)
                    cpu_before = server.cpu_seconds()
                    result = _load(server.port, args.duration)
                    cpu = server.cpu_seconds() - cpu_before
                    # Each worker writes its counts every FLUSH_INTERVAL_S: wait for the last.
                    time.sleep(2 * flush_interval_s)
                    served = roles_served(server.port)
                cpu_us[on].append(cpu * 1e6 / max(result.requests, 1))
                if on:  # the policy was followed: a tenth answered by the candidate, all shadowed
                    answered = served.get("primary", 0) + served.get("candidate", 0)
                    shares.append(served.get("candidate", 0) / max(answered, 1))
                    shadowed.append(served.get("shadow", 0) / max(answered, 1))
                p99[on].append(result.p99_us / 1000)
                rps[on].append(result.requests_per_s)
                failures += result.failures
            for name, rss in measure_memory(registry, args.workers).items():
                memory[name].append(rss)
    alone, ab = statistics.median(p99[False]), statistics.median(p99[True])
    print(
        f"| Condition | p99 ms (median of {args.repeats}) | runs | requests/s (median) "
        "| server CPU µs per request (median) |"
    )
    print("|---|---:|---|---:|---:|")
    for flag, name in ((False, "one model"), (True, "90/10 split + 100 % shadow")):
        runs = ", ".join(f"{v:.2f}" for v in p99[flag])
        print(
            f"| {name} | {statistics.median(p99[flag]):.2f} | {runs} | "
            f"{statistics.median(rps[flag]):.0f} | {statistics.median(cpu_us[flag]):.0f} |"
        )
    print(
        f"\np99 ratio (policy / one model): {ab / alone:.2f} (target at most 1.2); "
        f"failed or wrong answers: {failures}. Under the policy the candidate answered "
        f"{statistics.median(shares):.1%} of the requests, and shadow calls were "
        f"{statistics.median(shadowed):.0%} of the answers (the shadow's 100 % and the primary "
        "listening to the candidate's share)\n"
    )
    print("| Versions loaded per worker | RSS MiB, largest worker (median) | runs |")
    print("|---|---:|---|")
    for name, values in memory.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {statistics.median(values):.1f} | {runs} |")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
