"""The real server under faults: a worker killed under load is replaced, the others keep answering."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from loadtests.bench.server import HELPER_PROCESSES, HOST, ServerProcess, http_status
from tests.support import PATIENT, Trained

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BODY = json.dumps(PATIENT).encode()
HEADERS = {"content-type": "application/json"}


def workers_of(server: ServerProcess) -> list[psutil.Process]:
    """The server's worker processes (its children but the helper processes)."""
    assert server.process is not None
    found = []
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if not any(helper in " ".join(child.cmdline()) for helper in HELPER_PROCESSES):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


class Load:
    """Keep-alive clients posting one patient in a loop, counting outcomes."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.outcomes: Counter[str] = Counter()
        self.failed_at: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            if outcome != "200":
                self.failed_at.append(time.monotonic())

    def _run(self) -> None:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
        while not self._stop.is_set():
            try:
                connection.request("POST", "/predict", BODY, HEADERS)
                response = connection.getresponse()
                response.read()
                self._count(str(response.status))
            except (OSError, http.client.HTTPException):
                self._count("connection_error")
                connection.close()
                connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
        connection.close()


def test_a_killed_worker_is_replaced_while_the_other_keeps_answering(
    trained: Trained, tmp_path: Path
) -> None:
    with (
        ServerProcess(
            trained.artifacts_dir,
            workers=2,
            bench_routes=False,
            extra_env={"DRUGCLF_ACCESS_LOG": "0", "DRUGCLF_PREDICTION_LOG": "0"},
            log_path=tmp_path / "server.log",
        ) as server,
        Load(server.port, clients=4) as load,
    ):
        time.sleep(1.0)
        before = workers_of(server)
        assert len(before) == 2
        answered_before = load.outcomes["200"]
        assert answered_before > 0
        killed_at = time.monotonic()
        os.kill(before[0].pid, signal.SIGKILL)
        # The other worker answers throughout; granian starts a replacement.
        statuses = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            statuses.append(http_status(server.port, "/ready", timeout=2))
            now = workers_of(server)
            if len(now) == 2 and before[0].pid not in {p.pid for p in now}:
                break
            time.sleep(0.1)
        replaced = {p.pid for p in workers_of(server)}
        assert len(replaced) == 2 and before[0].pid not in replaced, "no replacement worker"
        assert server.process is not None and server.process.poll() is None
        assert statuses.count(200) >= len(statuses) - 1, statuses
        # The new worker answers too: keep the load on and wait for it to become ready.
        time.sleep(2.0)
        answered_after = load.outcomes["200"]
    failed = sum(n for outcome, n in load.outcomes.items() if outcome != "200")
    assert answered_after > answered_before
    # Only requests on the killed worker's connections fail (those in flight, and new connections
    # the kernel had queued for its socket), all at the moment it dies; nothing after.
    assert failed <= 0.01 * answered_after, load.outcomes
    assert all(t - killed_at < 1.5 for t in load.failed_at), [t - killed_at for t in load.failed_at]
    # Every line the server wrote is JSON, granian's own report of the dead worker included.
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()]
    assert any(
        line["logger"] == "_granian" and "worker" in line["message"] and line["level"] == "ERROR"
        for line in lines
    ), lines


def test_idle_keep_alive_connections_are_closed(trained: Trained, tmp_path: Path) -> None:
    with ServerProcess(
        trained.artifacts_dir,
        workers=1,
        bench_routes=False,
        extra_env={"DRUGCLF_KEEP_ALIVE_TIMEOUT": "1", "DRUGCLF_PREDICTION_LOG": "0"},
        log_path=tmp_path / "server.log",
    ) as server:
        idle = socket.create_connection((HOST, server.port), timeout=10)
        busy = http.client.HTTPConnection(HOST, server.port, timeout=10)
        try:
            idle.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            assert idle.recv(4096).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            # A connection that keeps sending requests is not idle: it stays open.
            for _ in range(4):
                busy.request("GET", "/health")
                assert busy.getresponse().read()
                time.sleep(0.4)
            assert idle.recv(4096) == b""  # the server closed it: EOF
            closed_after = time.monotonic() - started
            assert 0.5 < closed_after < 5, closed_after
            busy.request("GET", "/health")
            assert busy.getresponse().status == 200
        finally:
            idle.close()
            busy.close()
