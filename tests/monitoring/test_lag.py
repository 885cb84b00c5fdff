"""How far the prediction log is behind the answers, as an operator sees it: ``/metrics`` (rows
and seconds behind, spool size) and ``/monitoring/summary`` ("logged up to", the backlog)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.http.state import service
from serving.monitoring.predlog import log as log_module
from serving.monitoring.predlog.log import PredictionLog
from serving.settings import Settings
from tests.support import PATIENT

from .conftest import Trained


def settings(trained: Trained, tmp_path: Path) -> Settings:
    return Settings(
        artifacts_dir=trained.artifacts_dir,
        access_log=False,
        reload_interval=0,
        data_dir=tmp_path / "var",
        prediction_log_flush_interval=0.02,
    )


def metric(text: str, name: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_a_log_that_keeps_up_shows_no_backlog(trained: Trained, tmp_path: Path) -> None:
    with TestClient(create_app(settings(trained, tmp_path))) as client:
        started = time.time()
        assert client.post("/predict", json=[PATIENT, PATIENT]).status_code == 200
        assert service(client.app.state, PredictionLog).flush()
        time.sleep(0.1)  # a shipper wake after the commit sets the gauges
        status = client.get("/monitoring/summary").json()["log"]
        text = client.get("/metrics").text
    assert status["backlog_rows"] == 0 and status["backlog_seconds"] == 0
    logged = status["logged_up_to"]
    assert logged.endswith("Z") and logged[:16] == time.strftime(
        "%Y-%m-%dT%H:%M", time.gmtime(started)
    )
    assert metric(text, "drugclf_prediction_log_queue_depth") == 0
    assert metric(text, "drugclf_prediction_log_lag_seconds") == 0


def test_rows_the_database_does_not_have_yet_are_counted_where_they_wait(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer that never writes: the rows wait in the spool, and both views say so.
    monkeypatch.setattr(
        log_module, "WRITER_COMMAND", [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"]
    )
    with TestClient(create_app(settings(trained, tmp_path))) as client:
        for _ in range(3):
            assert client.post("/predict", json=[PATIENT] * 10).status_code == 200
        assert client.post("/predict", json=PATIENT).status_code == 200
        time.sleep(0.5)  # spooled, and the gauges set
        status = client.get("/monitoring/summary").json()["log"]
        text = client.get("/metrics").text
    assert status["logged_up_to"] is None  # nothing in the database
    assert status["backlog_rows"] == 31
    assert status["backlog_seconds"] >= 0.3
    assert status["spool_bytes"] > 0
    assert metric(text, "drugclf_prediction_log_queue_depth") == 31  # rows, not requests
    assert metric(text, "drugclf_prediction_log_lag_seconds") >= 0.3
    assert metric(text, "drugclf_prediction_log_spool_bytes") > 0
