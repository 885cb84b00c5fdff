"""Real retrains through HTTP: train, evaluate, export behind the parity gate, promote or not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar
from litestar.testing import TestClient

import serving.lifecycle.jobs
from drugclf.registry import Registry
from tests.retrain.conftest import AUTH, served_version, set_cv, wait_for_job
from tests.support import DATA

pytestmark = pytest.mark.slow

SMALL = {"n_estimators": 6, "max_leaf_nodes": 20}


def test_upload_retrain_promote_and_serve(client: TestClient[Litestar], registry: Registry) -> None:
    before = registry.current_version()
    raw = DATA.read_bytes()
    answer = client.post("/retrain", files={"file": ("drug200.csv", raw)}, data=SMALL, headers=AUTH)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    # The original API's fields.
    assert result["status"] == "success"
    assert 0.5 < result["accuracy"] <= 1.0
    assert result["accuracy"] == result["test_accuracy"]
    assert 0.5 < result["cv_accuracy_mean"] <= 1.0
    assert result["parity"]["passed"] and result["parity"]["mismatches"] == 0
    assert result["promoted"] and result["reason"].startswith("promoted")
    assert result["previous_version"] == before
    assert result["current_version"] == result["version"] != before
    assert result["params"]["n_estimators"] == 6
    # The data is kept under its sha256, so the run can be repeated.
    stored = registry.root / "datasets" / f"{result['data_sha256']}.csv"
    assert stored.read_bytes() == raw
    assert result["data_rows"] == 200
    # Served within seconds (hot reload), listed as current.
    assert registry.current_version() == result["version"]
    assert served_version(client, result["version"]) == result["version"]
    models = client.get("/models").json()
    assert models["current_version"] == result["version"]
    assert [v["version"] for v in models["versions"] if v["current"]] == [result["version"]]
    job = client.get(f"/jobs/{result['job_id']}").json()
    assert job["state"] == "succeeded" and job["result"] == result


def test_no_wait_gives_202_a_second_retrain_409_then_the_job_result(
    client: TestClient[Litestar], registry: Registry
) -> None:
    answer = client.post("/retrain?wait=false", json=SMALL, headers=AUTH)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["status"] == "accepted" and accepted["state"] == "running"
    assert answer.headers["location"] == accepted["job_url"] == f"/jobs/{accepted['job_id']}"

    busy = client.post("/retrain", json=SMALL, headers=AUTH)
    assert busy.status_code == 409
    assert busy.json()["code"] == "retrain_running"
    assert accepted["job_id"] in busy.json()["message"]

    job = wait_for_job(client, accepted["job_url"])
    assert job["state"] == "succeeded", job
    assert job["result"]["promoted"]  # type: ignore[index]
    # The lock is free again: the next retrain is accepted.
    again = client.post("/retrain", json={**SMALL, "wait": False}, headers=AUTH)
    assert again.status_code == 202
    assert wait_for_job(client, again.json()["job_url"])["state"] == "succeeded"


def test_a_worse_model_is_kept_back_unless_forced(
    client: TestClient[Litestar], registry: Registry
) -> None:
    before = registry.current_version()
    assert before is not None
    set_cv(registry, before, 1.0)  # the served model now looks better than any retrain
    answer = client.post(
        "/retrain", json={**SMALL, "n_estimators": 3, "max_leaf_nodes": 2}, headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "success"
    assert not result["promoted"]
    assert result["reason"].startswith("kept back") and "1.0000" in result["reason"]
    assert result["current_version"] == before == registry.current_version()
    # Published all the same, so it can be promoted by hand.
    versions = {v["version"]: v for v in client.get("/models").json()["versions"]}
    assert not versions[result["version"]]["current"]
    promoted = client.post(f"/models/{result['version']}/promote", headers=AUTH)
    assert promoted.status_code == 200
    assert promoted.json()["current_version"] == result["version"]


def test_force_promotes_a_worse_model(client: TestClient[Litestar], registry: Registry) -> None:
    before = registry.current_version()
    assert before is not None
    set_cv(registry, before, 1.0)
    answer = client.post("/retrain", json={**SMALL, "force": True}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["promoted"] and "forced" in result["reason"]
    assert registry.current_version() == result["version"]


@pytest.mark.parametrize(
    ("job", "said"),
    [
        ("tests.retrain.fakes:parity_fails", "the parity gate failed"),
        ("tests.retrain.fakes:explanations_fail", "the explanation gate failed"),
        ("tests.retrain.fakes:cell_table_fails", "the cell table gate failed"),
    ],
    ids=["parity", "explanation-gate", "cell-table-gate"],
)
def test_a_failed_gate_publishes_nothing_and_the_old_model_keeps_serving(
    make_client: Callable[..., TestClient[Litestar]],
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    child_imports_tests: None,
    job: str,
    said: str,
) -> None:
    monkeypatch.setattr(serving.lifecycle.jobs, "DEFAULT_TARGET", job)
    client = make_client()
    before = registry.current_version()
    versions_before = registry.versions()
    answer = client.post("/retrain", json=SMALL, headers=AUTH)
    assert answer.status_code == 500, answer.text
    error = answer.json()
    assert error["code"] == "parity_failed"
    assert said in error["message"]
    assert "nothing was published" in error["message"]
    assert registry.current_version() == before
    assert registry.versions() == versions_before
    assert served_version(client, before or "") == before
