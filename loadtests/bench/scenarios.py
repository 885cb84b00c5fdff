"""Item 5 of the benchmark: /predict under conditions, each against its own baseline.

Each scenario starts its own server (on a copy of the artifacts, so nothing it does reaches the
real registry), loads ``POST /predict`` at 16 connections with wrk, and reports p99 and failed or
wrong answers with the condition off and on. A scenario whose feature is not built yet says so
and is skipped: add a feature by adding a :class:`Scenario` to :func:`scenarios`.
"""

from __future__ import annotations

import http.client
import importlib.util
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

import msgspec

from drugclf.registry import Registry
from loadtests.bench import experiments
from loadtests.bench.http_bench import PREDICT_EXPECT, bodies
from loadtests.bench.server import HOST, ServerProcess
from loadtests.bench.stats import Spread
from loadtests.bench.wrk import WrkResult, run_wrk

NOT_BUILT: Final = "n/a (not built yet)"
RETRAIN_TIMEOUT_S: Final = 600.0
CONNECTIONS: Final = 16


class ScenarioError(Exception):
    """A scenario could not be measured (its condition failed)."""


class ConditionFigures(msgspec.Struct, frozen=True):
    """/predict with the condition off or on."""

    p99_us: Spread
    requests_per_s: Spread
    failures: int
    run_s: Spread | None = None


class ScenarioResult(msgspec.Struct, frozen=True):
    """One scenario: its figures, or why it was not measured."""

    name: str
    off_label: str
    on_label: str
    off: ConditionFigures | None = None
    on: ConditionFigures | None = None
    note: str = ""


class Scenario(msgspec.Struct, frozen=True):
    """A condition to measure /predict under, with the settings that switch it off and on."""

    name: str
    off_label: str
    on_label: str
    available: str | None  # None when measurable, else why not
    off_env: dict[str, str] = {}
    on_env: dict[str, str] = {}
    during: str = ""  # "retrain": run a retrain while wrk loads the server; "ab": a policy
    via_http: bool = False  # retrain with POST /retrain (else the training CLI)


def _setting(fragment: str) -> str | None:
    """The name of serving's setting containing ``fragment``, if serving has one."""
    from serving.settings import Settings  # noqa: PLC0415 (serving is optional here)

    return next((f for f in Settings.__struct_fields__ if fragment in f), None)


def scenarios() -> list[Scenario]:
    """Retrain running, and the prediction log on or off (each n/a until its feature lands)."""
    found = []
    # A retrain is POST /retrain when serving has it; before that, the training CLI promoting
    # a version the server hot-reloads (the same CPU contention and the same model swap).
    via_http = importlib.util.find_spec("serving.lifecycle.jobs") is not None
    retrain_cli = importlib.util.find_spec("training.__main__") is not None
    found.append(
        Scenario(
            "retrain",
            "no retrain",
            "retrain running",
            available=None if via_http or retrain_cli else NOT_BUILT,
            during="retrain",
            via_http=via_http,
        )
    )
    log_setting = _setting("prediction_log")
    env_name = f"DRUGCLF_{log_setting.upper()}" if log_setting else ""
    found.append(
        Scenario(
            "prediction log",
            "log off",
            "log on",
            available=None if log_setting else NOT_BUILT,
            off_env={env_name: "0"} if log_setting else {},
            on_env={env_name: "1"} if log_setting else {},
        )
    )
    found.append(
        Scenario(
            "A/B + shadow",
            "one model",
            "90/10 split, 100 % shadow",
            available=None,
            during="ab",
        )
    )
    return found


def retrain_over_http(port: int, token: str) -> None:
    """``POST /retrain`` and wait for the job: train, evaluate, export, promote (forced).

    The job runs in a process of its own next to the workers, and every worker hot-reloads the
    promoted version, all while wrk loads ``/predict``.

    Raises:
        ScenarioError: the retrain did not succeed and promote.
    """
    connection = http.client.HTTPConnection(HOST, port, timeout=RETRAIN_TIMEOUT_S)
    try:
        connection.request(
            "POST",
            "/retrain",
            body=msgspec.json.encode({"force": True, "wait": True}),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if response.status != 200 or not msgspec.json.decode(answer).get("promoted"):
        raise ScenarioError(f"POST /retrain answered {response.status}: {answer[:500]!r}")


def retrain_with_cli(artifacts_dir: Path, data_path: Path, runs_dir: Path) -> None:
    """The training CLI's full run, promoting a version the server hot-reloads."""
    command = [sys.executable, "-m", "training", "full", "--data", str(data_path)]
    command += ["--artifacts-dir", str(artifacts_dir), "--runs-dir", str(runs_dir)]
    completed = subprocess.run(  # noqa: S603
        command, capture_output=True, timeout=RETRAIN_TIMEOUT_S, check=False
    )
    if completed.returncode != 0:
        raise ScenarioError(f"the retrain failed: {completed.stderr[-500:]!r}")


def _figures(results: list[WrkResult]) -> ConditionFigures:
    return ConditionFigures(
        p99_us=Spread.of([r.p99_us for r in results]),
        requests_per_s=Spread.of([r.requests_per_s for r in results]),
        failures=sum(r.failures for r in results),
        run_s=Spread.of([r.duration_us / 1e6 for r in results]),
    )


def run_scenario(
    scenario: Scenario,
    artifacts_dir: Path,
    *,
    data_path: Path,
    duration_s: float,
    repeats: int,
    workers: int | None,
    progress: Callable[[str], None] = print,
) -> ScenarioResult:
    """Measure one scenario, off and on alternately, on a private copy of the artifacts."""
    result = ScenarioResult(scenario.name, scenario.off_label, scenario.on_label)
    if scenario.available is not None:
        return msgspec.structs.replace(result, note=scenario.available)
    single = bodies(seed=3, count=200)
    runs: dict[bool, list[WrkResult]] = {False: [], True: []}

    def load(port: int, until: Callable[[], object] | None = None) -> WrkResult:
        return run_wrk(
            f"http://{HOST}:{port}/predict",
            connections=CONNECTIONS,
            duration_s=duration_s,
            method="POST",
            bodies=single,
            expect=PREDICT_EXPECT,
            until=until,
        )

    with tempfile.TemporaryDirectory(prefix="drugclf-bench-") as tmp:
        registry = Path(tmp) / "artifacts"
        shutil.copytree(artifacts_dir.resolve(), registry, symlinks=True)
        if scenario.during == "retrain":
            token = secrets.token_urlsafe(16)
            env = {
                **scenario.off_env,
                "DRUGCLF_ADMIN_TOKEN": token,
                "DRUGCLF_DATA": str(data_path.resolve()),
                "DRUGCLF_RUNS_DIR": str(Path(tmp) / "runs"),
            }

            def retrain(port: int) -> Callable[[], None]:
                if scenario.via_http:
                    return lambda: retrain_over_http(port, token)
                return lambda: retrain_with_cli(registry, data_path, Path(tmp) / "runs")

            # One server: a retrain is something that happens to a running server.
            with ServerProcess(registry, workers=workers, extra_env=env) as server:
                for repeat in range(1, repeats + 1):
                    progress(f"  repeat {repeat}/{repeats}: {scenario.name}: {scenario.off_label}")
                    runs[False].append(load(server.port))
                    progress(f"  repeat {repeat}/{repeats}: {scenario.name}: {scenario.on_label}")
                    runs[True].append(load(server.port, until=retrain(server.port)))
        else:
            for repeat in range(1, repeats + 1):
                for on in (False, True):
                    env = scenario.on_env if on else scenario.off_env
                    label = scenario.on_label if on else scenario.off_label
                    progress(f"  repeat {repeat}/{repeats}: {scenario.name}: {label}")
                    if scenario.during == "ab":
                        experiments.apply(Registry(registry), on)
                    with ServerProcess(registry, workers=workers, extra_env=env) as server:
                        runs[on].append(load(server.port))
    return msgspec.structs.replace(result, off=_figures(runs[False]), on=_figures(runs[True]))
