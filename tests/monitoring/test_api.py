"""The monitoring API through the real app (TestClient): records for single and batch
predictions, filters and pages, the summary's shape and drift, metrics, log off, inputs off.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from serving.http.state import service
from serving.monitoring.predlog.backends import Filters
from serving.monitoring.predlog.log import PredictionLog
from serving.settings import Settings
from tests.support import PATIENT

from .conftest import Trained
from .test_drift import dataset_rows

FIELDS = ("Age", "Sex", "BP", "Cholesterol", "Na_to_K")


READ_TOKEN = "monitoring-read-token"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


def settings(trained: Trained, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "artifacts_dir": trained.artifacts_dir,
        "access_log": False,
        "reload_interval": 0,
        "data_dir": tmp_path / "var",
        "prediction_log_flush_interval": 0.02,
        "read_token": READ_TOKEN,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client(trained: Trained, tmp_path: Path, log_url: str) -> Iterator[TestClient[Litestar]]:
    app = create_app(settings(trained, tmp_path, prediction_log_url=log_url))
    with TestClient(app) as test_client:
        yield test_client


def flush(client: TestClient[Litestar]) -> None:
    assert service(client.app.state, PredictionLog).flush()


def test_single_and_batch_predictions_are_recorded(
    client: TestClient[Litestar], trained: Trained
) -> None:
    one = client.post("/predict", json=PATIENT, headers={"x-request-id": "single-1"})
    batch = [PATIENT, {**PATIENT, "Age": 70, "Na_to_K": 30.1}, {**PATIENT, "Sex": "F"}]
    many = client.post("/predict", json=batch, headers={"x-request-id": "batch-1"})
    assert one.status_code == many.status_code == 200
    flush(client)
    page = client.get("/predictions", headers=READ).json()
    items = page["items"]
    assert len(items) == 4 and page["next_cursor"] is None
    single = [i for i in items if i["request_id"] == "single-1"]
    assert len(single) == 1
    assert single[0]["inputs"] == PATIENT
    assert single[0]["prediction"] == one.json()["prediction"]
    assert single[0]["probabilities"] == pytest.approx(one.json()["probabilities"])
    assert single[0]["model_version"] == trained.version
    assert single[0]["latency_ms"] > 0 and single[0]["time"].endswith("Z")
    rows = sorted(
        (i for i in items if i["request_id"] == "batch-1"), key=lambda i: i["batch_index"]
    )
    assert [r["inputs"] for r in rows] == batch
    assert [r["prediction"] for r in rows] == [a["prediction"] for a in many.json()]
    assert {r["batch_size"] for r in rows} == {3}


def test_filters_and_pages(client: TestClient[Litestar], trained: Trained) -> None:
    for _ in range(5):
        client.post("/predict", json=PATIENT)
    client.post("/predict", json={**PATIENT, "Na_to_K": 35.0, "Age": 20})
    flush(client)
    first = client.get("/predictions", params={"limit": 4}, headers=READ).json()
    assert len(first["items"]) == 4 and first["next_cursor"] is not None
    rest = client.get(
        "/predictions", params={"limit": 4, "before_id": first["next_cursor"]}, headers=READ
    ).json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    label = first["items"][0]["prediction"]
    only = client.get("/predictions", params={"prediction": label}, headers=READ).json()["items"]
    assert only and all(i["prediction"] == label for i in only)
    assert (
        client.get("/predictions", params={"model_version": "other"}, headers=READ).json()["items"]
        == []
    )
    assert (
        client.get("/predictions", params={"since": "2999-01-01T00:00:00Z"}, headers=READ).json()[
            "items"
        ]
        == []
    )
    assert (
        len(
            client.get(
                "/predictions", params={"until": "2999-01-01T00:00:00"}, headers=READ
            ).json()["items"]
        )
        == 6
    )


@pytest.mark.parametrize(
    ("params", "message", "expected"),
    [
        ({"limit": 0}, "limit must be a whole number from 1 to 1000 (got 0)", None),
        ({"limit": 5000}, "limit must be a whole number from 1 to 1000 (got 5000)", None),
        (
            {"prediction": "Aspirin"},
            "prediction must be one of DrugA, DrugB, DrugC, DrugX, DrugY (got Aspirin)",
            None,
        ),
        (
            {"since": "yesterday"},
            "since must be a date and time in ISO 8601, such as 2026-01-31T09:30:00Z "
            "(got yesterday)",
            "an ISO 8601 date and time",
        ),
        ({"before_id": "x"}, "before_id must be a whole number of at least 1 (got x)", None),
        (
            {"until": "0.5"},
            "until must be a date and time in ISO 8601, such as 2026-01-31T09:30:00Z (got 0.5)",
            "an ISO 8601 date and time",
        ),
        (
            {"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
            "since must be before until "
            "(got since 2030-01-02T00:00:00Z, until 2030-01-01T00:00:00Z)",
            "a time before until",
        ),
    ],
)
def test_bad_query_parameters_are_400_naming_them(
    client: TestClient[Litestar], params: dict[str, Any], message: str, expected: str | None
) -> None:
    answer = client.get("/predictions", params=params, headers=READ)
    assert answer.status_code == 400
    body = answer.json()
    assert (body["status"], body["code"]) == ("error", "validation_error")
    # The answer names the parameter at fault and the text sent, not just "malformed".
    assert body["field"] == next(iter(params))
    assert body["message"] == message
    if expected is not None:
        assert body["expected"] == expected


def test_summary_counts_mix_latency_and_drift(
    client: TestClient[Litestar], trained: Trained
) -> None:
    rows = [dict(zip(FIELDS, r, strict=True)) for r in dataset_rows()]
    assert client.post("/predict", json=rows).status_code == 200
    for row in rows[:10]:
        client.post("/predict", json=row)
    flush(client)
    summary = client.get("/monitoring/summary").json()
    assert summary["predictions"] == 210 and summary["requests"] == 11
    assert sum(h["predictions"] for h in summary["per_hour"]) == 210
    assert summary["per_hour"][-1]["hour"].endswith(":00:00.000Z")
    (mix,) = summary["class_mix"]
    assert mix["model_version"] == trained.version and mix["predictions"] == 210
    assert sum(mix["counts"].values()) == 210
    latency = summary["latency_ms"]
    assert latency["requests"] == 11 and 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    drift = summary["drift"]
    assert drift["model_version"] == trained.version and drift["rows"] == 210
    assert drift["threshold"] == 0.2 and drift["drifted"] is False
    assert {f["name"] for f in drift["features"]} == set(FIELDS)


def test_shifted_traffic_raises_the_drift_flag(client: TestClient[Litestar]) -> None:
    shifted = [dict(zip(FIELDS, r, strict=True)) for r in dataset_rows() if r[4] > 30]
    client.post("/predict", json=(shifted * 10)[:200])
    flush(client)
    drift = client.get("/monitoring/summary").json()["drift"]
    assert drift["drifted"] is True
    na_to_k = next(f for f in drift["features"] if f["name"] == "Na_to_K")
    assert na_to_k["drift"] is True and na_to_k["psi"] > 0.2


def test_summary_window_and_unknown_version(client: TestClient[Litestar]) -> None:
    client.post("/predict", json=PATIENT)
    flush(client)
    empty = client.get(
        "/monitoring/summary",
        params={"since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"},
    ).json()
    assert empty["predictions"] == 0 and empty["latency_ms"]["p50"] is None
    answer = client.get("/monitoring/summary", params={"model_version": "20000101-000000-abcdef"})
    error = answer.json()
    assert answer.status_code == 404 and error["code"] == "version_not_found"
    assert (error["field"], error["message"]) == (
        "model_version",
        'no published version "20000101-000000-abcdef" (its metadata is not in the registry)',
    )


def test_metrics_show_the_log(client: TestClient[Litestar]) -> None:
    client.post("/predict", json=[PATIENT, PATIENT])
    flush(client)
    text = client.get("/metrics").text
    assert "drugclf_prediction_log_written_total 2.0" in text
    assert "drugclf_prediction_log_queue_depth" in text
    assert "drugclf_prediction_log_dropped_total" in text


def test_inputs_off_stores_no_inputs(trained: Trained, tmp_path: Path) -> None:
    app = create_app(settings(trained, tmp_path, prediction_log_inputs=False))
    with TestClient(app) as client:
        client.post("/predict", json=[PATIENT, PATIENT])
        flush(client)
        items = client.get("/predictions", headers=READ).json()["items"]
        assert len(items) == 2
        assert all(i["inputs"] is None and i["probabilities"] is None for i in items)
        assert all(i["prediction"] and i["model_version"] and i["latency_ms"] > 0 for i in items)
        assert client.get("/monitoring/summary").json()["drift"]["rows"] == 0
    assert (tmp_path / "var" / "predictions.db").is_file()


def test_log_off_records_nothing(trained: Trained, tmp_path: Path) -> None:
    app = create_app(settings(trained, tmp_path, prediction_log=False))
    with TestClient(app) as client:
        assert client.post("/predict", json=PATIENT).status_code == 200
        answer = client.get("/predictions", headers=READ)
        assert answer.status_code == 404 and answer.json()["code"] == "prediction_log_off"
        assert client.get("/monitoring/summary").status_code == 404
    assert not (tmp_path / "var").exists()


def test_rows_are_flushed_when_the_app_stops(trained: Trained, tmp_path: Path) -> None:
    app = create_app(settings(trained, tmp_path, prediction_log_flush_interval=60.0))
    with TestClient(app) as client:
        for _ in range(50):
            client.post("/predict", json=PATIENT)
        log = service(client.app.state, PredictionLog)
    assert log.backend.count(Filters()) == (50, 50)
