"""Retrain jobs with stand-in training processes: lock, time limit, crashes, job files.

The stand-ins (``tests.retrain.fakes``) run in real spawned processes, as training does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

import serving.lifecycle.jobs
from drugclf.registry import Registry
from serving.lifecycle.jobs import JobNotFoundError, RetrainBusyError, RetrainManager
from serving.lifecycle.lock import JobLock
from serving.lifecycle.schemas import Job, RetrainRequest
from tests.retrain.conftest import AUTH, served_version
from tests.support import DATA

pytestmark = pytest.mark.usefixtures("child_imports_tests")


def manager(registry: Registry, target: str, timeout: float = 60.0) -> RetrainManager:
    return RetrainManager(
        registry,
        jobs_dir=registry.root / "jobs",
        datasets_dir=registry.root / "datasets",
        data=DATA,
        runs_dir=registry.root.parent / "runs",
        timeout=timeout,
        parity_cases=100,
        cv_tolerance=0.02,
        target=target,
    )


def _run(registry: Registry, target: str, timeout: float = 60.0) -> Job:
    async def go() -> Job:
        jobs = manager(registry, target, timeout)
        job = await jobs.start(RetrainRequest(), None, None)
        return await jobs.wait(job.job_id)

    return asyncio.run(go())


@pytest.mark.slow  # waits out the job's time limit
def test_a_stuck_job_is_killed_at_the_time_limit_and_reported_failed(registry: Registry) -> None:
    before = registry.current_version()
    started = time.monotonic()
    job = _run(registry, "tests.retrain.fakes:sleeps", timeout=3.0)
    assert time.monotonic() - started < 30
    assert job.state == "failed" and job.error is not None
    assert job.error.code == "retrain_timeout"
    assert "time limit" in job.error.message
    assert registry.current_version() == before
    assert JobLock(registry.root / "jobs" / "retrain.lock").try_acquire("next")  # released


def test_a_crashed_process_is_reported_failed(registry: Registry) -> None:
    before = registry.current_version()
    job = _run(registry, "tests.retrain.fakes:crashes")
    assert job.state == "failed" and job.error is not None
    assert job.error.code == "retrain_failed"
    assert "exit code 3" in job.error.message
    assert registry.current_version() == before


def test_an_exception_in_training_never_reaches_the_client(registry: Registry) -> None:
    job = _run(registry, "tests.retrain.fakes:raises")
    assert job.state == "failed" and job.error is not None
    assert job.error.code == "training_failed"
    assert "secret" not in job.error.message


def test_one_job_at_a_time_across_workers_and_any_worker_reads_it(registry: Registry) -> None:
    async def go() -> None:
        first, second = (manager(registry, "tests.retrain.fakes:sleeps") for _ in range(2))
        job = await first.start(RetrainRequest(), None, None)
        for other in (first, second):  # the same worker, and another one
            with pytest.raises(RetrainBusyError) as caught:
                await other.start(RetrainRequest(), None, None)
            assert job.job_id in caught.value.message
        seen = second.get(job.job_id)
        assert seen.state == "running" and seen.job_id == job.job_id
        await first.aclose()  # server shutdown: the job is stopped and recorded
        ended = second.get(job.job_id)
        assert ended.state == "failed" and ended.error is not None
        assert ended.error.code == "retrain_interrupted"

    asyncio.run(go())


def test_a_job_left_running_by_a_dead_worker_reads_as_interrupted(registry: Registry) -> None:
    jobs = registry.root / "jobs"
    jobs.mkdir()
    stale = Job(
        job_id="20260101-000000-0123abcd",
        state="running",
        url="/jobs/20260101-000000-0123abcd",
        created_at="2026-01-01T00:00:00+00:00",
        params=RetrainRequest().params(),
        force=False,
    )
    (jobs / f"{stale.job_id}.json").write_bytes(msgspec.json.encode(stale))
    job = manager(registry, "x:y").get(stale.job_id)
    assert job.state == "failed" and job.error is not None
    assert job.error.code == "retrain_interrupted"


@pytest.mark.parametrize("job_id", ["nope", "../../etc/passwd", "20260101-000000-0123abcd"])
def test_unknown_or_malformed_job_id_is_not_found(registry: Registry, job_id: str) -> None:
    with pytest.raises(JobNotFoundError):
        manager(registry, "x:y").get(job_id)


def test_unknown_job_over_http_is_404(client: TestClient[Litestar]) -> None:
    answer = client.get("/jobs/20260101-000000-0123abcd")
    assert answer.status_code == 404
    assert answer.json()["code"] == "job_not_found"


def test_a_failing_job_over_http_leaves_the_old_model_serving(
    make_client: Callable[..., TestClient[Litestar]],
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving.lifecycle.jobs, "DEFAULT_TARGET", "tests.retrain.fakes:crashes")
    client = make_client()
    before = registry.current_version()
    answer = client.post("/retrain", json={"n_estimators": 5}, headers=AUTH)
    assert answer.status_code == 500
    error = answer.json()
    assert error["code"] == "retrain_failed" and "job " in error["message"]
    assert registry.current_version() == before
    assert served_version(client, before or "") == before
    job_id = error["message"].split()[1].rstrip(":")
    assert client.get(f"/jobs/{job_id}").json()["state"] == "failed"


@pytest.mark.slow  # waits out the job's time limit
def test_a_stuck_job_over_http_is_504(
    make_client: Callable[..., TestClient[Litestar]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving.lifecycle.jobs, "DEFAULT_TARGET", "tests.retrain.fakes:sleeps")
    client = make_client(retrain_timeout=2.0)
    answer = client.post("/retrain", json={}, headers=AUTH)
    assert answer.status_code == 504
    assert answer.json()["code"] == "retrain_timeout"


def test_an_invalid_csv_is_422_naming_lines_and_columns(
    client: TestClient[Litestar], registry: Registry, tmp_path: Path
) -> None:
    csv = (
        b"Age,Sex,BP,Cholesterol,Na_to_K,Drug\n"
        b"23,F,HIGH,HIGH,25.355,DrugY\n"
        b"xx,M,LOW,HIGH,13.093,drugC\n"
        b"47,M,LOW,HIGH,10.114,DrugZ\n"
    )
    before = registry.current_version()
    answer = client.post("/retrain", files={"file": ("mine.csv", csv)}, headers=AUTH)
    assert answer.status_code == 422
    error = answer.json()
    assert error["code"] == "dataset_invalid"
    assert "mine.csv" in error["message"]
    assert "line 3, column Age" in error["message"]
    assert "line 4, column Drug" in error["message"]
    assert str(registry.root) not in error["message"]  # no server paths
    assert registry.current_version() == before
    assert not any((registry.root / "datasets").glob("*.csv"))  # invalid data is not kept


@pytest.mark.slow
def test_a_csv_too_small_to_train_is_422_naming_the_classes(
    client: TestClient[Litestar], registry: Registry
) -> None:
    rows = DATA.read_text().splitlines()
    header, body = rows[0], rows[1:]
    # Four rows of each class: one short of stratified 5-fold cross-validation.
    kept: dict[str, list[str]] = {}
    for line in body:
        kept.setdefault(line.rsplit(",", 1)[1].lower(), []).append(line)
    small = "\n".join([header] + [line for lines in kept.values() for line in lines[:4]]) + "\n"
    before = registry.current_version()
    answer = client.post("/retrain", files={"file": ("small.csv", small.encode())}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["code"] == "dataset_invalid"
    assert "DrugA has 4" in error["message"] and "at least 5 rows" in error["message"]
    assert registry.current_version() == before
