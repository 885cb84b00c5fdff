"""The real server (``python -m serving``, granian, 2 worker processes) under load, then SIGTERM:
every answered prediction is in the log, and both workers wrote rows. SQLite and PostgreSQL.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from pathlib import Path

import pytest

from loadtests.bench.server import ServerProcess
from serving.monitoring.predlog.backends import Filters, open_backend
from tests.support import PATIENT

from .conftest import Trained

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BATCH = [PATIENT, {**PATIENT, "Na_to_K": 31.0}, {**PATIENT, "Sex": "F"}]
LOAD_SECONDS = 2.0
CLIENTS = 6


class Load:
    """Keep-alive clients posting singles and batches until the server goes away."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent_patients = 0
        self.answered_patients = 0
        self.answered_requests = 0
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(CLIENTS)]

    def client(self, index: int) -> None:
        bodies = [(json.dumps(PATIENT).encode(), 1), (json.dumps(BATCH).encode(), len(BATCH))]
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        # Half the clients reconnect for every request, so both workers accept connections.
        headers = {"content-type": "application/json"}
        if index % 2:
            headers["connection"] = "close"
        try:
            self.send(conn, bodies, index, headers)
        finally:
            conn.close()

    def send(
        self,
        conn: http.client.HTTPConnection,
        bodies: list[tuple[bytes, int]],
        n: int,
        headers: dict[str, str],
    ) -> None:
        while not self.stop.is_set():
            body, patients = bodies[n % 2]
            n += 1
            with self.lock:
                self.sent_patients += patients
            try:
                conn.request("POST", "/predict", body, headers)
                answer = conn.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                if self.stop.is_set():
                    return
                time.sleep(0.01)  # the server is going away; the next request reconnects
                continue
            if headers.get("connection") == "close":
                conn.close()
            if answer.status == 200:
                with self.lock:
                    self.answered_patients += patients
                    self.answered_requests += 1


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_nothing_answered_is_lost_across_sigterm_with_two_workers(
    database: str, trained: Trained, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'predictions.db'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    env = {
        "DRUGCLF_ACCESS_LOG": "false",
        "DRUGCLF_RELOAD_INTERVAL": "0",
        "DRUGCLF_PREDICTION_LOG_URL": url,
        "DRUGCLF_PREDICTION_LOG_FLUSH_INTERVAL": "0.5",
    }
    log = tmp_path / "server.log"
    with ServerProcess(
        trained.artifacts_dir, workers=2, bench_routes=False, extra_env=env, log_path=log
    ) as server:
        proc = server.process
        assert proc is not None
        load = Load(server.port)
        for thread in load.threads:
            thread.start()
        time.sleep(LOAD_SECONDS)
        proc.send_signal(signal.SIGTERM)  # to the server alone, while the clients are sending
        proc.wait(timeout=60)
        load.stop.set()
        for thread in load.threads:
            thread.join(timeout=30)
    assert proc.returncode == 0, log.read_text()
    backend = open_backend(url)
    rows, requests = backend.count(Filters())
    with backend.session() as conn:
        workers = conn.execute("SELECT COUNT(DISTINCT worker) FROM predictions").fetchone()[0]
    assert load.answered_requests > 100
    # Every answered prediction was recorded; a request cut off mid-flight may be recorded too.
    assert load.answered_patients <= rows <= load.sent_patients
    assert rows - load.answered_patients <= CLIENTS * len(BATCH)
    assert requests >= load.answered_requests
    assert workers == 2, log.read_text()
    print(
        f"{database}: sent {load.sent_patients}, answered {load.answered_patients}, stored {rows}"
    )
