"""Browser tests of the web UI: the real server on a loopback port, driven by headless Chromium.

One small model is trained by the training CLI into a temporary registry, ``python -m serving``
serves it (with an admin token, so retraining works), and one Chromium (Debian's, never a
downloaded one) serves every test of the session. Screenshots go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drugclf.registry import Registry
from loadtests.bench.server import ServerProcess
from tests.support import DATA, ROOT

SCREENSHOTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = Path(os.environ.get("DRUGCLF_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_TOKEN = "ui-test-admin-token"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
START_TIMEOUT = 90.0


@dataclass(frozen=True)
class Server:
    """The running server: its base URL and folders."""

    url: str
    artifacts_dir: Path
    first_version: str


@pytest.fixture(scope="session")
def server(model_copy: Callable[[str], Path]) -> Iterator[Server]:
    """``python -m serving`` on a free loopback port, stopped at the end of the session."""
    base = model_copy("ui-server")
    artifacts, runs = base / "artifacts", base / "runs"
    version = Registry(artifacts).current_version()
    assert version is not None
    env = {
        "DRUGCLF_ADMIN_TOKEN": ADMIN_TOKEN,
        "DRUGCLF_DATA": str(DATA),
        "DRUGCLF_RUNS_DIR": str(runs),
        "DRUGCLF_DATA_DIR": str(base / "var"),
        "DRUGCLF_RETRAIN_PARITY_CASES": "2000",
        "DRUGCLF_RELOAD_INTERVAL": "0.2",
        "DRUGCLF_LOG_FORMAT": "text",
        "DRUGCLF_ACCESS_LOG": "false",
    }
    with ServerProcess(
        artifacts,
        workers=1,
        bench_routes=False,
        extra_env=env,
        log_path=base / "server.log",
        ready_timeout=START_TIMEOUT,
    ) as running:
        yield Server(url=running.base_url, artifacts_dir=artifacts, first_version=version)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session (skips the browser tests without one)."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh desktop-sized tab; script errors fail the test."""
    context = browser.new_context(viewport=DESKTOP, base_url=server.url, accept_downloads=True)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # The browser logs every 4xx answer as "Failed to load resource"; the pages expect those
    # (validation errors, features missing on this server), so only other errors count.
    tab.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    try:
        yield tab
    finally:
        context.close()
    assert not problems, problems


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """``test-artifacts/ui/``, emptied once per session."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture
def shoot(page: Any, screenshots: Path) -> Any:
    """``shoot(name)``: save the page at desktop and phone widths as ``<name>-desktop.png`` ..."""

    def take(name: str) -> None:
        page.screenshot(path=str(screenshots / f"{name}-desktop.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(150)
        page.screenshot(path=str(screenshots / f"{name}-phone.png"), full_page=True)
        page.set_viewport_size(DESKTOP)

    return take
