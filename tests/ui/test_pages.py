"""End to end through the browser: every page against the real server.

The tests share one server, so they run in this file's order: predictions first, then the
monitoring page that shows them, then a retrain that changes the served version.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from serving.ui.routes import PAGES as UI_PAGES
from tests.support import DATA
from tests.ui.conftest import ADMIN_TOKEN, Server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DRUG_Y = {"Age": "23", "Sex": "F", "BP": "HIGH", "Cholesterol": "HIGH", "Na_to_K": "25.355"}
DRUG_A = {"Age": "32", "Sex": "M", "BP": "HIGH", "Cholesterol": "NORMAL", "Na_to_K": "9.445"}


def _get(server: Server, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=10) as answer:
        return json.loads(answer.read())


def _fill_patient(page: Any, patient: dict[str, str]) -> None:
    page.fill("#f-Age", patient["Age"])
    page.fill("#f-Na_to_K", patient["Na_to_K"])
    for name in ("Sex", "BP", "Cholesterol"):
        page.check(f"input[name={name}][value={patient[name]}]")


def test_home_shows_the_served_version_and_links(page: Any, server: Server, shoot: Any) -> None:
    page.goto("/")
    page.wait_for_selector("body[data-ready]")
    version = _get(server, "/health")["model_version"]
    assert page.text_content("#model-version") == version
    assert version in page.text_content("#server-status")
    assert "not a clinical tool" in page.text_content(".warning").lower()
    for path in [p.path for p in UI_PAGES if p.slug != "home"] + ["/docs"]:
        assert page.locator(f"main a[href='{path}']").count() >= 1
    shoot("home")


@pytest.mark.parametrize(("patient", "drug"), [(DRUG_Y, "DrugY"), (DRUG_A, "DrugA")])
def test_predict_a_known_patient(
    page: Any, server: Server, shoot: Any, patient: dict[str, str], drug: str
) -> None:
    page.goto("/ui/predict")
    page.wait_for_selector("body[data-ready]")
    # The form comes from the feature contract served by the API.
    assert page.get_attribute("#f-Age", "max") == "120"
    assert page.locator("input[name=BP]").count() == 3
    _fill_patient(page, patient)
    page.click("#predict-button")
    page.wait_for_selector("#predicted-drug")
    assert page.text_content("#predicted-drug") == drug
    assert page.locator(".barrow").count() == 5
    assert page.locator(".barrow.best").get_attribute("data-class") == drug
    # The bars are drawn: the winner's fill spans most of its track.
    track = page.locator(".barrow.best .track").bounding_box()
    fill = page.locator(".barrow.best .fill").bounding_box()
    assert track is not None and fill is not None
    assert fill["width"] > 0.5 * track["width"]
    assert page.text_content("#answer-version") == _get(server, "/health")["model_version"]
    if drug == "DrugY":
        shoot("predict")


def test_predict_invalid_age_shows_the_server_message(page: Any, shoot: Any) -> None:
    page.goto("/ui/predict")
    page.wait_for_selector("body[data-ready]")
    _fill_patient(page, {**DRUG_Y, "Age": "150"})
    page.click("#predict-button")
    error = page.locator("#err-Age")
    error.wait_for(state="visible")
    # The server's message, as is: what the field takes and what was typed.
    assert error.text_content() == "Age must be a whole number from 0 to 120 (got 150)"
    assert page.get_attribute("#f-Age", "aria-invalid") == "true"
    assert page.locator("#predicted-drug").count() == 0
    # Keyboard: fix the value and submit with Enter.
    page.fill("#f-Age", "23")
    page.press("#f-Age", "Enter")
    page.wait_for_selector("#predicted-drug")
    assert page.text_content("#err-Age") == ""
    page.fill("#f-Age", "150")
    page.press("#f-Age", "Enter")
    error.wait_for(state="visible")
    shoot("predict-invalid")


def test_predict_with_the_keyboard_only(page: Any) -> None:
    page.goto("/ui/predict")
    page.wait_for_selector("body[data-ready]")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.focus("#f-Age")
    page.keyboard.type("32")
    page.keyboard.press("Tab")  # Sex: F is checked; the arrow moves to M
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Tab")  # BP stays HIGH
    page.keyboard.press("Tab")  # Cholesterol: HIGH -> NORMAL
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Tab")
    page.keyboard.type("9.445")
    page.keyboard.press("Enter")
    page.wait_for_selector("#predicted-drug")
    assert page.text_content("#predicted-drug") == "DrugA"


def test_batch_upload_round_trips(page: Any, shoot: Any, tmp_path: Path) -> None:
    source = tmp_path / "patients.csv"
    lines = [
        "Age,Sex,BP,Cholesterol,Na_to_K,Drug",
        "23,F,HIGH,HIGH,25.355,DrugY",
        "32,M,HIGH,NORMAL,9.445,drugA",
        "200,F,HIGH,HIGH,25.355,DrugY",
        "47,M,LOW,HIGH,13.093,drugC",
        "40,X,HIGH,HIGH,12,DrugA",
        "61,F,LOW,HIGH,18.043,DrugY",
    ]
    source.write_text("\n".join(lines) + "\n")
    page.goto("/ui/batch")
    page.wait_for_selector("body[data-ready]")
    page.set_input_files("#csv-file", str(source))
    page.click("#batch-button")
    page.wait_for_selector("body[data-batch-done]")
    assert page.locator("#results-table tbody tr").count() == 6
    assert page.locator("#results-table tr.row-error").count() == 2
    error_rows = page.locator("#errors-table tbody tr")
    assert [error_rows.nth(i).get_attribute("data-error-row") for i in range(2)] == ["3", "5"]
    assert "Age" in error_rows.nth(0).text_content()
    assert "Sex" in error_rows.nth(1).text_content()
    assert 'Sex must be one of F, M (got "X")' in error_rows.nth(1).text_content()
    predictions = page.locator("#results-table td[data-prediction]").all_text_contents()
    assert predictions[0] == "DrugY" and predictions[1] == "DrugA"
    assert "Ignored columns: Drug" in page.text_content("#batch-summary")
    with page.expect_download() as info:
        page.click("#download-button")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert [r["row"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[0]["prediction"] == "DrugY" and rows[1]["prediction"] == "DrugA"
    assert rows[2]["prediction"] == ""
    assert rows[2]["error"] == "Age must be a whole number from 0 to 120 (got 200)"
    assert float(rows[0]["probability_DrugY"]) > 0.5
    shoot("batch")


def test_monitoring_shows_the_predictions_just_made(page: Any, server: Server, shoot: Any) -> None:
    # A prediction of a patient no other test sends, through the UI.
    page.goto("/ui/predict")
    page.wait_for_selector("body[data-ready]")
    _fill_patient(page, {**DRUG_Y, "Age": "77", "Na_to_K": "31.5"})
    page.click("#predict-button")
    page.wait_for_selector("#predicted-drug")
    page.goto("/ui/monitoring")
    page.wait_for_selector("body[data-ready]")
    # Recorded inputs are patient data: without the token the table says what it needs.
    expect(page.locator("#recent-locked")).to_contain_text("enter the read or admin token")
    assert page.text_content("#total-predictions") != "–"  # the aggregates stay open
    page.fill("#token", ADMIN_TOKEN)
    page.click("#filter-form button[type=submit]")
    recent = page.locator("#recent tbody")
    recent.wait_for()
    # The log writer commits in the background: refresh until the row is there.
    for _ in range(20):
        if "77, F, HIGH, HIGH, 31.5" in recent.text_content():
            break
        page.wait_for_timeout(300)
        page.click("#refresh-button")
        expect(page.locator("#refresh-button")).to_be_enabled()
    assert "77, F, HIGH, HIGH, 31.5" in recent.text_content()
    # The summary is read before the list on each refresh: refresh once more now all rows are in.
    page.click("#refresh-button")
    expect(page.locator("#refresh-button")).to_be_enabled()
    summary = _get(server, "/monitoring/summary")
    assert int(page.text_content("#total-predictions")) == summary["predictions"] > 0
    # The batch test's rows are there too, marked with their place in the batch.
    assert "of 4" in recent.text_content()
    for chart in ("#hourly-chart", "#mix-chart", "#latency-chart", "#drift-chart"):
        assert page.locator(f"{chart} svg").count() == 1, chart
    assert page.locator("#drift-table tbody tr").count() == 5
    assert page.locator("#more-button").is_hidden()  # fewer rows than a page
    shoot("monitoring")


def test_model_page_shows_the_confusion_matrix(page: Any, server: Server, shoot: Any) -> None:
    page.goto("/ui/model")
    page.wait_for_selector("body[data-ready]")
    image = page.locator("#confusion-matrix")
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 100
    assert page.text_content("#info-version") == _get(server, "/health")["model_version"]
    assert page.locator("#per-class tbody tr").count() == 5
    assert page.text_content("#parity-result") == "passed"
    shoot("model")


def test_about_links_to_the_docs(page: Any, shoot: Any) -> None:
    page.goto("/ui/about")
    page.wait_for_selector("body[data-ready]")
    assert page.locator("main a[href='/docs']").count() == 1
    shoot("about")


def test_retrain_changes_the_displayed_version(page: Any, server: Server, shoot: Any) -> None:
    before = _get(server, "/health")["model_version"]
    page.goto("/ui/retrain")
    page.wait_for_selector("body[data-ready]")
    assert page.text_content("#serving-version") == before
    # The parameter ranges come from the API's schema.
    assert page.text_content("#hint-test_size") == "number > 0.05 and < 0.5"
    assert page.get_attribute("#n_estimators", "max") == "1000"
    # A wrong token is reported next to the token field.
    page.fill("#n_estimators", "10")
    page.fill("#token", "wrong")
    page.click("#retrain-button")
    page.locator("#err-token").wait_for(state="visible")
    assert "not valid" in page.text_content("#err-token")
    # An out-of-range parameter is reported next to its field.
    page.fill("#token", ADMIN_TOKEN)
    page.fill("#test_size", "0.9")
    page.click("#retrain-button")
    page.locator("#err-test_size").wait_for(state="visible")
    page.fill("#test_size", "0.3")
    page.check("#force")
    # Upload the dataset (multipart), so the upload path is the one exercised.
    page.set_input_files("#dataset", str(DATA))
    page.click("#retrain-button")
    page.wait_for_selector("#progress:not([hidden])")
    page.wait_for_selector("body[data-retrain-done]", timeout=240_000)
    new = page.text_content("#new-version")
    assert new != before
    assert page.text_content("#promoted") == "yes"
    assert "200 rows" in page.text_content("#result-data")
    assert "drug200.csv" in page.text_content("#result-data")
    assert page.text_content("#serving-version") == new
    assert new in page.text_content("#server-status")
    assert _get(server, "/health")["model_version"] == new
    shoot("retrain")
    # The model page lists both versions and serves the new one's confusion matrix.
    page.goto("/ui/model")
    page.wait_for_selector("body[data-ready]")
    assert page.text_content("#info-version") == new
    assert page.locator("#versions tbody tr").count() == 2
    assert page.locator(f"#versions tr.current[data-version='{new}']").count() == 1
    assert page.locator("#accuracy-chart svg circle").count() == 4
    expect(page.locator("#confusion-matrix")).to_have_js_property("complete", True)
    assert page.locator("#confusion-matrix").evaluate("img => img.naturalWidth") > 100
    shoot("model-versions")
    # Roll back from the page: the old version serves again.
    page.fill("#token", ADMIN_TOKEN)
    page.click("#rollback-button")
    expect(page.locator("#info-version")).to_have_text(before, timeout=30_000)
    assert "now serving" in page.text_content("#admin-message")
    assert _get(server, "/health")["model_version"] == before
    # And promote the new one again with its button.
    page.click(f"button[data-promote='{new}']")
    expect(page.locator("#info-version")).to_have_text(new, timeout=30_000)
    assert _get(server, "/health")["model_version"] == new


def test_pages_say_when_a_feature_is_missing(page: Any, shoot: Any) -> None:
    """A server without the lifecycle or monitoring routes (404): the pages say so."""
    missing = {
        "status": 404,
        "content_type": "application/json",
        "body": json.dumps({"status": "error", "code": "not_found", "message": "no such route"}),
    }
    page.route("**/models", lambda route: route.fulfill(**missing))
    page.route("**/monitoring/summary*", lambda route: route.fulfill(**missing))
    page.route("**/predictions*", lambda route: route.fulfill(**missing))
    page.goto("/ui/model")
    page.wait_for_selector("body[data-ready]")
    assert "not available on this server" in page.text_content("#versions-unavailable")
    assert page.locator("#versions-body").is_hidden()
    page.goto("/ui/retrain")
    page.wait_for_selector("body[data-ready]")
    assert "not available on this server" in page.text_content("#retrain-unavailable")
    assert page.locator("#retrain-button").is_disabled()
    page.goto("/ui/monitoring")
    page.wait_for_selector("body[data-ready]")
    assert "not available on this server" in page.text_content("#monitoring-unavailable")
    shoot("monitoring-missing")
