"""The web UI: a few HTML pages served by this server.

The pages are static HTML fragments under ``serving/static/ui/pages`` put into one layout once,
when the app is built; their scripts call the JSON API from the browser, so the server renders
no data and needs nothing beyond what serving already has. Assets (CSS, JS) are served by the
``/static`` router of ``serving.http.openapi``: no CDN, the UI works offline.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Final

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.enums import MediaType

from serving.http.auth import AccessPolicy
from serving.http.openapi import STATIC_DIR, STATIC_PATH
from serving.http.state import service
from serving.settings import Settings

UI_DIR: Final = STATIC_DIR / "ui"
UI_ASSETS: Final = f"{STATIC_PATH}/ui"
UI_HOME: Final = "/ui"
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


def render_pages(settings: Settings, access: AccessPolicy) -> dict[str, bytes]:
    """Every page put into the layout once; keys are the page slugs."""
    layout = (UI_DIR / "layout.html").read_text(encoding="utf-8")
    config = {
        "max-batch-size": str(settings.max_batch_size),
        # How guarded routes are guarded, so the pages can say what the token field needs.
        "admin": access.guarded("admin"),
        "read": access.guarded("read"),
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


class RenderedPages:
    """Every page put into the layout once, when the app is built."""

    def __init__(self, settings: Settings, access: AccessPolicy) -> None:
        rendered = render_pages(settings, access)
        self.by_path = {page.path: rendered[page.slug] for page in PAGES}
        self.by_path[UI_HOME] = rendered[PAGES[0].slug]


class UiController(Controller):
    """The pages, at ``/`` and ``/ui/...``; their assets come from the ``/static`` router."""

    path = "/"
    include_in_schema = False

    @get([*(page.path for page in PAGES), UI_HOME], name="ui-page")
    async def page(self, request: Request[Any, Any, Any], state: State) -> Response[bytes]:
        """One page of the UI (the layout with its fragment)."""
        path = request.scope["path"].rstrip("/") or "/"
        body = service(state, RenderedPages).by_path[path]
        return Response(body, media_type=MediaType.HTML, headers=PAGE_HEADERS)
