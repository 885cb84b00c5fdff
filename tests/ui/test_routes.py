"""The UI's routes over plain HTTP (no browser): pages, their headers, assets, images."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from litestar.testing import TestClient

from drugclf.registry import Registry
from serving.app import create_app
from serving.settings import Settings
from serving.ui.routes import PAGES as UI_PAGES
from tests.ui.conftest import Server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# Every page the UI declares, and /ui (an alias of the home page).
PAGES = [page.path for page in UI_PAGES] + ["/ui"]


def _fetch(server: Server, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_html_with_a_strict_policy(server: Server, path: str) -> None:
    status, headers, body = _fetch(server, path)
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    text = body.decode()
    assert "not a clinical tool" in text.lower()
    assert 'aria-current="page"' in text
    # Every asset is local: no absolute or protocol-relative URL in a src or href.
    assert not re.search(r'(src|href)="(https?:)?//', text)


def test_assets_referenced_by_the_pages_exist(server: Server) -> None:
    _, _, body = _fetch(server, "/ui/model")
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', body.decode())
    assert len(assets) >= 3
    for asset in assets:
        status, _, _ = _fetch(server, asset)
        assert status == 200, asset
    for module in ("app", "charts", "csv", "admin"):
        assert _fetch(server, f"/static/ui/js/{module}.js")[0] == 200


def test_confusion_matrix_of_the_current_model(server: Server) -> None:
    status, headers, body = _fetch(server, "/model/confusion_matrix.png")
    assert status == 200
    assert headers["content-type"] == "image/png"
    assert body.startswith(b"\x89PNG")


def test_confusion_matrix_of_a_version(server: Server) -> None:
    version = Registry(server.artifacts_dir).versions()[0]
    status, _, body = _fetch(server, f"/models/{version}/confusion_matrix.png")
    assert status == 200 and body.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("version", "field", "code"),
    [
        ("not-a-version", "version", "version_not_found"),
        ("..%2F..%2Fetc", None, "not_found"),  # decoded to a path no route matches
        ("20990101-000000-abcdef", None, "version_not_found"),
    ],
)
def test_confusion_matrix_of_an_unknown_version_is_404(
    server: Server, version: str, field: str | None, code: str
) -> None:
    status, headers, body = _fetch(server, f"/models/{version}/confusion_matrix.png")
    assert status == 404
    assert headers["content-type"].startswith("application/json")
    assert f'"code":"{code}"'.encode() in body
    if field:
        assert f'"field":"{field}"'.encode() in body


def test_ui_routes_in_process(server: Server, tmp_path: Path) -> None:
    """The same routes through Litestar's TestClient, so deprecation warnings fail here too."""
    settings = Settings(
        artifacts_dir=server.artifacts_dir,
        data_dir=tmp_path,
        prediction_log=False,
        access_log=False,
        reload_interval=0,
    )
    with TestClient(create_app(settings)) as client:
        for path in PAGES:
            assert client.get(path).status_code == 200, path
        assert client.get("/model/confusion_matrix.png").headers["content-type"] == "image/png"
        assert client.get("/models/nope/confusion_matrix.png").status_code == 404
        schema = client.get("/docs/openapi.json").json()
        image = schema["paths"]["/models/{version}/confusion_matrix.png"]["get"]
        assert "image/png" in image["responses"]["200"]["content"]
        assert "404" in image["responses"]
        assert not any(path.startswith("/ui") for path in schema["paths"])
