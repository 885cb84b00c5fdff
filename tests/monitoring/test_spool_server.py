"""The real server (``python -m serving``, 2 granian workers) under load: a SIGTERM loses no
answered prediction, a SIGKILLed worker loses at most its last shipper interval, and the next
start writes what either left in the spool. Every request carries its own id, so the test knows
exactly which answers are stored, and that none is stored twice. SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from loadtests.bench.server import ServerProcess
from serving.monitoring.predlog.backends import open_backend
from serving.monitoring.predlog.spool import FOLDER_NAME
from tests.support import PATIENT

from .conftest import Trained

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BATCH = [PATIENT, {**PATIENT, "Na_to_K": 31.0}, {**PATIENT, "Sex": "F"}]
CLIENTS = 6
FLUSH_INTERVAL_S = 0.25


class Load:
    """Clients posting singles and batches, each request with an id, until told to stop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent: dict[str, int] = {}  # request id -> patients
        self.answered: dict[str, int] = {}
        self.ids = itertools.count()
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(CLIENTS)]
        self.started = 0.0

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def client(self, index: int) -> None:
        bodies = [(json.dumps(PATIENT).encode(), 1), (json.dumps(BATCH).encode(), len(BATCH))]
        # Half the clients reconnect for every request, so both workers accept connections.
        close = index % 2 == 1
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        n = index
        while not self.stop.is_set():
            body, patients = bodies[n % 2]
            n += 1
            request_id = f"c{index}-{next(self.ids)}"
            headers = {"content-type": "application/json", "x-request-id": request_id}
            if close:
                headers["connection"] = "close"
            with self.lock:
                self.sent[request_id] = patients
            try:
                conn.request("POST", "/predict", body, headers)
                answer = conn.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                time.sleep(0.01)  # a worker or the server went away: reconnect
                continue
            if close:
                conn.close()
            if answer.status == 200:
                with self.lock:
                    self.answered[request_id] = patients
        conn.close()


def server_env(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {
        "DRUGCLF_DATA_DIR": str(tmp_path / "var"),  # kept across restarts: the spool is in it
        "DRUGCLF_ACCESS_LOG": "false",
        "DRUGCLF_RELOAD_INTERVAL": "0",
        "DRUGCLF_PREDICTION_LOG_FLUSH_INTERVAL": str(FLUSH_INTERVAL_S),
    }
    if database == "postgres":
        env["DRUGCLF_PREDICTION_LOG_URL"] = request.getfixturevalue(
            "postgres_server"
        ).new_database()
    return env


def log_url(env: dict[str, str]) -> str:
    return (
        env.get("DRUGCLF_PREDICTION_LOG_URL")
        or f"sqlite:///{env['DRUGCLF_DATA_DIR']}/predictions.db"
    )


def restart_and_drain(trained: Trained, env: dict[str, str], log: Path) -> int:
    """Start the server again and wait until the spool has no segment left; returns how many
    segments there were."""
    folder = Path(env["DRUGCLF_DATA_DIR"]) / FOLDER_NAME
    left = len(list(folder.glob("*.spool")))
    with ServerProcess(
        trained.artifacts_dir, workers=2, bench_routes=False, extra_env=env, log_path=log
    ):
        deadline = time.monotonic() + 90
        while list(folder.glob("*.spool")):
            assert time.monotonic() < deadline, sorted(p.name for p in folder.iterdir())
            time.sleep(0.2)
    return left


def stored(env: dict[str, str]) -> Counter[str]:
    """Rows stored per request id."""
    with open_backend(log_url(env)).session() as conn:
        rows = conn.execute("SELECT request_id FROM predictions").fetchall()
    return Counter(request_id for (request_id,) in rows)


def check_each_stored_once(load: Load, rows: Counter[str]) -> dict[str, int]:
    """Every stored request is whole and stored once; returns the answered requests missing."""
    for request_id, count in rows.items():
        assert count == load.sent[request_id], (request_id, count)  # answered or in flight
    return {i: n for i, n in load.answered.items() if i not in rows}


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_sigterm_loses_no_answer_and_the_next_start_writes_what_was_left(
    database: str, trained: Trained, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = server_env(database, tmp_path, request)
    log = tmp_path / "server.log"
    with ServerProcess(
        trained.artifacts_dir, workers=2, bench_routes=False, extra_env=env, log_path=log
    ) as server:
        proc = server.process
        assert proc is not None
        with Load(server.port) as load:
            time.sleep(2.0)
            proc.send_signal(signal.SIGTERM)  # to the server alone, while the clients send
            proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    restart_and_drain(trained, env, log)
    rows = stored(env)
    assert len(load.answered) > 100
    assert check_each_stored_once(load, rows) == {}
    workers = len({w for w in _workers(env)})
    assert workers >= 2, log.read_text()[-3000:]


def _workers(env: dict[str, str]) -> set[str]:
    with open_backend(log_url(env)).session() as conn:
        return {w for (w,) in conn.execute("SELECT DISTINCT worker FROM predictions").fetchall()}


def _worker_pids(server: ServerProcess) -> list[int]:
    assert server.process is not None
    children = psutil.Process(server.process.pid).children()
    return [
        c.pid
        for c in children
        if "predlog" not in " ".join(c.cmdline())
        and "resource_tracker" not in " ".join(c.cmdline())
    ]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_killed_worker_loses_at_most_its_last_shipper_interval(
    database: str, trained: Trained, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = server_env(database, tmp_path, request)
    log = tmp_path / "server.log"
    with ServerProcess(
        trained.artifacts_dir, workers=2, bench_routes=False, extra_env=env, log_path=log
    ) as server:
        with Load(server.port) as load:
            time.sleep(1.5)
            victim = _worker_pids(server)[0]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            time.sleep(1.0)  # the server goes on with the other worker (or a new one)
            elapsed = killed_at - load.started
        answered_before_kill = sum(load.answered.values())
        # Once the answers stop and two intervals have passed, every answer is in the spool: even
        # a SIGKILL of everything left (writers in the middle of a transaction included) loses
        # nothing more. (A SIGTERM would do too, but a worker granian respawned may ignore it.)
        time.sleep(2 * FLUSH_INTERVAL_S + 0.5)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
    left = restart_and_drain(trained, env, log)
    rows = stored(env)
    missing = check_each_stored_once(load, rows)
    lost = sum(missing.values())
    # At most what the killed worker answered since its shipper's last append: its share of
    # the answers in one interval, with the same again for a wake that came late.
    rate = answered_before_kill / elapsed
    bound = rate * 2 * FLUSH_INTERVAL_S
    print(
        f"{database}: {sum(load.answered.values())} patients answered, {lost} lost "
        f"(bound {bound:.0f}: {rate:.0f} patients/s), {left} segments left to the next start"
    )
    assert lost <= bound
    assert str(victim) in {w.rsplit(":", 1)[-1] for w in _workers(env)}
