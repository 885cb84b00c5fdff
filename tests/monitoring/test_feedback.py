"""POST /feedback on SQLite and PostgreSQL: labels join answered patients, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.contract import CLASSES, normalise_label
from serving.app import create_app
from serving.monitoring.feedback import FeedbackItem, FeedbackStore
from serving.monitoring.predlog.backends import FEEDBACK_TABLE, TABLE, open_backend
from tests.support import PATIENT

from .conftest import Trained
from .test_api import flush, settings


@pytest.fixture
def client(trained: Trained, tmp_path: Path, log_url: str) -> Iterator[TestClient[Litestar]]:
    app = create_app(settings(trained, tmp_path, prediction_log_url=log_url))
    with TestClient(app) as test_client:
        test_client.post("/predict", json=PATIENT, headers={"x-request-id": "one"})
        test_client.post("/predict", json=[PATIENT] * 3, headers={"x-request-id": "three"})
        flush(test_client)
        yield test_client


def _labels(log_url: str) -> set[tuple[str, int, str]]:
    rows = open_backend(log_url).fetch(
        f"SELECT request_id, batch_index, label FROM {FEEDBACK_TABLE}", ()
    )
    return {(str(r), int(i), str(label)) for r, i, label in rows}


def test_labels_are_stored_normalised_and_idempotent(
    client: TestClient[Litestar], log_url: str
) -> None:
    items = [
        {"request_id": "one", "label": "drugy"},
        {"request_id": "three", "index": 2, "label": "DRUGX"},
        {"request_id": "three", "index": 0, "label": " DrugA "},
    ]
    answer = client.post("/feedback", json=items)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 3, "recorded": 3, "unchanged": 0, "status": "success"}
    again = client.post("/feedback", json=items[:2]).json()
    assert (again["recorded"], again["unchanged"]) == (0, 2)
    assert _labels(log_url) == {("one", 0, "DrugY"), ("three", 2, "DrugX"), ("three", 0, "DrugA")}


@pytest.mark.parametrize(
    ("items", "status", "code", "field", "index"),
    [
        (
            [{"request_id": "nobody", "label": "DrugY"}],
            404,
            "prediction_not_found",
            "request_id",
            0,
        ),
        (
            [
                {"request_id": "one", "label": "DrugY"},
                {"request_id": "three", "index": 3, "label": "DrugY"},
            ],
            404,
            "prediction_not_found",
            "index",
            1,
        ),
        ([{"request_id": "one", "label": "Aspirin"}], 422, "validation_error", "label", 0),
        (
            [{"request_id": "one", "label": "DrugY", "index": -1}],
            422,
            "validation_error",
            "index",
            0,
        ),
        ([{"request_id": "one"}], 422, "validation_error", "label", 0),
        (
            [{"request_id": "one", "label": "DrugY", "extra": 1}],
            422,
            "validation_error",
            "extra",
            0,
        ),
        ([], 422, "batch_size", None, None),
    ],
)
def test_a_refused_call_names_the_item_and_stores_nothing(
    client: TestClient[Litestar],
    log_url: str,
    items: list[dict[str, object]],
    status: int,
    code: str,
    field: str | None,
    index: int | None,
) -> None:
    answer = client.post("/feedback", json=items)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert (error["code"], error.get("field"), error.get("index")) == (code, field, index)
    assert _labels(log_url) == set()


def test_a_different_label_is_a_conflict(client: TestClient[Litestar], log_url: str) -> None:
    assert (
        client.post("/feedback", json=[{"request_id": "one", "label": "DrugY"}]).status_code == 200
    )
    answer = client.post(
        "/feedback",
        json=[{"request_id": "three", "label": "DrugA"}, {"request_id": "one", "label": "DrugC"}],
    )
    assert answer.status_code == 409
    error = answer.json()
    assert (error["code"], error["field"], error["index"]) == ("label_conflict", "label", 1)
    assert "DrugY" in error["message"]
    assert _labels(log_url) == {("one", 0, "DrugY")}  # all or nothing: "three" not stored
    twice = [{"request_id": "three", "label": "DrugA"}, {"request_id": "three", "label": "DrugB"}]
    assert client.post("/feedback", json=twice).status_code == 409


def test_too_many_items_and_not_json(client: TestClient[Litestar]) -> None:
    many = [{"request_id": "one", "label": "DrugY"}] * 1001
    answer = client.post("/feedback", json=many)
    assert answer.status_code == 422 and "1001" in answer.json()["message"]
    broken = client.post("/feedback", content=b"[{", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["code"] == "malformed_json"


_ANY_CASE_LABEL = st.sampled_from(CLASSES).flatmap(
    lambda c: st.tuples(*(st.sampled_from((ch.lower(), ch.upper())) for ch in c)).map("".join)
)


@given(
    label=st.one_of(st.text(max_size=8), _ANY_CASE_LABEL),
    pad=st.sampled_from(["", " ", "\t", " \n "]),
)
def test_the_label_schema_accepts_what_normalise_label_accepts(label: str, pad: str) -> None:
    """The pattern the OpenAPI document states is the contract's classes, in any letter case."""
    raw = pad + label + pad
    try:
        msgspec.convert({"request_id": "r", "label": raw}, FeedbackItem)
    except msgspec.ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == (normalise_label(raw) is not None)


def test_an_older_log_gains_the_role_column(log_url: str) -> None:
    """A log an earlier version created (no role, no feedback) is brought up to date."""
    backend = open_backend(log_url)
    if log_url.startswith("sqlite"):
        Path(log_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with backend.session() as conn:
        conn.execute(
            f"CREATE TABLE {TABLE} (id {backend.id_ddl}, ts REAL NOT NULL, request_id TEXT, "
            "batch_index INTEGER NOT NULL, batch_size INTEGER NOT NULL, model_version TEXT "
            "NOT NULL, predicted TEXT NOT NULL, latency_ms REAL NOT NULL, age INTEGER, sex TEXT, "
            "bp TEXT, cholesterol TEXT, na_to_k REAL, p_druga REAL, p_drugb REAL, p_drugc REAL, "
            "p_drugx REAL, p_drugy REAL, worker TEXT)"
        )
        conn.execute(
            f"INSERT INTO {TABLE} (ts, request_id, batch_index, batch_size, model_version, "
            "predicted, latency_ms) VALUES (1.0, 'old', 0, 1, 'v', 'DrugY', 1.0)"
        )
        conn.commit()
    backend.create_schema()
    backend.create_schema()  # twice: the column is added once
    (role,) = backend.fetch(f"SELECT role FROM {TABLE}", ())[0]
    assert role is None  # read as primary
    reply = FeedbackStore(backend).add([("old", 0, "DrugY")])
    assert reply.recorded == 1
