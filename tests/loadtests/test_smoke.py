"""CI smoke run: a short headless Locust run against the real server on a free loopback port.

No throughput is asserted: the run fails on any failure (an HTTP error, a wrong answer, or an
invalid request that was not refused with a 4xx).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from loadtests.run import main as run_loadtest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_locust_smoke_run_has_no_failures(served_artifacts: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    code = run_loadtest(
        [
            "--artifacts-dir",
            str(served_artifacts),
            "--workers",
            "1",
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--duration",
            "15s",
            "--reports",
            str(reports),
            "--seed",
            "7",
            "--server-log",
            str(tmp_path / "server.log"),
        ]
    )
    with (reports / "locust_stats.csv").open(newline="") as handle:
        stats = {row["Name"]: row for row in csv.DictReader(handle)}
    failures = (reports / "locust_failures.csv").read_text()
    assert code == 0, f"Locust reported failures:\n{failures}"
    total = stats["Aggregated"]
    assert int(total["Request Count"]) > 50
    assert int(total["Failure Count"]) == 0
    # Both users ran: real clients and the bad-traffic user.
    assert any(name.startswith("/predict [1]") for name in stats)
    assert any("[bad:" in name for name in stats)
    assert (reports / "locust.html").stat().st_size > 0
