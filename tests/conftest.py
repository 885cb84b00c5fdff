"""Shared fixtures: the real dataset and one small trained, exported model per test session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import DATA, copy_model, train_with_cli


@pytest.fixture(scope="session")
def data_path() -> Path:
    """The project's copy of drug200.csv."""
    return DATA


@pytest.fixture(scope="session")
def cli_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``artifacts/`` and ``runs/`` from one run of the training CLI.

    Trained once per session and never changed: suites take their own copy (``model_copy``),
    so a test that promotes, retrains or logs predictions cannot disturb another suite.
    """
    base = tmp_path_factory.mktemp("cli-model")
    train_with_cli(base)
    return base


@pytest.fixture(scope="session")
def model_copy(cli_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``model_copy(name)``: a private copy of the session model in a new folder."""

    def make(name: str) -> Path:
        target = tmp_path_factory.mktemp(name)
        copy_model(cli_model, target)
        return target

    return make
