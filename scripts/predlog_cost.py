"""Measure what the prediction log costs ``POST /predict`` (a CLI: it prints its result).

Two servers side by side, log on and off, alternating short wrk runs; prints the medians.

    .venv/bin/python scripts/predlog_cost.py ARTIFACTS_DIR [--workers 1] [--seconds 3] [--repeats 5]

Each server gets its own temporary data folder (nothing is written into the repository).
"""

# ruff: noqa: T201, S603, S607 - a CLI that runs wrk and the server
from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BODY = '{"Age": 45, "Sex": "M", "BP": "HIGH", "Cholesterol": "NORMAL", "Na_to_K": 15.5}'


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    artifacts: str, workers: int, log_on: bool, data: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``python -m serving`` with the log on or off; wait until it is ready."""
    port = free_port()
    env = {
        **os.environ,
        "DRUGCLF_ARTIFACTS_DIR": artifacts,
        "DRUGCLF_PORT": str(port),
        "DRUGCLF_WORKERS": str(workers),
        "DRUGCLF_ACCESS_LOG": "false",
        "DRUGCLF_RELOAD_INTERVAL": "0",
        "DRUGCLF_PREDICTION_LOG": "true" if log_on else "false",
        "DRUGCLF_DATA_DIR": data,
    }
    proc = subprocess.Popen([sys.executable, "-m", "serving"], env=env, stdout=subprocess.DEVNULL)
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, port
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not start")


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
        servers = {
            on: start(args.artifacts, args.workers, on, str(Path(tmp) / ("on" if on else "off")))
            for on in (False, True)
        }
        results: dict[bool, list[float]] = {False: [], True: []}
        try:
            for _ in range(args.repeats):
                for on in (False, True):
                    results[on].append(wrk(servers[on][1], args.seconds, str(lua)))
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        off, on = statistics.median(results[False]), statistics.median(results[True])
        print(f"log off: {off:.0f} req/s  runs {[round(x) for x in results[False]]}")
        print(f"log on:  {on:.0f} req/s  runs {[round(x) for x in results[True]]}")
        print(f"cost: {100 * (off - on) / off:.1f} %")


if __name__ == "__main__":
    main()
