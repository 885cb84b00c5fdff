"""Strict validation and the one error shape, including 404/405/413/415/500.

Messages are for people ("Age must be a whole number from 0 to 120 (got -5)"); ``field``,
``index`` and ``expected`` are for programs and keep their exact wording.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.contract import AGE_MAX, AGE_MIN, FIELDS_BY_NAME, NA_TO_K_MAX
from serving.app import create_app
from serving.http.validation import SHOWN_CHARS

from .conftest import PATIENT, Trained

Client = TestClient[Litestar]
ERROR_KEYS = {"status", "code", "message", "request_id"}
OPTIONAL_KEYS = {"field", "index", "expected"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert ERROR_KEYS <= set(body) <= ERROR_KEYS | OPTIONAL_KEYS
    assert body["status"] == "error"
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


def post_raw(client: Client, content: bytes, content_type: str = "application/json") -> Any:
    return client.post("/predict", content=content, headers={"content-type": content_type})


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("Age", "45", "an integer >= 0 and <= 120"),
        ("Age", 45.0, "an integer >= 0 and <= 120"),
        ("Age", 45.5, "an integer >= 0 and <= 120"),
        ("Age", -1, "an integer >= 0 and <= 120"),
        ("Age", 121, "an integer >= 0 and <= 120"),
        ("Age", 10**30, "an integer >= 0 and <= 120"),
        ("Age", True, "an integer >= 0 and <= 120"),
        ("Age", None, "an integer >= 0 and <= 120"),
        ("Sex", "male", "one of F, M"),
        ("Sex", "m", "one of F, M"),
        ("BP", "high", "one of HIGH, LOW, NORMAL"),
        ("BP", 1, "one of HIGH, LOW, NORMAL"),
        ("Cholesterol", "LOW", "one of HIGH, NORMAL"),
        ("Na_to_K", "15.5", "a finite number > 0 and <= 150"),
        ("Na_to_K", "true", "a finite number > 0 and <= 150"),
        ("Na_to_K", True, "a finite number > 0 and <= 150"),
        ("Na_to_K", 0, "a finite number > 0 and <= 150"),
        ("Na_to_K", -3.2, "a finite number > 0 and <= 150"),
        ("Na_to_K", 150.0001, "a finite number > 0 and <= 150"),
        ("Na_to_K", 1e308, "a finite number > 0 and <= 150"),
        ("Na_to_K", [1.0], "a finite number > 0 and <= 150"),
    ],
)
def test_invalid_field_names_field_and_expectation(
    client: Client, field: str, value: object, expected: str
) -> None:
    body = assert_error(
        client.post("/predict", json={**PATIENT, field: value}), 422, "validation_error"
    )
    assert body["field"] == field
    assert body["expected"] == expected
    assert "index" not in body
    assert body["message"].startswith(f"{field} must be ")
    assert " (got " in body["message"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Age", -5, "Age must be a whole number from 0 to 120 (got -5)"),
        ("Age", "45", 'Age must be a whole number from 0 to 120 (got "45")'),
        ("Age", 45.5, "Age must be a whole number from 0 to 120 (got 45.5)"),
        ("Age", True, "Age must be a whole number from 0 to 120 (got true)"),
        ("Age", None, "Age must be a whole number from 0 to 120 (got null)"),
        ("Sex", "X", 'Sex must be one of F, M (got "X")'),
        ("BP", 1, "BP must be one of HIGH, LOW, NORMAL (got 1)"),
        ("Na_to_K", "abc", 'Na_to_K must be a number greater than 0 and at most 150 (got "abc")'),
        ("Na_to_K", 0, "Na_to_K must be a number greater than 0 and at most 150 (got 0)"),
        ("Na_to_K", [1.0], "Na_to_K must be a number greater than 0 and at most 150 (got [1.0])"),
    ],
)
def test_the_message_says_what_the_field_takes_and_what_was_sent(
    client: Client, field: str, value: object, message: str
) -> None:
    body = assert_error(
        client.post("/predict", json={**PATIENT, field: value}), 422, "validation_error"
    )
    assert body["message"] == message


def test_a_number_beyond_float_is_shown_as_written(client: Client) -> None:
    raw = json.dumps(PATIENT).encode().replace(b"15.5", b"1e400")
    body = assert_error(post_raw(client, raw), 422, "validation_error")
    assert body["message"].endswith("(got 1e400)")


def test_a_long_value_is_cut(client: Client) -> None:
    body = assert_error(
        client.post("/predict", json={**PATIENT, "Sex": "x" * 10_000}), 422, "validation_error"
    )
    got = body["message"].split(" (got ", 1)[1][:-1]
    assert got == '"' + "x" * (SHOWN_CHARS - 4) + "..."
    assert len(json.dumps(body)) < 400  # a 10 kB value is not echoed


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"nan"])
def test_non_finite_numbers_are_rejected(client: Client, literal: bytes) -> None:
    raw = json.dumps(PATIENT).encode().replace(b"15.5", literal)
    response = post_raw(client, raw)
    assert response.status_code in (400, 422)
    body = assert_error(response, response.status_code, response.json()["code"])
    if response.status_code == 422:
        assert body["field"] == "Na_to_K"


def test_error_in_a_batch_names_the_index(client: Client) -> None:
    batch = [PATIENT, PATIENT, {**PATIENT, "BP": "VERY HIGH"}]
    body = assert_error(client.post("/predict", json=batch), 422, "validation_error")
    assert body["index"] == 2
    assert body["field"] == "BP"
    assert body["expected"] == "one of HIGH, LOW, NORMAL"
    assert body["message"] == 'BP must be one of HIGH, LOW, NORMAL (got "VERY HIGH")'


def test_unknown_field_is_rejected(client: Client) -> None:
    body = assert_error(
        client.post("/predict", json={**PATIENT, "Drug": "DrugY"}), 422, "validation_error"
    )
    assert body["field"] == "Drug"
    assert body["message"] == (
        'unknown field "Drug" (the fields are Age, Sex, BP, Cholesterol, Na_to_K)'
    )


def test_missing_field_is_named(client: Client) -> None:
    patient = dict(PATIENT)
    del patient["Cholesterol"]
    body = assert_error(client.post("/predict", json=[PATIENT, patient]), 422, "validation_error")
    assert body["field"] == "Cholesterol"
    assert body["index"] == 1
    assert body["expected"] == "one of HIGH, NORMAL"
    assert body["message"] == "Cholesterol is missing (it must be one of HIGH, NORMAL)"


@pytest.mark.parametrize(
    ("raw", "start", "got"),
    [
        (b'"a string"', "the body must be a patient object", '"a string"'),
        (b"42", "the body must be a patient object", "42"),
        (b"null", "the body must be a patient object", "null"),
        (b"true", "the body must be a patient object", "true"),
        (b"[1, 2]", "each item must be a patient object", "1"),
        (b"[[]]", "each item must be a patient object", "[]"),
    ],
)
def test_wrong_top_level_types(client: Client, raw: bytes, start: str, got: str) -> None:
    body = assert_error(post_raw(client, raw), 422, "validation_error")
    assert "patient object" in body["expected"]
    assert body["message"].startswith(start)
    assert body["message"].endswith(f" (got {got})")


@pytest.mark.parametrize(
    "raw", [b"", b"   ", b"{", b"not json", b'{"Age": 45,}', b'{"Sex": "\xff"}']
)
def test_empty_or_malformed_body(client: Client, raw: bytes) -> None:
    assert_error(post_raw(client, raw), 400, "malformed_json")


def test_trailing_garbage_is_refused(client: Client) -> None:
    response = post_raw(client, json.dumps(PATIENT).encode() + b" trailing")
    assert_error(response, 400, "malformed_json")


def test_empty_array(client: Client) -> None:
    body = assert_error(client.post("/predict", json=[]), 422, "batch_size")
    assert "1 to 1000" in body["expected"]
    assert body["message"] == "a batch holds 1 to 1000 patients (got 0)"


def test_batch_over_the_limit(client: Client) -> None:
    body = assert_error(client.post("/predict", json=[PATIENT] * 1001), 422, "batch_size")
    assert body["message"] == "a batch holds 1 to 1000 patients (got 1001)"


def test_wrong_content_type(client: Client) -> None:
    body = assert_error(
        post_raw(client, json.dumps(PATIENT).encode(), "text/plain"), 415, "unsupported_media_type"
    )
    assert body["expected"] == "application/json"
    assert_error(
        post_raw(client, b"Age=45", "application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
def test_compressed_body_is_refused_naming_the_encoding(client: Client, encoding: str) -> None:
    body = gzip.compress(json.dumps(PATIENT).encode())
    response = client.post(
        "/predict",
        content=body,
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    error = assert_error(response, 415, "unsupported_media_type")
    assert error["field"] == "Content-Encoding"
    assert repr(encoding) in error["message"]
    assert response.headers["x-request-id"] == error["request_id"]
    plain = client.post("/predict", json=PATIENT, headers={"content-encoding": "identity"})
    assert plain.status_code == 200


def test_missing_content_type_is_accepted(client: Client) -> None:
    response = client.post("/predict", content=json.dumps(PATIENT).encode())
    assert response.status_code == 200


def test_not_found_and_method_not_allowed(client: Client) -> None:
    body = assert_error(client.get("/does-not-exist"), 404, "not_found")
    assert body["message"]
    response = client.get("/predict")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]
    assert_error(client.delete("/health"), 405, "method_not_allowed")


@pytest.fixture(scope="module")
def small_client(trained: Trained) -> Iterator[Client]:
    from serving.settings import Settings

    app = create_app(
        Settings(
            artifacts_dir=trained.artifacts_dir,
            access_log=False,
            max_body_bytes=2000,
            max_batch_size=5,
        )
    )
    with TestClient(app) as test_client:
        yield test_client


def test_oversized_body(small_client: Client) -> None:
    raw = json.dumps([PATIENT] * 40).encode()
    assert len(raw) > 2000
    assert_error(post_raw(small_client, raw), 413, "body_too_large")


def test_batch_limit_is_a_setting(small_client: Client) -> None:
    assert small_client.post("/predict", json=[PATIENT] * 5).status_code == 200
    body = assert_error(small_client.post("/predict", json=[PATIENT] * 6), 422, "batch_size")
    assert "1 to 5" in body["expected"]


def test_unexpected_error_is_a_clean_500(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.inference.model import DrugModel
    from serving.settings import Settings

    def explode(self: DrugModel, patient: object) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    app = create_app(Settings(artifacts_dir=trained.artifacts_dir, access_log=False))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        monkeypatch.setattr(DrugModel, "predict_one", explode)
        response = test_client.post("/predict", json=PATIENT)
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text
    assert body["message"] == "internal server error"


# --- property-based: any valid patient is answered, any invalid one names its field --------

valid_patients = st.fixed_dictionaries(
    {
        "Age": st.integers(AGE_MIN, AGE_MAX),
        "Sex": st.sampled_from(FIELDS_BY_NAME["Sex"].allowed or ()),
        "BP": st.sampled_from(FIELDS_BY_NAME["BP"].allowed or ()),
        "Cholesterol": st.sampled_from(FIELDS_BY_NAME["Cholesterol"].allowed or ()),
        "Na_to_K": st.floats(
            min_value=0.0, max_value=NA_TO_K_MAX, exclude_min=True, allow_nan=False
        ),
    }
)

bad_values: dict[str, st.SearchStrategy[object]] = {
    "Age": st.one_of(
        st.integers(max_value=AGE_MIN - 1),
        st.integers(min_value=AGE_MAX + 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=5),
        st.booleans(),
        st.none(),
    ),
    "Sex": st.text(max_size=6).filter(lambda s: s not in ("F", "M")) | st.integers(),
    "BP": st.text(max_size=8).filter(lambda s: s not in ("HIGH", "LOW", "NORMAL")) | st.booleans(),
    "Cholesterol": st.text(max_size=8).filter(lambda s: s not in ("HIGH", "NORMAL")) | st.none(),
    "Na_to_K": st.one_of(
        st.floats(max_value=0.0, allow_nan=False, allow_infinity=False),
        st.floats(min_value=NA_TO_K_MAX, allow_nan=False, allow_infinity=False, exclude_min=True),
        st.text(max_size=5),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
    ),
}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(patient=valid_patients)
def test_any_valid_patient_is_answered(client: Client, patient: dict[str, object]) -> None:
    response = client.post("/predict", json=patient)
    assert response.status_code == 200, response.text
    probabilities = response.json()["probabilities"]
    assert abs(sum(probabilities.values()) - 1.0) < 1e-5


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    field=st.sampled_from(sorted(bad_values)),
    batch_size=st.integers(0, 3),
)
def test_any_invalid_patient_is_refused_naming_the_field(
    client: Client, data: st.DataObject, field: str, batch_size: int
) -> None:
    patient = data.draw(valid_patients)
    patient[field] = data.draw(bad_values[field], label=field)
    body: object = patient if batch_size == 0 else [*[PATIENT] * batch_size, patient]
    response = client.post("/predict", json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()
    assert error["status"] == "error"
    assert error["field"] == field
    assert error["expected"]
    if batch_size:
        assert error["index"] == batch_size
    # For people: the field, what it takes, and the value sent, cut short.
    match = re.fullmatch(rf"{field} must be (.+) \(got (.+)\)", error["message"], re.DOTALL)
    assert match is not None, error["message"]
    assert len(match[2]) <= SHOWN_CHARS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from([*FIELDS_BY_NAME, "x"]), children, max_size=6)
    ),
    max_leaves=12,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_no_body_makes_the_server_fail(client: Client, raw: bytes) -> None:
    """Whatever arrives, the answer is a success or a 4xx in the error shape, never a 500."""
    response = post_raw(client, raw)
    if response.status_code != 200:
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["status"] == "error"
