"""Versions over HTTP: list, promote, roll back, with the same registry code as the CLI."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.artifact import MODEL_FILE
from drugclf.registry import Registry
from tests.retrain.conftest import AUTH, clone_version, served_version
from training.cli import main as cli

OTHER = "20991231-235959-abcdef"


def test_models_lists_every_version_with_metrics_and_the_current_one(
    client: TestClient[Litestar], registry: Registry
) -> None:
    current = registry.current_version()
    clone_version(registry, current or "", OTHER, cv=0.5)
    models = client.get("/models").json()
    assert models["current_version"] == current
    listed = {v["version"]: v for v in models["versions"]}
    assert set(listed) == {current, OTHER}
    assert listed[current]["current"] and not listed[OTHER]["current"]
    assert listed[OTHER]["metrics"]["cv_accuracy_mean"] == 0.5
    assert "test_accuracy" in listed[current]["metrics"]
    assert listed[current]["parity_passed"] is True
    assert listed[current]["params"]["n_estimators"] > 0


def test_promote_then_rollback_switch_what_is_served(
    client: TestClient[Litestar], registry: Registry
) -> None:
    first = registry.current_version()
    assert first is not None
    clone_version(registry, first, OTHER)
    answer = client.post(f"/models/{OTHER}/promote", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json() == {
        "current_version": OTHER,
        "previous_version": first,
        "status": "success",
        "ended_policy": None,  # no traffic policy to end
    }
    assert served_version(client, OTHER) == OTHER
    back = client.post("/models/rollback", headers=AUTH)
    assert back.status_code == 200
    assert back.json()["current_version"] == first
    assert served_version(client, first) == first


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda model: model[: len(model) // 2], "not the model its metadata describes"),
        (lambda model: b"", "not the model its metadata describes"),
    ],
    ids=["truncated", "emptied"],
)
def test_promote_refuses_a_version_whose_model_does_not_load(
    client: TestClient[Litestar],
    registry: Registry,
    damage: Callable[[bytes], bytes],
    problem: str,
) -> None:
    """The version is checked as serving would load it before `current` moves: 422, nothing moves."""
    first = registry.current_version()
    assert first is not None
    clone_version(registry, first, OTHER)
    model = registry.root / OTHER / MODEL_FILE
    model.write_bytes(damage(model.read_bytes()))
    answer = client.post(f"/models/{OTHER}/promote", headers=AUTH)
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "version_not_servable" and body["field"] == "version"
    assert problem in body["message"] and OTHER in body["message"]
    assert str(registry.root) not in body["message"]  # no server paths in answers
    assert registry.current_version() == first
    assert client.get("/models").json()["current_version"] == first
    assert client.get("/health").json()["reload_refused"] is False


@pytest.mark.parametrize(
    "path",
    [
        "/models/{}/promote",
        "/models/{}/confusion_matrix.png",
        "/jobs/{}",
        "/monitoring/summary?model_version={}",
    ],
)
def test_a_long_name_is_cut_in_the_error(client: TestClient[Litestar], path: str) -> None:
    long = "2" * 20_000
    answer = client.post(path.format(long), headers=AUTH) if "promote" in path else None
    answer = answer or client.get(path.format(long), headers=AUTH)
    assert 400 <= answer.status_code < 500
    assert len(answer.json()["message"]) < 200, answer.json()["message"][:300]


@pytest.mark.parametrize("version", ["20000101-000000-000000", "not-a-version", "..%2F..%2Fetc"])
def test_promote_unknown_version_is_404(client: TestClient[Litestar], version: str) -> None:
    answer = client.post(f"/models/{version}/promote", headers=AUTH)
    assert answer.status_code == 404
    assert answer.json()["status"] == "error"


def test_rollback_with_nothing_earlier_is_409(client: TestClient[Litestar]) -> None:
    answer = client.post("/models/rollback", headers=AUTH)
    assert answer.status_code == 409
    assert answer.json()["code"] == "nothing_to_roll_back"


def test_cli_and_endpoints_share_the_registry(
    client: TestClient[Litestar], registry: Registry
) -> None:
    first = registry.current_version()
    clone_version(registry, first or "", OTHER)
    assert cli(["promote", OTHER, "--artifacts-dir", str(registry.root)]) == 0
    assert client.get("/models").json()["current_version"] == OTHER
    assert client.post("/models/rollback", headers=AUTH).json()["current_version"] == first
    assert client.post(f"/models/{OTHER}/promote", headers=AUTH).status_code == 200
    assert cli(["rollback", "--artifacts-dir", str(registry.root)]) == 0
    assert client.get("/models").json()["current_version"] == first
