"""Who may do what: Bearer tokens, compared in constant time.

With a token configured, a guarded route needs ``Authorization: Bearer <token>`` (401 without
a well-formed header, 403 with a wrong token). With none it is closed (403), except in local
development mode on a loopback address, where it is open to loopback clients only. Admin routes
change the served model; reading recorded predictions (patient data) is a scope of its own.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any, Final, Literal

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from serving.http.errors import ErrorExample, ServingError
from serving.http.state import service

logger = logging.getLogger(__name__)

_SCHEME: Final = "bearer"
Scope = Literal["admin", "read"]


class UnauthorizedError(ServingError):
    """No credentials, or not in the ``Bearer <token>`` form."""

    status_code = 401
    code = "unauthorized"
    example = ErrorExample(
        "this endpoint needs an admin token: send 'Authorization: Bearer <token>'",
        field="Authorization",
    )
    # RFC 9110: a 401 names the scheme that would be accepted.
    headers: dict[str, str] | None = {  # noqa: RUF012 - read only
        "WWW-Authenticate": 'Bearer realm="drug-classifier admin"'
    }


class ForbiddenError(ServingError):
    """Wrong token, or the route is closed on this server."""

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


class AccessPolicy:
    """Who may do what on one server: its tokens, or development mode on loopback.

    Two scopes: ``admin`` (change the served model) needs the admin token; ``read`` (recorded
    patient inputs) takes the read token or the admin token. A scope with no token configured
    is closed, except in development mode on a loopback address, where loopback clients pass.
    """

    def __init__(
        self,
        admin_token: str | None,
        *,
        read_token: str | None = None,
        dev_mode: bool,
        bind_host: str,
    ) -> None:
        admin = admin_token.encode() if admin_token else None
        reader = read_token.encode() if read_token else None
        self._tokens: dict[Scope, tuple[bytes, ...]] = {
            "admin": tuple(t for t in (admin,) if t),
            "read": tuple(t for t in (reader, admin) if t),
        }
        self._dev_mode = dev_mode and is_loopback(bind_host)
        if dev_mode and not self._dev_mode:
            logger.error(
                "development mode ignored: the server binds %s, not a loopback address; "
                "what needs a token stays closed until DRUGCLF_ADMIN_TOKEN is set",
                bind_host,
            )

    def dev_open(self, scope: Scope) -> bool:
        """Whether ``scope`` is open to loopback clients without a token (development mode)."""
        return self._dev_mode and not self._tokens[scope]

    def guarded(self, scope: Scope) -> Literal["token", "dev", "closed"]:
        """How ``scope`` is guarded, as the web UI tells its users."""
        return "token" if self._tokens[scope] else "dev" if self.dev_open(scope) else "closed"

    def announce(self) -> None:
        """Say loudly at startup what is open without a token."""
        if self.dev_open("admin"):
            logger.warning(
                "DEVELOPMENT MODE: admin endpoints (retrain, promote, rollback) and recorded "
                "predictions are OPEN to loopback clients without a token. Never use "
                "DRUGCLF_DEV_MODE in production; set DRUGCLF_ADMIN_TOKEN instead."
            )
        elif not self._tokens["admin"]:
            logger.info("admin endpoints closed: set DRUGCLF_ADMIN_TOKEN to open them")
        if not self._tokens["read"] and not self.dev_open("read"):
            logger.info(
                "recorded predictions (GET /predictions) closed: set DRUGCLF_READ_TOKEN "
                "or DRUGCLF_ADMIN_TOKEN to read them"
            )

    def check(self, connection: ASGIConnection[Any, Any, Any, Any], scope: Scope) -> None:
        """Let the request through or raise the error to answer.

        Raises:
            UnauthorizedError: missing or malformed ``Authorization`` header.
            ForbiddenError: wrong token, or the scope is closed on this server.
        """
        tokens = self._tokens[scope]
        if not tokens:
            client = connection.client.host if connection.client else None
            if self.dev_open(scope) and is_loopback(client):
                return
            raise ForbiddenError(_CLOSED[scope])
        header = connection.headers.get("authorization")
        if header is None:
            raise UnauthorizedError(
                f"this endpoint needs {_NEEDED[scope]}: send 'Authorization: Bearer <token>'",
                field="Authorization",
            )
        kind, _, token = header.strip().partition(" ")
        given = token.strip().encode()
        if kind.lower() != _SCHEME or not given:
            raise UnauthorizedError(
                "malformed Authorization header: expected 'Bearer <token>'",
                field="Authorization",
            )
        # Every token is compared, in constant time, whichever matches.
        if not sum(hmac.compare_digest(given, expected) for expected in tokens):
            raise ForbiddenError(
                f"the token is not valid for {_ACTION[scope]}", field="Authorization"
            )


_NEEDED: Final[dict[Scope, str]] = {"admin": "an admin token", "read": "a read or admin token"}
_ACTION: Final[dict[Scope, str]] = {
    "admin": "admin endpoints",
    "read": "reading recorded predictions",
}
_CLOSED: Final[dict[Scope, str]] = {
    "admin": "admin endpoints are closed: the server has no admin token "
    "(set DRUGCLF_ADMIN_TOKEN, or use `make serve` for local development)",
    "read": "recorded predictions hold patient data and the server has no token to guard them "
    "(set DRUGCLF_READ_TOKEN or DRUGCLF_ADMIN_TOKEN, or use `make serve` for local development)",
}


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: the app's ``AccessPolicy`` admits admins only."""
    service(connection.app.state, AccessPolicy).check(connection, "admin")


def readers_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: the app's ``AccessPolicy`` admits holders of the read or admin token."""
    service(connection.app.state, AccessPolicy).check(connection, "read")
