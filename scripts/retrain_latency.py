"""Measure /predict latency under steady load, without and with a server retrain running.

Starts ``python -m serving`` on a free loopback port over a private copy of a registry, loads
``/predict`` with wrk (answers checked), then loads it again while ``POST /retrain`` runs a real
job in the server (train, evaluate, export with the parity gate, promote, hot reload). Prints a
Markdown table for ``docs/retrain.md``.

Run from the repository root (needs wrk and the ``train`` extra)::

    .venv/bin/python -m scripts.retrain_latency --artifacts artifacts --workers 2

``retrain_via_http`` is what ``make bench`` can call to run its "retrain running" condition.
"""

# ruff: noqa: T201 - a command that prints its table for people
from __future__ import annotations

import argparse
import http.client
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtests.bench.server import ServerProcess
from loadtests.bench.wrk import WrkResult, run_wrk
from loadtests.patients import load_dataset


def _request(
    port: int, method: str, path: str, token: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        connection.request(method, path, body=json.dumps(body or {}), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def retrain_via_http(
    port: int, token: str, params: dict[str, Any], timeout_s: float = 900.0
) -> dict[str, Any]:
    """Start a retrain on the local server (``wait=false``) and poll its job until it ends."""
    status, accepted = _request(port, "POST", "/retrain?wait=false", token, params)
    if status != 202:
        raise RuntimeError(f"POST /retrain answered {status}: {accepted}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, job = _request(port, "GET", accepted["job_url"], token)
        if job["state"] != "running":
            return job
        time.sleep(0.5)
    raise RuntimeError(f"job {accepted['job_id']} still running after {timeout_s} s")


def _row(name: str, result: WrkResult, note: str) -> str:
    return (
        f"| {name} | {result.requests_per_s:,.0f} | {result.p50_us / 1000:.2f} | "
        f"{result.p99_us / 1000:.2f} | {result.failures} | {note} |"
    )


def main() -> None:
    """Parse arguments, run both conditions, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of baseline load")
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--parity-cases", type=int, default=100_000)
    args = parser.parse_args()

    token = secrets.token_urlsafe(16)
    bodies = [json.dumps(p, separators=(",", ":")).encode() for p in load_dataset()]
    with tempfile.TemporaryDirectory(prefix="drugclf-retrain-latency-") as tmp:
        artifacts = Path(tmp) / "artifacts"
        shutil.copytree(args.artifacts, artifacts, symlinks=True)
        server = ServerProcess(
            artifacts,
            workers=args.workers,
            bench_routes=False,
            extra_env={
                "DRUGCLF_ADMIN_TOKEN": token,
                "DRUGCLF_RUNS_DIR": str(Path(tmp) / "runs"),
                "DRUGCLF_RETRAIN_PARITY_CASES": str(args.parity_cases),
                "DRUGCLF_ACCESS_LOG": "0",
            },
            log_path=Path(tmp) / "server.log",
        )
        server.start()
        try:
            url = f"{server.base_url}/predict"
            load = {
                "connections": args.connections,
                "threads": 2,
                "method": "POST",
                "bodies": bodies,
                "expect": '"status":"success"',
            }
            run_wrk(url, duration_s=3, **load)  # warm-up
            baseline = run_wrk(url, duration_s=args.duration, **load)
            outcome: dict[str, Any] = {}

            def retrain() -> None:
                outcome.update(
                    retrain_via_http(server.port, token, {"n_estimators": args.n_estimators})
                )

            started = time.monotonic()
            during = run_wrk(url, duration_s=1, until=retrain, **load)
            took = time.monotonic() - started
        finally:
            server.stop()
    result = outcome.get("result") or {}
    note = (
        f"job {outcome.get('state')} in {took:.0f} s, version {result.get('version')} "
        f"promoted={result.get('promoted')}"
    )
    print("| condition | req/s | p50 ms | p99 ms | errors | note |")
    print("|---|---:|---:|---:|---:|---|")
    print(_row("no retrain", baseline, f"{args.duration:.0f} s"))
    print(_row("retrain running", during, note))
    print(f"\np99 ratio: {during.p99_us / baseline.p99_us:.2f}x")


if __name__ == "__main__":
    main()
