"""Fixtures for the load-test tests: a small exported model to serve."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def served_artifacts(data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with one small promoted model (40 trees), for the real server to serve."""
    from drugclf.artifact import Params
    from drugclf.registry import Registry
    from training.runs import RunStore
    from training.workflow import export_run, train

    root = tmp_path_factory.mktemp("served")
    store, registry = RunStore(root / "runs"), Registry(root / "artifacts")
    run = train(data_path, Params(n_estimators=40), store)
    export_run(run, store, registry, random_cases=2_000)
    assert registry.current_version() is not None
    return registry.root
