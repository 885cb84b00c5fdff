"""A throwaway PostgreSQL server: ``initdb`` + ``pg_ctl`` from Debian's ``postgresql`` package.

On a free loopback port, sockets in a temporary folder, trust authentication, no fsync: for
tests and harnesses only. The prediction log's tests start one per session, and
``make replicas-test`` one for the replicas to share. As root, the server runs as the
``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench.server import free_port


class PostgresUnavailableError(Exception):
    """The PostgreSQL server binaries are not installed."""


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway PostgreSQL server (superuser ``postgres``, trust auth)."""

    port: int

    def url(self, database: str = "postgres") -> str:
        """The libpq URL of ``database``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; returns its URL."""
        import psycopg  # noqa: PLC0415 (the postgres extra)

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """Start a PostgreSQL server, stop it and delete its data on exit.

    Raises:
        PostgresUnavailableError: the binaries are not under /usr/lib/postgresql/*/bin.
    """
    bindir = _pg_bin()
    if bindir is None:
        raise PostgresUnavailableError(
            "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin "
            "(apt-get install -y postgresql)"
        )
    # Not under a private temporary folder (0700, owned by root): the postgres user must reach it.
    base = Path(tempfile.mkdtemp(prefix="drugclf-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        base.chmod(0o755)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    initdb = [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres"]
    try:
        subprocess.run(  # noqa: S603 (the binaries found above, our own arguments)
            [*initdb, "-A", "trust", "--no-sync", "-E", "UTF8"], check=True, capture_output=True
        )
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(  # noqa: S603
            [*pg_ctl, "-o", options, "-w", "-t", "30", "-l", str(base / "log"), "start"],
            check=True,
            capture_output=True,
        )
        yield PostgresServer(port)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(  # noqa: S603
                [*pg_ctl, "-m", "immediate", "-w", "stop"], check=True, capture_output=True
            )
        shutil.rmtree(base, ignore_errors=True)
