"""Who may change the served model: a Bearer token, compared in constant time.

With a token configured, admin routes need ``Authorization: Bearer <token>`` (401 without a
well-formed header, 403 with a wrong token). With none they are closed (403), except in local
development mode on a loopback address, where they are open to loopback clients only.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any, ClassVar, Final

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from serving.http.errors import ErrorExample, ServingError
from serving.http.state import service

logger = logging.getLogger(__name__)

_SCHEME: Final = "bearer"


class UnauthorizedError(ServingError):
    """No credentials, or not in the ``Bearer <token>`` form."""

    status_code = 401
    code = "unauthorized"
    example = ErrorExample(
        "this endpoint needs an admin token: send 'Authorization: Bearer <token>'",
        field="Authorization",
    )
    # RFC 9110: a 401 names the scheme that would be accepted.
    headers: ClassVar[dict[str, str] | None] = {
        "WWW-Authenticate": 'Bearer realm="drug-classifier admin"'
    }


class ForbiddenError(ServingError):
    """Wrong token, or admin routes are closed on this server."""

    status_code = 403
    code = "forbidden"
    example = ErrorExample("the admin token is not valid", field="Authorization")


def is_loopback(host: str | None) -> bool:
    """Whether an address (or ``localhost``) is a loopback address."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AdminAccess:
    """The admin policy of one server: its token, or development mode on loopback."""

    def __init__(self, token: str | None, *, dev_mode: bool, bind_host: str) -> None:
        self._token = token.encode() if token else None
        self.dev_open = self._token is None and dev_mode and is_loopback(bind_host)
        if self._token is None and dev_mode and not self.dev_open:
            logger.error(
                "development mode ignored: the server binds %s, not a loopback address; "
                "admin endpoints stay closed until DRUGCLF_ADMIN_TOKEN is set",
                bind_host,
            )

    def announce(self) -> None:
        """Say loudly at startup when admin routes are open without a token."""
        if self.dev_open:
            logger.warning(
                "DEVELOPMENT MODE: admin endpoints (retrain, promote, rollback) are OPEN to "
                "loopback clients without a token. Never use DRUGCLF_DEV_MODE in production; "
                "set DRUGCLF_ADMIN_TOKEN instead."
            )
        elif self._token is None:
            logger.info("admin endpoints closed: set DRUGCLF_ADMIN_TOKEN to open them")

    def check(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        """Let the request through or raise the error to answer.

        Raises:
            UnauthorizedError: missing or malformed ``Authorization`` header.
            ForbiddenError: wrong token, or admin routes closed.
        """
        if self._token is None:
            client = connection.client.host if connection.client else None
            if self.dev_open and is_loopback(client):
                return
            raise ForbiddenError(
                "admin endpoints are closed: the server has no admin token "
                "(set DRUGCLF_ADMIN_TOKEN, or use `make serve` for local development)"
            )
        header = connection.headers.get("authorization")
        if header is None:
            raise UnauthorizedError(
                "this endpoint needs an admin token: send 'Authorization: Bearer <token>'",
                field="Authorization",
            )
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != _SCHEME or not token:
            raise UnauthorizedError(
                "malformed Authorization header: expected 'Bearer <token>'",
                field="Authorization",
            )
        if not hmac.compare_digest(token.encode(), self._token):
            raise ForbiddenError("the admin token is not valid", field="Authorization")


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: the app's ``AdminAccess`` policy decides."""
    service(connection.app.state, AdminAccess).check(connection)
