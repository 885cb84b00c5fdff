"""Serving fixtures: one small model trained and exported by the real training CLI per session.

Tests that change the registry (hot reload, promote, bad artifacts) work on a copy of it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
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
N_ESTIMATORS = 12

PATIENT = {"Age": 45, "Sex": "M", "BP": "HIGH", "Cholesterol": "NORMAL", "Na_to_K": 15.5}


@dataclass(frozen=True)
class Trained:
    """The session's exported model: its registry, run store and version."""

    artifacts_dir: Path
    runs_dir: Path
    version: str


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train, export (parity-gated) and promote one small model with the training CLI."""
    base = tmp_path_factory.mktemp("serving-model")
    artifacts, runs = base / "artifacts", base / "runs"
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
            str(runs),
            "--n-estimators",
            str(N_ESTIMATORS),
            "--parity-cases",
            "2000",
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    version = Registry(artifacts).current_version()
    assert version is not None
    return Trained(artifacts_dir=artifacts, runs_dir=runs, version=version)


@pytest.fixture
def registry_copy(trained: Trained, tmp_path: Path) -> Registry:
    """A private copy of the session registry that a test may change."""
    root = tmp_path / "artifacts"
    shutil.copytree(trained.artifacts_dir, root, symlinks=True)
    return Registry(root)


def _clone_version(
    registry: Registry,
    source: str,
    new_version: str,
    edit: Callable[[dict[str, object]], None] | None = None,
    model_bytes: bytes | None = None,
) -> str:
    """Publish a copy of ``source`` as ``new_version`` (metadata edited, model replaced)."""
    target = registry.root / new_version
    shutil.copytree(registry.root / source, target)
    meta = msgspec.to_builtins(read_metadata(target))
    meta["version"] = new_version
    if edit is not None:
        edit(meta)
    (target / METADATA_FILE).write_bytes(msgspec.json.encode(meta))
    if model_bytes is not None:
        (target / "model.onnx").write_bytes(model_bytes)
    return new_version


def _rewrite_metadata(folder: Path, edit: Callable[[dict[str, object]], None]) -> None:
    """Edit a version's metadata.json in place (to make it mismatch on purpose)."""
    meta = msgspec.to_builtins(read_metadata(folder))
    edit(meta)
    (folder / METADATA_FILE).write_bytes(msgspec.json.encode(meta))


def _settings_for(artifacts_dir: Path, **overrides: object) -> Settings:
    """Test settings: quiet access log, fast reload checks, bench routes on."""
    values: dict[str, object] = {
        "artifacts_dir": artifacts_dir,
        "access_log": False,
        "reload_interval": 0.05,
        "bench_routes": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def app(trained: Trained) -> Litestar:
    """An app on the session model (module scope: the model is read-only here)."""
    return create_app(_settings_for(trained.artifacts_dir, max_batch_size=1000))


@pytest.fixture(scope="module")
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """A test client with the lifespan run (the model is loaded)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def patient() -> dict[str, object]:
    """A valid patient body (a fresh copy each time)."""
    return dict(PATIENT)


@pytest.fixture(scope="session")
def clone_version() -> Callable[..., str]:
    """``clone_version(registry, source, new_version, edit=None, model_bytes=None)``."""
    return _clone_version


@pytest.fixture(scope="session")
def rewrite_metadata() -> Callable[..., None]:
    """``rewrite_metadata(folder, edit)``."""
    return _rewrite_metadata


@pytest.fixture(scope="session")
def settings_for() -> Callable[..., Settings]:
    """``settings_for(artifacts_dir, **overrides)``."""
    return _settings_for
