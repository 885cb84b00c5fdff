"""Where the prediction log lives: SQLite (embedded default, WAL) or PostgreSQL (several replicas).

Both speak the same small SQL; a backend knows its placeholder, its DDL, how to bulk insert and
how to truncate a time to the hour. Each writer process holds one connection of its own; reads
(the monitoring API) open a short-lived connection per call, in a worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

import msgspec

from serving.monitoring.predlog.records import COLUMNS, REQUEST_COLUMNS, Row

TABLE: Final = "predictions"
FEEDBACK_TABLE: Final = "feedback"
"""Ground-truth labels sent with ``POST /feedback``: one per patient of an answered request."""
ADDED_COLUMNS: Final = {"role": "TEXT"}
"""Columns later versions added to the table: added to an older log when it is opened (their
rows are NULL there, read as the default: ``role`` NULL is ``primary``)."""
SPOOL_TABLE: Final = "prediction_log_spool"
"""How far the database has each spool segment: updated in the transaction that adds its rows."""
# Any 64-bit number: serialises concurrent schema creation by several workers on PostgreSQL.
_SCHEMA_LOCK: Final = 0x44_52_55_47_4C_4F_47
_SQLITE_PREFIX: Final = "sqlite:///"
_POSTGRES_SCHEMES: Final = ("postgresql", "postgres")
BUSY_TIMEOUT_S: Final = 10.0
ROWS_PER_INSERT: Final = 200
"""Rows per INSERT statement: 4,000 parameters, well under SQLite's limit of 32,766."""


def _go_on() -> None:
    """Nothing to do between two statements (``insert``'s default)."""


_INPUT_SQL_TYPES: Final = {
    "age": "INTEGER",
    "sex": "TEXT",
    "bp": "TEXT",
    "cholesterol": "TEXT",
}


class PredictionLogError(Exception):
    """The prediction log's database cannot be opened, created or written."""


class Filters(msgspec.Struct, frozen=True):
    """Which rows a read looks at (all bounds optional; ``since`` inclusive, ``until`` not)."""

    since: float | None = None
    until: float | None = None
    model_version: str | None = None
    predicted: str | None = None
    answered: bool = False
    """Only the rows of answers (roles primary and candidate): not what shadows predicted."""


class Connection(Protocol):
    """The DB-API subset used here (sqlite3 and psycopg connections both have it)."""

    def execute(self, query: Any, params: Any = ..., /) -> Any:
        """Run one statement."""

    def commit(self) -> None:
        """Commit the transaction."""

    def rollback(self) -> None:
        """Roll the transaction back."""

    def close(self) -> None:
        """Close the connection."""


def _column_ddl(id_ddl: str, real: str) -> str:
    types = {
        "ts": f"{real} NOT NULL",
        "request_id": "TEXT",
        "worker": "TEXT",
        "batch_index": "INTEGER NOT NULL",
        "batch_size": "INTEGER NOT NULL",
        "model_version": "TEXT NOT NULL",
        "predicted": "TEXT NOT NULL",
        "latency_ms": f"{real} NOT NULL",
        "na_to_k": real,
        **ADDED_COLUMNS,
        **_INPUT_SQL_TYPES,
    }
    columns = [f"id {id_ddl}"] + [f"{name} {types.get(name, real)}" for name in COLUMNS]
    return ",\n    ".join(columns)


_SHARED_VALUES: Final = operator.itemgetter(*(COLUMNS.index(c) for c in REQUEST_COLUMNS))
_ROW_VALUES: Final = operator.itemgetter(
    *(i for i, c in enumerate(COLUMNS) if c not in REQUEST_COLUMNS)
)


def _shared_insert_sql(rows: int) -> str:
    """SQLite's INSERT of ``rows`` rows of one request: ``?1``… are the shared values."""
    shared = {c: f"?{i}" for i, c in enumerate(REQUEST_COLUMNS, start=1)}
    numbers = itertools.count(len(REQUEST_COLUMNS) + 1)
    values = ", ".join(
        "(" + ", ".join(shared.get(c) or f"?{next(numbers)}" for c in COLUMNS) + ")"
        for _ in range(rows)
    )
    return f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES {values}"  # noqa: S608


_SHARED_INSERT_SQL: Final = _shared_insert_sql(ROWS_PER_INSERT)


@functools.cache
def _insert_sql(placeholder: str, rows: int) -> str:
    one = "(" + ", ".join([placeholder] * len(COLUMNS)) + ")"
    values = ", ".join([one] * rows)
    return f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES {values}"  # noqa: S608


class Backend:
    """The SQL both databases share; subclasses fill in the differences."""

    placeholder = "?"
    id_ddl = "INTEGER PRIMARY KEY"
    real_type = "REAL"
    url = ""
    """The location ``open_backend`` takes (with the password, if any)."""
    description = ""
    """The location to show (without the password)."""

    def connect(self) -> Connection:  # pragma: no cover - abstract
        """A new connection (autocommit off)."""
        raise NotImplementedError

    def hour_expression(self) -> str:  # pragma: no cover - abstract
        """SQL turning ``ts`` into whole hours since the epoch."""
        raise NotImplementedError

    def insert(
        self, conn: Connection, rows: Sequence[Row], between: Callable[[], object] = _go_on
    ) -> None:
        """Insert rows (no commit), ``ROWS_PER_INSERT`` per statement, ``between`` after each.

        One multi-row INSERT runs SQLite's statement once for 200 rows instead of once per row,
        which costs the writer much less CPU than ``executemany`` (docs/monitoring.md).
        """
        full = len(rows) - len(rows) % ROWS_PER_INSERT
        if full:
            sql = _insert_sql(self.placeholder, ROWS_PER_INSERT)
            for start in range(0, full, ROWS_PER_INSERT):
                chunk = rows[start : start + ROWS_PER_INSERT]
                conn.execute(sql, list(itertools.chain.from_iterable(chunk)))
                between()
        if full < len(rows):
            conn.executemany(_insert_sql(self.placeholder, 1), rows[full:])  # type: ignore[attr-defined]

    def insert_requests(
        self,
        conn: Connection,
        requests: Sequence[Sequence[Row]],
        between: Callable[[], object] = _go_on,
    ) -> None:
        """Insert the rows of several requests, each request's rows together, in order.

        ``between`` runs after every ``ROWS_PER_INSERT`` rows or so: the writer gives the cores
        back there (``writer.share_cores``).
        """
        self.insert(conn, list(itertools.chain.from_iterable(requests)), between)

    def schema_statements(self) -> list[str]:
        """DDL creating the table and its indexes if they do not exist."""
        return [
            f"CREATE TABLE IF NOT EXISTS {TABLE} (\n    "
            f"{_column_ddl(self.id_ddl, self.real_type)}\n)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE} (ts)",
            # Each index costs every inserted row writer CPU (docs/monitoring.md). Reads filter
            # by time first (the ts index), so a (model_version, ts) index, which earlier
            # versions created, is dropped.
            f"DROP INDEX IF EXISTS {TABLE}_version_ts",
            f"CREATE TABLE IF NOT EXISTS {SPOOL_TABLE} "
            "(segment TEXT PRIMARY KEY, position BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {FEEDBACK_TABLE} (request_id TEXT NOT NULL, "
            f"batch_index INTEGER NOT NULL, label TEXT NOT NULL, ts {self.real_type} NOT NULL, "
            "PRIMARY KEY (request_id, batch_index))",
        ]

    def table_columns(self, conn: Connection) -> set[str]:  # pragma: no cover - abstract
        """The columns the predictions table has now."""
        raise NotImplementedError

    def add_missing_columns(self, conn: Connection) -> None:
        """Bring a log an older version created up to date (no commit)."""
        present = self.table_columns(conn)
        for name, sql_type in ADDED_COLUMNS.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {name} {sql_type}")

    def create_schema(self) -> None:
        """Create the table (safe to call from several processes at once)."""
        with self.session() as conn:
            for statement in self.schema_statements():
                conn.execute(statement)
            self.add_missing_columns(conn)
            conn.commit()

    @contextlib.contextmanager
    def session(self) -> Iterator[Connection]:
        """A short-lived connection, closed on exit."""
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    def retain(self, conn: Connection, *, max_age_s: float | None, max_rows: int | None) -> int:
        """Apply a retention policy now (None: no limit); returns how many rows were deleted."""
        if max_age_s is None and max_rows is None:
            return 0
        older = time.time() - max_age_s if max_age_s is not None else None
        return self.prune(conn, older_than=older, max_rows=max_rows)

    def prune(self, conn: Connection, *, older_than: float | None, max_rows: int | None) -> int:
        """Delete rows older than a time and beyond the newest ``max_rows``; returns how many."""
        deleted = 0
        p = self.placeholder
        if older_than is not None:
            deleted += conn.execute(f"DELETE FROM {TABLE} WHERE ts < {p}", (older_than,)).rowcount  # noqa: S608
        if max_rows is not None:
            deleted += conn.execute(
                f"DELETE FROM {TABLE} WHERE id <= (SELECT id FROM {TABLE} "  # noqa: S608
                f"ORDER BY id DESC LIMIT 1 OFFSET {p})",
                (max_rows,),
            ).rowcount
        conn.commit()
        return max(deleted, 0)

    # The spool's positions -----------------------------------------------------------------

    def position(self, conn: Connection, segment: str) -> int:
        """How far the database has a segment (0: none of it); commits its row if it was new."""
        p = self.placeholder
        conn.execute(
            f"INSERT INTO {SPOOL_TABLE} (segment, position) VALUES ({p}, 0) "  # noqa: S608
            "ON CONFLICT (segment) DO NOTHING",
            (segment,),
        )
        (position,) = conn.execute(
            f"SELECT position FROM {SPOOL_TABLE} WHERE segment = {p}",  # noqa: S608
            (segment,),
        ).fetchone()
        conn.commit()
        return int(position)

    def advance(self, conn: Connection, segment: str, old: int, new: int) -> bool:
        """Move a segment's position from ``old`` to ``new`` in the open transaction.

        False if it was not at ``old`` (another writer read the same bytes: roll back).
        """
        p = self.placeholder
        cursor = conn.execute(
            f"UPDATE {SPOOL_TABLE} SET position = {p} "  # noqa: S608
            f"WHERE segment = {p} AND position = {p}",
            (new, segment, old),
        )
        return bool(cursor.rowcount == 1)

    def forget(self, conn: Connection, segment: str) -> None:
        """Drop a segment's position (the segment was read to its end and deleted)."""
        conn.execute(f"DELETE FROM {SPOOL_TABLE} WHERE segment = {self.placeholder}", (segment,))  # noqa: S608
        conn.commit()

    def positions(self) -> dict[str, int]:
        """Every segment's position (a short-lived connection)."""
        rows = self._fetch(f"SELECT segment, position FROM {SPOOL_TABLE}", ())  # noqa: S608
        return {str(segment): int(position) for segment, position in rows}

    # Reads -------------------------------------------------------------------------------

    def newest(self) -> float | None:
        """The time of the newest row (None: no rows)."""
        ((ts,),) = self._fetch(f"SELECT MAX(ts) FROM {TABLE}", ())  # noqa: S608
        return None if ts is None else float(ts)

    def _where(self, filters: Filters, *extra: str) -> tuple[str, list[Any]]:
        p = self.placeholder
        clauses, params = list(extra), list[Any]()
        if filters.since is not None:
            clauses.append(f"ts >= {p}")
            params.append(filters.since)
        if filters.until is not None:
            clauses.append(f"ts < {p}")
            params.append(filters.until)
        if filters.model_version is not None:
            clauses.append(f"model_version = {p}")
            params.append(filters.model_version)
        if filters.predicted is not None:
            clauses.append(f"predicted = {p}")
            params.append(filters.predicted)
        if filters.answered:
            clauses.append("(role IS NULL OR role <> 'shadow')")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def where(self, filters: Filters) -> tuple[str, list[Any]]:
        """The WHERE clause (with its parameters) of ``filters``, for reads built elsewhere."""
        return self._where(filters)

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one read on a short-lived connection (``placeholder`` marks parameters)."""
        return self._fetch(sql, params)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.session() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
            conn.rollback()
            return rows

    def recent(self, filters: Filters, limit: int, before_id: int | None) -> list[tuple[Any, ...]]:
        """Rows newest first: ``id`` then the stored columns."""
        extra = [f"id < {self.placeholder}"] if before_id is not None else []
        where, params = self._where(filters, *extra)
        if before_id is not None:
            params.insert(0, before_id)
        sql = (
            f"SELECT id, {', '.join(COLUMNS)} FROM {TABLE}{where} "  # noqa: S608
            f"ORDER BY id DESC LIMIT {self.placeholder}"
        )
        return self._fetch(sql, [*params, limit])

    def count(self, filters: Filters) -> tuple[int, int]:
        """Predictions (rows) and requests in the window."""
        where, params = self._where(filters)
        sql = (
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN batch_index = 0 THEN 1 ELSE 0 END), 0) "  # noqa: S608
            f"FROM {TABLE}{where}"
        )
        rows, requests = self._fetch(sql, params)[0]
        return int(rows), int(requests)

    def hourly(self, filters: Filters) -> list[tuple[int, int]]:
        """(hour since the epoch, predictions) pairs, oldest first."""
        where, params = self._where(filters)
        hour = self.hour_expression()
        sql = f"SELECT {hour} AS h, COUNT(*) FROM {TABLE}{where} GROUP BY h ORDER BY h"  # noqa: S608
        return [(int(h), int(n)) for h, n in self._fetch(sql, params)]

    def class_mix(self, filters: Filters) -> list[tuple[str, str, int]]:
        """(model version, class, predictions) triples."""
        where, params = self._where(filters)
        sql = (
            f"SELECT model_version, predicted, COUNT(*) FROM {TABLE}{where} "  # noqa: S608
            "GROUP BY model_version, predicted ORDER BY model_version, predicted"
        )
        return [(str(v), str(c), int(n)) for v, c, n in self._fetch(sql, params)]

    def latencies(self, filters: Filters, cap: int) -> list[float]:
        """Latency of the newest ``cap`` requests (one value per request)."""
        where, params = self._where(filters, "batch_index = 0")
        sql = (
            f"SELECT latency_ms FROM {TABLE}{where} "  # noqa: S608
            f"ORDER BY id DESC LIMIT {self.placeholder}"
        )
        return [float(v) for (v,) in self._fetch(sql, [*params, cap])]

    def inputs(self, filters: Filters, cap: int) -> list[tuple[Any, ...]]:
        """Recorded inputs (age, sex, bp, cholesterol, na_to_k) of the newest ``cap`` rows."""
        where, params = self._where(filters, "age IS NOT NULL")
        sql = (
            f"SELECT age, sex, bp, cholesterol, na_to_k FROM {TABLE}{where} "  # noqa: S608
            f"ORDER BY id DESC LIMIT {self.placeholder}"
        )
        return self._fetch(sql, [*params, cap])


class SqliteBackend(Backend):
    """One file in WAL mode: readers never block the writers, and each worker writes in turn."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = self.description = f"sqlite:///{path}"

    def connect(self) -> Connection:
        """A connection that waits for the other workers' write locks instead of failing."""
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        except sqlite3.Error as exc:
            raise PredictionLogError(f"cannot open {self.path}: {exc}") from exc
        # WAL + NORMAL: a commit survives a crash of the process (not of the machine) and needs
        # no fsync per batch.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def hour_expression(self) -> str:
        """Whole hours since the epoch (``ts`` is positive, so a cast truncates)."""
        return "CAST(ts / 3600 AS INTEGER)"

    def table_columns(self, conn: Connection) -> set[str]:
        """The predictions table's columns (SQLite's table_info)."""
        sql = f"SELECT name FROM pragma_table_info('{TABLE}')"  # noqa: S608 - our constant
        rows = conn.execute(sql).fetchall()
        return {str(name) for (name,) in rows}

    def insert_requests(
        self,
        conn: Connection,
        requests: Sequence[Sequence[Row]],
        between: Callable[[], object] = _go_on,
    ) -> None:
        """Insert in order; each full chunk of one request binds the shared columns once.

        A 200-row chunk of one batch references ``?1``…``?6`` (time, id, size, version,
        latency, worker) in every row and binds 12 values per row instead of 18, less insert
        CPU per row (docs/monitoring.md). Smaller requests, and what is left of a batch after
        its full chunks, go through ``insert`` together.
        """
        pending: list[Row] = []
        for rows in requests:
            full = len(rows) - len(rows) % ROWS_PER_INSERT
            if full:
                self.insert(conn, pending, between)  # the rows before, first: ids follow arrival
                pending = []
                shared = list(_SHARED_VALUES(rows[0]))
                for start in range(0, full, ROWS_PER_INSERT):
                    chunk = rows[start : start + ROWS_PER_INSERT]
                    values = itertools.chain.from_iterable(map(_ROW_VALUES, chunk))
                    conn.execute(_SHARED_INSERT_SQL, [*shared, *values])
                    between()
            pending.extend(rows[full:])
        self.insert(conn, pending, between)

    def create_schema(self) -> None:
        """Create the file's folder, switch to WAL once, then the table."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PredictionLogError(f"cannot create {self.path.parent}: {exc}") from exc
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                with self.session() as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
                    # One writer at a time from here: two workers never add a column twice.
                    conn.execute("BEGIN IMMEDIATE")
                    for statement in self.schema_statements():
                        conn.execute(statement)
                    self.add_missing_columns(conn)
                    conn.commit()
                return
            except sqlite3.OperationalError as exc:
                # Two workers creating a fresh file at once: one may see it locked briefly.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise PredictionLogError(
                        f"cannot create the log in {self.path}: {exc}"
                    ) from exc
                time.sleep(0.05)


class PostgresBackend(Backend):
    """A PostgreSQL database shared by every replica (psycopg 3, the ``postgres`` extra)."""

    placeholder = "%s"
    id_ddl = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    real_type = "DOUBLE PRECISION"

    def __init__(self, url: str) -> None:
        self.url = url
        self.description = _redact(url)

    def connect(self) -> Connection:
        """A new connection (psycopg is imported here: SQLite-only images need not carry it)."""
        try:
            import psycopg  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - the image without the extra
            raise PredictionLogError(
                "a PostgreSQL prediction log needs psycopg: install the 'postgres' extra"
            ) from exc
        try:
            conn: Connection = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PredictionLogError(f"cannot connect to {self.description}: {reason}") from exc
        return conn

    def hour_expression(self) -> str:
        """Whole hours since the epoch."""
        return "CAST(FLOOR(ts / 3600) AS BIGINT)"

    def table_columns(self, conn: Connection) -> set[str]:
        """The predictions table's columns (information_schema, this schema's table)."""
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (TABLE,),
        ).fetchall()
        return {str(name) for (name,) in rows}

    def insert(
        self, conn: Connection, rows: Sequence[Row], between: Callable[[], object] = _go_on
    ) -> None:
        """COPY the rows in: several times faster than INSERTs for a batch."""
        cursor = conn.cursor()  # type: ignore[attr-defined]
        with cursor.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for n, row in enumerate(rows, 1):
                copy.write_row(row)
                if not n % ROWS_PER_INSERT:
                    between()

    def create_schema(self) -> None:
        """Create the table under an advisory lock (workers start at the same moment)."""
        with self.session() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in self.schema_statements():
                conn.execute(statement)
            self.add_missing_columns(conn)
            conn.commit()


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


_SCHEME: Final = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://")


def open_backend(url: str) -> Backend:
    """The backend for a URL.

    ``sqlite:///relative.db``, ``sqlite:////absolute.db`` (as in SQLAlchemy) or
    ``postgresql://user:password@host:port/dbname``.

    Raises:
        PredictionLogError: an unknown scheme or an empty SQLite path.
    """
    if url.startswith(_SQLITE_PREFIX):
        path = url.removeprefix(_SQLITE_PREFIX)
        if not path:
            raise PredictionLogError(f"{url!r} names no file (expected sqlite:///path/to/file.db)")
        return SqliteBackend(Path(path))
    match = _SCHEME.match(url)
    if match and match["scheme"] in _POSTGRES_SCHEMES:
        return PostgresBackend(url)
    raise PredictionLogError(
        f"unsupported prediction log URL {_redact(url)!r}: use sqlite:///path or postgresql://..."
    )
