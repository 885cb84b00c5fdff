"""The real server (two workers): the policy switches atomically under load, and a restart keeps
the policy and the feedback.

Nothing here guesses how long the server takes: a worker follows a new policy within the reload
interval and an answer reaches the prediction log asynchronously (its writer process runs at a
lower CPU priority, so on a busy machine that takes seconds, not the usual tens of
milliseconds). Each test waits for the condition it needs, with a generous deadline, and fails
saying which condition and what it saw last.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import pytest

from drugclf import routing
from loadtests.bench.server import HOST, ServerProcess
from tests.experiments.conftest import TOKEN, Versions, policy
from tests.support import PATIENT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BODY = json.dumps(PATIENT).encode()
ADMIN = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
CALL_TIMEOUT_S: Final = 60.0
"""A bound on one HTTP call (loading a policy's models on a busy machine), not a wait."""
WAIT_S: Final = 60.0
"""How long a condition may take to become true before the test fails."""
POLL_S: Final = 0.05

T = TypeVar("T")


def _until(what: str, probe: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Call ``probe`` until ``done`` accepts its result; fail after ``WAIT_S`` with the last one."""
    deadline = time.monotonic() + WAIT_S
    while True:
        seen = probe()
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {WAIT_S:.0f} s; last seen: {seen!r}")
        time.sleep(POLL_S)


def _server(versions: Versions, base: Path) -> ServerProcess:
    return ServerProcess(
        versions.registry.root,
        workers=2,
        bench_routes=False,
        extra_env={
            "DRUGCLF_ADMIN_TOKEN": TOKEN,
            "DRUGCLF_DATA_DIR": str(base / "var"),
            "DRUGCLF_RELOAD_INTERVAL": "0.1",
            "DRUGCLF_ACCESS_LOG": "false",
            "DRUGCLF_PREDICTION_LOG_FLUSH_INTERVAL": "0.05",
        },
        log_path=base / "server.log",
    )


def _call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=CALL_TIMEOUT_S)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def _only(versions: Versions, candidate: str) -> bytes:
    """A policy in which ``candidate`` answers every request."""
    document = policy(versions, weight=1.0, fraction=0.0)
    document["candidates"] = [{"version": candidate, "weight": 1.0}]
    document["shadow"] = []
    return json.dumps(document).encode()


def test_the_policy_switches_atomically_under_load(versions: Versions, tmp_path: Path) -> None:
    """Two policies, each sending everything to its own candidate, swapped 20 times under load.

    A worker that read half a policy, or none while the file is replaced, would let the primary
    answer: once both workers follow the first policy, no answer may come from it, and none
    may fail. The first policy is in the registry before the server starts, so every worker
    follows it from its first request (it reads the file before it accepts connections); the
    switches are ``PUT``s under load.
    """
    first = routing.decode(_only(versions, versions.candidate))
    routing.check(first, versions.registry)
    routing.write(versions.registry, first)
    with _server(versions, tmp_path) as server:
        port = server.port
        stop = threading.Event()
        seen: Counter[str] = Counter()
        failures: list[str] = []
        lock = threading.Lock()

        def load() -> None:
            conn = http.client.HTTPConnection(HOST, port, timeout=CALL_TIMEOUT_S)
            while not stop.is_set():
                try:
                    conn.request("POST", "/predict", BODY, {"content-type": "application/json"})
                    answer = conn.getresponse()
                    body = answer.read()
                    with lock:
                        if answer.status != 200:
                            failures.append(f"{answer.status} {body[:200]!r}")
                        seen[answer.getheader("x-model-version") or "?"] += 1
                except OSError as exc:  # pragma: no cover - a failure to report
                    with lock:
                        failures.append(repr(exc))
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=CALL_TIMEOUT_S)
            conn.close()

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            for i in range(20):
                target = versions.shadow if i % 2 == 0 else versions.candidate
                status, _, text = _call(port, "PUT", "/routing", _only(versions, target), ADMIN)
                assert status == 200, text
                time.sleep(0.15)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert failures == []
    assert sum(seen.values()) > 100
    assert set(seen) == {versions.candidate, versions.shadow}, seen


def _labelled(port: int) -> dict[tuple[str, str], int]:
    """Labelled rows per (version, role) in ``GET /monitoring/versions`` (rows with labels only)."""
    status, _, text = _call(port, "GET", "/monitoring/versions?min_labels=1")
    assert status == 200, text
    rows = json.loads(text)["versions"]
    return {(v["model_version"], v["role"]): v["labelled"] for v in rows if v["labelled"]}


def test_a_restart_keeps_the_policy_and_the_feedback(versions: Versions, tmp_path: Path) -> None:
    """A policy set over HTTP and a label survive a restart of the whole server.

    The candidate answers every request the policy routes, so an answer from it proves the
    worker followed the policy, and its shadows are known: the shadow version and the primary
    listening. Everything is waited for in the first server (the label needs the answer in the
    log; the shadows' rows come later still), so the second server must show exactly what the
    first stored.
    """
    document = json.dumps(policy(versions, weight=1.0, fraction=1.0)).encode()
    expected = {
        (versions.candidate, "candidate"): 1,
        (versions.primary, "shadow"): 1,
        (versions.shadow, "shadow"): 1,
    }
    with _server(versions, tmp_path) as server:
        port = server.port
        status, _, text = _call(port, "PUT", "/routing", document, ADMIN)
        assert status == 200, text
        attempts = itertools.count()

        def predict() -> tuple[str, str | None]:
            request_id = f"kept-{next(attempts)}"
            headers = {"content-type": "application/json", "x-request-id": request_id}
            status, answer, text = _call(port, "POST", "/predict", BODY, headers)
            assert status == 200, text
            return request_id, answer.get("x-model-version")

        # The worker that took the PUT follows at once, the other within the reload interval.
        request_id, _ = _until(
            "an answer from the candidate (every worker follows the policy)",
            predict,
            lambda answer: answer[1] == versions.candidate,
        )
        feedback = json.dumps([{"request_id": request_id, "label": "DrugY"}]).encode()
        json_only = {"content-type": "application/json"}
        status, _, text = _until(  # 404 until the answer is in the log
            "the answer in the prediction log (feedback accepted)",
            lambda: _call(port, "POST", "/feedback", feedback, json_only),
            lambda answer: answer[0] != 404,
        )
        assert status == 200, text
        # The label joins every prediction of that patient: the answer and its shadows.
        _until(
            "the answer and both shadow predictions labelled in the log",
            lambda: _labelled(port),
            lambda labelled: labelled == expected,
        )
    with _server(versions, tmp_path) as server:
        port = server.port
        status, _, text = _call(port, "GET", "/routing")
        assert status == 401, text  # reading the policy is an admin route
        status, _, text = _call(port, "GET", "/routing", headers=ADMIN)
        assert status == 200, text
        shown = json.loads(text)
        assert shown["policy"]["candidates"] == [{"version": versions.candidate, "weight": 1.0}]
        assert shown["applied"] is True  # a worker reads the policy before it accepts requests
        assert _labelled(port) == expected
        again = json.dumps([{"request_id": request_id, "label": "DrugA"}]).encode()
        status, _, text = _call(port, "POST", "/feedback", again, json_only)
        assert status == 409, text  # the stored label survived the restart
