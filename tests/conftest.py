"""Shared fixtures: the real dataset and one small trained, exported model per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "drug200.csv"


@pytest.fixture(scope="session")
def data_path() -> Path:
    """The project's copy of drug200.csv."""
    return DATA
