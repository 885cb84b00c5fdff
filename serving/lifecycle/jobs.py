"""Retrain jobs: one at a time across every worker, each in a training process of its own.

The event loop never trains: it starts a process (``spawn``, so no worker state or onnxruntime
threads are forked), then only awaits its messages from a thread. The process validates the
data, trains, evaluates and exports behind the parity gate without promoting
(``training.job``); this side then decides the promotion and moves ``current``, which the hot
reload of every worker picks up. A single-job lock (``fcntl.flock`` on a file in the jobs
folder) makes a second retrain on any worker a 409, and each job's state is a small JSON file
there, so ``GET /jobs/{id}`` answers on every worker. Any failure leaves ``current`` untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import multiprocessing
import os
import re
import secrets
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final, NamedTuple

import anyio.to_thread
import msgspec

from drugclf.artifact import ArtifactError, read_metadata
from drugclf.registry import Registry, RegistryError
from drugclf.retrain import Failed, JobEvent, JobSpec, Published, Validated
from serving.http import logs
from serving.http.errors import ErrorExample, ServingError
from serving.http.validation import shown
from serving.lifecycle.lock import JobLock
from serving.lifecycle.schemas import Job, JobError, ParityReply, RetrainRequest, RetrainResult

logger = logging.getLogger(__name__)

DEFAULT_TARGET: Final = "training.job:run_job"
TRAIN_MODULES: Final = ("sklearn", "imblearn", "pandas", "skl2onnx")
JOB_ID: Final = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$")
LOCK_FILE: Final = "retrain.lock"
_POLL_SECONDS: Final = 0.5
_JOIN_SECONDS: Final = 10.0
# After its last event the process has nothing left to do but tear the interpreter down.
_EXIT_GRACE_SECONDS: Final = 2.0
_decoder: Final[msgspec.json.Decoder[JobEvent]] = msgspec.json.Decoder(JobEvent)


def training_installed() -> bool:
    """Whether the ``train`` extra is installed (the slim serving image has none of it)."""
    return all(importlib.util.find_spec(name) is not None for name in TRAIN_MODULES)


class RetrainUnavailableError(ServingError):
    """The install cannot train (no ``train`` extra): the message says how to train elsewhere."""

    status_code = 501
    code = "retrain_unavailable"
    example = ErrorExample(
        "this server has no training stack (slim image without the `train` extra)"
    )


class RetrainBusyError(ServingError):
    """Another retrain job is running (on this worker or another); the message names it."""

    status_code = 409
    code = "retrain_running"
    example = ErrorExample(
        "a retrain is already running: job 20261127-035245-8fdfa7ce "
        "(GET /jobs/20261127-035245-8fdfa7ce); try again when it ends"
    )


class JobNotFoundError(ServingError):
    """No job with that id."""

    status_code = 404
    code = "job_not_found"
    example = ErrorExample("no job 20261127-035245-8fdfa7ce", field="job_id")


class DatasetInvalidError(ServingError):
    """The uploaded CSV (or the split it allows) is not usable; names lines and columns."""

    status_code = 422
    code = "dataset_invalid"
    example = ErrorExample(
        "job 20261127-035245-8fdfa7ce: mine.csv: line 3, column Age: not a whole number",
        field="file",
    )


class RetrainFailedError(ServingError):
    """The job failed on the server side and nothing changed.

    The code says why: ``parity_failed`` (ONNX and scikit-learn disagree), ``training_failed``
    or ``retrain_failed`` (a crash; details in the server log only), ``retrain_interrupted``
    (the server stopped during the job).
    """

    status_code = 500
    code = "retrain_failed"
    example = ErrorExample("job 20261127-035245-8fdfa7ce: the training process ended unexpectedly")

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class RetrainTimeoutError(ServingError):
    """The job ran past ``DRUGCLF_RETRAIN_TIMEOUT`` and was stopped: nothing changed."""

    status_code = 504
    code = "retrain_timeout"
    example = ErrorExample(
        "job 20261127-035245-8fdfa7ce: stopped after the time limit of 900 s; "
        "the current model keeps serving"
    )


def error_for(job: Job) -> ServingError:
    """The client error for a failed job."""
    error = job.error or JobError(code="retrain_failed", message="the job failed")
    message = f"job {job.job_id}: {error.message}"
    if error.code == "dataset_invalid":
        return DatasetInvalidError(message, field="file")
    if error.code == RetrainTimeoutError.code:
        return RetrainTimeoutError(message)
    return RetrainFailedError(message, error.code)


class Decision(NamedTuple):
    """Whether a new version should serve, and why."""

    promote: bool
    reason: str


def decide(new_cv: float, current_cv: float | None, *, force: bool, tolerance: float) -> Decision:
    """Promote unless the new CV accuracy is worse than the current one's by more than tolerance.

    Only called for versions that passed the parity gate (nothing else is ever published).
    """
    if current_cv is None:
        return Decision(True, "promoted: no model was being served")
    drop = current_cv - new_cv
    compared = f"CV accuracy {new_cv:.4f} against {current_cv:.4f} for the current model"
    if drop <= tolerance + 1e-12:
        return Decision(True, f"promoted: {compared}, within the tolerance of {tolerance:g}")
    if force:
        return Decision(True, f"promoted because forced: {compared}")
    return Decision(
        False,
        f"kept back: {compared}, worse by more than the tolerance of {tolerance:g}; "
        "promote it with POST /models/{version}/promote or retrain with force",
    )


def new_job_id(now: datetime | None = None) -> str:
    """A sortable, unguessable job id."""
    return f"{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RetrainManager:
    """Starts, watches and records retrain jobs for one worker process."""

    def __init__(
        self,
        registry: Registry,
        *,
        jobs_dir: Path,
        datasets_dir: Path,
        data: Path,
        runs_dir: Path,
        timeout: float,
        parity_cases: int,
        cv_tolerance: float,
        target: str | None = None,
        log_level: str = "INFO",
        log_format: str = "json",
    ) -> None:
        self.registry = registry
        self.jobs_dir = jobs_dir
        self.datasets_dir = datasets_dir
        self.data = data
        self.runs_dir = runs_dir
        self.timeout = timeout
        self.parity_cases = parity_cases
        self.cv_tolerance = cv_tolerance
        self.target = target or DEFAULT_TARGET
        self.log_level = log_level
        self.log_format = log_format
        self.lock = JobLock(jobs_dir / LOCK_FILE)
        self._tasks: dict[str, asyncio.Task[Job]] = {}
        self._context = multiprocessing.get_context("spawn")

    async def start(self, request: RetrainRequest, upload: bytes | None, name: str | None) -> Job:
        """Start a job; returns once its data is validated (or the job already failed).

        Raises:
            RetrainBusyError: a job is running on some worker.
        """
        job_id = new_job_id()
        if not self.lock.try_acquire(job_id):
            running = self.lock.holder()
            where = f": job {running} (GET /jobs/{running})" if running else ""
            raise RetrainBusyError(f"a retrain is already running{where}; try again when it ends")
        upload_path = None
        try:
            if upload is not None:
                self.datasets_dir.mkdir(parents=True, exist_ok=True)
                upload_path = self.datasets_dir / f".upload-{job_id}.csv"
                await anyio.to_thread.run_sync(upload_path.write_bytes, upload)
            job = Job(
                job_id=job_id,
                state="running",
                url=f"/jobs/{job_id}",
                created_at=_now(),
                params=request.params(),
                force=request.force,
            )
            self._save(job)
            spec = JobSpec(
                params=job.params,
                data_path=str(self.data),
                runs_dir=str(self.runs_dir),
                artifacts_dir=str(self.registry.root),
                datasets_dir=str(self.datasets_dir),
                parity_cases=self.parity_cases,
                upload_path=str(upload_path) if upload_path else None,
                upload_name=Path(name).name if name else None,
            )
            receiver, sender = self._context.Pipe(duplex=False)
            process = self._context.Process(
                target=child_main,
                args=(self.target, msgspec.json.encode(spec), sender, self.log_level),
                kwargs={"log_format": self.log_format},
                name=f"retrain-{job_id}",
                daemon=True,
            )
            await anyio.to_thread.run_sync(process.start)
            sender.close()
        except BaseException:
            if upload_path is not None:
                upload_path.unlink(missing_ok=True)
            self.lock.release()
            raise
        logger.info("retrain job %s started (pid %s)", job_id, process.pid, extra={"job": job_id})
        validated: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._supervise(job, process, receiver, validated, upload_path),
            name=f"retrain-{job_id}",
        )
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))
        return await asyncio.shield(validated)

    async def wait(self, job_id: str) -> Job:
        """The job once it has ended (at once when it already has)."""
        task = self._tasks.get(job_id)
        if task is not None:
            # Shielded: a client that hangs up must not stop the job.
            return await asyncio.shield(task)
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """A job of any worker, from its file.

        Raises:
            JobNotFoundError: unknown id.
        """
        if not JOB_ID.fullmatch(job_id):
            raise JobNotFoundError(f"{shown(job_id)} is not a job id", field="job_id")
        try:
            job = msgspec.json.decode((self.jobs_dir / f"{job_id}.json").read_bytes(), type=Job)
        except (FileNotFoundError, msgspec.DecodeError):
            raise JobNotFoundError(f"no job {job_id}", field="job_id") from None
        if job.state == "running" and job_id not in self._tasks and not self.lock.held_for(job_id):
            # Its worker stopped mid-job (the lock died with it): say so instead of "running".
            job = msgspec.structs.replace(
                job,
                state="failed",
                error=JobError("retrain_interrupted", "the worker running this job stopped"),
            )
        return job

    async def aclose(self) -> None:
        """Stop this worker's jobs (server shutdown): each is killed and recorded failed."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(
        self,
        job: Job,
        process: BaseProcess,
        receiver: Connection,
        validated: asyncio.Future[Job],
        upload_path: Path | None,
    ) -> Job:
        started = time.monotonic()
        deadline = started + self.timeout
        try:
            while True:
                event = await anyio.to_thread.run_sync(_receive, receiver, deadline)
                if event is None:
                    continue
                if isinstance(event, Validated):
                    job = msgspec.structs.replace(
                        job, data_sha256=event.data_sha256, data_rows=event.data_rows
                    )
                    self._save(job)
                    validated.set_result(job)
                elif isinstance(event, Published):
                    job = self._conclude(job, event, time.monotonic() - started)
                    break
                elif isinstance(event, Failed):
                    job = _failed(job, event.code, event.message)
                    break
                elif event == "timeout":
                    process.kill()
                    job = _failed(
                        job,
                        "retrain_timeout",
                        f"stopped after the time limit of {self.timeout:g} s; "
                        "the current model keeps serving",
                    )
                    break
                else:
                    await anyio.to_thread.run_sync(process.join, _JOIN_SECONDS)
                    job = _failed(
                        job,
                        "retrain_failed",
                        f"the training process ended unexpectedly (exit code {process.exitcode}); "
                        "the current model keeps serving",
                    )
                    break
        except asyncio.CancelledError:
            process.kill()
            job = _failed(job, "retrain_interrupted", "the server shut down during the job")
            raise
        finally:
            await _reap(process)
            receiver.close()
            if upload_path is not None:
                upload_path.unlink(missing_ok=True)
            self._save(job)
            self.lock.release()
            if not validated.done():
                validated.set_result(job)
            _log_end(job)
        return job

    def _conclude(self, job: Job, event: Published, duration: float) -> Job:
        """Decide the promotion of a published version and carry it out."""
        previous = self.registry.current_version()
        current_cv = None
        if previous is not None:
            try:
                current_cv = read_metadata(self.registry.root / previous).metrics.cv_accuracy_mean
            except ArtifactError as exc:
                logger.warning("current version %s unreadable (%s): promoting", previous, exc)
        decision = decide(
            event.metrics.cv_accuracy_mean,
            current_cv,
            force=job.force,
            tolerance=self.cv_tolerance,
        )
        promote = decision.promote and event.parity.passed
        if promote:
            try:
                self.registry.promote(event.version)
            except (RegistryError, ArtifactError) as exc:
                logger.error("promoting %s failed: %s", event.version, exc)
                return _failed(job, "retrain_failed", f"version {event.version} failed to promote")
        result = RetrainResult(
            job_id=job.job_id,
            version=event.version,
            promoted=promote,
            reason=decision.reason,
            accuracy=event.metrics.test_accuracy,
            test_accuracy=event.metrics.test_accuracy,
            cv_accuracy_mean=event.metrics.cv_accuracy_mean,
            cv_accuracy_std=event.metrics.cv_accuracy_std,
            parity=ParityReply.of(event.parity),
            previous_version=previous,
            current_version=event.version if promote else previous,
            params=job.params,
            data_sha256=job.data_sha256 or "",
            data_rows=job.data_rows or 0,
            duration_seconds=round(duration, 3),
        )
        return msgspec.structs.replace(
            job, state="succeeded", finished_at=_now(), result=result, error=None
        )

    def _save(self, job: Job) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.jobs_dir / f".{job.job_id}.{os.getpid()}.tmp"
        tmp.write_bytes(msgspec.json.encode(job))
        os.replace(tmp, self.jobs_dir / f"{job.job_id}.json")


def _failed(job: Job, code: str, message: str) -> Job:
    return msgspec.structs.replace(
        job, state="failed", finished_at=_now(), error=JobError(code=code, message=message)
    )


def _log_end(job: Job) -> None:
    extra = {"job": job.job_id}
    if job.result is not None:
        logger.info(
            "retrain job %s: version %s, %s",
            job.job_id,
            job.result.version,
            job.result.reason,
            extra={**extra, "model_version": job.result.version},
        )
    elif job.error is not None:
        logger.error("retrain job %s failed: %s", job.job_id, job.error.message, extra=extra)


def _receive(receiver: Connection, deadline: float) -> JobEvent | str | None:
    """The next event; "timeout" past the deadline, "ended" when the process is gone."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return "timeout"
    try:
        if not receiver.poll(min(remaining, _POLL_SECONDS)):
            return None
        event: JobEvent = _decoder.decode(receiver.recv_bytes())
    except (EOFError, OSError):
        return "ended"
    return event


async def _reap(process: BaseProcess) -> None:
    await anyio.to_thread.run_sync(process.join, _EXIT_GRACE_SECONDS)
    if process.is_alive():
        process.kill()
        await anyio.to_thread.run_sync(process.join, _JOIN_SECONDS)


def _yield_cpu() -> None:
    """Let the workers answering /predict come first on a shared CPU.

    The lowest nice level (and the threads started later, onnxruntime's and BLAS's, inherit it)
    gives this process about 1.5 % of a core against a busy worker, yet never starves it the
    way ``SCHED_IDLE`` would on a machine that is never idle.
    """
    with contextlib.suppress(OSError):
        os.nice(19)


def child_main(
    target: str, spec: bytes, sender: Connection, log_level: str, *, log_format: str = "json"
) -> None:
    """Entry point of the training process: run ``target`` ("module:function") on the spec."""
    _yield_cpu()
    logs.configure(log_level, log_format)
    encoder = msgspec.json.Encoder()

    def emit(event: JobEvent) -> None:
        sender.send_bytes(encoder.encode(event))

    try:
        module, _, name = target.partition(":")
        run = getattr(importlib.import_module(module), name)
        run(msgspec.json.decode(spec, type=JobSpec), emit)
    except Exception:
        logger.exception("retrain job failed")
        emit(
            Failed(
                code="training_failed",
                message="training failed unexpectedly (the server log has the details); "
                "the current model keeps serving",
            )
        )
    finally:
        sender.close()
