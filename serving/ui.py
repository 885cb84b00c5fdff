"""The web UI: a few HTML pages served by this server, plus the confusion-matrix images.

The pages are static HTML fragments under ``serving/static/ui/pages`` put into one layout once,
when the app is built; their scripts call the JSON API from the browser, so the server renders
no data and needs nothing beyond what serving already has. Assets (CSS, JS) are served by the
``/static`` router of ``serving.docs``: no CDN, the UI works offline.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

from litestar import Response, Router, get
from litestar.enums import MediaType
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter

from drugclf.artifact import CONFUSION_MATRIX_FILE
from drugclf.registry import Registry, RegistryError
from serving.docs import STATIC_DIR, STATIC_PATH
from serving.errors import ErrorBody, ServingError
from serving.reload import ModelHolder
from serving.responses import RawResponse
from serving.settings import Settings

UI_DIR: Final = STATIC_DIR / "ui"
UI_ASSETS: Final = f"{STATIC_PATH}/ui"
PNG: Final = (b"content-type", b"image/png")
# Everything comes from this server: scripts and styles from files, never inline or remote.
PAGE_HEADERS: Final = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


class NotFoundError(ServingError):
    """The asked-for resource (a version, an image) does not exist."""

    status_code = 404
    code = "not_found"


@dataclass(frozen=True)
class Page:
    """One page of the UI: its URL path, its title in the menu and its fragment file."""

    slug: str
    path: str
    title: str


PAGES: Final = (
    Page("home", "/", "Home"),
    Page("predict", "/ui/predict", "Predict"),
    Page("batch", "/ui/batch", "Batch"),
    Page("retrain", "/ui/retrain", "Retrain"),
    Page("model", "/ui/model", "Model"),
    Page("monitoring", "/ui/monitoring", "Monitoring"),
    Page("about", "/ui/about", "About"),
)


def _nav(active: Page) -> str:
    items = []
    for page in PAGES:
        current = ' aria-current="page"' if page is active else ""
        items.append(f'<li><a href="{page.path}"{current}>{html.escape(page.title)}</a></li>')
    items.append('<li><a href="/docs">API docs</a></li>')
    return "\n".join(items)


def render_pages(settings: Settings) -> dict[str, bytes]:
    """Every page put into the layout once; keys are the page slugs."""
    layout = (UI_DIR / "layout.html").read_text(encoding="utf-8")
    config = {
        "max-batch-size": str(settings.max_batch_size),
        # How admin routes are guarded, so the pages can say what the token field needs.
        "admin": "token" if settings.admin_token else "dev" if settings.dev_mode else "closed",
    }
    data_attrs = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in config.items())
    rendered = {}
    for page in PAGES:
        body = (UI_DIR / "pages" / f"{page.slug}.html").read_text(encoding="utf-8")
        text = (
            layout.replace("{{title}}", html.escape(page.title))
            .replace("{{nav}}", _nav(page))
            .replace("{{main}}", body)
            .replace("{{page}}", page.slug)
            .replace("{{assets}}", UI_ASSETS)
            .replace("{{config}}", data_attrs)
        )
        rendered[page.slug] = text.encode()
    return rendered


def _png(path: Path) -> RawResponse:
    try:
        return RawResponse(path.read_bytes(), content_type=PNG)
    except OSError as exc:
        raise NotFoundError("this model version has no confusion-matrix image") from exc


def _not_found_spec(description: str) -> ResponseSpec:
    return ResponseSpec(ErrorBody, description=description, generate_examples=False)


def ui_router(holder: ModelHolder, settings: Settings) -> Router:
    """The pages (``/`` and ``/ui/...``) and the confusion-matrix image routes."""
    pages = render_pages(settings)
    registry = Registry(settings.artifacts_dir)

    def page_handler(page: Page) -> Any:
        body = pages[page.slug]
        paths = [page.path, "/ui"] if page.slug == "home" else [page.path]

        @get(paths, name=f"ui-{page.slug}", include_in_schema=False)
        async def handler() -> Response[bytes]:
            return Response(body, media_type=MediaType.HTML, headers=PAGE_HEADERS)

        return handler

    @get(
        "/model/confusion_matrix.png",
        tags=["model"],
        summary="Confusion matrix of the loaded model",
        media_type="image/png",
        sync_to_thread=True,
        responses={404: _not_found_spec("No model loaded, or it has no image")},
    )
    def current_confusion_matrix() -> RawResponse:
        """The confusion matrix (test split) of the loaded model, as a PNG image."""
        model = holder.model
        if model is None:
            raise NotFoundError("no model is loaded yet")
        return _png(model.path / CONFUSION_MATRIX_FILE)

    @get(
        "/models/{version:str}/confusion_matrix.png",
        tags=["model"],
        summary="Confusion matrix of a published version",
        media_type="image/png",
        sync_to_thread=True,
        responses={404: _not_found_spec("Not a version name, an unknown version, or no image")},
    )
    def version_confusion_matrix(
        version: Annotated[
            str, PathParameter(description="A version name, e.g. 20261127-101500-3f9a2c.")
        ],
    ) -> RawResponse:
        """The confusion matrix (test split) of one published version, as a PNG image."""
        try:
            folder = registry.version_dir(version)
        except RegistryError as exc:
            raise NotFoundError(str(exc), field="version") from exc
        return _png(folder / CONFUSION_MATRIX_FILE)

    return Router(
        path="/",
        route_handlers=[
            *(page_handler(page) for page in PAGES),
            current_confusion_matrix,
            version_confusion_matrix,
        ],
    )
