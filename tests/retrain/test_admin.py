"""Who may retrain, promote, roll back and read patient data: tokens, closed, dev mode."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.registry import Registry
from serving.http.auth import AccessPolicy, ForbiddenError, UnauthorizedError, is_loopback
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
    access = AccessPolicy(None, dev_mode=True, bind_host="127.0.0.1")
    assert access.dev_open("admin")
    access.check(_connection(client_host), "admin")  # type: ignore[arg-type]


@pytest.mark.parametrize("client_host", ["10.0.0.7", "192.168.1.20", "testclient", None])
def test_dev_mode_stays_closed_to_other_clients(client_host: str | None) -> None:
    access = AccessPolicy(None, dev_mode=True, bind_host="127.0.0.1")
    with pytest.raises(ForbiddenError):
        access.check(_connection(client_host), "admin")  # type: ignore[arg-type]


def test_dev_mode_is_ignored_when_binding_a_public_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    access = AccessPolicy(None, dev_mode=True, bind_host="0.0.0.0")
    assert not access.dev_open("admin")
    assert "development mode ignored" in caplog.text
    with pytest.raises(ForbiddenError):
        access.check(_connection("127.0.0.1"), "admin")  # type: ignore[arg-type]


def test_dev_mode_does_not_bypass_a_configured_token() -> None:
    access = AccessPolicy(TOKEN, dev_mode=True, bind_host="127.0.0.1")
    assert not access.dev_open("admin")
    with pytest.raises(UnauthorizedError):
        access.check(_connection("127.0.0.1"), "admin")  # type: ignore[arg-type]
    access.check(_connection("127.0.0.1", f"Bearer {TOKEN}"), "admin")  # type: ignore[arg-type]


def test_dev_mode_says_so_loudly_at_startup(
    make_client: Callable[..., TestClient[Litestar]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="serving.http.auth")
    make_client(admin_token=None, dev_mode=True)
    warnings = [r for r in caplog.records if r.name == "serving.http.auth"]
    assert warnings and warnings[0].levelname == "WARNING"
    assert "DEVELOPMENT MODE" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "host,expected",
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("0.0.0.0", False)],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


READ_TOKEN = "read-only-token"


def test_recorded_predictions_need_the_read_or_admin_token(
    make_client: Callable[..., TestClient[Litestar]], registry: Registry
) -> None:
    """Patient inputs are behind a token; the aggregate summary is not."""
    client = make_client(read_token=READ_TOKEN)
    assert client.post("/predict", json=PATIENT).status_code == 200
    missing = client.get("/predictions")
    assert missing.status_code == 401 and missing.json()["field"] == "Authorization"
    assert "read or admin token" in missing.json()["message"]
    assert client.get("/predictions", headers={"Authorization": "Bearer nope"}).status_code == 403
    for token in (READ_TOKEN, TOKEN):
        answer = client.get("/predictions", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
    assert client.get("/monitoring/summary").status_code == 200
    # The read token reads; it does not manage models.
    read_only = {"Authorization": f"Bearer {READ_TOKEN}"}
    assert _promote(client, registry, read_only).status_code == 403  # type: ignore[attr-defined]


def test_without_any_token_recorded_predictions_are_closed(
    make_client: Callable[..., TestClient[Litestar]],
) -> None:
    client = make_client(admin_token=None)
    answer = client.get("/predictions")
    assert answer.status_code == 403
    assert "DRUGCLF_READ_TOKEN" in answer.json()["message"]


def test_dev_mode_opens_recorded_predictions_to_loopback_only() -> None:
    access = AccessPolicy(None, dev_mode=True, bind_host="127.0.0.1")
    assert access.guarded("read") == "dev"
    access.check(_connection("127.0.0.1"), "read")  # type: ignore[arg-type]
    with pytest.raises(ForbiddenError):
        access.check(_connection("10.0.0.7"), "read")  # type: ignore[arg-type]
    guarded = AccessPolicy(None, read_token=READ_TOKEN, dev_mode=True, bind_host="127.0.0.1")
    assert guarded.guarded("read") == "token" and guarded.guarded("admin") == "dev"
    with pytest.raises(UnauthorizedError):
        guarded.check(_connection("127.0.0.1"), "read")  # type: ignore[arg-type]
