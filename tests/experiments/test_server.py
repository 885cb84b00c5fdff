"""The real server (two workers): the policy switches atomically under load, and a restart keeps
the policy and the feedback."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from loadtests.bench.server import HOST, ServerProcess
from tests.experiments.conftest import TOKEN, Versions, policy
from tests.support import PATIENT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BODY = json.dumps(PATIENT).encode()
ADMIN = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}


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
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
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
    may fail.
    """
    with _server(versions, tmp_path) as server:
        port = server.port
        status, _, _ = _call(port, "PUT", "/routing", _only(versions, versions.candidate), ADMIN)
        assert status == 200
        time.sleep(0.5)  # both workers follow it (reload interval 0.1 s)
        stop = threading.Event()
        seen: Counter[str] = Counter()
        failures: list[str] = []
        lock = threading.Lock()

        def load() -> None:
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
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
                    conn = http.client.HTTPConnection(HOST, port, timeout=10)
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


def test_a_restart_keeps_the_policy_and_the_feedback(versions: Versions, tmp_path: Path) -> None:
    document = json.dumps(policy(versions, weight=0.5)).encode()
    with _server(versions, tmp_path) as server:
        assert _call(server.port, "PUT", "/routing", document, ADMIN)[0] == 200
        status, _, _ = _call(
            server.port,
            "POST",
            "/predict",
            BODY,
            {"content-type": "application/json", "x-request-id": "kept-1"},
        )
        assert status == 200
        feedback = json.dumps([{"request_id": "kept-1", "label": "DrugY"}]).encode()
        deadline = time.monotonic() + 10
        while True:  # the answer reaches the log within about a second
            status, _, text = _call(
                server.port, "POST", "/feedback", feedback, {"content-type": "application/json"}
            )
            if status != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200, text
    with _server(versions, tmp_path) as server:
        status, _, text = _call(server.port, "GET", "/routing")
        shown = json.loads(text)
        assert shown["policy"]["candidates"][0]["version"] == versions.candidate
        assert shown["applied"] is True
        _, _, text = _call(server.port, "GET", "/monitoring/versions?min_labels=1")
        report = json.loads(text)
        labelled = {(v["model_version"], v["role"]): v["labelled"] for v in report["versions"]}
        # The label joins every prediction of that patient: the answer and its shadows.
        answered = [n for (_, role), n in labelled.items() if role != "shadow"]
        assert answered == [1] and set(labelled.values()) == {1}
        again = _call(
            server.port,
            "POST",
            "/feedback",
            json.dumps([{"request_id": "kept-1", "label": "DrugA"}]).encode(),
            {"content-type": "application/json"},
        )
        assert again[0] == 409  # the stored label survived the restart
