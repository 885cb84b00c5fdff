"""Every endpoint through Litestar's test client, on the session model."""

from __future__ import annotations

import math
import re

from litestar import Litestar
from litestar.testing import TestClient

from drugclf.contract import CLASSES, FEATURE_NAMES
from tests.support import PATIENT, TEST_N_ESTIMATORS

from .conftest import Trained

Client = TestClient[Litestar]


def test_health(client: Client, trained: Trained) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "model_loaded": True,
        "model_version": trained.version,
        "current_version": trained.version,
        "reload_refused": False,
    }


def test_ready(client: Client, trained: Trained) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "model_version": trained.version}


def test_predict_one(client: Client, patient: dict[str, object], trained: Trained) -> None:
    response = client.post("/predict", json=patient)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"prediction", "probabilities", "model_version", "status"}
    assert body["status"] == "success"
    assert body["model_version"] == trained.version
    assert list(body["probabilities"]) == list(CLASSES)
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-5)
    assert body["prediction"] == max(body["probabilities"], key=body["probabilities"].get)


def test_predict_batch_keeps_order(client: Client, patient: dict[str, object]) -> None:
    batch = [
        {**patient, "Na_to_K": 30.0},
        {**patient, "BP": "LOW", "Na_to_K": 8.0, "Age": 70},
        {**patient, "Na_to_K": 12.0, "BP": "HIGH", "Age": 25},
    ]
    response = client.post("/predict", json=batch)
    assert response.status_code == 200
    answers = response.json()
    assert len(answers) == 3
    singles = [client.post("/predict", json=p).json() for p in batch]
    assert [a["prediction"] for a in answers] == [s["prediction"] for s in singles]
    assert answers[0]["prediction"] == "DrugY"


def test_predict_full_batch(client: Client, patient: dict[str, object]) -> None:
    response = client.post("/predict", json=[patient] * 1000)
    assert response.status_code == 200
    assert len(response.json()) == 1000


def test_content_type_with_charset_is_json(client: Client, patient: dict[str, object]) -> None:
    import json

    response = client.post(
        "/predict",
        content=json.dumps(patient),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_model_info(client: Client, trained: Trained) -> None:
    response = client.get("/model/info")
    assert response.status_code == 200
    info = response.json()
    assert info["model_version"] == trained.version
    assert info["model_type"] == "RandomForestClassifier"
    assert info["n_estimators"] == TEST_N_ESTIMATORS
    assert isinstance(info["max_leaf_nodes"], int)
    assert info["classes"] == list(CLASSES)
    assert [f["name"] for f in info["features"]] == list(FEATURE_NAMES)
    features = {f["name"]: f for f in info["features"]}
    assert features["BP"]["allowed"] == ["HIGH", "LOW", "NORMAL"]
    assert features["Age"]["minimum"] == 0 and features["Age"]["maximum"] == 120
    assert features["Na_to_K"]["exclusive_minimum"] is True
    assert 0.0 < info["metrics"]["test_accuracy"] <= 1.0
    assert re.fullmatch(r"[0-9a-f]{64}", info["data_sha256"])
    assert info["created_at"]
    assert info["parity"]["label_mismatches"] == 0
    assert info["parity_passed"] is True


def test_request_id_is_echoed(client: Client) -> None:
    response = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


def test_request_id_is_generated_when_missing_or_unsafe(client: Client) -> None:
    first = client.get("/health").headers["x-request-id"]
    second = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert re.fullmatch(r"[0-9a-f]{32}", second.headers["x-request-id"])
    assert first != second.headers["x-request-id"]


def test_request_id_on_errors(client: Client) -> None:
    response = client.get("/nowhere", headers={"X-Request-ID": "trace-1"})
    assert response.headers["x-request-id"] == "trace-1"
    assert response.json()["request_id"] == "trace-1"


def test_metrics(client: Client, patient: dict[str, object], trained: Trained) -> None:
    client.post("/predict", json=patient)
    client.post("/predict", json=[patient, {**patient, "Na_to_K": 35.0}])
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(
        r'drugclf_http_requests_total\{method="POST",route="/predict",status="200"\} [1-9]', text
    )
    assert (
        'drugclf_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/predict",status="200"}'
        in text
    )
    assert 'route="unmatched",status="404"' in text
    assert re.search(r'drugclf_predictions_total\{drug="DrugY"\} [1-9]', text)
    assert f'drugclf_model_loaded{{version="{trained.version}"}} 1.0' in text


def test_bench_reference_has_the_predict_shape(client: Client, patient: dict[str, object]) -> None:
    one = client.post("/bench/reference", json=patient)
    assert one.status_code == 200
    assert set(one.json()) == {"prediction", "probabilities", "model_version", "status"}
    many = client.post("/bench/reference", json=[patient] * 3)
    assert len(many.json()) == 3
    bad = client.post("/bench/reference", json={**patient, "Age": "45"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "Age"


def test_production_app_has_no_bench_route(trained: Trained, settings_for: object) -> None:
    from serving.app import create_app
    from serving.settings import Settings

    app = create_app(Settings(artifacts_dir=trained.artifacts_dir, access_log=False))
    with TestClient(app) as test_client:
        assert test_client.post("/bench/reference", json={}).status_code == 404


def test_openapi_documents_the_body_and_examples(client: Client) -> None:
    schema = client.get("/docs/openapi.json").json()
    predict = schema["paths"]["/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]
    refs = {item.get("$ref") or item["items"]["$ref"] for item in body["schema"]["oneOf"]}
    assert refs == {"#/components/schemas/Patient"}
    assert body["schema"]["examples"][0] == PATIENT
    patient_schema = schema["components"]["schemas"]["Patient"]
    assert patient_schema["properties"]["BP"]["enum"] == ["HIGH", "LOW", "NORMAL"]
    assert patient_schema["properties"]["Age"]["maximum"] == 120
    assert {"200", "400", "413", "415", "422"} <= set(predict["responses"])
    assert {"/health", "/ready", "/model/info", "/metrics"} <= set(schema["paths"])


def test_docs_work_offline(client: Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert urls, "the docs page loads no assets?"
    for url in urls:
        assert url.startswith("/static/"), f"{url} is not served locally"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100
    assert "http://" not in page.text and "https://" not in page.text
