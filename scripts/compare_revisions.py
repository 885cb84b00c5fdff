"""Compare the server of two git revisions side by side, in one run (a CLI: it prints a table).

Each revision is checked out into a temporary worktree and served from it (same venv, same
artifacts, its own data folder). Rounds alternate between the revisions, so a machine that gets
busier or quieter during the run affects both alike; the table gives medians over the rounds.

    .venv/bin/python -m scripts.compare_revisions OLD NEW ARTIFACTS_DIR [--rounds 5] [--seconds 4]

Per round and revision, one fresh server (2 workers, access and prediction logs on, as in
production) answers: single patients at 16 connections (requests/s, p50, p99, server CPU per
request), then 1,000-patient batches on one connection (p50). ARTIFACTS_DIR must hold a model
both revisions can read (an older export, metadata format 1, is read by newer code too).
"""

# ruff: noqa: T201, S603, S607 - a CLI that runs git, wrk and the server
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from loadtests.bench.http_bench import bodies
from loadtests.bench.server import HOST, free_port, http_status
from loadtests.bench.wrk import run_wrk

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def worktree(revision: str, parent: Path) -> Iterator[Path]:
    """A detached worktree of ``revision``, removed afterwards."""
    path = parent / revision.replace("/", "_")
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(path), revision], cwd=ROOT, check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


@contextlib.contextmanager
def served(tree: Path, artifacts: Path, data: Path) -> Iterator[tuple[int, psutil.Process]]:
    """``python -m serving`` from ``tree`` (its own process group), until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "DRUGCLF_ARTIFACTS_DIR": str(artifacts),
        "DRUGCLF_DATA_DIR": str(data),
        "DRUGCLF_HOST": HOST,
        "DRUGCLF_PORT": str(port),
        "DRUGCLF_WORKERS": "2",
        "DRUGCLF_RELOAD_INTERVAL": "0",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "serving"],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while http_status(port, "/ready", timeout=0.5) != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server of {tree} did not start")
            time.sleep(0.05)
        yield port, psutil.Process(process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def cpu_seconds(parent: psutil.Process) -> float:
    """User + system CPU of the server and its children so far."""
    total = 0.0
    for process in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def one_round(port: int, server: psutil.Process, seconds: float) -> dict[str, float]:
    """The figures of one server."""
    single, batch = bodies(7, 200), bodies(8, 4, batch_size=1000)
    url = f"http://{HOST}:{port}/predict"
    before = cpu_seconds(server)
    run = run_wrk(url, connections=16, duration_s=seconds, method="POST", bodies=single)
    cpu = cpu_seconds(server) - before
    batches = run_wrk(url, connections=1, duration_s=seconds, method="POST", bodies=batch)
    if run.failures or batches.failures:
        raise SystemExit(f"failed answers: {run.failures} single, {batches.failures} batch")
    return {
        "requests/s (16 conn.)": run.requests_per_s,
        "p50 ms (16 conn.)": run.p50_us / 1000,
        "p99 ms (16 conn.)": run.p99_us / 1000,
        "server CPU µs/request": 1e6 * cpu / max(run.requests, 1),
        "batch p50 ms (1,000)": batches.p50_us / 1000,
    }


def main() -> None:
    """Run the rounds and print the medians side by side."""
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {args.old: [], args.new: []}
    with (
        tempfile.TemporaryDirectory(prefix="drugclf-compare-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        trees = {rev: stack.enter_context(worktree(rev, Path(tmp))) for rev in results}
        for number in range(args.rounds):
            order = [args.old, args.new] if number % 2 == 0 else [args.new, args.old]
            for revision in order:
                data = Path(tmp) / f"data-{revision}-{number}"
                with served(trees[revision], args.artifacts.resolve(), data) as (port, server):
                    results[revision].append(one_round(port, server, args.seconds))
                shutil.rmtree(data, ignore_errors=True)
            print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    names = list(results[args.old][0])
    print(f"| median of {args.rounds} rounds | {args.old} | {args.new} | new / old |")
    print("|---|---|---|---|")
    for name in names:
        old = statistics.median(r[name] for r in results[args.old])
        new = statistics.median(r[name] for r in results[args.new])
        print(f"| {name} | {old:,.2f} | {new:,.2f} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
