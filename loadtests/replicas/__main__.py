"""``python -m loadtests.replicas``: run the replicas test, print its report, fail if broken."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from drugclf.registry import Registry
from loadtests.bench.http_bench import bodies
from loadtests.postgres import throwaway_postgres
from loadtests.replicas import scenarios
from loadtests.replicas.balancer import Balancer
from loadtests.replicas.cluster import Cluster
from loadtests.replicas.report import Run, render, violations
from loadtests.replicas.traffic import Outcome

logger = logging.getLogger("loadtests.replicas")
ROOT = Path(__file__).resolve().parents[2]


def _registry_copy(source: Path, target: Path, data: Path) -> str:
    """The source's current version, then a second one trained for the promotion."""
    current = Registry(source).resolve_current()
    shutil.copytree(current, target / "artifacts" / current.name)
    Registry(target / "artifacts").promote(current.name)
    logger.info("training a second version to promote (small forest)")
    small = ["--n-estimators", "20", "--parity-cases", "2000", "--data", str(data)]
    folders = ["--artifacts-dir", str(target / "artifacts"), "--runs-dir", str(target / "runs")]
    subprocess.run(  # noqa: S603 (this interpreter, our CLI)
        [sys.executable, "-m", "training", "full", "--no-promote", *small, *folders],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    [new] = [v for v in Registry(target / "artifacts").versions() if v != current.name]
    return new


def _header(args: argparse.Namespace) -> list[str]:
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    ).stdout.strip()
    load = os.getloadavg()[0]
    return [
        f"- **Date:** {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {commit or 'unknown'}",
        f"- **Machine:** {os.cpu_count()} cores, {platform.platform()}; shared with other work "
        f"(load average {load:.1f} at the start)",
        f"- **Set-up:** {args.replicas} replicas (`python -m serving`, 1 worker each, own port "
        "and data folder), one artifacts folder, one throwaway PostgreSQL, HAProxy "
        "health-checking `GET /ready` every 0.5 s",
        f"- **Command:** `make replicas-test` (`python -m loadtests.replicas "
        f"--duration {args.duration:g} --repeats {args.repeats}`)",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run everything; 0 when every invariant held."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.replicas", description=__doc__)
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--data", type=Path, default=Path("data/drug200.csv"))
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="wrk runs per pool size")
    parser.add_argument("--threads", type=int, default=4, help="client threads of the scenarios")
    parser.add_argument("--reload-interval", type=float, default=1.0)
    parser.add_argument("--output", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    header = _header(args)
    token = secrets.token_urlsafe(24)
    patients = bodies(seed=19, count=200)
    with tempfile.TemporaryDirectory(prefix="drugclf-replicas-") as tmp, throwaway_postgres() as pg:
        folder = Path(tmp)
        version = _registry_copy(args.artifacts_dir, folder, args.data)
        log_url = pg.new_database()
        with (
            Cluster(
                folder,
                folder / "artifacts",
                log_url,
                count=args.replicas,
                reload_interval=args.reload_interval,
                admin_token=token,
            ) as cluster,
            Balancer([r.port for r in cluster.replicas]) as balancer,
        ):
            logger.info("throughput over 1..%d replicas", args.replicas)
            throughput = scenarios.throughput(
                cluster, balancer, patients, args.duration, args.repeats
            )
            logger.info("promote %s under load", version)
            promote = scenarios.promote(
                cluster, balancer, patients, version, token=token, threads=args.threads
            )
            logger.info("SIGKILL and restart under load")
            kill = scenarios.kill_and_restart(
                cluster, balancer, patients, victim=1, threads=args.threads
            )
            logger.info("checking the shared log")
            outcomes: list[Outcome] = [*promote.outcomes, *kill.outcomes]
            log = scenarios.check_log(cluster, log_url, outcomes, kill)
            rss = {r.name: r.rss_bytes() / 2**20 for r in cluster.replicas}
    run = Run(header, args.reload_interval, args.threads, throughput, promote, kill, log, rss)
    report = render(run)
    print(report)
    if args.output:
        args.output.write_text(report, encoding="utf-8")
    broken = violations(run)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
