"""The model lifecycle over HTTP: retrain, follow a job, list, promote and roll back versions.

Handlers are thin: they translate HTTP to calls on the registry (the same code as the training
CLI's ``list``, ``promote`` and ``rollback``) and on the retrain job manager, and back. Errors
are ``ServingError`` subclasses, answered by the app's one error handler.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, PathParameter, QueryParameter

from drugclf.artifact import ArtifactError
from drugclf.registry import Registry, RegistryError
from serving.admin import AdminAccess
from serving.errors import ErrorBody, InvalidInputError, MalformedBodyError, ServingError
from serving.retrain import (
    RetrainManager,
    RetrainUnavailableError,
    error_for,
    training_installed,
)
from serving.retrain_schemas import (
    EXPECTED,
    Job,
    JobAccepted,
    ModelsReply,
    RetrainRequest,
    RetrainResult,
    SwitchReply,
    VersionSummary,
)
from serving.settings import Settings

logger = logging.getLogger(__name__)

UPLOAD_FIELD: Final = "file"
PARAMS_FIELD: Final = "params"
SLIM_MESSAGE: Final = (
    "this server has no training stack (slim image without the `train` extra): train with "
    "`python -m training full --no-promote` (or the trainer image) into the same artifacts "
    "folder, then POST /models/{version}/promote"
)

RetrainBody = Annotated[
    RetrainRequest,
    Body(
        title="Retrain parameters",
        description="JSON, every field optional. To upload a CSV instead send multipart/form-data "
        f"with the file in `{UPLOAD_FIELD}` and the parameters either as a JSON object in "
        f"`{PARAMS_FIELD}` or as one form field each.",
        media_type=RequestEncodingType.JSON,
        examples=[
            Example(
                summary="The original API's body",
                value={
                    "n_estimators": 150,
                    "max_leaf_nodes": 40,
                    "test_size": 0.3,
                    "apply_smote": True,
                },
            ),
            Example(summary="Do not wait: 202 and a job URL", value={"wait": False}),
        ],
    ),
]


def _document_body(data: RetrainBody) -> None:  # pragma: no cover - never called
    """Only for the OpenAPI schema: the handler reads JSON or multipart itself."""


def _error(description: str) -> ResponseSpec:
    return ResponseSpec(ErrorBody, description=description, generate_examples=False)


_ADMIN_ERRORS: Final = {
    401: _error("No or malformed `Authorization: Bearer <token>` header"),
    403: _error("Wrong token, or admin endpoints closed (no token configured)"),
}


def _invalid_request(exc: msgspec.ValidationError) -> InvalidInputError:
    text = str(exc)
    field = None
    if " - at `$." in text:
        text, path = text.rsplit(" - at `$.", 1)
        field = path.rstrip("`")
        text = f"{field}: {text}"
    elif "unknown field `" in text:
        field = text.split("`")[1]
    return InvalidInputError(text, field=field, expected=EXPECTED.get(field or ""))


def decode_request(raw: bytes) -> RetrainRequest:
    """A JSON body (empty means every default).

    Raises:
        MalformedBodyError: not JSON.
        InvalidInputError: a field is unknown or out of range (names it and what it takes).
    """
    if not raw.strip():
        return RetrainRequest()
    try:
        return msgspec.json.decode(raw, type=RetrainRequest)
    except msgspec.ValidationError as exc:
        raise _invalid_request(exc) from None
    except msgspec.DecodeError:
        raise MalformedBodyError("the body is not valid JSON") from None


def convert_form(fields: dict[str, Any]) -> RetrainRequest:
    """Parameters from multipart fields: a JSON object in ``params``, or one field each."""
    if PARAMS_FIELD in fields:
        value = fields[PARAMS_FIELD]
        return decode_request(value.encode() if isinstance(value, str) else bytes(value))
    try:
        return msgspec.convert(fields, RetrainRequest, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid_request(exc) from None


async def read_retrain_request(
    request: Request[Any, Any, Any],
) -> tuple[RetrainRequest, bytes | None, str | None]:
    """The parameters and the uploaded CSV (bytes and client file name) of a retrain request."""
    media = request.content_type[0]
    if media != RequestEncodingType.MULTI_PART:
        return decode_request(await request.body()), None, None
    form = await request.form()
    upload: bytes | None = None
    name: str | None = None
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key != UPLOAD_FIELD:
                raise InvalidInputError(
                    f"unexpected file field '{key}'",
                    field=key,
                    expected=f"the CSV in '{UPLOAD_FIELD}'",
                )
            upload, name = await value.read(), value.filename
        else:
            fields[key] = value
    if upload is not None and not upload.strip():
        raise InvalidInputError("the uploaded file is empty", field=UPLOAD_FIELD)
    return convert_form(fields), upload, name


def _parse_wait(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes"}:
        return True
    if lowered in {"0", "false", "no"}:
        return False
    raise InvalidInputError(f"wait={value!r}", field="wait", expected="true or false")


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


class VersionNotFoundError(ServingError):
    """No published version by that name."""

    status_code = 404
    code = "version_not_found"


class NothingToRollBackError(ServingError):
    """No earlier promoted version is still published."""

    status_code = 409
    code = "nothing_to_roll_back"


class Lifecycle:
    """The lifecycle routes of one app, with their job manager and admin policy."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.artifacts_dir)
        self.access = AdminAccess(
            settings.admin_token, dev_mode=settings.dev_mode, bind_host=settings.host
        )
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
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Announce the admin policy at startup; stop this worker's job at shutdown."""
        self.access.announce()
        if not self.can_train:
            logger.info("retrain unavailable: the `train` extra is not installed")
        try:
            yield
        finally:
            await self.manager.aclose()

    @property
    def route_handlers(self) -> list[Any]:
        """The handlers to include in the app."""
        return _handlers(self)


def _handlers(life: Lifecycle) -> list[Any]:
    admin = [life.access.guard()]
    registry, manager = life.registry, life.manager

    @post(
        "/retrain",
        tags=["lifecycle"],
        guards=admin,
        status_code=200,
        request_max_body_size=life.settings.retrain_max_upload_bytes,
        dependencies={"_body_schema": Provide(_document_body, sync_to_thread=False)},
        responses={
            200: ResponseSpec(RetrainResult, description="Job ended", generate_examples=False),
            202: ResponseSpec(JobAccepted, description="Started (wait=false)"),
            **_ADMIN_ERRORS,
            409: _error("Another retrain is running (the message names its job)"),
            413: _error("Body larger than DRUGCLF_RETRAIN_MAX_UPLOAD_BYTES"),
            422: _error("Invalid parameter, or invalid CSV (lines and columns named)"),
            500: _error("Job failed (parity gate, crash): the current model keeps serving"),
            501: _error("No training stack in this install (slim image)"),
            504: _error("Job stopped at the time limit: the current model keeps serving"),
        },
    )
    async def retrain(
        request: Request[Any, Any, Any],
        wait: Annotated[
            str | None,
            QueryParameter(
                required=False,
                description="false: answer 202 at once with the job URL (overrides the body)",
            ),
        ] = None,
    ) -> Response[RetrainResult | JobAccepted]:
        """Train, evaluate and export a new model in a separate process; promote it if it is good.

        A version is published only when ONNX and scikit-learn agree (parity gate), and
        promoted only when its CV accuracy is not worse than the current model's by more than
        the tolerance (unless `force`). `/predict` keeps answering throughout.
        """
        if not life.can_train:
            raise RetrainUnavailableError(SLIM_MESSAGE)
        params, upload, name = await read_retrain_request(request)
        waits = _parse_wait(wait, params.wait)
        job = await manager.start(params, upload, name)
        if job.state == "failed":
            raise error_for(job)
        if not waits:
            return Response(
                JobAccepted(job_id=job.job_id, job_url=job.url, state=job.state),
                status_code=202,
                headers={"location": job.url},
            )
        job = await manager.wait(job.job_id)
        if job.result is None:
            raise error_for(job)
        return Response(job.result, status_code=200)

    @get(
        "/jobs/{job_id:str}",
        tags=["lifecycle"],
        responses={404: _error("No such job")},
    )
    async def get_job(job_id: Annotated[str, PathParameter()]) -> Job:
        """A retrain job's state (running, succeeded, failed) and its result or error."""
        return manager.get(job_id)

    @get("/models", tags=["lifecycle"])
    async def list_models() -> ModelsReply:
        """Every published version with its metrics and parity, and which one is served."""
        return version_summaries(registry)

    @post(
        "/models/{version:str}/promote",
        tags=["lifecycle"],
        guards=admin,
        status_code=200,
        responses={**_ADMIN_ERRORS, 404: _error("No such version")},
    )
    async def promote(version: Annotated[str, PathParameter()]) -> SwitchReply:
        """Serve a published version; every worker switches within seconds (hot reload)."""
        previous = registry.current_version()
        if version not in registry.versions():
            raise VersionNotFoundError(f"no published version '{version}'", field="version")
        try:
            registry.promote(version)
        except (RegistryError, ArtifactError) as exc:
            logger.error("promote %s failed: %s", version, exc)
            raise VersionNotFoundError(
                f"version '{version}' cannot be served", field="version"
            ) from None
        return SwitchReply(current_version=version, previous_version=previous)

    @post(
        "/models/rollback",
        tags=["lifecycle"],
        guards=admin,
        status_code=200,
        responses={**_ADMIN_ERRORS, 409: _error("No earlier promoted version")},
    )
    async def rollback() -> SwitchReply:
        """Serve the version that was current before this one."""
        previous = registry.current_version()
        try:
            version = registry.rollback()
        except RegistryError as exc:
            raise NothingToRollBackError(str(exc)) from None
        return SwitchReply(current_version=version, previous_version=previous)

    return [retrain, get_job, list_models, promote, rollback]
