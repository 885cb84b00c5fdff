"""The traffic policy and accuracy per version in the browser, against a server of their own.

Its registry holds the session model and two clones of it, so this suite can set a policy and
label answers without changing what the other UI tests see. The Model page sets the policy, the
Batch page uploads labels, the Monitoring page shows the versions side by side.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drugclf.registry import Registry
from loadtests.bench.server import ServerProcess
from tests.support import PATIENT, clone_version
from tests.ui.conftest import ADMIN_TOKEN, DESKTOP, PHONE, START_TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CANDIDATE = "20300101-000000-c0ffee"
SHADOW = "20300101-000001-5ad0e0"


@pytest.fixture(scope="module")
def ab_server(model_copy: Callable[[str], Path]) -> Iterator[str]:
    """``python -m serving`` on a registry with the served version and two clones."""
    base = model_copy("ui-experiments")
    artifacts = base / "artifacts"
    registry = Registry(artifacts)
    served = registry.current_version()
    assert served is not None
    clone_version(registry, served, CANDIDATE)
    clone_version(registry, served, SHADOW)
    env = {
        "DRUGCLF_ADMIN_TOKEN": ADMIN_TOKEN,
        "DRUGCLF_DATA_DIR": str(base / "var"),
        "DRUGCLF_RELOAD_INTERVAL": "0.2",
        "DRUGCLF_LOG_FORMAT": "text",
        "DRUGCLF_ACCESS_LOG": "false",
        "DRUGCLF_PREDICTION_LOG_FLUSH_INTERVAL": "0.05",
    }
    with ServerProcess(
        artifacts,
        workers=1,
        bench_routes=False,
        extra_env=env,
        log_path=base / "server.log",
        ready_timeout=START_TIMEOUT,
    ) as running:
        yield running.base_url
    shutil.rmtree(base / "var", ignore_errors=True)


@pytest.fixture
def tab(browser: Any, ab_server: str) -> Iterator[Any]:
    """A desktop tab on this suite's server; script errors fail the test."""
    context = browser.new_context(viewport=DESKTOP, base_url=ab_server)
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert not problems, problems


def _json(url: str, body: object | None = None, *, admin: bool = False) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if admin:  # GET /routing is an admin route
        headers["authorization"] = f"Bearer {ADMIN_TOKEN}"
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read()), dict(answer.headers)


def _shoot(page: Any, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(150)
    page.screenshot(path=str(screenshots / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def test_the_model_page_sets_and_clears_the_policy(
    tab: Any, ab_server: str, screenshots: Path
) -> None:
    tab.goto("/ui/model")
    tab.wait_for_selector("body[data-policy-ready]")
    # A new tab has no admin token: the policy is not shown, and not saved unseen.
    assert "needs the admin token" in tab.text_content("#policy-now.locked")
    assert tab.is_disabled("#policy-save")
    tab.fill("#policy-token", "not-the-token")
    tab.press("#policy-token", "Tab")  # leaving the field reads the policy with it
    tab.wait_for_selector("#policy-now.locked:has-text('not valid')")
    tab.fill("#policy-token", ADMIN_TOKEN)
    tab.press("#policy-token", "Tab")
    tab.wait_for_selector("#policy-now:not(.locked)")
    assert "No traffic policy" in tab.text_content("#policy-now")
    assert not tab.is_disabled("#policy-save")
    tab.select_option(f"[data-role-of='{CANDIDATE}']", "candidate")
    tab.fill(f"[data-share-of='{CANDIDATE}']", "150")
    tab.click("#policy-save")
    tab.wait_for_selector("#policy-message.bad")
    assert "candidates[0].weight" in tab.text_content("#policy-message")  # the 422 names it
    tab.fill(f"[data-share-of='{CANDIDATE}']", "50")
    tab.select_option(f"[data-role-of='{SHADOW}']", "shadow")
    tab.fill(f"[data-share-of='{SHADOW}']", "100")
    tab.fill("#sticky-key", "header:X-Subject-Id")
    tab.click("#policy-save")
    tab.wait_for_selector("#policy-message.ok")
    reply, _ = _json(f"{ab_server}/routing", admin=True)
    assert reply["policy"]["candidates"] == [{"version": CANDIDATE, "weight": 0.5}]
    assert reply["policy"]["shadow"] == [{"version": SHADOW, "fraction": 1.0}]
    tab.wait_for_selector(f"#policy-now:has-text('{reply['policy_id']}')")
    _shoot(tab, screenshots, "model-policy")


def test_labels_from_the_batch_page_show_on_the_monitoring_page(
    tab: Any, ab_server: str, screenshots: Path, tmp_path: Path
) -> None:
    lines = ["request_id,index,label"]
    for _ in range(40):
        _, headers = _json(f"{ab_server}/predict", [PATIENT, PATIENT])
        request_id = headers.get("x-request-id") or headers.get("X-Request-Id")
        lines += [f"{request_id},0,drugy", f"{request_id},1,DrugY"]
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    tab.goto("/ui/batch")
    tab.wait_for_timeout(1500)  # the answers reach the prediction log
    tab.set_input_files("#labels-file", str(labels))
    tab.click("#labels-button")
    tab.wait_for_selector("#labels-done")
    assert tab.text_content("#labels-done").startswith("80 labels recorded")
    tab.goto("/ui/monitoring")
    tab.wait_for_selector("body[data-versions-ready]")
    # Without the admin token the page says what reading the policy needs, and works on.
    assert "needs the admin token" in tab.text_content("#ab-policy.locked")
    assert tab.is_visible("#ab-token-form")
    roles = {
        (row.get_attribute("data-version"), row.get_attribute("data-role"))
        for row in tab.query_selector_all("#ab-table tbody tr")
    }
    served = _json(f"{ab_server}/routing", admin=True)[0]["served_version"]
    # 40 requests drawn at 50 %: both the primary and the candidate answered some.
    assert {(served, "primary"), (CANDIDATE, "candidate"), (SHADOW, "shadow")} <= roles
    shadow_accuracy = tab.text_content(f"#ab-table tr[data-version='{SHADOW}'] [data-cell]")
    assert shadow_accuracy.strip() == "100.0%"  # the clones predict DrugY; every label says so
    assert tab.query_selector_all("#ab-chart circle"), "no accuracy points drawn"
    _shoot(tab, screenshots, "monitoring-versions-locked")
    tab.fill("#ab-token", ADMIN_TOKEN)
    tab.click("#ab-token-button")
    tab.wait_for_selector("#ab-policy:not(.locked)")
    assert "Policy" in tab.text_content("#ab-policy")
    assert CANDIDATE in tab.text_content("#ab-policy")
    assert tab.is_hidden("#ab-token-form")
    _shoot(tab, screenshots, "monitoring-versions")
    # The token is kept in the tab: the next visit shows the policy at once.
    tab.goto("/ui/monitoring")
    tab.wait_for_selector("body[data-versions-ready]")
    assert "Policy" in tab.text_content("#ab-policy")
