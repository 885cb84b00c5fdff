"""The replicas harness's own pieces: HAProxy's configuration (checked by HAProxy itself) and
the invariants. ``make replicas-test`` runs the whole thing (real servers, PostgreSQL, HAProxy).
"""

from __future__ import annotations

import os
import re
import socketserver
import subprocess
import threading
import time
from pathlib import Path

import pytest

from loadtests.replicas.balancer import HAPROXY, SERVED_BY, render_config
from loadtests.replicas.report import Run, render, violations
from loadtests.replicas.scenarios import KillResult, LogCheck, PromoteResult, ThroughputRun
from loadtests.replicas.traffic import Outcome, Traffic


def test_pool_n_balances_over_the_first_n_replicas(tmp_path: Path) -> None:
    config = render_config([8001, 8002, 8003], [9001, 9002, 9003], tmp_path / "admin.sock")
    pools = re.split(r"^backend pool", config, flags=re.M)[1:]
    assert [pool.count("    server r") for pool in pools] == [1, 2, 3]
    assert "option httpchk GET /ready" in config
    assert "bind 127.0.0.1:9002" in config
    if not os.access(HAPROXY, os.X_OK):
        pytest.skip("haproxy is not installed (apt-get install -y haproxy)")
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    checked = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr.decode()


def _outcome(n: int, *, status: int = 200, version: str = "v2", by: str = "r1") -> Outcome:
    return Outcome(f"p-0-{n}", float(n), n + 0.01, status, version if status == 200 else None, by)


def _run(**changes: object) -> Run:
    promote = PromoteResult("v1", "v2", "r2", [_outcome(1)], 0.0, {"r1": 0.5, "r2": 0.3})
    kill = KillResult("r2", [_outcome(2)], 10.0, 10.1, 12.0, 0.6, back_after_s=0.7)
    log = LogCheck(2, 2, [], [], 0, 0, 0.5)
    run = Run(
        ["- header"],
        1.0,
        4,
        [ThroughputRun(1, 800.0, 9000.0, 0, 800, {"r1": 500.0})],
        promote,
        kill,
        log,
        {"r1": 210.0},
    )
    for name, value in changes.items():
        setattr(run, name, value)
    return run


def test_a_clean_run_keeps_every_invariant() -> None:
    run = _run()
    assert violations(run) == []
    assert "- all kept" in render(run)


def test_broken_invariants_are_named() -> None:
    run = _run()
    run.promote.switched_after_s["r3"] = 2.5
    run.kill.failed_sent_after_kill = 1
    run.log = LogCheck(3, 1, ["p-0-7"], [_outcome(8, by="r1")], 0, 0, 0.5)
    broken = violations(run)
    assert any("r3 answered the old version 2.50 s" in b for b in broken)
    assert any("sent after the kill failed" in b for b in broken)
    assert any("1 request ids logged more than once" in b for b in broken)
    assert any("1 answered requests missing, not the killed replica's" in b for b in broken)
    assert "BROKEN" in render(run)


class _ClosesEveryThirdRequest(socketserver.StreamRequestHandler):
    """Answers two requests per connection, then closes the third without a byte.

    That is what HAProxy does to a kept-alive client connection when the replica it forwarded
    the request to was dead.
    """

    def handle(self) -> None:
        for _ in range(3):
            length = 0
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            self.rfile.read(length)
            self.server.served += 1  # type: ignore[attr-defined]
            if self.server.served % 3 == 0:  # type: ignore[attr-defined]
                return
            body = b'{"model_version":"v1"}'
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"{SERVED_BY}: r1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )


def test_a_kept_alive_connection_closed_unanswered_is_resent_once_under_a_new_id() -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ClosesEveryThirdRequest) as server:
        server.served = 0  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        traffic = Traffic(server.server_address[1], [b'{"Age": 1}'], threads=1).start()
        deadline = time.monotonic() + 10
        while server.served < 12 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        outcomes = traffic.stop()
        server.shutdown()
    resent = [o for o in outcomes if o.resent]
    assert resent, "no kept-alive connection was closed unanswered"
    ids = [o.request_id for o in outcomes]
    for first in resent:
        assert first.status == 0 and not first.failed
        assert ids[ids.index(first.request_id) + 1] == f"{first.request_id}-r1"
    assert not [o for o in outcomes if o.failed]
    assert all(o.ok for o in outcomes if not o.resent)


def test_resent_requests_are_reported_not_counted_as_failures() -> None:
    first = Outcome("p-0-3", 10.05, 10.06, 0, None, None, resent=True)
    run = _run(
        kill=KillResult("r2", [first, _outcome(4)], 10.0, 10.01, 12.0, 0.6, back_after_s=0.7)
    )
    assert run.kill.failures == 0 and run.kill.resent == 1
    assert violations(run) == []
    assert (
        "sent again by the client, under a new id (HAProxy's way to ask for a retry): 1"
        in render(run)
    )
