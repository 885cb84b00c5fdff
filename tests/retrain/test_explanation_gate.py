"""A retrain whose explanation gate fails publishes nothing, like a parity failure."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar
from litestar.testing import TestClient

import serving.lifecycle.jobs
from drugclf.registry import Registry
from tests.retrain.conftest import AUTH, served_version

pytestmark = pytest.mark.slow


def test_an_explanation_gate_failure_publishes_nothing(
    make_client: Callable[..., TestClient[Litestar]],
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    child_imports_tests: None,
) -> None:
    monkeypatch.setattr(
        serving.lifecycle.jobs, "DEFAULT_TARGET", "tests.retrain.fakes:explanations_fail"
    )
    client = make_client()
    before = registry.current_version()
    versions_before = registry.versions()
    answer = client.post("/retrain", json={"n_estimators": 6, "max_leaf_nodes": 20}, headers=AUTH)
    assert answer.status_code == 500, answer.text
    error = answer.json()
    assert error["code"] == "parity_failed"
    assert "explanation gate failed" in error["message"]
    assert "nothing was published" in error["message"]
    assert registry.current_version() == before
    assert registry.versions() == versions_before
    assert served_version(client, before or "") == before
