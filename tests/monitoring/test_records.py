"""Expanding a logged request into rows (the writer process's side, without a database)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from drugclf.contract import SAMPLE_PATIENT
from serving.monitoring.predlog.backends import open_backend
from serving.monitoring.predlog.records import COLUMNS, expand, expand_burst
from serving.monitoring.predlog.wire import LoggedRequest

PATIENT = SAMPLE_PATIENT
PROBS = np.array([[0.7, 0.1, 0.1, 0.05, 0.05]], dtype=np.float32)


def logged(body: bytes, labels: list[str], probabilities: bytes) -> LoggedRequest:
    return LoggedRequest(1.5, "r1", "v1", body, labels, probabilities, 0.25)


def test_one_patient_and_a_batch_of_one_give_the_same_row() -> None:
    # A single patient takes a shortcut; it must not store anything the general path would not.
    one = expand(
        logged(msgspec.json.encode(PATIENT), ["DrugA"], PROBS.tobytes()),
        with_inputs=True,
        worker="w",
    )
    batch = expand(
        logged(msgspec.json.encode([PATIENT]), ["DrugA"], PROBS.tobytes()),
        with_inputs=True,
        worker="w",
    )
    assert one == batch
    (row,) = one
    assert len(row) == len(COLUMNS)
    assert row[7:12] == msgspec.structs.astuple(PATIENT)
    assert row[12:17] == tuple(float(p) for p in PROBS[0])  # float32 values, exactly
    assert row[-2:] == ("w", "primary")  # the worker, then the role (last, added later)


@pytest.mark.parametrize(
    ("body", "labels", "probabilities", "message"),
    [
        (msgspec.json.encode(PATIENT), ["DrugA"], PROBS.tobytes()[:-4], "bytes of probabilities"),
        (msgspec.json.encode([PATIENT] * 2), ["DrugA"] * 2, PROBS.tobytes(), "probabilities for"),
        (msgspec.json.encode([PATIENT] * 2), ["DrugA"], PROBS.tobytes(), "1 labels for 2"),
        (b'{"Age": "45"}', ["DrugA"], PROBS.tobytes(), "the request body is not patients"),
    ],
)
def test_a_request_that_does_not_add_up_is_refused(
    body: bytes, labels: list[str], probabilities: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        expand(logged(body, labels, probabilities), with_inputs=True, worker="w")


def test_without_inputs_the_body_is_not_needed() -> None:
    rows = expand(logged(b"", ["DrugA", "DrugY"], b""), with_inputs=False, worker="w")
    assert [(row[2], row[3], row[5]) for row in rows] == [(0, 2, "DrugA"), (1, 2, "DrugY")]
    assert all(value is None for row in rows for value in row[7:17])


def _request_rows(request_id: str, size: int, ts: float) -> list[tuple[object, ...]]:
    probabilities = np.tile(PROBS, (size, 1)).tobytes()
    body = msgspec.json.encode(PATIENT if size == 1 else [PATIENT] * size)
    return expand(
        LoggedRequest(ts, request_id, "v1", body, ["DrugA"] * size, probabilities, 0.25),
        with_inputs=True,
        worker="host:1",
    )


def test_requests_are_stored_row_for_row_in_arrival_order(log_url: str) -> None:
    # Batches of 200 rows or more bind their shared columns once per chunk (SQLite); what is
    # stored must be exactly the expanded rows, in the order the requests came, whatever path
    # each took: singles, a small batch, a full chunk and a remainder, two full chunks.
    backend = open_backend(log_url)
    backend.create_schema()
    sizes = [1, 3, 1, 450, 1, 200, 2, 400]
    requests = [_request_rows(f"r{i}", size, 1000.0 + i) for i, size in enumerate(sizes)]
    pauses = []
    with backend.session() as conn:
        backend.insert_requests(conn, requests, lambda: pauses.append(len(pauses)))
        conn.commit()
        stored = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM predictions ORDER BY id")
        rows = [tuple(row) for row in stored.fetchall()]
    expected = [row for request in requests for row in request]
    assert len(rows) == sum(sizes)
    assert rows == expected
    # The writer offers the core after each 200-row statement (SQLite: the two chunks of 450,
    # one of 200, two of 400) or each 200 rows copied (PostgreSQL: 1,058 rows).
    assert len(pauses) == 5


def _burst(ids: list[str | None], sizes: list[int], labels: list[str]) -> LoggedRequest:
    probabilities = np.tile(PROBS, (len(labels), 1)).tobytes()
    return LoggedRequest(1.5, None, "v2", b"", labels, probabilities, 4.0, "shadow", ids, sizes)


def test_a_burst_gives_each_request_its_rows_in_order() -> None:
    burst = _burst(["r1", "r2", None], [1, 2, 1], ["DrugA", "DrugB", "DrugY", "DrugC"])
    expanded = expand_burst(burst, worker="host:1")
    nothing = (None,) * 10  # no inputs, no probabilities: the answered row has the inputs
    assert expanded == [
        [(1.5, "r1", 0, 1, "v2", "DrugA", 4.0, *nothing, "host:1", "shadow")],
        [
            (1.5, "r2", 0, 2, "v2", "DrugB", 4.0, *nothing, "host:1", "shadow"),
            (1.5, "r2", 1, 2, "v2", "DrugY", 4.0, *nothing, "host:1", "shadow"),
        ],
        [(1.5, None, 0, 1, "v2", "DrugC", 4.0, *nothing, "host:1", "shadow")],
    ]


@pytest.mark.parametrize(
    ("ids", "sizes"),
    [(["r1", "r2"], [1, 2]), (["r1"], [1, 1]), (["r1", "r2"], [3, -1])],
)
def test_a_burst_that_does_not_add_up_is_refused(ids: list[str | None], sizes: list[int]) -> None:
    with pytest.raises(ValueError, match="labels for"):
        expand_burst(_burst(ids, sizes, ["DrugA", "DrugB"]), worker="host:1")


def test_a_record_spooled_before_bursts_existed_still_decodes() -> None:
    # The fields before request_ids, as an older worker spooled them: one request, not a burst.
    old = msgspec.msgpack.encode([1.5, "r1", "v1", b"", ["DrugA"], PROBS.tobytes(), 0.25, "shadow"])
    request = msgspec.msgpack.decode(old, type=LoggedRequest)
    assert request.request_ids == [] and request.batch_sizes == []
    assert len(expand(request, with_inputs=True, worker="host:1")) == 1
