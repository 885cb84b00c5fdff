"""HTTP for the model lifecycle: retrain, jobs, versions, promote, rollback, confusion matrices.

Handlers translate HTTP to calls on ``Lifecycle`` and back. Admin routes are guarded by
``admin_only``; errors are ``ServingError``s, answered by ``serving.http.exceptions``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Link, SecurityRequirement
from litestar.params import PathParameter, QueryParameter

from serving.http.auth import ForbiddenError, UnauthorizedError, admin_only
from serving.http.errors import (
    BadRequestError,
    BodyTooLargeError,
    InvalidInputError,
    InvalidParameterError,
    MalformedBodyError,
    ModelUnavailableError,
    NotFoundError,
    VersionNotFoundError,
)
from serving.http.openapi import ADMIN_SECURITY, error_responses, link, linked
from serving.http.responses import RawResponse
from serving.http.state import service
from serving.inference.service import PredictionService
from serving.lifecycle.jobs import (
    DatasetInvalidError,
    JobNotFoundError,
    RetrainBusyError,
    RetrainFailedError,
    RetrainTimeoutError,
    RetrainUnavailableError,
)
from serving.lifecycle.requests import (
    WAIT_PATTERN,
    WAIT_WORDS,
    document_body,
    parse_wait,
    read_retrain_request,
)
from serving.lifecycle.schemas import Job, JobAccepted, ModelsReply, RetrainResult, SwitchReply
from serving.lifecycle.service import (
    Lifecycle,
    NothingToRollBackError,
    VersionNotServableError,
    confusion_matrix_png,
)

PNG: Final = (b"content-type", b"image/png")
VersionName = Annotated[
    str, PathParameter(description="A version name, e.g. 20261127-101500-3f9a2c.")
]
ADMIN: Final = (UnauthorizedError, ForbiddenError)
"""What ``admin_only`` may answer instead of the route."""
ADMIN_SECURITY_REQUIREMENT: Final[list[SecurityRequirement]] = [{ADMIN_SECURITY: []}]

PROMOTE: Final = "/models/{version}/promote"
VERSION_MATRIX: Final = "/models/{version}/confusion_matrix.png"


def _version_links(expression: str) -> dict[str, Link]:
    """Links from an answer naming a version (``expression``) to what can be done with it."""
    return {
        "promote": link(PROMOTE, "POST", version=expression),
        "confusion_matrix": link(VERSION_MATRIX, "GET", version=expression),
    }


class LifecycleController(Controller):
    """Retrain jobs and the published versions. The app sets its upload limit on the router."""

    path = "/"
    tags = ["lifecycle"]  # noqa: RUF012 - Litestar reads a list

    @post(
        "/retrain",
        guards=[admin_only],
        status_code=200,
        dependencies={"_body_schema": Provide(document_body, sync_to_thread=False)},
        security=ADMIN_SECURITY_REQUIREMENT,
        operation_class=linked(
            {
                200: _version_links("$response.body#/version"),
                202: {"job": link("/jobs/{job_id}", "GET", job_id="$response.body#/job_id")},
            }
        ),
        responses={
            200: ResponseSpec(RetrainResult, description="Job ended", generate_examples=False),
            202: ResponseSpec(JobAccepted, description="Started (wait=false)"),
            **error_responses(
                MalformedBodyError,
                InvalidParameterError,
                BadRequestError,
                *ADMIN,
                RetrainBusyError,
                BodyTooLargeError,
                InvalidInputError,
                DatasetInvalidError,
                RetrainFailedError,
                RetrainUnavailableError,
                RetrainTimeoutError,
            ),
        },
    )
    async def retrain(
        self,
        request: Request[Any, Any, Any],
        state: State,
        wait: Annotated[
            str | None,
            QueryParameter(
                required=False,
                description="false: answer 202 at once with the job URL; true: answer when the "
                "job ends (overrides the body's `wait`). Accepted: "
                + ", ".join(WAIT_WORDS)
                + ", in any letter case.",
                schema_extra={"pattern": WAIT_PATTERN},
            ),
        ] = None,
    ) -> Response[RetrainResult | JobAccepted]:
        """Train, evaluate and export a new model in a separate process; promote it if it is good.

        A version is published only when ONNX and scikit-learn agree (parity gate), and
        promoted only when its CV accuracy is not worse than the current model's by more than
        the tolerance (unless `force`). `/predict` keeps answering throughout.
        """
        lifecycle = service(state, Lifecycle)
        lifecycle.check_can_train()
        params, upload, name = await read_retrain_request(request)
        outcome = await lifecycle.retrain(params, upload, name, wait=parse_wait(wait, params.wait))
        if isinstance(outcome, Job):
            return Response(
                JobAccepted(job_id=outcome.job_id, job_url=outcome.url, state=outcome.state),
                status_code=202,
                headers={"location": outcome.url},
            )
        return Response(outcome, status_code=200)

    @get("/jobs/{job_id:str}", responses=error_responses(JobNotFoundError))
    async def get_job(self, state: State, job_id: Annotated[str, PathParameter()]) -> Job:
        """A retrain job's state (running, succeeded, failed) and its result or error."""
        return service(state, Lifecycle).manager.get(job_id)

    @get(
        "/models", operation_class=linked({200: _version_links("$response.body#/current_version")})
    )
    async def list_models(self, state: State) -> ModelsReply:
        """Every published version with its metrics and parity, and which one is served."""
        return service(state, Lifecycle).versions()

    @post(
        "/models/{version:str}/promote",
        guards=[admin_only],
        status_code=200,
        security=ADMIN_SECURITY_REQUIREMENT,
        operation_class=linked(
            {
                200: {
                    "confusion_matrix": link(
                        VERSION_MATRIX, "GET", version="$response.body#/current_version"
                    ),
                    "promote_previous": link(
                        PROMOTE, "POST", version="$response.body#/previous_version"
                    ),
                    "rollback": link("/models/rollback", "POST"),
                }
            }
        ),
        responses=error_responses(*ADMIN, VersionNotFoundError, VersionNotServableError),
    )
    async def promote(self, state: State, version: VersionName) -> SwitchReply:
        """Serve a published version; every worker switches within seconds (hot reload)."""
        return await service(state, Lifecycle).promote(version)

    @post(
        "/models/rollback",
        guards=[admin_only],
        status_code=200,
        security=ADMIN_SECURITY_REQUIREMENT,
        operation_class=linked(
            {
                200: {
                    "promote_previous": link(
                        PROMOTE, "POST", version="$response.body#/previous_version"
                    )
                }
            }
        ),
        responses=error_responses(*ADMIN, NothingToRollBackError, VersionNotServableError),
    )
    async def rollback(self, state: State) -> SwitchReply:
        """Serve the version that was current before this one."""
        return service(state, Lifecycle).rollback()

    @get(
        "/model/confusion_matrix.png",
        tags=["model"],
        summary="Confusion matrix of the loaded model",
        media_type="image/png",
        sync_to_thread=True,
        responses=error_responses(NotFoundError, ModelUnavailableError),
    )
    def current_confusion_matrix(self, state: State) -> RawResponse:
        """The confusion matrix (test split) of the loaded model, as a PNG image."""
        model = service(state, PredictionService).model
        return RawResponse(confusion_matrix_png(model.path), content_type=PNG)

    @get(
        "/models/{version:str}/confusion_matrix.png",
        tags=["model"],
        summary="Confusion matrix of a published version",
        media_type="image/png",
        sync_to_thread=True,
        responses=error_responses(VersionNotFoundError, NotFoundError),
    )
    def version_confusion_matrix(self, state: State, version: VersionName) -> RawResponse:
        """The confusion matrix (test split) of one published version, as a PNG image."""
        return RawResponse(service(state, Lifecycle).confusion_matrix(version), content_type=PNG)
