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
from litestar.params import PathParameter, QueryParameter

from serving.http.openapi import error_spec
from serving.http.responses import RawResponse
from serving.http.state import service
from serving.inference.service import PredictionService
from serving.lifecycle.admin import admin_only
from serving.lifecycle.requests import document_body, parse_wait, read_retrain_request
from serving.lifecycle.schemas import Job, JobAccepted, ModelsReply, RetrainResult, SwitchReply
from serving.lifecycle.service import Lifecycle, confusion_matrix_png

PNG: Final = (b"content-type", b"image/png")
VersionName = Annotated[
    str, PathParameter(description="A version name, e.g. 20261127-101500-3f9a2c.")
]
ADMIN_ERRORS: Final = {
    401: error_spec("No or malformed `Authorization: Bearer <token>` header"),
    403: error_spec("Wrong token, or admin endpoints closed (no token configured)"),
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
        responses={
            200: ResponseSpec(RetrainResult, description="Job ended", generate_examples=False),
            202: ResponseSpec(JobAccepted, description="Started (wait=false)"),
            **ADMIN_ERRORS,
            409: error_spec("Another retrain is running (the message names its job)"),
            413: error_spec("Body larger than DRUGCLF_RETRAIN_MAX_UPLOAD_BYTES"),
            422: error_spec("Invalid parameter, or invalid CSV (lines and columns named)"),
            500: error_spec("Job failed (parity gate, crash): the current model keeps serving"),
            501: error_spec("No training stack in this install (slim image)"),
            504: error_spec("Job stopped at the time limit: the current model keeps serving"),
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
                description="false: answer 202 at once with the job URL (overrides the body)",
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

    @get("/jobs/{job_id:str}", responses={404: error_spec("No such job")})
    async def get_job(self, state: State, job_id: Annotated[str, PathParameter()]) -> Job:
        """A retrain job's state (running, succeeded, failed) and its result or error."""
        return service(state, Lifecycle).manager.get(job_id)

    @get("/models")
    async def list_models(self, state: State) -> ModelsReply:
        """Every published version with its metrics and parity, and which one is served."""
        return service(state, Lifecycle).versions()

    @post(
        "/models/{version:str}/promote",
        guards=[admin_only],
        status_code=200,
        responses={
            **ADMIN_ERRORS,
            404: error_spec("No such version"),
            422: error_spec("The version's files do not load or do not match its metadata"),
        },
    )
    async def promote(self, state: State, version: VersionName) -> SwitchReply:
        """Serve a published version; every worker switches within seconds (hot reload)."""
        return await service(state, Lifecycle).promote(version)

    @post(
        "/models/rollback",
        guards=[admin_only],
        status_code=200,
        responses={
            **ADMIN_ERRORS,
            409: error_spec("No earlier promoted version"),
            422: error_spec("The previous version's files do not load or do not match"),
        },
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
        responses={404: error_spec("It has no image"), 503: error_spec("No model loaded")},
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
        responses={404: error_spec("Not a version name, an unknown version, or no image")},
    )
    def version_confusion_matrix(self, state: State, version: VersionName) -> RawResponse:
        """The confusion matrix (test split) of one published version, as a PNG image."""
        return RawResponse(service(state, Lifecycle).confusion_matrix(version), content_type=PNG)
