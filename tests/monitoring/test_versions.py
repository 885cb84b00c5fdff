"""GET /monitoring/versions against figures computed by hand on a fixture log.

The fixture, one patient per request (true label in brackets, "-" unlabelled):

    request  primary P   shadow S   candidate C   P listening   label
    r0       DrugY       DrugY                                  DrugY
    r1       DrugY       DrugX                                  DrugX
    r2       DrugX       DrugX                                  DrugX
    r3       DrugA       DrugB                                  DrugA
    r4       DrugY       DrugY                                  -
    r5                               DrugC         DrugC        DrugC
    r6                               DrugY         DrugC        DrugC

By hand: P as primary is right on r0, r2, r3 of 4 labelled: accuracy 0.75; F1 DrugA 1,
DrugX 2·1/(2+1) = 2/3, DrugY 2·1/(1+2) = 2/3: macro-F1 7/9. S: right on r0, r1, r2: 0.75;
F1 DrugA 0, DrugB 0, DrugX 1, DrugY 1: macro-F1 0.5; it agrees with P on r0, r2, r4 of 5:
0.6. C: right on r5: 0.5; F1 DrugC 2·1/(2+1) = 2/3, DrugY 0: macro-F1 1/3; it agrees with
P's listening on r5 of 2: 0.5. r0-r3 fall in the first hour, r5-r6 in the second.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from serving.monitoring.feedback import FeedbackStore
from serving.monitoring.predlog.backends import open_backend
from serving.monitoring.predlog.records import COLUMNS

from .conftest import Trained
from .test_api import settings

START = 1_800_000_000.0 - 1_800_000_000.0 % 3600  # an hour boundary
P, S, C = "20300101-000000-aaaaaa", "20300101-000000-bbbbbb", "20300101-000000-cccccc"
ROWS = [
    # request, version, role, predicted, seconds after SINCE, latency
    ("r0", P, "primary", "DrugY", 10, 1.0),
    ("r1", P, "primary", "DrugY", 20, 2.0),
    ("r2", P, "primary", "DrugX", 30, 3.0),
    ("r3", P, "primary", "DrugA", 40, 4.0),
    ("r4", P, "primary", "DrugY", 50, 5.0),
    ("r0", S, "shadow", "DrugY", 11, 0.5),
    ("r1", S, "shadow", "DrugX", 21, 0.5),
    ("r2", S, "shadow", "DrugX", 31, 0.5),
    ("r3", S, "shadow", "DrugB", 41, 0.5),
    ("r4", S, "shadow", "DrugY", 51, 0.5),
    ("r5", C, "candidate", "DrugC", 3700, 6.0),
    ("r6", C, "candidate", "DrugY", 3710, 7.0),
    ("r5", P, "shadow", "DrugC", 3701, 0.5),
    ("r6", P, "shadow", "DrugC", 3711, 0.5),
]
LABELS = [("r0", "DrugY"), ("r1", "DrugX"), ("r2", "DrugX"), ("r3", "DrugA")]
LABELS += [("r5", "DrugC"), ("r6", "DrugC")]


def _row(request: str, version: str, role: str, predicted: str, ts: float, latency: float) -> Any:
    values: dict[str, Any] = dict.fromkeys(COLUMNS)
    values.update(
        ts=ts,
        request_id=request,
        batch_index=0,
        batch_size=1,
        model_version=version,
        predicted=predicted,
        latency_ms=latency,
        worker="w",
        role=role,
    )
    return tuple(values[c] for c in COLUMNS)


@pytest.fixture
def client(trained: Trained, tmp_path: Path, log_url: str) -> Iterator[TestClient[Litestar]]:
    app = create_app(settings(trained, tmp_path, prediction_log_url=log_url))
    with TestClient(app) as test_client:
        backend = open_backend(log_url)
        rows = [_row(r, v, role, p, START + dt, lat) for r, v, role, p, dt, lat in ROWS]
        with backend.session() as conn:
            backend.insert(conn, rows)
            conn.commit()
        FeedbackStore(backend).add([(r, 0, label) for r, label in LABELS])
        yield test_client


def _by(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(v["model_version"], v["role"]): v for v in report["versions"]}


def _window() -> dict[str, str]:
    start = START
    iso = datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z")
    end = datetime.fromtimestamp(start + 7200, UTC).isoformat().replace("+00:00", "Z")
    return {"since": iso, "until": end}


def test_accuracy_f1_agreement_and_buckets_match_the_hand_figures(
    client: TestClient[Litestar],
) -> None:
    answer = client.get("/monitoring/versions", params={**_window(), "min_labels": 1})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert [(v["model_version"], v["role"]) for v in report["versions"]] == [
        (P, "primary"),
        (C, "candidate"),
        (P, "shadow"),
        (S, "shadow"),
    ]
    by = _by(report)
    primary, shadow, candidate = by[(P, "primary")], by[(S, "shadow")], by[(C, "candidate")]
    assert (primary["predictions"], primary["labelled"]) == (5, 4)
    assert primary["accuracy"] == 0.75
    assert primary["macro_f1"] == pytest.approx(7 / 9, abs=1e-6)
    assert primary["agreement"] is None
    classes = report["classes"]
    a, x, y = classes.index("DrugA"), classes.index("DrugX"), classes.index("DrugY")
    matrix = primary["confusion"]
    assert (matrix[y][y], matrix[x][y], matrix[x][x], matrix[a][a]) == (1, 1, 1, 1)
    assert sum(map(sum, matrix)) == 4
    assert [(b["labelled"], b["accuracy"]) for b in primary["accuracy_over_time"]] == [
        (4, 0.75),
        (0, None),
    ]
    assert (shadow["accuracy"], shadow["macro_f1"]) == (0.75, 0.5)
    assert shadow["agreement"] == {"compared": 5, "rate": 0.6}
    assert candidate["accuracy"] == 0.5
    assert candidate["macro_f1"] == pytest.approx(1 / 3, abs=1e-6)
    assert candidate["agreement"] == {"compared": 2, "rate": 0.5}
    assert [(b["labelled"], b["accuracy"]) for b in candidate["accuracy_over_time"]] == [
        (0, None),
        (2, 0.5),
    ]
    assert primary["latency_ms"]["requests"] == 5 and primary["latency_ms"]["p50"] == 3.0


def test_too_few_labels_say_so(client: TestClient[Litestar]) -> None:
    report = client.get("/monitoring/versions", params={**_window(), "min_labels": 5}).json()
    primary = _by(report)[(P, "primary")]
    assert primary["accuracy"] is None and primary["macro_f1"] is None
    assert not primary["enough_labels"]
    assert primary["note"] == "not enough labels: 4 of 5 needed"
    assert primary["confusion"][0] is not None  # the matrix is still shown


def test_bad_parameters_are_400(client: TestClient[Litestar]) -> None:
    answer = client.get("/monitoring/versions", params={"bucket_seconds": 1})
    assert answer.status_code == 400 and answer.json()["field"] == "bucket_seconds"
