"""The explanations in the browser: why on the Predict page, main reasons on the Batch page,
global importance on the Model page, against the real server (its model has an explainer)."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from drugclf.contract import FEATURE_NAMES
from tests.ui.conftest import Server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DRUG_Y = {"Age": 23, "Sex": "F", "BP": "HIGH", "Cholesterol": "HIGH", "Na_to_K": 25.355}
REASON = re.compile(
    r"^(Age|Sex|BP|Cholesterol|Na_to_K) \S+ (raised|lowered) (Drug[ABCXY]) by \d\.\d\d$"
)


def _explain(server: Server, patient: dict[str, object]) -> Any:
    request = urllib.request.Request(
        server.url + "/explain",
        data=json.dumps(patient).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_predict_page_says_why_with_a_waterfall(page: Any, server: Server, shoot: Any) -> None:
    page.goto("/ui/predict")
    page.wait_for_selector("body[data-ready]")
    page.fill("#f-Age", str(DRUG_Y["Age"]))
    page.fill("#f-Na_to_K", str(DRUG_Y["Na_to_K"]))
    for name in ("Sex", "BP", "Cholesterol"):
        page.check(f"input[name={name}][value={DRUG_Y[name]}]")
    page.click("#predict-button")
    page.wait_for_selector("body[data-explained]")
    reason = page.text_content("#reason") or ""
    match = REASON.match(reason)
    assert match, reason
    # The sentence names the input that moved the predicted class most, by what the API says.
    answer = _explain(server, DRUG_Y)
    drug = answer["prediction"]
    assert match.group(3) == drug == "DrugY"
    top = max(FEATURE_NAMES, key=lambda name: abs(answer["values"][name][drug]))
    assert match.group(1) == top
    assert reason.endswith(f"by {abs(answer['values'][top][drug]):.2f}")
    # Base value, one bar per input, the probability.
    assert page.locator("#waterfall svg rect.wf").count() == len(FEATURE_NAMES) + 2
    assert page.locator("#waterfall svg rect.wf.up").count() >= 1
    shoot("predict-why")


def test_batch_page_gives_each_patient_its_main_reason(
    page: Any, shoot: Any, tmp_path: Path
) -> None:
    source = tmp_path / "patients.csv"
    source.write_text(
        "Age,Sex,BP,Cholesterol,Na_to_K\n"
        "23,F,HIGH,HIGH,25.355\n"
        "32,M,HIGH,NORMAL,9.445\n"
        "200,F,HIGH,HIGH,25.355\n"
        "47,M,LOW,HIGH,13.093\n"
    )
    page.goto("/ui/batch")
    page.wait_for_selector("body[data-ready]")
    page.set_input_files("#csv-file", str(source))
    page.click("#batch-button")
    page.wait_for_selector("body[data-batch-done]")
    reasons = page.locator("#results-table td[data-reason]").all_text_contents()
    assert len(reasons) == 3  # the row with Age 200 is refused, so it has no reason
    assert all(REASON.match(r) for r in reasons), reasons
    assert "No reasons" not in (page.text_content("#batch-summary") or "")
    with page.expect_download() as info:
        page.click("#download-button")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert [bool(r["main_reason"]) for r in rows] == [True, True, False, True]
    assert rows[0]["main_reason"] == reasons[0]
    shoot("batch-reasons")


def test_model_page_shows_global_importance(page: Any, server: Server, shoot: Any) -> None:
    page.goto("/ui/model")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#importance-chart svg")
    assert page.locator("#importance-chart svg rect").count() == len(FEATURE_NAMES)
    assert page.locator("#importance-table tbody tr").count() == len(FEATURE_NAMES)
    assert page.text_content("#explain-gate") == "passed"
    with urllib.request.urlopen(server.url + "/model/explanations", timeout=10) as answer:
        info = json.loads(answer.read())
    assert f"{info['background_rows']} training rows" in (page.text_content("#explain-facts") or "")
    shoot("model-importance")


def test_pages_say_when_the_model_has_no_explanations(page: Any) -> None:
    """A version exported without an explainer: predictions work, the pages say why not."""
    refused = {
        "status": 409,
        "content_type": "application/json",
        "body": json.dumps(
            {
                "status": "error",
                "code": "explanations_unavailable",
                "message": "model X has no explanations: it was exported before they existed",
            }
        ),
    }
    page.route("**/explain", lambda route: route.fulfill(**refused))
    page.route("**/model/explanations", lambda route: route.fulfill(**refused))
    page.goto("/ui/predict")
    page.wait_for_selector("body[data-ready]")
    page.fill("#f-Age", "40")
    page.fill("#f-Na_to_K", "12")
    page.click("#predict-button")
    page.wait_for_selector("body[data-explained]")
    assert page.text_content("#predicted-drug")
    assert "has no explanations" in (page.text_content("#why [data-unavailable]") or "")
    page.goto("/ui/model")
    page.wait_for_selector("body[data-ready]")
    assert "has no explanations" in (page.text_content("#importance-unavailable") or "")
    assert page.locator("#importance-body").is_hidden()
