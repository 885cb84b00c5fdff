"""The OpenAPI document against the real server: schemathesis, every check, stateful included.

Clients generate code from ``/docs/openapi.json``, so the server must do what it says: every
status a route answers is documented with the real error body, every request the document
allows is accepted, every request it forbids is refused, every content type is the one
documented. schemathesis (the CLI, in its own process) reads the document the running server
serves and checks all of that with generated requests (examples, boundary values, fuzzing and
stateful sequences).

Choices, so the run stays about a minute on two shared cores:

- ``MAX_EXAMPLES`` generated cases per operation and phase, a fixed seed (set
  ``DRUGCLF_SCHEMATHESIS_SEED`` to explore others: a failure is a real gap either way);
- admin routes run with the admin token, so promote and rollback really switch versions in this
  test's own copy of the registry (schemathesis also checks that they refuse a request without
  it); the stateful phase follows the document's links (``/models`` to promote, promote to
  rollback and back ...);
- ``POST /retrain`` gets only requests the document forbids, and no stateful sequence
  (``CONFIG``): a request it allows starts a real training job (seconds for the defaults,
  minutes for 1,000 trees), and ``wait`` defaults to holding the answer until the job ends.
  What it accepts is covered by ``tests/retrain/test_requests.py`` (a Hypothesis test checks
  that ``?wait=`` accepts exactly the documented pattern) and ``tests/retrain/test_retrain.py``.
  Should a job start anyway, ``DRUGCLF_RETRAIN_TIMEOUT`` ends it within ``RETRAIN_TIMEOUT_S``
  (its 504 is documented);
- the Open Inference Protocol's infer routes document the protocol's own request schema, which
  allows any tensors; this model takes five named ones with shapes that must agree, which no
  schema keyword states (nor that ``Inference-Header-Content-Length`` must match the body). So
  a generated request the document allows may rightly get the protocol's 400: the hook drops
  that refusal there only (every other check runs; ``tests/v2/`` tests what they accept);
- ``openapi_hooks.py`` drops these refusals OpenAPI cannot express, and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest

from loadtests.bench.server import ServerProcess
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ADMIN_TOKEN: Final = "openapi-conformance-token"
MAX_EXAMPLES: Final = 50
SEED: Final = int(os.environ.get("DRUGCLF_SCHEMATHESIS_SEED", "20261203"))
RETRAIN_TIMEOUT_S: Final = 20
RUN_TIMEOUT_S: Final = 240
CONFIG: Final = """\
[[operations]]
include-name = "POST /retrain"
generation.mode = "negative"
phases.stateful.enabled = false
"""
"""POST /retrain sees only requests the document forbids, and no stateful sequence."""


@pytest.fixture(scope="module")
def server(
    model_copy: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``python -m serving`` on its own copy of the session model, with an admin token."""
    base = model_copy("openapi-conformance")
    log = tmp_path_factory.mktemp("openapi-conformance-log") / "server.log"
    with ServerProcess(
        base / "artifacts",
        workers=1,
        bench_routes=False,
        extra_env={
            "DRUGCLF_ADMIN_TOKEN": ADMIN_TOKEN,
            "DRUGCLF_RUNS_DIR": str(base / "runs"),
            "DRUGCLF_ACCESS_LOG": "0",
            "DRUGCLF_RELOAD_INTERVAL": "0.2",
            "DRUGCLF_RETRAIN_TIMEOUT": str(RETRAIN_TIMEOUT_S),
            # A job that starts anyway (a request with unknown query parameters is valid) gates
            # on few random patients, so it ends well within the response time check.
            "DRUGCLF_RETRAIN_PARITY_CASES": "1000",
        },
        log_path=log,
    ) as running:
        yield running.base_url


def test_the_server_does_what_its_openapi_document_says(server: str, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{server}/docs/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        str(RETRAIN_TIMEOUT_S + 10),
        "--generation-database",
        "none",
        # The admin token is sent as given; generated tokens would only ever meet a 401 or 403.
        "--generation-with-security-parameters",
        "false",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.serving.openapi_hooks",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    run = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-12_000:]
    # The phases ran, stateful included (it would say "not applicable" with no links to follow).
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in report, report[-4_000:]
