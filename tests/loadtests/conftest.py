"""Fixtures for the load-test tests: a small exported model to serve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def served_artifacts(model_copy: Callable[[str], Path]) -> Path:
    """A registry with the session's small promoted model, for the real server to serve."""
    return model_copy("served") / "artifacts"
