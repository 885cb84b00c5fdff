"""The routes in process: /routing admin, /predict under a policy, shadows, promote ends it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient, transport
from tritonclient.http import InferRequestedOutput

from drugclf import routing
from drugclf.contract import SAMPLE_PATIENT
from serving.app import create_app
from serving.http.state import service
from serving.monitoring.monitor import Monitor
from serving.monitoring.predlog.backends import Filters
from tests.experiments.conftest import AUTH, Versions, policy, settings
from tests.support import PATIENT
from tests.v2.support import client_request, infer_inputs


def _put(client: TestClient[Litestar], document: object) -> object:
    return client.put("/routing", json=document, headers=AUTH)


def _rows(client: TestClient[Litestar], want: int) -> list[object]:
    monitor = service(client.app.state, Monitor)
    deadline = time.monotonic() + 10
    while True:
        items = monitor.predictions(Filters(), 1000, None).items
        if len(items) >= want or time.monotonic() > deadline:
            return items  # type: ignore[return-value]
        time.sleep(0.05)


def test_get_put_delete(client: TestClient[Litestar], versions: Versions) -> None:
    assert client.get("/routing", headers=AUTH).json()["policy"] is None
    answer = client.put("/routing", json=policy(versions), headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["applied"] is True and body["served_version"] == versions.primary
    assert body["policy"]["candidates"] == [{"version": versions.candidate, "weight": 0.1}]
    assert client.get("/routing", headers=AUTH).json()["policy_id"] == body["policy_id"]
    removed = client.delete("/routing", headers=AUTH).json()
    assert removed["policy"] is None and removed["removed"]["primary"] == versions.primary
    assert not routing.policy_path(versions.registry).exists()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_the_policy_routes_need_the_admin_token(
    client: TestClient[Litestar], versions: Versions, method: str
) -> None:
    """Reading the policy too: same guard as promote, the house's error shape."""
    body = None if method == "get" else policy(versions)
    answer = client.request(method.upper(), "/routing", json=body)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer ")
    error = answer.json()
    assert (error["status"], error["code"], error["field"]) == (
        "error",
        "unauthorized",
        "Authorization",
    )
    assert "admin token" in error["message"]
    assert "policy" not in error and "primary" not in answer.text
    wrong = client.request(
        method.upper(), "/routing", json=body, headers={"Authorization": "Bearer x"}
    )
    assert wrong.status_code == 403
    assert (wrong.json()["code"], wrong.json()["field"]) == ("forbidden", "Authorization")
    assert not routing.policy_path(versions.registry).exists()


def test_reading_the_policy_with_the_admin_token(
    client: TestClient[Litestar], versions: Versions
) -> None:
    assert _put(client, policy(versions)).status_code == 200  # type: ignore[attr-defined]
    answer = client.get("/routing", headers=AUTH)
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert shown["policy"]["primary"] == versions.primary and shown["applied"] is True
    assert shown["served_version"] == versions.primary


def test_without_a_configured_token_reading_is_closed_but_in_dev_mode_on_loopback(
    versions: Versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No admin token configured: closed (403) as promote is; dev mode opens it to loopback."""
    with TestClient(create_app(settings(versions, admin_token=None))) as closed:
        answer = closed.get("/routing")
        assert answer.status_code == 403 and answer.json()["code"] == "forbidden"
    dev = settings(versions, admin_token=None, dev_mode=True, host="127.0.0.1")
    with TestClient(create_app(dev)) as local:
        assert local.get("/routing").status_code == 403  # the test client is not on loopback
        parse = transport.TestClientTransport.parse_request

        def from_loopback(self: transport.TestClientTransport[Any], request: Any) -> dict[str, Any]:
            return {**parse(self, request), "client": ("127.0.0.1", 50000)}

        monkeypatch.setattr(transport.TestClientTransport, "parse_request", from_loopback)
        answer = local.get("/routing")
        assert answer.status_code == 200, answer.text
        assert answer.json()["policy"] is None


def test_a_refused_policy_is_a_422_naming_the_field(
    client: TestClient[Litestar], versions: Versions
) -> None:
    document = policy(versions, weight=1.2)
    answer = client.put("/routing", json=document, headers=AUTH)
    assert answer.status_code == 422
    error = answer.json()
    assert error["code"] == "validation_error" and error["field"] == "candidates[0].weight"
    document = policy(versions)
    document["shadow"] = [{"version": "20990101-000000-abcdef", "fraction": 1}]
    assert client.put("/routing", json=document, headers=AUTH).json()["field"] == (
        "shadow[0].version"
    )
    bad = client.put("/routing", content=b"{", headers={**AUTH, "content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["code"] == "malformed_json"
    text = client.put("/routing", content=b"{}", headers={**AUTH, "content-type": "text/plain"})
    assert text.status_code == 415
    assert not routing.policy_path(versions.registry).exists()


def test_the_answer_names_who_answered_and_a_key_sticks(
    client: TestClient[Litestar], versions: Versions
) -> None:
    assert _put(client, policy(versions, weight=0.5)).status_code == 200  # type: ignore[attr-defined]
    seen: dict[str, str] = {}
    for key in range(40):
        headers = {"x-subject-id": f"subject-{key}"}
        for _ in range(2):
            answer = client.post("/predict", json=PATIENT, headers=headers)
            assert answer.status_code == 200
            version = answer.headers["x-model-version"]
            assert answer.json()["model_version"] == version
            assert seen.setdefault(headers["x-subject-id"], version) == version
    assert set(seen.values()) == {versions.primary, versions.candidate}


def test_a_batch_goes_to_one_version(client: TestClient[Litestar], versions: Versions) -> None:
    _put(client, policy(versions, weight=0.5))
    for _ in range(20):
        answers = client.post("/predict", json=[PATIENT] * 5).json()
        assert len({a["model_version"] for a in answers}) == 1


def test_shadows_are_logged_never_returned(
    client: TestClient[Litestar], versions: Versions
) -> None:
    _put(client, policy(versions, weight=0.0, fraction=1.0))
    answers = [client.post("/predict", json=PATIENT) for _ in range(10)]
    assert {a.headers["x-model-version"] for a in answers} == {versions.primary}
    assert all(versions.shadow not in a.text for a in answers)
    rows = _rows(client, 20)
    by_role = {(r.model_version, r.role) for r in rows}  # type: ignore[attr-defined]
    assert by_role == {(versions.primary, "primary"), (versions.shadow, "shadow")}
    answered = {r.request_id for r in rows if r.role == "primary"}  # type: ignore[attr-defined]
    assert {r.request_id for r in rows if r.role == "shadow"} == answered  # type: ignore[attr-defined]
    summary = client.get("/monitoring/summary").json()
    assert summary["predictions"] == 10  # what the server answered: shadows are not answers
    metrics = client.get("/metrics").text
    assert (
        f'drugclf_version_predictions_total{{role="shadow",version="{versions.shadow}"}} 10.0'
        in metrics
    )


def test_promote_ends_the_policy_and_says_so(
    client: TestClient[Litestar], versions: Versions
) -> None:
    _put(client, policy(versions))
    answer = client.post(f"/models/{versions.candidate}/promote", headers=AUTH).json()
    assert answer["current_version"] == versions.candidate
    assert answer["ended_policy"]["primary"] == versions.primary
    assert client.get("/routing", headers=AUTH).json()["policy"] is None


def test_rollback_ends_the_policy_and_promoting_the_served_version_keeps_it(
    client: TestClient[Litestar], versions: Versions
) -> None:
    promoted = client.post(f"/models/{versions.candidate}/promote", headers=AUTH).json()
    assert promoted["ended_policy"] is None  # there was no policy to end
    document = {
        "primary": versions.candidate,
        "candidates": [{"version": versions.primary, "weight": 0.2}],
        "shadow": [{"version": versions.shadow, "fraction": 1.0}],
    }
    assert _put(client, document).status_code == 200  # type: ignore[attr-defined]
    again = client.post(f"/models/{versions.candidate}/promote", headers=AUTH).json()
    assert again["ended_policy"] is None  # the served version again: the experiment goes on
    assert client.get("/routing", headers=AUTH).json()["policy"]["primary"] == versions.candidate
    answer = client.post("/models/rollback", headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["current_version"] == versions.primary
    assert body["ended_policy"]["primary"] == versions.candidate
    assert body["ended_policy"]["candidates"] == [{"version": versions.primary, "weight": 0.2}]
    assert client.get("/routing", headers=AUTH).json()["policy"] is None
    assert not routing.policy_path(versions.registry).exists()


def test_the_v2_route_follows_the_same_policy(
    client: TestClient[Litestar], versions: Versions
) -> None:
    """The Open Inference Protocol's infer route asks the same chooser as /predict."""
    document = policy(versions, weight=1.0, fraction=1.0)
    assert _put(client, document).status_code == 200  # type: ignore[attr-defined]
    inline = [InferRequestedOutput(name, binary_data=False) for name in ("label", "probabilities")]
    body, _ = client_request(infer_inputs([SAMPLE_PATIENT], binary=False), inline)
    answer = client.post(
        "/v2/models/drug-classifier/infer", content=body, headers={"x-request-id": "v2-1"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-version"] == versions.candidate
    assert answer.json()["model_version"] == versions.candidate
    rows = [r for r in _rows(client, 3) if r.request_id == "v2-1"]  # type: ignore[attr-defined]
    roles = sorted((r.model_version, r.role) for r in rows)  # type: ignore[attr-defined]
    assert roles == sorted(
        [
            (versions.candidate, "candidate"),
            (versions.primary, "shadow"),
            (versions.shadow, "shadow"),
        ]
    )
