"""Monitoring fixtures: a small exported model, and the prediction log on SQLite and PostgreSQL.

PostgreSQL tests start their own throwaway server (``loadtests.postgres``: ``initdb`` +
``pg_ctl`` from Debian's ``postgresql`` package, on a free loopback port, sockets in a temporary
folder); each test gets a fresh database. They skip only when the server binaries are not
installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadtests.postgres import PostgresServer, PostgresUnavailableError, throwaway_postgres
from tests.support import Trained

__all__ = ["PostgresServer", "Trained"]


@pytest.fixture(scope="session")
def trained(model_copy: Callable[[str], Path]) -> Trained:
    """The session model (trained once by the training CLI), copied for this suite."""
    return Trained.copy_of_session_model(model_copy, "monitoring-model")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start PostgreSQL once per session; skip if the binaries are absent."""
    try:
        with throwaway_postgres() as server:
            yield server
    except PostgresUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=["sqlite", "postgres"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty prediction log database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'predictions.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
