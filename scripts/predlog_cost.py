"""Measure what the prediction log costs ``POST /predict`` (a CLI: it prints its result).

Two servers side by side, log on and off, alternating short wrk runs; prints the medians.

    .venv/bin/python -m scripts.predlog_cost ARTIFACTS_DIR [--workers 1] [--seconds 3] [--repeats 5]

Each server gets its own temporary data folder (nothing is written into the repository).
"""

# ruff: noqa: T201, S603, S607 - a CLI that runs wrk and the server
from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

import msgspec

from drugclf.contract import SAMPLE_PATIENT
from loadtests.bench.server import ServerProcess

BODY = json.dumps(msgspec.to_builtins(SAMPLE_PATIENT))


def server(args: argparse.Namespace, *, log_on: bool) -> ServerProcess:
    """``python -m serving`` with the prediction log on or off (started on entering it)."""
    return ServerProcess(
        Path(args.artifacts),
        workers=args.workers,
        bench_routes=False,
        extra_env={
            "DRUGCLF_ACCESS_LOG": "false",
            "DRUGCLF_RELOAD_INTERVAL": "0",
            "DRUGCLF_PREDICTION_LOG": "true" if log_on else "false",
        },
    )


def wrk(port: int, seconds: int, lua: str) -> float:
    """Requests per second of one wrk run (16 connections)."""
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", lua, f"http://127.0.0.1:{port}/predict"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match and "Non-2xx" not in out, out
    return float(match[1])


def main() -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(
            'wrk.method = "POST"\nwrk.body = \'' + BODY + "'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        results: dict[bool, list[float]] = {False: [], True: []}
        with contextlib.ExitStack() as stack:
            servers = {on: stack.enter_context(server(args, log_on=on)) for on in (False, True)}
            for _ in range(args.repeats):
                for on in (False, True):
                    results[on].append(wrk(servers[on].port, args.seconds, str(lua)))
        rate_off, rate_on = statistics.median(results[False]), statistics.median(results[True])
        print(f"log off: {rate_off:.0f} req/s  runs {[round(x) for x in results[False]]}")
        print(f"log on:  {rate_on:.0f} req/s  runs {[round(x) for x in results[True]]}")
        print(f"cost: {100 * (rate_off - rate_on) / rate_off:.1f} %")


if __name__ == "__main__":
    main()
