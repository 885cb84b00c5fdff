"""Hot reload: a new ``current`` is picked up without a restart, checked first, never failing a request."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from litestar.testing import TestClient

from drugclf.artifact import ArtifactError
from drugclf.registry import Registry
from serving.app import create_app
from serving.inference.holder import ModelHolder
from serving.settings import Settings
from tests.support import point_current_at

from .conftest import PATIENT, Trained

V2 = "29990101-000000-bbbbbb"
BAD = "29990101-000000-cccccc"


def wait_for_version(client: TestClient, version: str, timeout: float = 3.0) -> float:  # type: ignore[type-arg]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if client.get("/health").json()["model_version"] == version:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"server did not switch to {version} within {timeout}s")


def test_holder_refresh_swaps_only_on_a_new_valid_version(
    registry_copy: Registry, trained: Trained, clone_version: Callable[..., str]
) -> None:
    holder = ModelHolder(registry_copy)
    assert holder.load_current().version == trained.version
    assert asyncio.run(holder.refresh()) is False  # nothing changed
    clone_version(registry_copy, trained.version, V2)
    registry_copy.promote(V2)
    assert asyncio.run(holder.refresh()) is True
    assert holder.model is not None and holder.model.version == V2


def test_promote_and_rollback_are_picked_up(
    registry_copy: Registry,
    trained: Trained,
    clone_version: Callable[..., str],
    settings_for: Callable[..., Settings],
) -> None:
    clone_version(registry_copy, trained.version, V2)
    app = create_app(settings_for(registry_copy.root))
    with TestClient(app) as client:
        assert client.get("/health").json()["model_version"] == trained.version
        registry_copy.promote(V2)
        assert wait_for_version(client, V2) < 2.0
        answer = client.post("/predict", json=PATIENT).json()
        assert answer["model_version"] == V2
        assert client.get("/model/info").json()["model_version"] == V2
        assert f'drugclf_model_loaded{{version="{V2}"}} 1.0' in client.get("/metrics").text
        assert registry_copy.rollback() == trained.version
        wait_for_version(client, trained.version)


def test_bad_new_artifact_is_refused_and_the_old_model_keeps_serving(
    registry_copy: Registry,
    trained: Trained,
    clone_version: Callable[..., str],
    settings_for: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    clone_version(registry_copy, trained.version, BAD, model_bytes=b"\x00 corrupt onnx")
    clone_version(registry_copy, trained.version, V2)
    app = create_app(settings_for(registry_copy.root))
    with (
        caplog.at_level(logging.ERROR, logger="serving.inference.holder"),
        TestClient(app) as client,
    ):
        # promote() refuses BAD now; an operator (or an older replica) can still move the link.
        with pytest.raises(ArtifactError, match="not the model its metadata describes"):
            registry_copy.promote(BAD)
        point_current_at(registry_copy, BAD)
        deadline = time.monotonic() + 3.0
        while not any("refused new model" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no refusal was logged"
            time.sleep(0.02)
        time.sleep(0.2)  # several more reload checks: the refusal is logged once, not every tick
        refusals = [r for r in caplog.records if "refused new model" in r.getMessage()]
        assert len(refusals) == 1
        assert BAD in refusals[0].getMessage()
        response = client.post("/predict", json=PATIENT)
        assert response.status_code == 200
        assert response.json()["model_version"] == trained.version
        assert client.get("/ready").status_code == 200
        # The disagreement is visible where an operator's alert looks.
        health = client.get("/health").json()
        assert health["model_version"] == trained.version
        assert health["current_version"] == BAD and health["reload_refused"] is True
        info = client.get("/model/info").json()
        assert info["current_version"] == BAD and info["reload_refused"] is True
        metrics = client.get("/metrics").text
        assert f'drugclf_model_refused{{version="{BAD}"}} 1.0' in metrics
        assert 'drugclf_model_reloads_total{outcome="refused"} 1.0' in metrics
        registry_copy.promote(V2)  # a good version after a bad one is taken
        wait_for_version(client, V2)
        health = client.get("/health").json()
        assert health["current_version"] == V2 and health["reload_refused"] is False
        metrics = client.get("/metrics").text
        assert f'drugclf_model_refused{{version="{BAD}"}} 0.0' in metrics
        assert 'drugclf_model_reloads_total{outcome="loaded"} 2.0' in metrics


def test_hot_reload_under_concurrent_requests_fails_nothing(
    registry_copy: Registry,
    trained: Trained,
    clone_version: Callable[..., str],
    settings_for: Callable[..., Settings],
) -> None:
    """Eight client threads keep predicting while ``current`` flips five times."""
    clone_version(registry_copy, trained.version, V2)
    app = create_app(settings_for(registry_copy.root, reload_interval=0.02))
    v1 = trained.version
    batch = [PATIENT, {**PATIENT, "Na_to_K": 30.0}]
    stop = threading.Event()
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def hammer(client: TestClient, body: object) -> None:  # type: ignore[type-arg]
        while not stop.is_set():
            response = client.post("/predict", json=body)
            answer = response.json()
            answers = answer if isinstance(answer, list) else [answer]
            versions = {a.get("model_version") for a in answers}
            assert len(versions) == 1, "one request was answered by two models"
            with lock:
                results.append((response.status_code, str(versions.pop())))

    with TestClient(app) as client, ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(hammer, client, b) for b in (PATIENT, batch) * 4]
        try:
            for target in (V2, v1, V2, v1, V2):
                if target == v1:
                    registry_copy.rollback()
                else:
                    registry_copy.promote(target)
                wait_for_version(client, target)
                time.sleep(0.1)
        finally:
            stop.set()
        for future in futures:
            future.result()

    assert len(results) > 50
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:3]
    assert {version for _, version in results} == {v1, V2}
