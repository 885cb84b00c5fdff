"""Experiment fixtures: a private registry with the session model and two clones of it, and an
in-process app on it with an admin token and the prediction log on SQLite.

The clones are the same forest under other version names: the traffic split, stickiness and
shadows are seen in ``model_version`` and the log's ``role``, not in the answers.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.registry import Registry
from serving.app import create_app
from serving.settings import Settings
from tests.support import Trained, clone_version

TOKEN = "experiments-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CANDIDATE = "20300101-000000-c0ffee"
SHADOW = "20300101-000001-5ad0e0"


@dataclass(frozen=True)
class Versions:
    """A registry with the served version and two clones (candidate, shadow)."""

    registry: Registry
    primary: str
    candidate: str
    shadow: str


@pytest.fixture(scope="session")
def trained(model_copy: Callable[[str], Path]) -> Trained:
    """The session model (trained once by the training CLI), copied for this suite."""
    return Trained.copy_of_session_model(model_copy, "experiments-model")


@pytest.fixture
def versions(trained: Trained, tmp_path: Path) -> Versions:
    """A private registry: the served version plus a candidate and a shadow clone."""
    root = tmp_path / "artifacts"
    shutil.copytree(trained.artifacts_dir, root, symlinks=True)
    registry = Registry(root)
    clone_version(registry, trained.version, CANDIDATE)
    clone_version(registry, trained.version, SHADOW)
    return Versions(registry, trained.version, CANDIDATE, SHADOW)


def settings(versions: Versions, **overrides: object) -> Settings:
    """Test settings on the private registry: admin token, log on SQLite in its ``var``."""
    values: dict[str, object] = {
        "artifacts_dir": versions.registry.root,
        "data_dir": versions.registry.root.parent / "var",
        "access_log": False,
        "reload_interval": 0.05,
        "admin_token": TOKEN,
        "prediction_log_flush_interval": 0.05,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def client(versions: Versions) -> Iterator[TestClient[Litestar]]:
    """An app on the private registry with its lifespan running."""
    with TestClient(create_app(settings(versions))) as test_client:
        yield test_client


def policy(versions: Versions, weight: float = 0.1, fraction: float = 1.0) -> dict[str, object]:
    """A policy document: the candidate at ``weight``, the shadow at ``fraction``."""
    return {
        "primary": versions.primary,
        "candidates": [{"version": versions.candidate, "weight": weight}],
        "shadow": [{"version": versions.shadow, "fraction": fraction}],
        "sticky_key": "header:X-Subject-Id",
    }
