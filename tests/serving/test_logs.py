"""Structured logs: one access record per request with route, status, latency, model version."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.http.logs import JsonFormatter, TextFormatter
from serving.settings import Settings

from .conftest import PATIENT, Trained


def test_access_log_fields(
    trained: Trained, settings_for: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings_for(trained.artifacts_dir, access_log=True))
    with caplog.at_level(logging.INFO, logger="serving.access"), TestClient(app) as client:
        client.post("/predict", json=PATIENT, headers={"X-Request-ID": "log-1"})
        client.get("/nowhere")
    records = [r for r in caplog.records if r.name == "serving.access"]
    predict = next(r for r in records if r.__dict__["route"] == "/predict")
    assert predict.__dict__["status"] == 200
    assert predict.__dict__["request_id"] == "log-1"
    assert predict.__dict__["model_version"] == trained.version
    assert predict.__dict__["latency_ms"] > 0
    missing = next(r for r in records if r.__dict__["status"] == 404)
    assert missing.__dict__["route"] == "unmatched"

    line = json.loads(JsonFormatter().format(predict))
    assert line["level"] == "INFO"
    assert line["logger"] == "serving.access"
    assert line["route"] == "/predict"
    assert line["model_version"] == trained.version
    assert "request_id=log-1" in TextFormatter().format(predict)


def test_access_log_can_be_turned_off(
    trained: Trained, settings_for: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings_for(trained.artifacts_dir, access_log=False))
    with caplog.at_level(logging.INFO, logger="serving.access"), TestClient(app) as client:
        client.get("/health")
    assert not [r for r in caplog.records if r.name == "serving.access"]


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "DRUGCLF_PORT": "9001",
            "DRUGCLF_WORKERS": "3",
            "DRUGCLF_APP_FACTORY": "loadtests.bench.reference:create_app_from_env",
            "DRUGCLF_LOG_FORMAT": "text",
            "DRUGCLF_ADMIN_TOKEN": "s3cret",
            "DRUGCLF_ARTIFACTS_DIR": "/srv/models",
            "UNRELATED": "x",
        }
    )
    assert settings.port == 9001
    assert settings.worker_count() == 3
    assert settings.app_factory == "loadtests.bench.reference:create_app_from_env"
    assert settings.log_format == "text"
    assert settings.admin_token == "s3cret"
    assert str(settings.artifacts_dir) == "/srv/models"
    assert Settings.from_env({}).app_factory == "serving.app:create_app_from_env"
    assert Settings.from_env({}).worker_count() >= 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DRUGCLF_PORT", "eighty"),
        ("DRUGCLF_LOG_FORMAT", "xml"),
        ("DRUGCLF_MAX_BATCH_SIZE", "1.5"),
        ("DRUGCLF_ORT_INTRA_OP_THREADS", "0"),
        ("DRUGCLF_PREDICTION_LOG_WRITER_NICENESS", "20"),
        ("DRUGCLF_PREDICTION_LOG_WRITER_NICENESS", "-5"),
        # Values of the right type that would have started a server doing something else:
        ("DRUGCLF_WORKERS", "-2"),  # was one worker per CPU
        ("DRUGCLF_PORT", "70000"),
        ("DRUGCLF_MAX_BATCH_SIZE", "0"),  # every batch refused
        ("DRUGCLF_MAX_BODY_BYTES", "0"),
        ("DRUGCLF_RELOAD_INTERVAL", "-1"),
        ("DRUGCLF_PREDICTION_LOG_FLUSH_INTERVAL", "0"),  # a shipper that never sleeps
        ("DRUGCLF_PREDICTION_LOG_FLUSH_INTERVAL", "nan"),
        ("DRUGCLF_PREDICTION_LOG_MAX_AGE_DAYS", "-1"),  # was "keep forever"
        ("DRUGCLF_PREDICTION_LOG_MAX_ROWS", "-5"),  # a negative LIMIT: PostgreSQL refuses it
        ("DRUGCLF_RETRAIN_TIMEOUT", "0"),
        ("DRUGCLF_KEEP_ALIVE_TIMEOUT", "0.0001"),  # below granian's millisecond resolution
        ("DRUGCLF_KEEP_ALIVE_TIMEOUT", "nan"),
        ("DRUGCLF_RETRAIN_PARITY_CASES", "-1"),
        ("DRUGCLF_RETRAIN_PARITY_CASES", "10000001"),  # the training CLI's bound too
    ],
)
def test_bad_setting_names_the_variable(name: str, value: str) -> None:
    from serving.settings import SettingsError

    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_json_access_lines_are_written_straight_to_the_log_stream(
    trained: Trained, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    """With the server's JSON logging configured, access lines skip ``logging`` but look alike."""
    from serving.http import logs

    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    path = tmp_path / "server.log"
    try:
        with path.open("w") as stream:
            logs.configure("INFO", "json", stream=stream)
            app = create_app(settings_for(trained.artifacts_dir, access_log=True))
            with TestClient(app) as client:
                client.post("/predict", json=PATIENT, headers={"X-Request-ID": "fast-1"})
                client.get("/health")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    access = [line for line in lines if line["logger"] == "serving.access"]
    assert len(access) == 2
    predict = access[0]
    assert predict["request_id"] == "fast-1"
    assert predict["route"] == "/predict"
    assert predict["status"] == 200
    assert predict["model_version"] == trained.version
    assert predict["message"].startswith("POST /predict 200 ")
    assert predict["ts"].endswith("Z") and predict["level"] == "INFO"
    startup = next(line for line in lines if line["logger"] == "serving.app")
    assert set(startup) >= {"ts", "level", "logger", "message", "model_version"}
