"""Rows per second of batch scoring: the single-process engine against Dask, on this machine.

``python -m loadtests.batchbench --output docs/benchmarks.md`` (``make bench`` runs it after
the serving benchmark) writes its section at the end of the file, replacing an older one.
Both engines score the same generated CSV into a CSV; runs alternate, and figures are the
median (min-max) of the repeats. Dask's time counts scoring only; starting its local cluster
is reported apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from drugclf.registry import Registry
from loadtests.bench.stats import Spread, format_rate
from training.batch.engine import dask_client, score_with_dask
from training.parity import random_patients
from training.scoring import score_file

HEADING: Final = "## Batch scoring: single process against Dask"


def measure(model_dir: Path, rows: int, repeats: int, workers: int) -> list[str]:
    """Time both engines; the section's Markdown lines."""
    single: list[float] = []
    dask: list[float] = []
    startup: list[float] = []
    with tempfile.TemporaryDirectory(prefix="drugclf-batchbench-") as tmp:
        source = Path(tmp) / "patients.csv"
        random_patients(rows, seed=11).to_csv(source, index=False)
        size_mb = source.stat().st_size / 1e6
        for _ in range(repeats):
            started = time.perf_counter()
            score_file(model_dir, source, Path(tmp) / "single.csv")
            single.append(rows / (time.perf_counter() - started))
            started = time.perf_counter()
            with dask_client(workers=workers) as client:
                startup.append(time.perf_counter() - started)
                report = score_with_dask(client, model_dir, source, Path(tmp) / "dask.csv")
            dask.append(rows / report.seconds)
            partitions = report.partitions
    single_rate, dask_rate = Spread.of(single), Spread.of(dask)
    load = os.getloadavg()[0]
    return [
        HEADING,
        "",
        "Written by `make bench-batch` (`python -m loadtests.batchbench`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"(load average {load:.1f}, {os.cpu_count()} cores shared with other work). "
        f"`python -m training predict` on {rows:,} generated patients ({size_mb:.0f} MB of "
        f"CSV) into a CSV, with model {model_dir.name}; {repeats} alternating runs, median "
        "(min–max). Dask: a local cluster of "
        f"{workers} worker processes, one thread and one onnxruntime session each, "
        f"{partitions} partitions of 4 MiB; the time counts scoring (reading, validating, "
        "predicting, writing the parts, joining them), not starting the cluster.",
        "",
        "| Engine | Rows/s | vs single process |",
        "|---|---|---|",
        f"| single process (`--engine local`) | {format_rate(single_rate)} | 1.00× |",
        f"| Dask, {workers} workers (`--engine dask`) | {format_rate(dask_rate)} "
        f"| {dask_rate.median / single_rate.median:.2f}× |",
        "",
        f"Starting the local cluster took {Spread.of(startup).format('{:.1f}', ' s')} more. "
        f"Each of the {workers} workers can have a core of its own, so Dask gains at most the "
        "number of cores, less what the partitions, the parts and the join cost; on a shared "
        "machine the spread is wide. Its other point is memory: each worker holds one "
        "partition at a time, where one process holds the whole file, and `--scheduler` "
        "takes the same command to a real cluster.",
    ]


def write_section(path: Path, lines: list[str]) -> None:
    """Put the section at the end of ``path``, replacing the one a previous run wrote."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    kept = text.split(f"\n{HEADING}\n", 1)[0].rstrip("\n")
    path.write_text(kept + "\n\n" + "\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and write the section when asked."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.batchbench", description=__doc__)
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--output", type=Path, help="append the section to this Markdown file")
    args = parser.parse_args(argv)
    model_dir = Registry(args.artifacts_dir).resolve_current()
    lines = measure(model_dir, args.rows, args.repeats, args.workers)
    print("\n".join(lines))
    if args.output:
        write_section(args.output, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
