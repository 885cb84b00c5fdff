"""Who may retrain, promote and roll back: Bearer token, closed without one, dev mode on loopback."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.registry import Registry
from serving.lifecycle.admin import AdminAccess, ForbiddenError, UnauthorizedError, is_loopback
from tests.retrain.conftest import AUTH, TOKEN
from tests.support import PATIENT

ADMIN_ROUTES = [("/models/rollback", None), ("/retrain", {"n_estimators": 0})]


def _promote(client: TestClient[Litestar], registry: Registry, headers: dict[str, str]) -> object:
    version = registry.current_version()
    return client.post(f"/models/{version}/promote", headers=headers)


@pytest.mark.parametrize("path,body", ADMIN_ROUTES)
def test_no_header_is_401_naming_the_scheme(
    client: TestClient[Litestar], path: str, body: object
) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code == 401
    error = answer.json()
    assert error["code"] == "unauthorized"
    assert "Bearer" in error["message"]
    assert error["status"] == "error" and error["request_id"]
    assert answer.headers["www-authenticate"] == 'Bearer realm="drug-classifier admin"'


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", TOKEN, "Token " + TOKEN]
)
def test_malformed_header_is_401(client: TestClient[Litestar], header: str) -> None:
    answer = client.post("/models/rollback", headers={"Authorization": header})
    assert answer.status_code == 401
    assert "malformed" in answer.json()["message"]
    assert answer.headers["www-authenticate"].startswith("Bearer ")


def test_403_does_not_ask_for_credentials(client: TestClient[Litestar]) -> None:
    answer = client.post("/models/rollback", headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 403
    assert "www-authenticate" not in answer.headers


@pytest.mark.parametrize("token", ["wrong", TOKEN + "x", TOKEN[:-1], TOKEN.upper()])
def test_wrong_token_is_403(client: TestClient[Litestar], token: str) -> None:
    answer = client.post("/models/rollback", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert answer.json()["code"] == "forbidden"
    assert TOKEN not in answer.text


def test_right_token_passes(client: TestClient[Litestar], registry: Registry) -> None:
    answer = _promote(client, registry, AUTH)
    assert answer.status_code == 200  # type: ignore[attr-defined]
    lowercase = {"authorization": f"bearer {TOKEN}"}
    assert _promote(client, registry, lowercase).status_code == 200  # type: ignore[attr-defined]


def test_without_a_token_admin_routes_are_closed(
    make_client: Callable[..., TestClient[Litestar]], registry: Registry
) -> None:
    client = make_client(admin_token=None)
    for headers in ({}, AUTH):
        answer = _promote(client, registry, headers)
        assert answer.status_code == 403  # type: ignore[attr-defined]
        assert "DRUGCLF_ADMIN_TOKEN" in answer.json()["message"]  # type: ignore[attr-defined]


def test_predictions_and_listings_stay_open(client: TestClient[Litestar]) -> None:
    assert client.post("/predict", json=PATIENT).status_code == 200
    assert client.get("/models").status_code == 200


def _connection(host: str | None, authorization: str | None = None) -> SimpleNamespace:
    headers = {"authorization": authorization} if authorization else {}
    return SimpleNamespace(client=SimpleNamespace(host=host) if host else None, headers=headers)


@pytest.mark.parametrize("client_host", ["127.0.0.1", "::1", "127.0.0.2"])
def test_dev_mode_opens_admin_routes_to_loopback_clients(client_host: str) -> None:
    access = AdminAccess(None, dev_mode=True, bind_host="127.0.0.1")
    assert access.dev_open
    access.check(_connection(client_host))  # type: ignore[arg-type]


@pytest.mark.parametrize("client_host", ["10.0.0.7", "192.168.1.20", "testclient", None])
def test_dev_mode_stays_closed_to_other_clients(client_host: str | None) -> None:
    access = AdminAccess(None, dev_mode=True, bind_host="127.0.0.1")
    with pytest.raises(ForbiddenError):
        access.check(_connection(client_host))  # type: ignore[arg-type]


def test_dev_mode_is_ignored_when_binding_a_public_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    access = AdminAccess(None, dev_mode=True, bind_host="0.0.0.0")
    assert not access.dev_open
    assert "development mode ignored" in caplog.text
    with pytest.raises(ForbiddenError):
        access.check(_connection("127.0.0.1"))  # type: ignore[arg-type]


def test_dev_mode_does_not_bypass_a_configured_token() -> None:
    access = AdminAccess(TOKEN, dev_mode=True, bind_host="127.0.0.1")
    assert not access.dev_open
    with pytest.raises(UnauthorizedError):
        access.check(_connection("127.0.0.1"))  # type: ignore[arg-type]
    access.check(_connection("127.0.0.1", f"Bearer {TOKEN}"))  # type: ignore[arg-type]


def test_dev_mode_says_so_loudly_at_startup(
    make_client: Callable[..., TestClient[Litestar]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="serving.lifecycle.admin")
    make_client(admin_token=None, dev_mode=True)
    warnings = [r for r in caplog.records if r.name == "serving.lifecycle.admin"]
    assert warnings and warnings[0].levelname == "WARNING"
    assert "DEVELOPMENT MODE" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "host,expected",
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("0.0.0.0", False)],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected
