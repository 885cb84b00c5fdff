"""HTTP for the traffic policy: ``GET``, ``PUT`` and ``DELETE /routing`` (thin handlers).

All three are admin routes with the same guard as promote (``admin_only``): changing the policy
changes which model answers, and reading it tells which versions are being tried, on which share
of the traffic, and which request header keys the split. Without the admin token they answer 401
(no ``Authorization`` header) or 403 (a wrong token, or no token configured), except in
development mode for loopback clients (``serving.http.auth``).
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Controller, Request, Response, delete, get, put, route
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import HttpMethod
from litestar.openapi import ResponseSpec

from drugclf.routing import RoutingPolicy
from serving.experiments.schemas import RoutingReply
from serving.experiments.service import Experiments
from serving.http.auth import ForbiddenError, UnauthorizedError, admin_only
from serving.http.errors import InvalidInputError, MalformedBodyError, UnsupportedMediaTypeError
from serving.http.openapi import ADMIN_SECURITY, error_responses
from serving.http.state import service
from serving.inference.codec import check_json_content_type

ALLOW: Final = "DELETE, GET, OPTIONS, PUT"


def document_body(data: RoutingPolicy) -> None:  # pragma: no cover - never called
    """Only for the OpenAPI schema: the handler decodes the raw body strictly itself."""


class RoutingController(Controller):
    """The registry's traffic policy: A/B candidates and shadows beside the served version."""

    path = "/"
    tags = ["experiments"]  # noqa: RUF012 - Litestar reads a list

    @get(
        "/routing",
        guards=[admin_only],
        security=[{ADMIN_SECURITY: []}],
        responses={
            200: ResponseSpec(RoutingReply, generate_examples=False),
            **error_responses(UnauthorizedError, ForbiddenError),
        },
    )
    async def show(self, state: State) -> RoutingReply:
        """The traffic policy (null: one model answers) and whether this worker follows it."""
        return service(state, Experiments).reply()

    @put(
        "/routing",
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
        "/routing",
        guards=[admin_only],
        status_code=200,
        security=[{ADMIN_SECURITY: []}],
        responses=error_responses(UnauthorizedError, ForbiddenError),
    )
    async def remove(self, state: State) -> RoutingReply:
        """Remove the traffic policy: the served version answers everything again."""
        return await service(state, Experiments).delete()

    @route("/routing", http_method=HttpMethod.OPTIONS, include_in_schema=False, status_code=204)
    async def allowed(self) -> Response[None]:
        """The methods of /routing (Litestar's own answer lists only the last one declared)."""
        return Response(None, status_code=204, headers={"Allow": ALLOW})
