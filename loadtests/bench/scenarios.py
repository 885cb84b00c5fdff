"""Item 5 of the benchmark: /predict under conditions, each against its own baseline.

Each scenario starts its own server (on a copy of the artifacts, so nothing it does reaches the
real registry), loads ``POST /predict`` at 16 connections with wrk, and reports p99 and failed or
wrong answers with the condition off and on. A scenario whose feature is not built yet says so
and is skipped: add a feature by adding a :class:`Scenario` to :func:`scenarios`.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Final

import msgspec

from loadtests.bench.http_bench import PREDICT_EXPECT, bodies
from loadtests.bench.server import HOST, ServerProcess
from loadtests.bench.stats import Spread
from loadtests.bench.wrk import WrkResult, run_wrk

NOT_BUILT: Final = "n/a (not built yet)"
CONNECTIONS: Final = 16


class ConditionFigures(msgspec.Struct, frozen=True):
    """/predict with the condition off or on."""

    p99_us: Spread
    requests_per_s: Spread
    failures: int


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
    during: str = ""  # "retrain": run a retrain while wrk loads the server


def _setting(fragment: str) -> str | None:
    """The name of serving's setting containing ``fragment``, if serving has one."""
    from serving.settings import Settings  # noqa: PLC0415 (serving is optional here)

    return next((f for f in Settings.__struct_fields__ if fragment in f), None)


def scenarios() -> list[Scenario]:
    """Retrain running, and the prediction log on or off (each n/a until its feature lands)."""
    found = []
    # Until serving retrains by itself, a retrain is the training CLI promoting a new version
    # that the server hot-reloads: the same CPU contention and the same model swap.
    retrain_cli = importlib.util.find_spec("training.__main__") is not None
    found.append(
        Scenario(
            "retrain",
            "no retrain",
            "retrain running",
            available=None if retrain_cli else NOT_BUILT,
            during="retrain",
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
    return found


@contextmanager
def retrain_running(artifacts_dir: Path, data_path: Path, runs_dir: Path) -> Iterator[None]:
    """A full retrain (train, evaluate, export, promote) in the background, on this registry.

    The server reloads the promoted model while under load, so this measures both the CPU a
    retrain takes from the workers and the hot swap of the model.
    """
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "training",
            "full",
            "--data",
            str(data_path),
            "--artifacts-dir",
            str(artifacts_dir),
            "--runs-dir",
            str(runs_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        # Let it finish (it is part of the condition), but never hang the benchmark.
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _figures(results: list[WrkResult]) -> ConditionFigures:
    return ConditionFigures(
        p99_us=Spread.of([r.p99_us for r in results]),
        requests_per_s=Spread.of([r.requests_per_s for r in results]),
        failures=sum(r.failures for r in results),
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
    with tempfile.TemporaryDirectory(prefix="drugclf-bench-") as tmp:
        registry = Path(tmp) / "artifacts"
        shutil.copytree(artifacts_dir.resolve(), registry, symlinks=True)
        for repeat in range(1, repeats + 1):
            for on in (False, True):
                env = scenario.on_env if on else scenario.off_env
                label = scenario.on_label if on else scenario.off_label
                progress(f"  repeat {repeat}/{repeats}: {scenario.name}: {label}")
                with ServerProcess(registry, workers=workers, extra_env=env) as server:
                    condition: AbstractContextManager[None] = nullcontext()
                    if on and scenario.during == "retrain":
                        condition = retrain_running(registry, data_path, Path(tmp) / "runs")
                    with condition:
                        runs[on].append(
                            run_wrk(
                                f"http://{HOST}:{server.port}/predict",
                                connections=CONNECTIONS,
                                duration_s=duration_s,
                                method="POST",
                                bodies=single,
                                expect=PREDICT_EXPECT,
                            )
                        )
    return msgspec.structs.replace(result, off=_figures(runs[False]), on=_figures(runs[True]))
