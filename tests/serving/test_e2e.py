"""End to end: the real server process (``python -m serving``, granian) on a free loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from drugclf.registry import Registry
from loadtests.bench.server import ServerProcess, free_port

from .conftest import PATIENT, ROOT, Trained

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
HOST = "127.0.0.1"


def call(
    port: int, path: str, body: object | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@contextmanager
def server(artifacts: Path, log: Path, workers: int = 1, **env: str) -> Iterator[int]:
    """The real server on a free loopback port, ready; its output goes to ``log``."""
    with ServerProcess(
        artifacts,
        workers=workers,
        bench_routes=False,
        extra_env={"DRUGCLF_RELOAD_INTERVAL": "0.2", **env},
        log_path=log,
    ) as running:
        yield running.port


def test_real_server_answers(trained: Trained, tmp_path: Path) -> None:
    with server(trained.artifacts_dir, tmp_path / "server.log") as port:
        status, headers, body = call(port, "/predict", PATIENT, {"X-Request-ID": "e2e-1"})
        assert status == 200
        assert headers["x-request-id"] == "e2e-1"
        assert body["model_version"] == trained.version
        status, _, batch = call(port, "/predict", [PATIENT] * 3)
        assert status == 200 and len(batch) == 3
        status, _, error = call(port, "/predict", {**PATIENT, "Age": "45"})
        assert status == 422 and error["field"] == "Age"
        assert call(port, "/health")[2]["model_loaded"] is True


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_event_loop_setting(trained: Trained, loop: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with server(trained.artifacts_dir, log, DRUGCLF_EVENT_LOOP=loop) as port:
        assert call(port, "/predict", PATIENT)[0] == 200
    started = [
        record
        for record in map(json.loads, log.read_text().splitlines())
        if record["message"].startswith("serving model")
    ]
    assert [record["event_loop"] for record in started] == [loop]


def test_missing_uvloop_refuses_to_start() -> None:
    # As if uvloop were not installed: find_spec answers None for it.
    script = (
        "import importlib.util, sys\n"
        "find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'uvloop' else find(name, *a)\n"
        "from serving.__main__ import main\n"
        "sys.exit(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DRUGCLF_EVENT_LOOP": "uvloop", "DRUGCLF_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    (record,) = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert "DRUGCLF_EVENT_LOOP" in record["message"]
    assert "uvloop is not installed" in record["message"]


def test_every_worker_reloads(
    registry_copy: Registry,
    trained: Trained,
    clone_version: Callable[..., str],
    tmp_path: Path,
) -> None:
    new = clone_version(registry_copy, trained.version, "29990101-000000-dddddd")
    with server(registry_copy.root, tmp_path / "server.log", workers=2) as port:
        registry_copy.promote(new)
        time.sleep(1.0)
        deadline = time.monotonic() + 5
        while True:
            versions = {call(port, "/predict", PATIENT)[2]["model_version"] for _ in range(30)}
            if versions == {new}:
                break
            assert time.monotonic() < deadline, f"still answering with {versions}"
            time.sleep(0.2)
        # Metrics from either worker cover both (Prometheus multiprocess mode).
        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        loaded = [
            line
            for line in text.splitlines()
            if line.startswith("drugclf_model_loaded{") and f'version="{new}"' in line
        ]
        assert len(loaded) == 2, loaded
        assert all(line.endswith(" 1.0") for line in loaded)


@pytest.mark.parametrize("damage", ["missing", "corrupt", "mismatch"])
def test_bad_artifact_refuses_to_start(
    registry_copy: Registry,
    trained: Trained,
    rewrite_metadata: Callable[..., None],
    damage: str,
    tmp_path: Path,
) -> None:
    root = registry_copy.root
    if damage == "missing":
        root = tmp_path / "empty"
        root.mkdir()
    elif damage == "corrupt":
        (root / trained.version / "model.onnx").write_bytes(b"garbage")
    else:
        rewrite_metadata(root / trained.version, lambda m: m["inputs"].reverse())
    result = subprocess.run(
        [sys.executable, "-m", "serving"],
        cwd=ROOT,
        env={**os.environ, "DRUGCLF_ARTIFACTS_DIR": str(root), "DRUGCLF_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    record = json.loads(lines[0])
    assert record["level"] == "ERROR"
    assert record["message"].startswith("cannot start:")
    assert "Traceback" not in result.stderr
