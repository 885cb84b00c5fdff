"""HTTP for the traffic policy: ``GET``, ``PUT`` and ``DELETE /routing`` (thin handlers).

Changing the policy changes which model answers: ``PUT`` and ``DELETE`` take the admin token,
like promote. Reading it is open, like ``GET /models``: it names versions, no patient data.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import ResponseSpec

from drugclf.routing import RoutingPolicy
from serving.experiments.schemas import RoutingReply
from serving.experiments.service import Experiments
from serving.http.auth import ForbiddenError, UnauthorizedError, admin_only
from serving.http.errors import InvalidInputError, MalformedBodyError, UnsupportedMediaTypeError
from serving.http.openapi import ADMIN_SECURITY, error_responses
from serving.http.state import service
from serving.inference.codec import check_json_content_type


def document_body(data: RoutingPolicy) -> None:  # pragma: no cover - never called
    """Only for the OpenAPI schema: the handler decodes the raw body strictly itself."""


class RoutingController(Controller):
    """The registry's traffic policy: A/B candidates and shadows beside the served version."""

    path = "/routing"
    tags = ["experiments"]  # noqa: RUF012 - Litestar reads a list

    @get("/", responses={200: ResponseSpec(RoutingReply, generate_examples=False)})
    async def show(self, state: State) -> RoutingReply:
        """The traffic policy (null: one model answers) and whether this worker follows it."""
        return service(state, Experiments).reply()

    @put(
        "/",
        guards=[admin_only],
        status_code=200,
        dependencies={"_body_schema": Provide(document_body, sync_to_thread=False)},
        security=[{ADMIN_SECURITY: []}],
        responses=error_responses(
            MalformedBodyError,
            UnauthorizedError,
            ForbiddenError,
            UnsupportedMediaTypeError,
            InvalidInputError,
        ),
    )
    async def replace(self, request: Request[Any, Any, Any]) -> RoutingReply:
        """Replace the traffic policy; every worker follows it within the reload interval.

        Every version must be published and have passed its parity gate, the primary must be
        the served version, weights and fractions are from 0 to 1 and the weights sum to at
        most 1. A refused policy is a 422 naming the field.
        """
        check_json_content_type(request.scope["headers"])
        return await service(request.app.state, Experiments).put(await request.body())

    @delete(
        "/",
        guards=[admin_only],
        status_code=200,
        security=[{ADMIN_SECURITY: []}],
        responses=error_responses(UnauthorizedError, ForbiddenError),
    )
    async def remove(self, state: State) -> RoutingReply:
        """Remove the traffic policy: the served version answers everything again."""
        return await service(state, Experiments).delete()
