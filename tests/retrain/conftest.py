"""Retrain fixtures: one small model exported by the training CLI per session, and apps on a
private copy of its registry (retrain, promote and rollback change the registry)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.registry import Registry
from serving.app import create_app
from serving.settings import Settings
from tests.support import DATA, PATIENT, ROOT, edit_metadata
from tests.support import clone_version as clone_version_helper

PARITY_CASES = 500
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Exported:
    artifacts_dir: Path
    version: str


@pytest.fixture(scope="session")
def exported(model_copy: Callable[[str], Path]) -> Exported:
    """The session model (trained once by the training CLI), copied for this suite."""
    artifacts = model_copy("retrain-model") / "artifacts"
    version = Registry(artifacts).current_version()
    assert version is not None
    return Exported(artifacts_dir=artifacts, version=version)


@pytest.fixture
def registry(exported: Exported, tmp_path: Path) -> Registry:
    """A private copy of the session registry.

    The served model's CV accuracy is pinned to 0.9 so that a small retrain passes the
    promotion rule whatever the session model scored; tests of the rule set CV themselves.
    """
    root = tmp_path / "artifacts"
    shutil.copytree(exported.artifacts_dir, root, symlinks=True)
    registry = Registry(root)
    set_cv(registry, exported.version, 0.9)
    return registry


@pytest.fixture
def child_imports_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let spawned job processes import ``tests.retrain.fakes`` (they inherit sys.path)."""
    monkeypatch.syspath_prepend(str(ROOT))


def settings_for(registry: Registry, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "artifacts_dir": registry.root,
        "runs_dir": registry.root.parent / "runs",
        "data": DATA,
        "access_log": False,
        "reload_interval": 0.05,
        "admin_token": TOKEN,
        "retrain_parity_cases": PARITY_CASES,
        "retrain_timeout": 240.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_client(registry: Registry) -> Iterator[Callable[..., TestClient[Litestar]]]:
    """``make_client(**settings_overrides)``: a started test client on the private registry."""
    clients: list[TestClient[Litestar]] = []

    def make(**overrides: object) -> TestClient[Litestar]:
        client = TestClient(create_app(settings_for(registry, **overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient[Litestar]]) -> TestClient[Litestar]:
    return make_client()


def clone_version(
    registry: Registry, source: str, new_version: str, cv: float | None = None
) -> str:
    """Publish a copy of ``source`` as ``new_version`` (optionally with another CV accuracy)."""
    return clone_version_helper(
        registry, source, new_version, edit=None if cv is None else _cv_setter(cv)
    )


def set_cv(registry: Registry, version: str, cv: float) -> None:
    edit_metadata(registry.root / version, _cv_setter(cv))


def _cv_setter(cv: float) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        meta["metrics"]["cv_accuracy_mean"] = cv

    return edit


def served_version(client: TestClient[Litestar], expected: str, timeout: float = 5.0) -> str:
    """The version /predict answers with, waiting up to ``timeout`` for it to become ``expected``."""
    end = time.monotonic() + timeout
    while True:
        answer = client.post("/predict", json=PATIENT)
        assert answer.status_code == 200
        version: str = answer.json()["model_version"]
        if version == expected or time.monotonic() > end:
            return version
        time.sleep(0.05)


def wait_for_job(
    client: TestClient[Litestar], url: str, timeout: float = 240.0
) -> dict[str, object]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job: dict[str, object] = client.get(url).json()
        if job["state"] != "running":
            return job
        time.sleep(0.2)
    raise AssertionError(f"{url} still running after {timeout} s")
