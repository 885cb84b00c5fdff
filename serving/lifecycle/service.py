"""Which model serves, without HTTP: versions, promote, rollback, retrain jobs.

``Lifecycle`` is built once per app from the settings. Promote and rollback call the registry
(the same code as the training CLI's ``promote`` and ``rollback``); every worker's hot reload
then picks the change up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Final

import anyio.to_thread

from drugclf import routing
from drugclf.artifact import CONFUSION_MATRIX_FILE, ArtifactError
from drugclf.registry import Registry, RegistryError
from drugclf.routing import PolicyError, RoutingPolicy
from serving.http.errors import ErrorExample, NotFoundError, ServingError, VersionNotFoundError
from serving.http.validation import shown
from serving.inference.model import DrugModel
from serving.lifecycle.jobs import (
    RetrainManager,
    RetrainUnavailableError,
    error_for,
    training_installed,
)
from serving.lifecycle.schemas import (
    Job,
    ModelsReply,
    RetrainRequest,
    RetrainResult,
    SwitchReply,
    VersionSummary,
)
from serving.settings import Settings

logger = logging.getLogger(__name__)

SLIM_MESSAGE: Final = (
    "this server has no training stack (slim image without the `train` extra): train with "
    "`python -m training full --no-promote` (or the trainer image) into the same artifacts "
    "folder, then POST /models/{version}/promote"
)


def version_summaries(registry: Registry) -> ModelsReply:
    """Every published version with its metrics, oldest first."""
    infos = registry.list_versions()
    return ModelsReply(
        current_version=registry.current_version(),
        versions=[
            VersionSummary(
                version=info.version,
                current=info.current,
                created_at=info.metadata.created_at,
                params=info.metadata.params,
                metrics=info.metadata.metrics,
                parity_passed=info.metadata.parity.passed,
                data_sha256=info.metadata.data_sha256,
                data_rows=info.metadata.data_rows,
            )
            for info in infos
        ],
    )


class VersionNotServableError(ServingError):
    """A published version whose files do not load or do not match its metadata."""

    status_code = 422
    code = "version_not_servable"
    example = ErrorExample(
        "version '20261127-101500-3f9a2c' cannot be served: model.onnx does not match its metadata",
        field="version",
    )


def _relative(exc: Exception, folder: Path) -> str:
    """The error's message without the server's own paths."""
    return str(exc).replace(f"{folder}/", "").replace(str(folder), folder.name)


class NothingToRollBackError(ServingError):
    """No earlier promoted version is still published."""

    status_code = 409
    code = "nothing_to_roll_back"
    example = ErrorExample("nothing to roll back to: no earlier promoted version exists")


class Lifecycle:
    """The lifecycle of one app's models: the registry and the retrain job manager."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.can_train = training_installed()
        self.manager = RetrainManager(
            self.registry,
            jobs_dir=settings.artifacts_dir / "jobs",
            datasets_dir=settings.datasets_dir or settings.artifacts_dir / "datasets",
            data=settings.data,
            runs_dir=settings.runs_dir,
            timeout=settings.retrain_timeout,
            parity_cases=settings.retrain_parity_cases,
            cv_tolerance=settings.retrain_cv_tolerance,
            log_level=settings.log_level,
            log_format=settings.log_format,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Say whether this install can train; stop this worker's job at shutdown."""
        if not self.can_train:
            logger.info("retrain unavailable: the `train` extra is not installed")
        try:
            yield
        finally:
            await self.manager.aclose()

    def check_can_train(self) -> None:
        """Raises RetrainUnavailableError on an install without the ``train`` extra."""
        if not self.can_train:
            raise RetrainUnavailableError(SLIM_MESSAGE)

    async def retrain(
        self, params: RetrainRequest, upload: bytes | None, name: str | None, *, wait: bool
    ) -> Job | RetrainResult:
        """Start a job; with ``wait``, its result once it ends, else the running job.

        Raises:
            ServingError: the job could not start, failed or timed out (see ``error_for``).
        """
        self.check_can_train()
        job = await self.manager.start(params, upload, name)
        if job.state == "failed":
            raise error_for(job)
        if not wait:
            return job
        job = await self.manager.wait(job.job_id)
        if job.result is None:
            raise error_for(job)
        return job.result

    def versions(self) -> ModelsReply:
        """Every published version with its metrics and which one is served."""
        return version_summaries(self.registry)

    async def promote(self, version: str) -> SwitchReply:
        """Make ``version`` current, once it has loaded and answered here as serving would load it.

        Raises:
            VersionNotFoundError: no such version.
            VersionNotServableError: its files do not load, or do not match its metadata.
        """
        registry = self.registry
        previous = registry.current_version()
        policy = self._policy()
        if version not in registry.versions():
            raise VersionNotFoundError(f"no published version {shown(version)}", field="version")
        folder = registry.version_dir(version)
        try:
            # A session takes milliseconds to seconds to build: keep the event loop free.
            await anyio.to_thread.run_sync(partial(DrugModel.load, folder))
            registry.promote(version)
        except (RegistryError, ArtifactError) as exc:
            logger.error("promote %s refused: %s", version, exc, extra={"model_version": previous})
            raise VersionNotServableError(
                f"version {version} cannot be served: {_relative(exc, folder)}", field="version"
            ) from None
        return self._switched(version, previous, policy)

    def _policy(self) -> RoutingPolicy | None:
        try:
            return routing.read(self.registry)
        except PolicyError:
            return None

    def _switched(
        self, version: str, previous: str | None, policy: RoutingPolicy | None
    ) -> SwitchReply:
        """The reply to a switch, naming the traffic policy it ended (the registry ends it)."""
        ended = policy if policy is not None and self._policy() is None else None
        return SwitchReply(current_version=version, previous_version=previous, ended_policy=ended)

    def rollback(self) -> SwitchReply:
        """Make the version that was current before this one current again.

        Raises:
            NothingToRollBackError: no earlier promoted version is still published.
        """
        previous = self.registry.current_version()
        policy = self._policy()
        try:
            version = self.registry.rollback()
        except RegistryError as exc:
            raise NothingToRollBackError(str(exc)) from None
        except ArtifactError as exc:
            raise VersionNotServableError(
                f"the previous version cannot be served: {_relative(exc, self.registry.root)}"
            ) from None
        return self._switched(version, previous, policy)

    def confusion_matrix(self, version: str) -> bytes:
        """The PNG confusion matrix (test split) of a published version.

        Raises:
            VersionNotFoundError: not a version name, or an unknown version.
            NotFoundError: the version has no image.
        """
        try:
            folder = self.registry.version_dir(version)
        except RegistryError as exc:
            raise VersionNotFoundError(str(exc), field="version") from exc
        if not folder.is_dir():
            raise VersionNotFoundError(f"no published version {shown(version)}", field="version")
        return confusion_matrix_png(folder)


def confusion_matrix_png(folder: Path) -> bytes:
    """The confusion-matrix image of a version folder.

    Raises:
        NotFoundError: the version has no image.
    """
    try:
        return (folder / CONFUSION_MATRIX_FILE).read_bytes()
    except OSError as exc:
        raise NotFoundError("this model version has no confusion-matrix image") from exc
