"""POST /retrain's boundary: parameters, uploads, size limit, slim install. Nothing is trained."""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

import serving.lifecycle.service
from drugclf.registry import Registry
from serving.http.errors import InvalidInputError, InvalidParameterError, MalformedBodyError
from serving.lifecycle.requests import WAIT_PATTERN, convert_form, decode_request, parse_wait
from serving.lifecycle.schemas import RetrainRequest
from tests.retrain.conftest import AUTH

INVALID = [
    ({"n_estimators": 0}, "n_estimators"),
    ({"n_estimators": 1001}, "n_estimators"),
    ({"n_estimators": "150"}, "n_estimators"),
    ({"n_estimators": 1.5}, "n_estimators"),
    ({"max_leaf_nodes": 1}, "max_leaf_nodes"),
    ({"test_size": 0.05}, "test_size"),
    ({"test_size": 0.5}, "test_size"),
    ({"test_size": -1}, "test_size"),
    ({"apply_smote": "yes"}, "apply_smote"),
    ({"binning": "quantile"}, "binning"),
    ({"random_state": -1}, "random_state"),
    ({"force": 1}, "force"),
    ({"data_path": "/etc/passwd"}, "data_path"),
]


@pytest.mark.parametrize("body,field", INVALID)
def test_invalid_parameter_is_422_naming_it(
    client: TestClient[Litestar], registry: Registry, body: dict[str, object], field: str
) -> None:
    answer = client.post("/retrain", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["code"] == "validation_error"
    assert error["field"] == field
    value = msgspec.json.encode(body[field]).decode()
    if field == "data_path":
        assert error["message"].startswith('unknown field "data_path" (the fields are ')
    else:
        assert re.fullmatch(rf"{field} must be .+ \(got {re.escape(value)}\)", error["message"])
    assert not (registry.root / "jobs").exists()  # rejected before any job


@pytest.mark.parametrize(
    ("body", "message", "expected"),
    [
        (
            {"n_estimators": 5000},
            "n_estimators must be a whole number from 1 to 1000 (got 5000)",
            "an integer >= 1 and <= 1000",
        ),
        (
            {"test_size": 0.5},
            "test_size must be a number greater than 0.05 and less than 0.5 (got 0.5)",
            "a number > 0.05 and < 0.5",
        ),
        (
            {"binning": "quantile"},
            'binning must be one of fixed, learned, none (got "quantile")',
            "one of fixed, learned, none",
        ),
        ({"force": 1}, "force must be true or false (got 1)", "true or false"),
    ],
)
def test_the_answer_says_what_the_field_takes_and_what_was_sent(
    client: TestClient[Litestar], body: dict[str, object], message: str, expected: str
) -> None:
    error = client.post("/retrain", json=body, headers=AUTH).json()
    assert (error["message"], error["expected"]) == (message, expected)


def test_malformed_json_is_400(client: TestClient[Litestar]) -> None:
    answer = client.post(
        "/retrain", content=b"{nope", headers={**AUTH, "content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "malformed_json"


def test_invalid_wait_query_is_400(client: TestClient[Litestar]) -> None:
    """A query parameter, like the monitoring routes' ones: 400, not a body's 422."""
    answer = client.post("/retrain?wait=maybe", json={}, headers=AUTH)
    assert answer.status_code == 400
    error = answer.json()
    assert (error["code"], error["field"], error["expected"]) == (
        "validation_error",
        "wait",
        "true or false",
    )
    assert error["message"] == "wait must be true or false (got maybe)"


def test_body_over_the_upload_limit_is_413(
    make_client: Callable[..., TestClient[Litestar]],
) -> None:
    client = make_client(retrain_max_upload_bytes=1000)
    csv = b"Age,Sex,BP,Cholesterol,Na_to_K,Drug\n" + b"23,F,HIGH,HIGH,25.355,DrugY\n" * 100
    answer = client.post("/retrain", files={"file": ("big.csv", csv)}, headers=AUTH)
    assert answer.status_code == 413
    assert answer.json()["code"] == "body_too_large"


def test_empty_upload_is_422(client: TestClient[Litestar]) -> None:
    answer = client.post("/retrain", files={"file": ("empty.csv", b"")}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["field"] == "file"


def test_upload_in_another_field_is_422(client: TestClient[Litestar]) -> None:
    answer = client.post("/retrain", files={"data": ("d.csv", b"a,b\n1,2\n")}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["field"] == "data"


def test_invalid_form_parameter_is_422(client: TestClient[Litestar]) -> None:
    answer = client.post(
        "/retrain",
        files={"file": ("d.csv", b"Age\n1\n")},
        data={"n_estimators": "zero"},
        headers=AUTH,
    )
    assert answer.status_code == 422
    error = answer.json()
    assert error["field"] == "n_estimators"
    assert error["message"] == 'n_estimators must be a whole number from 1 to 1000 (got "zero")'


def test_slim_install_answers_501_with_what_to_do(
    make_client: Callable[..., TestClient[Litestar]],
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving.lifecycle.service, "training_installed", lambda: False)
    client = make_client()
    answer = client.post("/retrain", json={}, headers=AUTH)
    assert answer.status_code == 501
    error = answer.json()
    assert error["code"] == "retrain_unavailable"
    assert "python -m training" in error["message"] and "promote" in error["message"]
    # Versions present can still be switched.
    version = registry.current_version()
    assert client.post(f"/models/{version}/promote", headers=AUTH).status_code == 200
    assert client.get("/models").status_code == 200


def test_slim_answer_needs_auth_first(
    make_client: Callable[..., TestClient[Litestar]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving.lifecycle.service, "training_installed", lambda: False)
    assert make_client().post("/retrain", json={}).status_code == 401


# The decoding boundary, without HTTP.


def test_empty_body_means_every_default() -> None:
    request = decode_request(b"")
    assert request == RetrainRequest()
    assert request.wait and not request.force
    params = request.params()
    assert (params.n_estimators, params.max_leaf_nodes, params.test_size) == (100, 30, 0.3)


def test_original_body_maps_onto_training_params() -> None:
    body = b'{"n_estimators": 150, "max_leaf_nodes": 40, "test_size": 0.3, "apply_smote": false}'
    params = decode_request(body).params()
    assert (params.n_estimators, params.max_leaf_nodes, params.smote) == (150, 40, False)


def test_form_fields_are_converted_from_text() -> None:
    request = convert_form({"n_estimators": "50", "apply_smote": "false", "force": "true"})
    assert (request.n_estimators, request.apply_smote, request.force) == (50, False, True)
    assert convert_form({"params": '{"n_estimators": 7}'}).n_estimators == 7


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_n_estimators_accepted_exactly_in_1_to_1000(value: int) -> None:
    body = msgspec.json.encode({"n_estimators": value})
    if 1 <= value <= 1000:
        assert decode_request(body).n_estimators == value
    else:
        with pytest.raises(InvalidInputError) as caught:
            decode_request(body)
        assert caught.value.field == "n_estimators"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_test_size_accepted_strictly_between_005_and_05(value: float) -> None:
    body = msgspec.json.encode({"test_size": value})
    if 0.05 < value < 0.5:
        assert decode_request(body).test_size == value
    else:
        with pytest.raises(InvalidInputError):
            decode_request(body)


@given(st.text(max_size=8) | st.sampled_from(["true", "FALSE", "Yes", "no", "0", "1", " true"]))
def test_wait_accepts_exactly_what_the_openapi_document_says(text: str) -> None:
    """``WAIT_PATTERN`` is what /docs/openapi.json states; the parser must agree with it."""
    documented = re.fullmatch(WAIT_PATTERN, text) is not None
    try:
        parse_wait(text, default=True)
    except InvalidParameterError as exc:
        assert not documented, text
        assert exc.status_code == 400 and exc.field == "wait"
    else:
        assert documented, text


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_fail_with_a_client_error(raw: bytes) -> None:
    try:
        decode_request(raw)
    except (InvalidInputError, MalformedBodyError) as exc:
        assert exc.status_code in (400, 422)
