"""The V2 routes in the real app (TestClient): the prediction log, metrics and request ids as for
``/predict``, errors in the protocol's shape, versions loaded on demand and a few kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tritonclient.http import InferRequestedOutput

from drugclf.contract import SAMPLE_PATIENT
from drugclf.registry import Registry
from serving.app import create_app
from serving.http.state import service
from serving.monitoring.predlog.log import PredictionLog
from serving.settings import Settings
from serving.v2.service import OpenInference
from tests.support import PATIENT, Trained, clone_version, edit_metadata
from tests.v2.support import client_request, infer_inputs

READ_TOKEN = "v2-read-token"
INFER = "/v2/models/drug-classifier/infer"
VERSIONS = ("29990101-000000-aaaaaa", "29990101-000000-bbbbbb", "29990101-000000-cccccc")
NO_PARITY = "29990101-000000-dddddd"


@pytest.fixture(scope="module")
def trained(model_copy: Callable[[str], Path]) -> Trained:
    return Trained.copy_of_session_model(model_copy, "v2-api")


@pytest.fixture(scope="module")
def client(
    trained: Trained, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient[Litestar]]:
    registry = Registry(trained.artifacts_dir)
    for version in VERSIONS:
        if not (registry.root / version).exists():
            clone_version(registry, trained.version, version)
    if not (registry.root / NO_PARITY).exists():
        clone_version(registry, trained.version, NO_PARITY)

        def failed(meta: dict[str, Any]) -> None:
            meta["parity"]["label_mismatches"] = 3

        edit_metadata(registry.root / NO_PARITY, failed)
    settings = Settings(
        artifacts_dir=trained.artifacts_dir,
        access_log=False,
        reload_interval=0,
        data_dir=tmp_path_factory.mktemp("v2-api") / "var",
        prediction_log_flush_interval=0.02,
        read_token=READ_TOKEN,
        model_versions_kept=2,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def infer(
    client: TestClient[Litestar], patients: list[Any], path: str = INFER, **headers: str
) -> Any:
    body, header = client_request(infer_inputs(patients, binary=True))
    sent = {"Inference-Header-Content-Length": header or "", **headers}
    return client.post(path, content=body, headers=sent)


def test_logged_counted_and_identified_as_predict(
    client: TestClient[Litestar], trained: Trained
) -> None:
    batch = [PATIENT, {**PATIENT, "Age": 70, "Na_to_K": 30.1}]
    one = infer(client, [PATIENT], **{"X-Request-ID": "v2-single"})
    many = infer(client, batch, **{"X-Request-ID": "v2-batch"})
    assert one.status_code == many.status_code == 200
    assert one.headers["x-request-id"] == "v2-single"
    assert one.headers["x-model-version"] == trained.version
    assert one.headers["content-type"] == "application/octet-stream"
    assert int(one.headers["inference-header-content-length"]) < len(one.content)
    assert service(client.app.state, PredictionLog).flush()
    items = client.get("/predictions", headers={"Authorization": f"Bearer {READ_TOKEN}"}).json()[
        "items"
    ]
    single = [i for i in items if i["request_id"] == "v2-single"]
    assert len(single) == 1 and single[0]["inputs"] == PATIENT
    assert single[0]["model_version"] == trained.version
    rows = sorted(
        (i for i in items if i["request_id"] == "v2-batch"), key=lambda i: i["batch_index"]
    )
    assert [r["inputs"] for r in rows] == batch and {r["batch_size"] for r in rows} == {2}
    metrics = client.get("/metrics").text
    assert 'method="POST",route="/v2/models/{model_name}/infer",status="200"' in metrics
    assert "drugclf_predictions_total" in metrics


def test_errors_in_the_protocol_s_shape(client: TestClient[Litestar]) -> None:
    cases = [
        (client.get("/v2/models/resnet"), 404, "unknown model"),
        (client.post("/v2/models/resnet/infer", content=b"{}"), 404, "unknown model"),
        (client.get(f"/v2/models/drug-classifier/versions/{NO_PARITY}"), 404, "did not pass"),
        (client.get("/v2/models/drug-classifier/versions/latest/ready"), 404, "no published"),
        (client.post(INFER, content=b"{nope"), 400, "not JSON"),
        (client.post(INFER, content=b'{"inputs": []}'), 400, "input 'Age' is missing"),
        (client.get(INFER), 405, "does not accept that method (allowed: "),
        (client.get("/v2/models/drug-classifier/config"), 404, "no such route"),
        (client.post(INFER, content=b"x" * 2_000_000), 413, "too large"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        if message is not None:
            body = response.json()
            assert set(body) == {"error"}, body
            assert message in body["error"]
    header_mismatch = client.post(
        INFER, content=b'{"inputs": []}', headers={"Inference-Header-Content-Length": "900"}
    )
    assert header_mismatch.status_code == 400
    assert "Inference-Header-Content-Length" in header_mismatch.json()["error"]


def test_versions_load_on_first_use_and_a_few_are_kept(client: TestClient[Litestar]) -> None:
    cache = service(client.app.state, OpenInference).versions
    for version in VERSIONS:
        answer = infer(client, [PATIENT], f"/v2/models/drug-classifier/versions/{version}/infer")
        assert answer.status_code == 200
        header = int(answer.headers["inference-header-content-length"])
        assert msgspec.json.decode(answer.content[:header])["model_version"] == version
    assert list(cache._models) == list(VERSIONS[1:])  # the least recently used went
    metadata = client.get("/v2/models/drug-classifier").json()
    assert NO_PARITY not in metadata["versions"] and set(VERSIONS) <= set(metadata["versions"])
    ready = client.get(f"/v2/models/drug-classifier/versions/{VERSIONS[0]}/ready")
    assert ready.json() == {"name": "drug-classifier", "ready": True, "version": VERSIONS[0]}


def test_inline_json_answer(client: TestClient[Litestar]) -> None:
    inline = [InferRequestedOutput(name, binary_data=False) for name in ("label", "probabilities")]
    body, _ = client_request(infer_inputs([SAMPLE_PATIENT], binary=False), inline, request_id="abc")
    answer = client.post(INFER, content=body)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    decoded = answer.json()
    assert decoded["id"] == "abc"
    predicted = client.post("/predict", json=PATIENT).json()
    assert decoded["outputs"][0]["data"] == [predicted["prediction"]]
    assert decoded["outputs"][1]["data"] == list(predicted["probabilities"].values())
