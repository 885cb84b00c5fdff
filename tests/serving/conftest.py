"""Serving fixtures: one small model trained and exported by the real training CLI per session.

Tests that change the registry (hot reload, promote, bad artifacts) work on a copy of it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.registry import Registry
from loadtests.bench.reference import with_reference_route
from serving.app import create_app
from serving.settings import Settings
from tests.support import DATA, PATIENT, ROOT, Trained, edit_metadata
from tests.support import clone_version as clone_version_helper

__all__ = ["DATA", "PATIENT", "ROOT", "Trained"]


@pytest.fixture(scope="session")
def trained(model_copy: Callable[[str], Path]) -> Trained:
    """The session model (trained once by the training CLI), copied for this suite."""
    return Trained.copy_of_session_model(model_copy, "serving-model")


@pytest.fixture
def registry_copy(trained: Trained, tmp_path: Path) -> Registry:
    """A private copy of the session registry that a test may change."""
    root = tmp_path / "artifacts"
    shutil.copytree(trained.artifacts_dir, root, symlinks=True)
    return Registry(root)


def _settings_for(artifacts_dir: Path, **overrides: object) -> Settings:
    """Test settings: quiet access log, fast reload checks."""
    values: dict[str, object] = {
        "artifacts_dir": artifacts_dir,
        "access_log": False,
        "reload_interval": 0.05,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def app(trained: Trained) -> Litestar:
    """An app on the session model, with the bench's reference route (read-only model)."""
    return with_reference_route(
        create_app(_settings_for(trained.artifacts_dir, max_batch_size=1000))
    )


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
    return clone_version_helper


@pytest.fixture(scope="session")
def rewrite_metadata() -> Callable[..., None]:
    """``rewrite_metadata(folder, edit)``."""
    return edit_metadata


@pytest.fixture(scope="session")
def settings_for() -> Callable[..., Settings]:
    """``settings_for(artifacts_dir, **overrides)``."""
    return _settings_for
