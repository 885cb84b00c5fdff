"""Fixtures for the training tests: the dataset as frames and one exported run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from drugclf.artifact import Params
from drugclf.registry import Registry
from training.dataset import load_dataset
from training.runs import RunStore
from training.workflow import ExportResult, TrainedRun, export_run, train


@pytest.fixture(scope="session")
def dataset_frames(data_path: Path) -> tuple[pd.DataFrame, pd.Series]:
    dataset = load_dataset(data_path)
    assert dataset.labels is not None
    return dataset.features, dataset.labels


@dataclass(frozen=True)
class Exported:
    run: TrainedRun
    result: ExportResult
    store: RunStore
    registry: Registry


@pytest.fixture(scope="session")
def exported(data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """One default-strategy run, trained, evaluated and exported (small parity sample)."""
    root = tmp_path_factory.mktemp("exported")
    store, registry = RunStore(root / "runs"), Registry(root / "artifacts")
    run = train(data_path, Params(n_estimators=40), store)
    result = export_run(run, store, registry, random_cases=5_000)
    yield Exported(run=run, result=result, store=store, registry=registry)
