"""What the MLflow mirror adds to a training command, in seconds (docs/mlops.md, "Measured").

Usage (a tracking server running, a model exported into the folders given)::

    make mlflow-ui MLFLOW_PORT=5990 &      # or any tracking server
    python -m loadtests.mlflow_cost --uri http://127.0.0.1:5990 --runs-dir runs \
        --artifacts-dir artifacts --repeat 5

Times, in this process, each step the CLI takes when a URI is set: importing the mirror,
reaching the server (the first time, importing MLflow too), logging a run, logging and
registering an exported version; and how long an unreachable server costs before the warning
(a closed port, a server that accepts the connection and never answers). Prints the median
and the range of each.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from drugclf.registry import Registry
from training.runs import RunStore
from training.workflow import git_commit


def _timed(step: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return times


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    started = time.perf_counter()
    from training.mlflow_mirror import Mirror  # noqa: PLC0415 (it is measured)

    rows = {"import training.mlflow_mirror (not MLflow yet)": [time.perf_counter() - started]}
    registry = Registry(args.artifacts_dir)
    folder = registry.resolve_current()
    record = next(r for r in RunStore(args.runs_dir).all() if r.exported_version == folder.name)
    started = time.perf_counter()
    mirror = Mirror.connect(args.uri)
    rows["first connect (GET /health, importing MLflow)"] = [time.perf_counter() - started]
    rows["connect again (GET /health)"] = _timed(lambda: Mirror.connect(args.uri), args.repeat)
    assert mirror is not None, f"{args.uri} does not answer"
    commit = git_commit()
    rows["record a run (params, metrics, tags, confusion matrix)"] = _timed(
        lambda: mirror.record(record, commit), args.repeat
    )
    rows["export (files, ONNX model, registered version, champion)"] = _timed(
        lambda: mirror.export(record, folder, promoted=True), args.repeat
    )
    closed = _closed_port()
    rows[f"unreachable: closed port ({closed})"] = _timed(lambda: Mirror.connect(closed), 3)
    # A server that accepts the connection and never answers: only the probe's timeout ends it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}"
        rows[f"unreachable: accepts, never answers ({hung})"] = _timed(
            lambda: Mirror.connect(hung), 2
        )
    width = max(len(name) for name in rows)
    for name, times in rows.items():
        spread = f"{min(times):.3f}-{max(times):.3f}" if len(times) > 1 else "once"
        print(
            f"{name:<{width}}  median {statistics.median(times):7.3f} s  ({spread}, n={len(times)})"
        )


if __name__ == "__main__":
    main()
