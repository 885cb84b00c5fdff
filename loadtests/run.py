"""``python -m loadtests.run``: a headless Locust run, against a server it starts or a given host.

``make loadtest`` and the CI smoke test both go through here. Without ``--host`` it starts the
production server (``python -m serving``) on a free loopback port over ``--artifacts-dir`` and
stops it, workers included, whatever happens. Locust writes CSV and HTML reports into
``--reports`` and exits non-zero on any failure, a wrong answer included; so does this command.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

from loadtests.bench.server import ServerProcess

LOCUSTFILE: Final = Path(__file__).with_name("locustfile.py")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``make loadtest`` passes USERS, SPAWN_RATE, DURATION, HOST)."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__)
    parser.add_argument("--host", default="", help="server to load (default: start one)")
    parser.add_argument(
        "--artifacts-dir",
        type=Path,
        default=Path(os.environ.get("DRUGCLF_ARTIFACTS_DIR", "artifacts")),
        help="registry the started server serves",
    )
    parser.add_argument("--workers", type=int, default=None, help="workers of the started server")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=5)
    parser.add_argument("--duration", default="60s", help="Locust run time, e.g. 15s, 2m")
    parser.add_argument("--reports", type=Path, default=Path("reports/loadtest"))
    parser.add_argument("--server-log", type=Path, default=None, help="started server's output")
    parser.add_argument("--seed", default=None, help="replay the same traffic (LOADTEST_SEED)")
    parser.add_argument(
        "--max-batch", type=int, default=None, help="the server's max batch size (default 1000)"
    )
    return parser.parse_args(argv)


def locust_command(args: argparse.Namespace, host: str) -> list[str]:
    """The Locust command line for a headless run writing reports."""
    prefix = args.reports / "locust"
    return [
        sys.executable,
        "-m",
        "locust",
        "--locustfile",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.duration,
        "--stop-timeout",
        "10",
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--only-summary",
        "--exit-code-on-error",
        "1",
    ]


def run_locust(args: argparse.Namespace, host: str) -> int:
    """Run Locust to completion; its exit code (non-zero on any failure)."""
    args.reports.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.seed is not None:
        env["LOADTEST_SEED"] = str(args.seed)
    if args.max_batch is not None:
        env["LOADTEST_MAX_BATCH"] = str(args.max_batch)
    # Locust imports the locustfile as a script: the repository root must be importable.
    root = str(LOCUSTFILE.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    completed = subprocess.run(locust_command(args, host), env=env, check=False)  # noqa: S603
    return completed.returncode


def main(argv: list[str] | None = None) -> int:
    """Load the given host, or a server started here for the run."""
    args = parse_args(argv)
    if args.host:
        return run_locust(args, args.host)
    with ServerProcess(
        args.artifacts_dir, workers=args.workers, bench_routes=False, log_path=args.server_log
    ) as server:
        print(f"Server ready in {server.startup_s:.2f} s at {server.base_url}", flush=True)
        code = run_locust(args, server.base_url)
    print(f"Reports: {args.reports}/locust.html and {args.reports}/locust_*.csv")
    return code


if __name__ == "__main__":
    sys.exit(main())
