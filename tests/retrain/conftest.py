"""Retrain fixtures: one small model exported by the training CLI per session, and apps on a
private copy of its registry (retrain, promote and rollback change the registry)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.artifact import METADATA_FILE, read_metadata
from drugclf.registry import Registry
from serving.app import create_app
from serving.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "drug200.csv"
N_ESTIMATORS = 8
PARITY_CASES = 500
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PATIENT = {"Age": 45, "Sex": "M", "BP": "HIGH", "Cholesterol": "NORMAL", "Na_to_K": 15.5}


@dataclass(frozen=True)
class Exported:
    artifacts_dir: Path
    version: str


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    base = tmp_path_factory.mktemp("retrain-model")
    artifacts = base / "artifacts"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "full",
            "--data",
            str(DATA),
            "--artifacts-dir",
            str(artifacts),
            "--runs-dir",
            str(base / "runs"),
            "--n-estimators",
            str(N_ESTIMATORS),
            "--parity-cases",
            str(PARITY_CASES),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    version = Registry(artifacts).current_version()
    assert version is not None
    return Exported(artifacts_dir=artifacts, version=version)


@pytest.fixture
def registry(exported: Exported, tmp_path: Path) -> Registry:
    """A private copy of the session registry."""
    root = tmp_path / "artifacts"
    shutil.copytree(exported.artifacts_dir, root, symlinks=True)
    return Registry(root)


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
    target = registry.root / new_version
    shutil.copytree(registry.root / source, target)
    meta = msgspec.to_builtins(read_metadata(target))
    meta["version"] = new_version
    if cv is not None:
        meta["metrics"]["cv_accuracy_mean"] = cv
    (target / METADATA_FILE).write_bytes(msgspec.json.encode(meta))
    return new_version


def set_cv(registry: Registry, version: str, cv: float) -> None:
    folder = registry.root / version
    meta = msgspec.to_builtins(read_metadata(folder))
    meta["metrics"]["cv_accuracy_mean"] = cv
    (folder / METADATA_FILE).write_bytes(msgspec.json.encode(meta))


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
