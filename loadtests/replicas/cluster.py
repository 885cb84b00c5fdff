"""Replicas: real server processes on one registry and one prediction log, each its own port.

Each replica is ``python -m serving`` (via ``ServerProcess``) with one worker, its own data
folder (the log's spool) and its own log file; all share the artifacts folder and the
PostgreSQL database. A killed replica is started again on the same port with the same data
folder, as a container restarted in its pod would be, so its spool is delivered.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import psutil

from loadtests.bench.server import ServerProcess
from loadtests.replicas.balancer import replica_name

KILL_TIMEOUT_S: Final = 10.0


def _alive(process: psutil.Process) -> bool:
    """Still running: a killed process whose parent died first may linger as a zombie."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Replica:
    """One replica: its name in the balancer, its server and its own folder."""

    name: str
    server: ServerProcess
    folder: Path

    @property
    def port(self) -> int:
        """The replica's own port."""
        return self.server.port

    def rss_bytes(self) -> int:
        """Memory of the whole replica: granian's main process, the worker, the log writer."""
        assert self.server.process is not None
        parent = psutil.Process(self.server.process.pid)
        total = 0
        for process in [parent, *parent.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total


class Cluster:
    """``count`` replicas of the server on ``artifacts`` logging to ``log_url``."""

    def __init__(
        self,
        folder: Path,
        artifacts: Path,
        log_url: str,
        *,
        count: int = 3,
        reload_interval: float = 1.0,
        admin_token: str,
    ) -> None:
        self.folder = folder
        self.artifacts = artifacts
        self.env = {
            "DRUGCLF_PREDICTION_LOG_URL": log_url,
            "DRUGCLF_RELOAD_INTERVAL": str(reload_interval),
            "DRUGCLF_ADMIN_TOKEN": admin_token,
        }
        self.replicas = [self._replica(i) for i in range(count)]

    def _replica(self, index: int, port: int | None = None) -> Replica:
        name = replica_name(index)
        folder = self.folder / name
        (folder / "var").mkdir(parents=True, exist_ok=True)
        server = ServerProcess(
            self.artifacts,
            workers=1,
            bench_routes=False,
            extra_env={**self.env, "DRUGCLF_DATA_DIR": str(folder / "var")},
            log_path=folder / "server.log",
            port=port,
        )
        return Replica(name, server, folder)

    def start(self) -> None:
        """Start every replica, one after the other (each until ready)."""
        for replica in self.replicas:
            replica.server.start()

    def kill(self, index: int) -> None:
        """SIGKILL the replica's whole process group: server, worker and log writer at once.

        Returns when every one of those processes is gone, not only the server's main one:
        until then the worker may still hold requests.

        Raises:
            RuntimeError: one of them is still alive ``KILL_TIMEOUT_S`` after the signal.
        """
        process = self.replicas[index].server.process
        assert process is not None
        group = [psutil.Process(process.pid)]
        group += group[0].children(recursive=True)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while any(_alive(p) for p in group) and time.monotonic() < deadline:
            time.sleep(0.002)
        lingering = [p.pid for p in group if _alive(p)]
        if lingering:  # a scenario measured on from here would count a half-dead replica
            raise RuntimeError(
                f"replica {index}: processes {lingering} still alive {KILL_TIMEOUT_S} s after "
                "SIGKILL"
            )

    def restart(self, index: int) -> float:
        """Start a killed replica again on its port and data folder; seconds until ready."""
        old = self.replicas[index]
        self.replicas[index] = self._replica(index, port=old.port)
        return self.replicas[index].server.start()

    def stop(self) -> None:
        """Stop every replica (SIGTERM, then SIGKILL if one lingers)."""
        for replica in self.replicas:
            replica.server.stop()

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
