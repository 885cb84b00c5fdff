"""Start the production server on a free loopback port, time it to ready, measure its workers.

The bench, the load tests and every test of the real server process start it through
:class:`ServerProcess`. The server runs in its own process group, so stopping it stops its
workers (and any retrain job) too, even when a run fails half-way: use it as a context manager.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import psutil

HOST: Final = "127.0.0.1"
ROOT: Final = Path(__file__).resolve().parents[2]
# Not imported from loadtests.bench.reference: that would import the server into the bench.
REFERENCE_FACTORY: Final = "loadtests.bench.reference:create_app_from_env"
READY_TIMEOUT_S: Final = 60.0
POLL_INTERVAL_S: Final = 0.005
HELPER_PROCESSES: Final = (
    "resource_tracker",
    "semaphore_tracker",
    "serving.monitoring.predlog.writer",
)
# Only an upper bound: a clean stop takes well under a second.
STOP_TIMEOUT_S: Final = 20.0
# How much of the server's log a start failure quotes.
LOG_TAIL_CHARS: Final = 3000


class ServerError(Exception):
    """The server did not start, did not become ready, or died."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """The status of ``GET path`` on the local server, or None when nothing answers."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


class ServerProcess:
    """``python -m serving`` on a free loopback port, stopped (with its workers) on exit.

    Args:
        artifacts_dir: the registry to serve.
        workers: worker processes; None keeps the server's default (one per core).
        bench_routes: serve the bench's app, which adds ``POST /bench/reference``.
        extra_env: more ``DRUGCLF_*`` settings.
        log_path: where the server's output goes (discarded when None); a start failure quotes
            its end.
        ready_timeout: seconds to wait for ``GET /ready`` to answer 200.
        port: the port to bind (a free one when None); a replica restarted behind a load
            balancer takes its old port again.
    """

    def __init__(
        self,
        artifacts_dir: Path,
        *,
        workers: int | None = None,
        bench_routes: bool = True,
        extra_env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        port: int | None = None,
    ) -> None:
        self.port = free_port() if port is None else port
        self.ready_timeout = ready_timeout
        inherited = dict(os.environ)
        # Several workers share metrics through this folder, which the server makes its own: one
        # inherited from the caller would mix another server's counters into this one's.
        inherited.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.env = {
            **inherited,
            "DRUGCLF_ARTIFACTS_DIR": str(artifacts_dir),
            "DRUGCLF_HOST": HOST,
            "DRUGCLF_PORT": str(self.port),
            **(extra_env or {}),
        }
        if bench_routes:
            self.env["DRUGCLF_APP_FACTORY"] = REFERENCE_FACTORY
            # The workers import the factory from this checkout's loadtests package.
            paths = [str(ROOT), self.env.get("PYTHONPATH", "")]
            self.env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        if workers is not None:
            self.env["DRUGCLF_WORKERS"] = str(workers)
        self._data_dir: str | None = None
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> float:
        """Start the server and wait until ``GET /ready`` answers 200; returns seconds taken."""
        if "DRUGCLF_DATA_DIR" not in self.env:
            # The server's own data (prediction log, retrain jobs) goes to a private folder: a
            # benchmark or a test must not fill the real prediction log with its traffic.
            self._data_dir = tempfile.mkdtemp(prefix="drugclf-server-data-")
            self.env["DRUGCLF_DATA_DIR"] = self._data_dir
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        started = time.perf_counter()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serving"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches the workers
            )
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        deadline = started + self.ready_timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise ServerError(
                    f"server exited with {self.process.returncode} before ready{self._log_tail()}"
                )
            if http_status(self.port, "/ready", timeout=0.5) == 200:
                self.startup_s = time.perf_counter() - started
                return self.startup_s
            time.sleep(POLL_INTERVAL_S)
        self.stop()
        raise ServerError(f"server not ready after {self.ready_timeout:.0f} s{self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return ":\n" + self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def worker_rss_bytes(self) -> list[int]:
        """RSS of each worker process: the server's children but its helper processes.

        Helpers are multiprocessing's trackers and the prediction log's writers.

        When the server runs in one process (no children), that process is the worker.
        """
        if self.process is None:
            raise ServerError("server not started")
        parent = psutil.Process(self.process.pid)
        workers = []
        for child in parent.children(recursive=True):
            try:
                command = " ".join(child.cmdline())
                if any(helper in command for helper in HELPER_PROCESSES):
                    continue
                workers.append(child.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
        return workers or [parent.memory_info().rss]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server and its workers.

        On a shared machine, CPU per request is steadier than requests per second: it does not
        count the time the server waited for a core another process held.
        """
        if self.process is None:
            raise ServerError("server not started")
        parent = psutil.Process(self.process.pid)
        total = 0.0
        for process in [parent, *parent.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def settings(self) -> dict[str, object]:
        """The settings the server runs with, as serving reads them from this environment."""
        from serving.settings import Settings  # noqa: PLC0415 (serving is optional here)

        settings = Settings.from_env(self.env)
        return {
            "workers": settings.worker_count(),
            "access_log": settings.access_log,
            "prediction_log": getattr(settings, "prediction_log", None),
            "log_format": settings.log_format,
            "event_loop": settings.event_loop,
        }

    def stop(self) -> None:
        """Stop the server and its workers: SIGTERM to the group, SIGKILL if it lingers."""
        try:
            self._stop_processes()
        finally:
            if self._data_dir is not None:
                shutil.rmtree(self._data_dir, ignore_errors=True)

    def _stop_processes(self) -> None:
        if self.process is not None:
            stop_group(self.process, STOP_TIMEOUT_S)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def stop_group(process: subprocess.Popen[Any], timeout: float) -> None:
    """Stop a process started in its own group: SIGTERM, SIGKILL after ``timeout`` seconds.

    Children that outlived their parent still belong to the group, so the group gets a last
    SIGKILL either way.
    """
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
