"""HAProxy in front of the replicas: health checks on ``GET /ready``, one frontend per pool.

Frontend ``n`` balances over the first ``n`` replicas, so the throughput runs compare 1, 2 and
3 replicas through the same balancer without reloading it. Every answer carries the name of
the replica that gave it (``X-Served-By``), so the harness can tell which replica answered
each request. Statistics come from HAProxy's own admin socket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from loadtests.bench.server import HOST, free_port, stop_group

HAPROXY: Final = "/usr/sbin/haproxy"
SERVED_BY: Final = "X-Served-By"
# A replica is out after two failed checks half a second apart, back after one good one.
CHECK_INTERVAL_MS: Final = 500
READY_TIMEOUT_S: Final = 20.0


class BalancerError(Exception):
    """HAProxy is missing, refused its configuration, or did not start."""


def replica_name(index: int) -> str:
    """The balancer's name for replica ``index`` (0-based): r1, r2, ..."""
    return f"r{index + 1}"


def render_config(replica_ports: Sequence[int], frontend_ports: Sequence[int], socket: Path) -> str:
    """HAProxy's configuration: frontend ``i`` (1-based) balances over the first ``i`` replicas."""
    lines = [
        "global",
        f"    stats socket {socket} mode 600 level admin",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout http-keep-alive 10s",
        # A request is tried again on another replica when the connection to a dead one is
        # refused, or when it closes before a single byte of an answer: the request was sent
        # on a kept-alive connection to a replica that had just died. A replica that dies
        # after taking a request may have logged it first; the log check would show the
        # duplicate. Requests it had begun to answer are not repeated.
        "    retries 2",
        "    retry-on conn-failure empty-response",
        "    option redispatch 1",
        "    option httpchk GET /ready",
        "    http-check expect status 200",
        f"    default-server inter {CHECK_INTERVAL_MS}ms fall 2 rise 1",
    ]
    for pool, port in enumerate(frontend_ports, start=1):
        lines += [
            f"frontend pool{pool}",
            f"    bind {HOST}:{port}",
            f"    default_backend pool{pool}",
            f"backend pool{pool}",
            "    balance roundrobin",
            f"    http-response set-header {SERVED_BY} %[srv_name]",
        ]
        lines += [
            f"    server {replica_name(i)} {HOST}:{replica_ports[i]} check" for i in range(pool)
        ]
    return "\n".join(lines) + "\n"


class Balancer:
    """HAProxy on loopback with one frontend per pool size, stopped on exit."""

    def __init__(self, replica_ports: Sequence[int]) -> None:
        if not os.access(HAPROXY, os.X_OK):
            raise BalancerError(f"{HAPROXY} not found: apt-get install -y haproxy")
        self.folder = Path(tempfile.mkdtemp(prefix="drugclf-haproxy-"))
        self.socket = self.folder / "admin.sock"
        self.ports = [free_port() for _ in replica_ports]
        self.config = self.folder / "haproxy.cfg"
        self.config.write_text(render_config(replica_ports, self.ports, self.socket))
        self.process: subprocess.Popen[bytes] | None = None

    def port(self, replicas: int) -> int:
        """The frontend that balances over the first ``replicas`` replicas."""
        return self.ports[replicas - 1]

    def start(self) -> None:
        """Check the configuration, start HAProxy, wait until every replica is up."""
        checked = subprocess.run(  # noqa: S603 (our binary, our file)
            [HAPROXY, "-c", "-f", str(self.config)], capture_output=True, check=False
        )
        if checked.returncode != 0:
            raise BalancerError(f"haproxy refused its configuration: {checked.stderr.decode()}")
        self.process = subprocess.Popen(  # noqa: S603
            [HAPROXY, "-db", "-f", str(self.config)],
            stdout=(self.folder / "haproxy.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BalancerError(f"haproxy exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                if self.up(len(self.ports)) == len(self.ports):
                    return
            time.sleep(0.1)
        raise BalancerError(f"not every replica was up in HAProxy after {READY_TIMEOUT_S:.0f} s")

    def command(self, line: str) -> str:
        """One command on HAProxy's admin socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self, replicas: int) -> dict[str, dict[str, str]]:
        """``show stat`` of the pool's servers, by replica name."""
        text = self.command("show stat").lstrip("# ")
        header, *rows = [line.split(",") for line in text.splitlines() if line]
        stats = [dict(zip(header, row, strict=False)) for row in rows]
        return {
            s["svname"]: s
            for s in stats
            if s["pxname"] == f"pool{replicas}" and s["svname"] not in ("FRONTEND", "BACKEND")
        }

    def up(self, replicas: int) -> int:
        """How many of the pool's replicas HAProxy considers up."""
        return sum(s["status"].startswith("UP") for s in self.servers(replicas).values())

    def stop(self) -> None:
        """Stop HAProxy and delete its folder."""
        if self.process is not None:
            stop_group(self.process, timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Balancer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
