"""The response checker flags wrong answers, not only HTTP errors."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from drugclf.contract import CLASSES
from loadtests.checks import (
    WrongAnswerError,
    check_client_error,
    check_predict_body,
    check_prediction,
    check_status,
)


def good(drug: str = "DrugY") -> dict[str, Any]:
    probabilities = dict.fromkeys(CLASSES, 0.05)
    probabilities[drug] = 0.8
    return {
        "prediction": drug,
        "probabilities": probabilities,
        "model_version": "20260101-000000-abcdef",
    }


def test_a_right_answer_passes() -> None:
    check_prediction(good())
    check_predict_body(msgspec.json.encode(good()), None)
    check_predict_body(msgspec.json.encode([good("DrugA"), good("DrugX")]), 2)
    check_predict_body(msgspec.json.encode({"predictions": [good()]}), 1)


def test_float32_rounding_is_tolerated() -> None:
    answer = good()
    answer["probabilities"]["DrugY"] += 1e-5
    check_prediction(answer)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(prediction="DrugZ"), "not one of"),
        (lambda a: a.update(prediction="drugY"), "not one of"),
        (lambda a: a.pop("prediction"), "not one of"),
        (lambda a: a["probabilities"].update(DrugY=0.5), "sum to"),
        (lambda a: a["probabilities"].pop("DrugA"), "every class"),
        (lambda a: a["probabilities"].update(DrugQ=0.0), "every class"),
        (lambda a: a["probabilities"].update(DrugA=-0.05, DrugY=0.9), "in \\[0, 1\\]"),
        (lambda a: a["probabilities"].update(DrugA="0.05"), "in \\[0, 1\\]"),
        (lambda a: a.update(prediction="DrugA"), "not the most probable"),
        (lambda a: a.pop("model_version"), "model_version"),
        (lambda a: a.update(model_version=""), "model_version"),
    ],
)
def test_a_wrong_answer_is_flagged(change: Any, message: str) -> None:
    answer = good()
    change(answer)
    with pytest.raises(WrongAnswerError, match=message):
        check_prediction(answer)


@pytest.mark.parametrize(
    ("body", "expected", "message"),
    [
        (b"not json", None, "not JSON"),
        (b"", None, "not JSON"),
        (b"[]", None, "not an object"),
        (msgspec.json.encode([good()]), 2, "1 predictions for 2"),
        (msgspec.json.encode(good()), 1, "not a list"),
        (msgspec.json.encode([good(), {"prediction": "DrugY"}]), 2, "prediction 1"),
    ],
)
def test_a_wrong_body_is_flagged(body: bytes, expected: int | None, message: str) -> None:
    with pytest.raises(WrongAnswerError, match=message):
        check_predict_body(body, expected)


def test_status_checks() -> None:
    check_status(200)
    with pytest.raises(WrongAnswerError, match="HTTP 500"):
        check_status(500)
    for status in (400, 413, 415, 422):
        check_client_error(status)
    for status in (200, 204, 500, 503):
        with pytest.raises(WrongAnswerError, match="expected a 4xx"):
            check_client_error(status)
